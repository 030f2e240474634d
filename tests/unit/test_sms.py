"""Phone numbers, the SMS outbox, and the SMS code challenges."""

from __future__ import annotations

import re

import pytest

from idp import clock
from idp.services.ratelimit import RateLimiter
from idp.services.ratelimit import TooManyAttemptsError
from idp.services.sms import ChallengeExpiredError
from idp.services.sms import ChallengeLockedError
from idp.services.sms import HttpSmsSender
from idp.services.sms import InvalidPhoneError
from idp.services.sms import OutboxSmsSender
from idp.services.sms import ResendTooSoonError
from idp.services.sms import SmsChallenge
from idp.services.sms import SmsChallenges
from idp.services.sms import SmsDeliveryError
from idp.services.sms import SmsError
from idp.services.sms import SmsMessage
from idp.services.sms import SmsTooManyAttemptsError
from idp.services.sms import WrongCodeError
from idp.services.sms import build_sms_sender
from idp.services.sms import mask_phone
from idp.services.sms import parse_phone
from idp.store import Store

START = 1_700_000_000
PHONE = "+4520123160"
OTHER_PHONE = "+4520999888"
IP = "192.0.2.1"


class Clock:
    """Stands in for :func:`idp.clock.now`; tests move ``now`` forward."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(START)
    monkeypatch.setattr(clock, "now", fake)
    return fake


@pytest.fixture
def outbox(store: Store) -> OutboxSmsSender:
    return OutboxSmsSender(store, echo=None)


@pytest.fixture
def challenges(store: Store, outbox: OutboxSmsSender, frozen: Clock) -> SmsChallenges:
    return SmsChallenges(store, outbox, RateLimiter(store))


def _message(code: str, reference: str) -> str:
    return f"Din kode er {code}\nReference {reference}"


def _last_code(outbox: OutboxSmsSender) -> str:
    """The code of the newest SMS, read the way the user reads it."""
    match = re.fullmatch(r"Din kode er (\d{6})\nReference \d{4}", outbox.messages(1)[0].text)
    assert match is not None
    return match.group(1)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


class FailingSender:
    """A provider that is down."""

    def send(self, to: str, text: str) -> None:
        raise SmsDeliveryError("provider down")


# Phone numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20123160", "+4520123160"),
        ("20 12 31 60", "+4520123160"),
        ("+45 20 12 31 60", "+4520123160"),
        ("+46 70 123 45 67", "+46701234567"),
        ("0046701234567", "+46701234567"),
    ],
)
def test_parse_phone_returns_e164(raw: str, expected: str) -> None:
    assert parse_phone(raw) == expected


def test_parse_phone_reads_national_numbers_in_the_default_region() -> None:
    assert parse_phone("070-123 45 67", default_region="SE") == "+46701234567"


@pytest.mark.parametrize("raw", ["", "hello", "123", "12345678", "+45 2012 316", "+999 1234567"])
def test_parse_phone_rejects_invalid_numbers(raw: str) -> None:
    with pytest.raises(InvalidPhoneError) as raised:
        parse_phone(raw)

    assert str(raised.value)
    assert isinstance(raised.value, SmsError)


@pytest.mark.parametrize(
    ("e164", "masked"),
    [("+4520123160", "•••••160"), ("+46701234567", "••••••567")],
)
def test_mask_phone_shows_only_the_last_three_digits(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


# The development outbox


def test_outbox_keeps_messages_newest_first(outbox: OutboxSmsSender, frozen: Clock) -> None:
    outbox.send(PHONE, "first")
    frozen.now += 1
    outbox.send(OTHER_PHONE, "second")

    assert outbox.messages() == [
        SmsMessage(to=OTHER_PHONE, text="second", created_at=START + 1),
        SmsMessage(to=PHONE, text="first", created_at=START),
    ]
    assert [m.text for m in outbox.messages(limit=1)] == ["second"]


def test_outbox_keeps_the_newest_200(outbox: OutboxSmsSender) -> None:
    for n in range(205):
        outbox.send(PHONE, str(n))

    messages = outbox.messages(limit=1000)

    assert len(messages) == 200
    assert (messages[0].text, messages[-1].text) == ("204", "5")


def test_outbox_echoes_one_line(store: Store) -> None:
    lines: list[str] = []
    outbox = OutboxSmsSender(store, echo=lines.append)

    outbox.send(PHONE, "Din kode er 123456\nReference 0042")

    assert lines == [f"[outbox] sms to {PHONE}: Din kode er 123456 Reference 0042"]


def test_build_sms_sender_uses_the_provider_when_a_url_is_set(store: Store) -> None:
    sender = build_sms_sender("https://sms.example/send", "token", store)
    try:
        assert isinstance(sender, HttpSmsSender)
        assert (sender.url, sender.token) == ("https://sms.example/send", "token")
    finally:
        sender.close()


def test_build_sms_sender_falls_back_to_the_outbox(store: Store) -> None:
    assert isinstance(build_sms_sender("", "", store), OutboxSmsSender)


# Challenges


def test_send_texts_a_code_and_reference(
    challenges: SmsChallenges, outbox: OutboxSmsSender
) -> None:
    challenge = challenges.send(PHONE, IP, _message)

    (sms,) = outbox.messages()
    assert sms.to == PHONE
    assert re.fullmatch(r"Din kode er \d{6}\nReference \d{4}", sms.text)
    assert sms.text.endswith(f"Reference {challenge.reference}")
    assert challenge == SmsChallenge(
        id=challenge.id,
        phone=PHONE,
        reference=challenge.reference,
        expires_at=START + 300,
        resend_at=START + 30,
    )
    assert challenges.get(challenge.id) == challenge


def test_right_code_verifies(challenges: SmsChallenges, outbox: OutboxSmsSender) -> None:
    challenge = challenges.send(PHONE, IP, _message)

    assert challenges.verify(challenge.id, _last_code(outbox)) == challenge


def test_code_with_spaces_verifies(challenges: SmsChallenges, outbox: OutboxSmsSender) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)

    assert challenges.verify(challenge.id, f" {code[:3]} {code[3:]} ") == challenge


def test_right_code_works_only_once(challenges: SmsChallenges, outbox: OutboxSmsSender) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)
    challenges.verify(challenge.id, code)

    with pytest.raises(ChallengeExpiredError):
        challenges.verify(challenge.id, code)
    assert challenges.get(challenge.id) is None


def test_concurrent_right_codes_succeed_once(
    challenges: SmsChallenges,
    outbox: OutboxSmsSender,
    frozen: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)
    rival: list[SmsChallenge] = []

    def now_with_a_rival() -> int:
        # Runs between the first request's read and its write: a second
        # request with the same code gets in and completes first.
        monkeypatch.setattr(clock, "now", frozen)
        rival.append(challenges.verify(challenge.id, code))
        return frozen()

    monkeypatch.setattr(clock, "now", now_with_a_rival)

    with pytest.raises(ChallengeExpiredError):
        challenges.verify(challenge.id, code)
    assert rival == [challenge]


def test_wrong_code_spends_an_attempt(challenges: SmsChallenges, outbox: OutboxSmsSender) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)

    with pytest.raises(WrongCodeError) as raised:
        challenges.verify(challenge.id, _wrong(code))

    assert raised.value.attempts_left == 4
    assert challenges.verify(challenge.id, code) == challenge


def test_fifth_wrong_code_locks_the_challenge(
    challenges: SmsChallenges, outbox: OutboxSmsSender
) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)
    left = []
    for _ in range(4):
        with pytest.raises(WrongCodeError) as raised:
            challenges.verify(challenge.id, _wrong(code))
        left.append(raised.value.attempts_left)

    with pytest.raises(ChallengeLockedError):
        challenges.verify(challenge.id, _wrong(code))

    assert left == [4, 3, 2, 1]
    assert challenges.get(challenge.id) is None
    with pytest.raises(ChallengeExpiredError):
        challenges.verify(challenge.id, code)


def test_code_expires(challenges: SmsChallenges, outbox: OutboxSmsSender, frozen: Clock) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    frozen.now = challenge.expires_at

    assert challenges.get(challenge.id) is None
    with pytest.raises(ChallengeExpiredError):
        challenges.verify(challenge.id, _last_code(outbox))


def test_code_is_valid_until_just_before_expiry(
    challenges: SmsChallenges, outbox: OutboxSmsSender, frozen: Clock
) -> None:
    challenge = challenges.send(PHONE, IP, _message)
    frozen.now = challenge.expires_at - 1

    assert challenges.verify(challenge.id, _last_code(outbox)) == challenge


def test_unknown_challenge_is_expired(challenges: SmsChallenges) -> None:
    assert challenges.get("unknown") is None
    with pytest.raises(ChallengeExpiredError):
        challenges.verify("unknown", "123456")


def test_resend_within_the_cooldown_is_refused(
    challenges: SmsChallenges, outbox: OutboxSmsSender, frozen: Clock
) -> None:
    challenges.send(PHONE, IP, _message)
    frozen.now += 10

    with pytest.raises(ResendTooSoonError) as raised:
        challenges.send(PHONE, IP, _message)

    assert raised.value.resets_in == 20
    assert len(outbox.messages()) == 1


def test_resend_after_the_cooldown_sends_a_new_code(
    challenges: SmsChallenges, outbox: OutboxSmsSender, frozen: Clock
) -> None:
    first = challenges.send(PHONE, IP, _message)
    frozen.now = first.resend_at

    second = challenges.send(PHONE, IP, _message)

    assert second.id != first.id
    assert len(outbox.messages()) == 2
    assert challenges.verify(second.id, _last_code(outbox)) == second


def test_cooldown_is_per_number(challenges: SmsChallenges, outbox: OutboxSmsSender) -> None:
    challenges.send(PHONE, IP, _message)
    challenges.send(OTHER_PHONE, IP, _message)

    assert [m.to for m in outbox.messages()] == [OTHER_PHONE, PHONE]


def test_per_number_limit(store: Store, outbox: OutboxSmsSender, frozen: Clock) -> None:
    challenges = SmsChallenges(store, outbox, RateLimiter(store), per_number_limit=(2, 3600))
    for n in range(2):
        challenges.send(PHONE, f"192.0.2.{n}", _message)
        frozen.now += 30

    with pytest.raises(SmsTooManyAttemptsError) as raised:
        challenges.send(PHONE, "192.0.2.9", _message)

    assert raised.value.resets_in == 3600
    assert isinstance(raised.value, TooManyAttemptsError)
    assert len(outbox.messages()) == 2
    # The refusal started no cooldown: the number is still refused for its limit.
    with pytest.raises(SmsTooManyAttemptsError):
        challenges.send(PHONE, "192.0.2.9", _message)


def test_per_ip_limit(store: Store, outbox: OutboxSmsSender) -> None:
    challenges = SmsChallenges(store, outbox, RateLimiter(store), per_ip_limit=(2, 3600))
    challenges.send("+4520000001", IP, _message)
    challenges.send("+4520000002", IP, _message)

    with pytest.raises(SmsTooManyAttemptsError) as raised:
        challenges.send("+4520000003", IP, _message)

    assert raised.value.resets_in == 3600
    assert challenges.send("+4520000003", "192.0.2.2", _message).phone == "+4520000003"


def test_ip_refusal_does_not_use_up_the_number(store: Store, outbox: OutboxSmsSender) -> None:
    challenges = SmsChallenges(
        store, outbox, RateLimiter(store), per_number_limit=(1, 3600), per_ip_limit=(1, 3600)
    )
    challenges.send(OTHER_PHONE, IP, _message)
    with pytest.raises(SmsTooManyAttemptsError):
        challenges.send(PHONE, IP, _message)

    assert challenges.send(PHONE, "192.0.2.2", _message).phone == PHONE


def test_delivery_failure_leaves_no_challenge(
    store: Store, outbox: OutboxSmsSender, frozen: Clock
) -> None:
    limiter = RateLimiter(store)
    failing = SmsChallenges(store, FailingSender(), limiter)

    with pytest.raises(SmsDeliveryError):
        failing.send(PHONE, IP, _message)

    assert list(store.redis.scan_iter(match=store.key("sms", "*"))) == []
    # Nothing arrived, so the user may ask again at once.
    working = SmsChallenges(store, outbox, limiter)
    challenge = working.send(PHONE, IP, _message)
    assert working.verify(challenge.id, _last_code(outbox)) == challenge


def test_code_is_never_stored_in_clear(
    store: Store,
    challenges: SmsChallenges,
    outbox: OutboxSmsSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A code that no timestamp or counter in Redis can contain by chance.
    monkeypatch.setattr("idp.services.sms.secrets.randbelow", lambda n: n * 42 // 99)
    challenge = challenges.send(PHONE, IP, _message)
    code = _last_code(outbox)
    with pytest.raises(WrongCodeError):
        challenges.verify(challenge.id, _wrong(code))

    values = [
        store.redis.get(name)
        for name in store.redis.scan_iter(match=store.prefix + "*")
        if name.decode() != store.key("outbox", "sms")
    ]

    assert code == "424242"
    assert len(values) == 4  # the challenge, the cooldown, two rate-limit counters
    assert [value for value in values if code.encode() in value] == []


def test_rate_limit_keys_hold_no_phone_or_ip(store: Store, challenges: SmsChallenges) -> None:
    challenges.send(PHONE, IP, _message)

    names = [name.decode() for name in store.redis.scan_iter(match=store.key("rl", "*"))]

    assert len(names) == 2
    assert not [name for name in names if PHONE[1:] in name or IP in name]
