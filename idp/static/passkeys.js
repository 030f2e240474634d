// WebAuthn in the browser. The server's options arrive in the form's
// data-options (JSON, base64url for bytes); the browser's answer goes back in
// the form's hidden "credential" field by an ordinary POST (CSRF token and
// all). Elements with data-webauthn-start (inactive until this script is
// ready) begin the ceremony; with
// data-conditional the browser may also offer passkeys in the e-mail field's
// autofill.
"use strict";
(() => {
  const form = document.querySelector("form[data-webauthn]");
  if (!form) return;
  const creating = form.dataset.webauthn === "create";
  const status = form.querySelector(".webauthn-status");
  const say = (text) => {
    status.textContent = text || "";
    status.hidden = !text;
  };

  const toBytes = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };
  const toText = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  function publicKey() {
    const options = JSON.parse(form.dataset.options);
    options.challenge = toBytes(options.challenge);
    if (options.user) options.user.id = toBytes(options.user.id);
    for (const list of [options.excludeCredentials, options.allowCredentials]) {
      for (const credential of list || []) credential.id = toBytes(credential.id);
    }
    return options;
  }

  function answer(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify({
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
    });
  }

  let pending = null;
  async function ceremony(mediation) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    const request = { publicKey: publicKey(), signal: controller.signal };
    if (mediation) request.mediation = mediation;
    say("");
    try {
      const credential = creating
        ? await navigator.credentials.create(request)
        : await navigator.credentials.get(request);
      if (!credential) return;
      form.elements.credential.value = answer(credential);
      form.submit();
    } catch (error) {
      if (controller.signal.aborted) return; // gave way to a newer request
      const cancelled = error.name === "NotAllowedError" || error.name === "AbortError";
      say(cancelled ? form.dataset.msgCancelled : form.dataset.msgFailed);
    }
  }

  const starts = document.querySelectorAll("[data-webauthn-start]");
  if (!window.PublicKeyCredential || !navigator.credentials) {
    say(form.dataset.msgUnsupported);
    starts.forEach((element) => element.setAttribute("aria-disabled", "true"));
    return;
  }
  // The controls stay inactive until this script can run the ceremony.
  starts.forEach((element) => {
    element.addEventListener("click", (event) => {
      event.preventDefault();
      ceremony(null);
    });
    element.disabled = false;
    element.removeAttribute("aria-disabled");
  });
  if (form.dataset.conditional && PublicKeyCredential.isConditionalMediationAvailable) {
    PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
      if (available) ceremony("conditional");
    });
  }
})();
