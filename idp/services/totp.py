"""Time-based one-time passwords (TOTP, RFC 6238: https://www.rfc-editor.org/rfc/rfc6238).

We use the parameters every authenticator app supports: HMAC-SHA1, 6 digits
and 30-second steps. Secrets are 160 bits, the HMAC-SHA1 output size that
RFC 4226 §4 recommends. Store them encrypted (:mod:`idp.services.crypto`).

Replay protection: :func:`verify` returns the time step the code matched. The
caller stores that step with the device and passes it back next time. A code
for that step or an earlier one is then refused, even inside the window.
RFC 6238 §5.2 asks for exactly this.
"""

from __future__ import annotations

import hmac

import pyotp
import segno

from idp import clock

__all__ = [
    "CodeReusedError",
    "InvalidCodeError",
    "OutOfSyncError",
    "format_secret",
    "generate_secret",
    "provisioning_uri",
    "qr_svg",
    "verify",
]

DIGITS = 6
STEP_SECONDS = 30
#: 32 base32 characters carry 160 bits.
SECRET_LENGTH = 32
#: Steps on either side of the current one that are accepted.
VALID_WINDOW_STEPS = 1
#: Steps on either side that are recognised but refused, as clock drift.
SYNC_WINDOW_STEPS = 10
#: The QR code is drawn at about this width, quiet zone included.
QR_TARGET_PIXELS = 200


class InvalidCodeError(Exception):
    """The code is wrong or malformed. The subclasses say more about why."""


class CodeReusedError(InvalidCodeError):
    """The code is valid but its time step was already used (a replay)."""


class OutOfSyncError(InvalidCodeError):
    """The code belongs to a time step too far from now: the device's clock is off."""

    def __init__(self, drift_steps: int) -> None:
        super().__init__(f"code is {drift_steps:+d} time steps from now")
        #: Steps between the matched code and now. Positive means the device is ahead.
        self.drift_steps = drift_steps


def generate_secret() -> str:
    """A new random base32 secret of 160 bits."""
    return pyotp.random_base32(length=SECRET_LENGTH)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI that authenticator apps read from the QR code.

    The label is ``issuer:account``, and the issuer is also a query parameter,
    so both old and new apps show it
    (https://github.com/google/google-authenticator/wiki/Key-Uri-Format).
    """
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str, title: str | None = None) -> str:
    """The QR code of ``uri`` as inline SVG markup, with no XML declaration.

    The scale is a whole number of pixels per module, so the edges stay
    sharp. That puts the width near :data:`QR_TARGET_PIXELS`. The background
    is white, so the code still scans when the page has a dark theme.

    :param title: an accessible name for the image, already translated. It is
        escaped.
    """
    qr = segno.make(uri, error="m", micro=False)
    width, _ = qr.symbol_size(scale=1)
    scale = max(2, round(QR_TARGET_PIXELS / width))
    return qr.svg_inline(scale=scale, dark="#000", light="#fff", title=title, svgclass="qr")


def format_secret(secret: str) -> str:
    """The secret in groups of four characters, for typing it in by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def verify(secret: str, code: str, last_used_step: int | None, now: int | None = None) -> int:
    """Check ``code`` and return the time step it matched.

    We accept the current step and one step on either side. The code on the
    screen may be from the step that just ended when it arrives, and the
    device's clock may be a little off (RFC 6238 §5.2 and §6). A wider window
    would give a guesser more valid codes per try. A code for a step within
    :data:`SYNC_WINDOW_STEPS` is refused, but with its own error, so the user
    can be told to fix the clock.

    :param last_used_step: the step returned by the last accepted code, or
        ``None`` if the device has never been used.
    :param now: seconds since the epoch. The default is :func:`idp.clock.now`.
    :raises CodeReusedError: the code matched a step no later than
        ``last_used_step``.
    :raises OutOfSyncError: the code matched a step outside the window but
        within :data:`SYNC_WINDOW_STEPS`.
    :raises InvalidCodeError: the code is malformed or matches no step.
    """
    code = "".join(code.split())
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        raise InvalidCodeError("code must be 6 digits")
    totp = _totp(secret)
    current = (clock.now() if now is None else now) // STEP_SECONDS

    step = _matching_step(totp, code, current, VALID_WINDOW_STEPS)
    if step is not None:
        if last_used_step is not None and step <= last_used_step:
            raise CodeReusedError("code was already used")
        return step

    step = _matching_step(totp, code, current, SYNC_WINDOW_STEPS)
    if step is not None:
        raise OutOfSyncError(step - current)
    raise InvalidCodeError("code does not match")


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def _matching_step(totp: pyotp.TOTP, code: str, current: int, window: int) -> int | None:
    """The step within ``window`` of ``current`` whose code is ``code``, nearest first.

    Every comparison is constant time, so the response time doesn't show how
    many leading digits were right.
    """
    for offset in _offsets_nearest_first(window):
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _offsets_nearest_first(window: int) -> list[int]:
    """``0, -1, 1, -2, 2, …`` up to ``window``, earlier before later at each distance."""
    offsets = [0]
    for distance in range(1, window + 1):
        offsets += [-distance, distance]
    return offsets
