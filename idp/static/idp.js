// The show/hide eye next to password fields. Without JavaScript the button
// stays hidden and the field simply stays masked.
"use strict";
document.querySelectorAll("button[data-reveal]").forEach((button) => {
  const field = document.getElementById(button.dataset.reveal);
  if (!field) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const show = field.type === "password";
    field.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", String(show));
    button.setAttribute("aria-label", show ? button.dataset.hideLabel : button.dataset.showLabel);
    field.focus();
  });
});
