"""Login flows: a multi-step login is a small state machine kept in Redis.

A :class:`Flow` records the pending authorization request, which user has
proven what so far, and which step comes next. Each step view loads the flow
with :meth:`FlowStore.require`, which refuses a flow that is unknown, expired,
bound to another browser or at another step, so no step can be skipped by
typing its URL and no flow can be replayed from another browser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field

from idp import clock
from idp.services import secrets
from idp.store import Store

__all__ = ["Flow", "FlowError", "FlowStore", "Kind", "Step", "StepError"]


class Step:
    """The steps of the flows.

    A login runs IDENTIFY, LOGIN (the password), SECOND_FACTOR (and
    NEW_RECOVERY after an emergency code), then CONSENT if needed; a user who
    must have a second factor and has none is sent through the enrolment steps
    first. An activation runs PASSWORD, TOTP, SMS, SMS_VERIFY, RECOVERY,
    FINISHED. A password reset runs RESET.
    """

    IDENTIFY = "identify"
    LOGIN = "login"
    SECOND_FACTOR = "second_factor"
    NEW_RECOVERY = "new_recovery"
    RESET = "reset"
    CONSENT = "consent"
    PASSWORD = "password"  # noqa: S105 - a step name
    TOTP = "totp"
    SMS = "sms"
    SMS_VERIFY = "sms_verify"
    RECOVERY = "recovery"
    FINISHED = "finished"


class Kind:
    LOGIN = "login"
    ACTIVATION = "activation"
    RESET = "reset"


class FlowError(Exception):
    """The flow is unknown, expired, from another browser, or not at this step."""


class StepError(FlowError):
    """The flow is this browser's and live, but at another step: ``flow``."""

    def __init__(self, flow: Flow, steps: tuple[str, ...]) -> None:
        super().__init__(f"at step {flow.step}, not {'/'.join(steps)}")
        self.flow = flow


@dataclass
class Flow:
    id: str
    #: Digest of the browser binding secret kept in the browser's cookie.
    browser: str
    step: str
    #: The authorization request's parameters, to resume it when the login is done.
    params: dict[str, str]
    created_at: int = field(default_factory=lambda: clock.now())
    user_id: int | None = None
    #: Authentication methods completed in this flow (RFC 8176 values).
    amr: list[str] = field(default_factory=list)
    auth_time: int | None = None
    #: Set once the user approved the consent screen in this flow.
    consented: bool = False
    kind: str = Kind.LOGIN
    #: The client that started an activation (heads the screens, receives the user).
    client_hint: str | None = None
    #: Digest of the e-mailed link that started an activation, consumed with the password.
    token_hash: str | None = None
    #: Enrolment state, encrypted where secret: the TOTP secret being set up, the
    #: pending SMS challenge and its number, the emergency code being shown.
    totp_secret: str | None = None
    sms_challenge_id: str | None = None
    phone: str | None = None
    recovery_code: str | None = None
    #: Set up two-step verification anew: the old factors go when the new app is confirmed.
    replace_factors: bool = False
    #: A fingerprint of the password hash the login checked; a reset in the
    #: meantime ends the flow.
    password_stamp: str | None = None
    #: The e-mail address typed on the first login screen.
    email: str | None = None
    #: The second-factor method on screen, and the SMS reference number shown.
    method: str | None = None
    sms_reference: str | None = None
    #: Where a login that no client started goes afterwards (the account page).
    return_to: str | None = None

    @property
    def client_id(self) -> str:
        return self.params.get("client_id", "")


class FlowStore:
    def __init__(self, store: Store, ttl_seconds: int) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds

    def _key(self, flow_id: str) -> str:
        return self.store.key("flow", flow_id)

    def start(
        self, params: dict[str, str], browser: str, step: str = Step.LOGIN, **fields: object
    ) -> Flow:
        flow = Flow(
            id=secrets.new_secret(),
            browser=secrets.digest(browser),
            step=step,
            params=params,
            **fields,  # type: ignore[arg-type]
        )
        self.save(flow)
        return flow

    def advance(self, flow: Flow, step: str) -> Flow:
        """Move the flow to ``step`` and save it."""
        flow.step = step
        self.save(flow)
        return flow

    def save(self, flow: Flow) -> None:
        remaining = flow.created_at + self.ttl_seconds - clock.now()
        if remaining <= 0:
            raise FlowError("expired")
        # The fields as they are (str, int, bool, a dict and a list of str):
        # dataclasses.asdict's deep copy cost a tenth of a login screen.
        self.store.call("SET", self._key(flow.id), json.dumps(vars(flow)), "EX", remaining)

    def require(self, flow_id: str | None, browser: str | None, *steps: str) -> Flow:
        """The flow ``flow_id`` if it belongs to ``browser`` and is at one of ``steps``."""
        if not flow_id or not browser:
            raise FlowError("missing")
        raw = self.store.call("GET", self._key(flow_id))
        if raw is None:
            raise FlowError("unknown or expired")
        flow = Flow(**json.loads(raw))
        if not secrets.matches(browser, flow.browser):
            raise FlowError("bound to another browser")
        if clock.now() >= flow.created_at + self.ttl_seconds:
            raise FlowError("expired")
        if steps and flow.step not in steps:
            raise StepError(flow, steps)
        return flow

    def finish(self, flow: Flow) -> None:
        """The flow is over (sent with the next round trip)."""
        self.store.later("DEL", self._key(flow.id))
