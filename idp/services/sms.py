"""Text messages: phone numbers, the :class:`SmsSender` protocol, and SMS codes.

:class:`HttpSmsSender` posts each message as JSON to the provider's endpoint
(``IDP_SMS_URL``). :class:`OutboxSmsSender` is the development outbox: it keeps
the newest messages in Redis and prints them to the console, so a local setup
needs no provider and tests read codes the way a user would.
:func:`build_sms_sender` is the one place that chooses between them.

:class:`SmsChallenges` runs the code flow: send a six-digit code to a number,
then check what the user typed, with every piece of state in Redis.

Messages carry codes, so nothing here logs their text.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any
from typing import Protocol

import phonenumbers
import redis
import requests

from idp import clock
from idp.services.outbox import Outbox
from idp.services.ratelimit import RateLimiter
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.secrets import digest
from idp.services.secrets import new_secret
from idp.store import Store

__all__ = [
    "ChallengeExpiredError",
    "ChallengeLockedError",
    "HttpSmsSender",
    "InvalidPhoneError",
    "OutboxSmsSender",
    "ResendTooSoonError",
    "SmsChallenge",
    "SmsChallenges",
    "SmsDeliveryError",
    "SmsError",
    "SmsMessage",
    "SmsSender",
    "SmsTooManyAttemptsError",
    "WrongCodeError",
    "build_sms_sender",
    "mask_phone",
    "parse_phone",
]

log = logging.getLogger(__name__)

#: The outbox keeps this many messages, dropping the oldest.

CODE_DIGITS = 6
REFERENCE_DIGITS = 4


class SmsError(Exception):
    """Base class of every error of this module."""


class InvalidPhoneError(SmsError, ValueError):
    """The input is not a valid phone number."""


class SmsDeliveryError(SmsError):
    """The provider did not accept the message."""


class ResendTooSoonError(SmsError):
    """A code went to this number moments ago; another may follow in ``resets_in`` seconds."""

    def __init__(self, resets_in: int) -> None:
        super().__init__(f"a code was sent moments ago, try again in {resets_in} seconds")
        self.resets_in = resets_in


class SmsTooManyAttemptsError(SmsError, TooManyAttemptsError):
    """Too many codes went to this number or were requested from this address."""


class ChallengeExpiredError(SmsError):
    """The challenge is unknown, used, or expired."""


class ChallengeLockedError(SmsError):
    """The last attempt was wrong too; the challenge is gone and a new code is needed."""


class WrongCodeError(SmsError):
    """The code does not match; ``attempts_left`` more tries remain."""

    def __init__(self, attempts_left: int) -> None:
        super().__init__(f"wrong code, {attempts_left} attempts left")
        self.attempts_left = attempts_left


def parse_phone(raw: str, default_region: str = "DK") -> str:
    """The E.164 form (``+4512345678``) of a number as a user typed it.

    A number without a country code is read as one of ``default_region``.

    :raises InvalidPhoneError: ``raw`` is not a valid, assigned-range number.
    """
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """The number with its country code and all but its last three digits
    hidden: ``+4520123160`` becomes ``•••••160``."""
    try:
        digits = phonenumbers.national_significant_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        digits = "".join(c for c in e164 if c.isdigit())
    return "•" * max(len(digits) - 3, 0) + digits[-3:]


class SmsSender(Protocol):
    """Sends text messages. Implementations: :class:`HttpSmsSender`, :class:`OutboxSmsSender`."""

    def send(self, to: str, text: str) -> None:
        """Deliver ``text`` to the E.164 number ``to`` or raise :class:`SmsDeliveryError`."""
        ...


class HttpSmsSender:
    """Posts ``{"to": ..., "text": ...}`` with a bearer token to the provider's ``url``.

    Server errors (5xx), refused connections and timeouts are retried
    ``retries`` times, waiting ``backoff_seconds``, then twice that, and so on.
    A 4xx is the provider refusing this message and is not retried.

    :param session: a :class:`requests.Session` to use; by default one of its
        own, released by :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout_seconds: float = 5,
        retries: int = 2,
        session: requests.Session | None = None,
        *,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.url = url
        self.token = token
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._owns_session = session is None
        self.session = session or requests.Session()

    def send(self, to: str, text: str) -> None:
        """Deliver ``text`` to ``to``.

        :raises SmsDeliveryError: the provider refused the message (4xx), or
            failed or was unreachable on every attempt.
        """
        attempts = self.retries + 1
        reason = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self.session.post(
                    self.url,
                    json={"to": to, "text": text},
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=self.timeout_seconds,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                reason = type(e).__name__
            except requests.RequestException as e:
                # A malformed URL and the like: retrying cannot help.
                raise SmsDeliveryError(f"cannot reach the SMS provider: {type(e).__name__}") from e
            else:
                response.close()
                if 200 <= response.status_code < 300:
                    log.info("sms sent to %s", mask_phone(to))
                    return
                reason = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    log.warning("sms provider refused the message: %s", reason)
                    raise SmsDeliveryError(f"the SMS provider refused the message: {reason}")
            log.warning("sms delivery attempt %d/%d failed: %s", attempt + 1, attempts, reason)
        raise SmsDeliveryError(f"the SMS provider failed {attempts} times, last: {reason}")

    def close(self) -> None:
        """Release the connections of the session this sender made itself."""
        if self._owns_session:
            self.session.close()


@dataclass(frozen=True)
class SmsMessage:
    """A text message as kept in the development outbox."""

    to: str
    text: str
    #: Seconds since the epoch.
    created_at: int


class OutboxSmsSender:
    """The development outbox: messages go to a Redis list, not to anyone.

    Each message is stored as JSON under ``outbox:sms``, newest first, and
    only the newest :data:`~idp.services.outbox.OUTBOX_SIZE` are kept. A one-line summary goes to
    ``echo`` (the console by default), so whoever runs the server locally can
    read the code.

    :param echo: receives the summary; ``None`` to stay quiet.
    """

    def __init__(self, store: Store, echo: Callable[[str], None] | None = print) -> None:
        self.outbox = Outbox(store, "sms", SmsMessage)
        self.echo = echo

    def send(self, to: str, text: str) -> None:
        """Keep the message in the outbox and echo it."""
        message = SmsMessage(to=to, text=text, created_at=clock.now())
        self.outbox.keep(message)
        if self.echo is not None:
            self.echo(f"[outbox] sms to {to}: {' '.join(text.split())}")

    def messages(self, limit: int = 50) -> list[SmsMessage]:
        """The newest ``limit`` messages, newest first."""
        return self.outbox.messages(limit)

    def clear(self) -> None:
        """Empty the outbox."""
        self.outbox.clear()


def build_sms_sender(
    url: str, token: str, store: Store, echo: Callable[[str], None] | None = print
) -> SmsSender:
    """The sender of these settings: the provider at ``url`` when it is set,
    otherwise the development outbox.

    :param url: the ``IDP_SMS_URL`` setting; empty for the outbox.
    :param token: the ``IDP_SMS_TOKEN`` setting, sent as a bearer token.
    :param echo: where the outbox prints its messages.
    """
    if url:
        return HttpSmsSender(url, token)
    return OutboxSmsSender(store, echo)


@dataclass(frozen=True)
class SmsChallenge:
    """A code sent to a phone and not yet entered."""

    id: str
    #: The E.164 number the code went to.
    phone: str
    #: Shown on the page and in the SMS, so the user can tell they belong together.
    reference: str
    expires_at: int
    #: The earliest time another code may go to this number.
    resend_at: int


def _code_digest(challenge_id: str, code: str) -> str:
    """The HMAC-SHA-256 of ``code`` keyed by its challenge.

    A six-digit code has too little entropy for any hash to hide it from
    someone who can read Redis (and could then rewrite the challenge anyway);
    the digest keeps codes out of dumps and monitoring at a glance, and binds
    each digest to its challenge. The protection is the short lifetime and the
    attempt limit.
    """
    return hmac.new(challenge_id.encode(), code.encode(), "sha256").hexdigest()


class SmsChallenges:
    """Sends SMS codes and checks them, with the challenges kept in Redis.

    Sending is limited three ways: one code per ``resend_cooldown_seconds``
    per number, and ``(limit, window_seconds)`` codes per number and per IP
    address. A challenge accepts ``max_attempts`` tries within
    ``code_ttl_seconds``, and the right code only once.
    """

    def __init__(
        self,
        store: Store,
        sender: SmsSender,
        limiter: RateLimiter,
        *,
        code_ttl_seconds: int = 300,
        max_attempts: int = 5,
        resend_cooldown_seconds: int = 30,
        per_number_limit: tuple[int, int] = (5, 3600),
        per_ip_limit: tuple[int, int] = (20, 3600),
    ) -> None:
        self.store = store
        self.sender = sender
        self.limiter = limiter
        self.code_ttl_seconds = code_ttl_seconds
        self.max_attempts = max_attempts
        self.resend_cooldown_seconds = resend_cooldown_seconds
        self.per_number_limit = per_number_limit
        self.per_ip_limit = per_ip_limit

    def _key(self, challenge_id: str) -> str:
        return self.store.key("sms", "challenge", challenge_id)

    def _cooldown_key(self, phone: str) -> str:
        return self.store.key("sms", "cooldown", digest(phone))

    def _claim_cooldown(self, phone: str, now: int) -> None:
        """Start this number's resend cooldown, unless one is running.

        SET NX makes two simultaneous requests for one number send one code.
        """
        if self.resend_cooldown_seconds <= 0:
            return
        key = self._cooldown_key(phone)
        resend_at = now + self.resend_cooldown_seconds
        r = self.store.redis
        if r.set(key, resend_at, ex=self.resend_cooldown_seconds, nx=True):
            return
        running = int(r.get(key) or 0)
        if running > now:
            raise ResendTooSoonError(running - now)
        r.set(key, resend_at, ex=self.resend_cooldown_seconds)

    def send(self, phone_e164: str, ip: str, message: Callable[[str, str], str]) -> SmsChallenge:
        """Send a new code to ``phone_e164`` on behalf of a client at ``ip``.

        :param message: builds the (localized) text from the code and the reference.
        :raises ResendTooSoonError: a code went to this number within the cooldown.
        :raises SmsTooManyAttemptsError: the per-number or per-IP limit is used up.
        :raises SmsDeliveryError: the sender failed; no challenge is left behind.
        """
        now = clock.now()
        self._claim_cooldown(phone_e164, now)
        try:
            # Check both limits before counting either, so a request refused
            # for its IP does not use up the number's allowance.
            self.limiter.check("sms-number", phone_e164, self.per_number_limit[0])
            self.limiter.check("sms-ip", ip, self.per_ip_limit[0])
            self.limiter.hit("sms-number", phone_e164, *self.per_number_limit)
            self.limiter.hit("sms-ip", ip, *self.per_ip_limit)
        except TooManyAttemptsError as e:
            self.store.redis.delete(self._cooldown_key(phone_e164))
            raise SmsTooManyAttemptsError(e.resets_in) from e

        challenge = SmsChallenge(
            id=new_secret(),
            phone=phone_e164,
            reference=f"{secrets.randbelow(10**REFERENCE_DIGITS):0{REFERENCE_DIGITS}d}",
            expires_at=now + self.code_ttl_seconds,
            resend_at=now + self.resend_cooldown_seconds,
        )
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        record = asdict(challenge) | {
            "code": _code_digest(challenge.id, code),
            "attempts_left": self.max_attempts,
        }
        key = self._key(challenge.id)
        self.store.redis.set(key, json.dumps(record), ex=self.code_ttl_seconds)
        try:
            self.sender.send(phone_e164, message(code, challenge.reference))
        except SmsDeliveryError:
            # Nothing arrived: no code to enter, and no cooldown before a retry.
            self.store.redis.delete(key, self._cooldown_key(phone_e164))
            raise
        return challenge

    def get(self, challenge_id: str) -> SmsChallenge | None:
        """The pending challenge ``challenge_id``, or ``None`` if unknown, used or expired."""
        raw = self.store.redis.get(self._key(challenge_id))
        if raw is None:
            return None
        record = json.loads(raw)
        if clock.now() >= record["expires_at"]:
            return None
        return _challenge(record)

    def verify(self, challenge_id: str, code: str) -> SmsChallenge:
        """Check ``code`` against the challenge, consuming it when it matches.

        Spaces in ``code`` are ignored. Every try, right or wrong, spends one
        attempt; the right code deletes the challenge, so it works only once.

        :raises ChallengeExpiredError: unknown, already used, or expired.
        :raises WrongCodeError: wrong code, more attempts remain.
        :raises ChallengeLockedError: wrong code on the last attempt.
        """
        record, is_match = self._attempt(challenge_id, "".join(code.split()))
        if is_match:
            return _challenge(record)
        if record["attempts_left"] <= 0:
            raise ChallengeLockedError("no attempts left, request a new code")
        raise WrongCodeError(record["attempts_left"])

    def _attempt(self, challenge_id: str, code: str) -> tuple[dict[str, Any], bool]:
        """Spend one attempt on the challenge: the record after it, and whether it matched.

        The challenge is read under WATCH and deleted (matched or out of
        attempts) or rewritten in MULTI; if another request changed it in
        between, the transaction fails and is redone on the new state. So two
        concurrent right codes cannot both succeed, and no try goes uncounted.
        """
        key = self._key(challenge_id)
        with self.store.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    raw = pipe.get(key)
                    if raw is None:
                        raise ChallengeExpiredError("unknown or already used")
                    record = json.loads(raw)
                    if clock.now() >= record["expires_at"]:
                        raise ChallengeExpiredError("expired")
                    is_match = hmac.compare_digest(_code_digest(challenge_id, code), record["code"])
                    record["attempts_left"] -= 1
                    pipe.multi()
                    if is_match or record["attempts_left"] <= 0:
                        pipe.delete(key)
                    else:
                        pipe.set(key, json.dumps(record), keepttl=True)
                    pipe.execute()
                    return record, is_match
                except redis.WatchError:
                    continue


def _challenge(record: dict[str, Any]) -> SmsChallenge:
    return SmsChallenge(
        id=record["id"],
        phone=record["phone"],
        reference=record["reference"],
        expires_at=record["expires_at"],
        resend_at=record["resend_at"],
    )
