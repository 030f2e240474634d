from __future__ import annotations

import re
from urllib.parse import parse_qs
from urllib.parse import unquote
from urllib.parse import urlsplit

import pyotp
import pytest

from idp import clock
from idp.services import totp

#: The RFC 6238 appendix B test key ("12345678901234567890") in base32.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
#: RFC 6238 appendix B: at T=1111111109 (step 37037036) the SHA-1 code is 07081804,
#: and at T=1111111111 (step 37037037) it is 14050471. We use the last 6 digits.
NOW = 1111111111
STEP = 37037037


def _code(step: int) -> str:
    return pyotp.TOTP(RFC_SECRET).generate_otp(step)


def test_code_for_the_current_step_is_accepted():
    assert totp.verify(RFC_SECRET, "050471", None, now=NOW) == STEP


def test_rfc_vector_for_the_previous_step_is_accepted():
    assert totp.verify(RFC_SECRET, "081804", None, now=NOW) == STEP - 1


@pytest.mark.parametrize("offset", [-1, 1])
def test_code_one_step_away_is_accepted(offset: int):
    assert totp.verify(RFC_SECRET, _code(STEP + offset), None, now=NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-10, -2, 2, 10])
def test_code_a_few_steps_away_is_refused_as_out_of_sync(offset: int):
    with pytest.raises(totp.OutOfSyncError) as excinfo:
        totp.verify(RFC_SECRET, _code(STEP + offset), None, now=NOW)
    assert excinfo.value.drift_steps == offset


@pytest.mark.parametrize("offset", [-11, 11, -1000])
def test_code_far_from_now_is_invalid(offset: int):
    with pytest.raises(totp.InvalidCodeError) as excinfo:
        totp.verify(RFC_SECRET, _code(STEP + offset), None, now=NOW)
    assert type(excinfo.value) is totp.InvalidCodeError


def test_reused_totp_code_is_rejected():
    step = totp.verify(RFC_SECRET, "050471", None, now=NOW)
    with pytest.raises(totp.CodeReusedError):
        totp.verify(RFC_SECRET, "050471", step, now=NOW + 10)


def test_code_for_a_step_before_the_last_used_one_is_rejected():
    with pytest.raises(totp.CodeReusedError):
        totp.verify(RFC_SECRET, _code(STEP - 1), STEP, now=NOW)


def test_code_for_a_step_after_the_last_used_one_is_accepted():
    assert totp.verify(RFC_SECRET, _code(STEP + 1), STEP, now=NOW) == STEP + 1


def test_reuse_and_drift_errors_are_invalid_code_errors():
    assert issubclass(totp.CodeReusedError, totp.InvalidCodeError)
    assert issubclass(totp.OutOfSyncError, totp.InvalidCodeError)


@pytest.mark.parametrize("code", ["", "05047", "0504710", "05047a", "O50471", "٠٥٠٤٧١", "-50471"])
def test_malformed_code_is_refused(code: str):
    with pytest.raises(totp.InvalidCodeError) as excinfo:
        totp.verify(RFC_SECRET, code, None, now=NOW)
    assert type(excinfo.value) is totp.InvalidCodeError


def test_wrong_code_is_refused():
    wrong = f"{(int('050471') + 1) % 1_000_000:06d}"
    assert wrong not in {_code(STEP + offset) for offset in range(-10, 11)}
    with pytest.raises(totp.InvalidCodeError):
        totp.verify(RFC_SECRET, wrong, None, now=NOW)


@pytest.mark.parametrize("code", [" 050471 ", "050 471", "050\t471"])
def test_spaces_in_the_code_are_ignored(code: str):
    assert totp.verify(RFC_SECRET, code, None, now=NOW) == STEP


def test_verify_reads_the_clock_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)
    assert totp.verify(RFC_SECRET, "050471", None) == STEP


def test_generated_secret_is_160_bit_base32():
    secret = totp.generate_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert secret != totp.generate_secret()


def test_provisioning_uri_names_the_issuer_and_account():
    uri = totp.provisioning_uri(RFC_SECRET, "jens.hansen@example.dk", "Kommune Login")
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert unquote(parts.path) == "/Kommune Login:jens.hansen@example.dk"
    assert query["secret"] == [RFC_SECRET]
    assert query["issuer"] == ["Kommune Login"]


def test_qr_code_is_inline_svg_with_a_title():
    svg = totp.qr_svg("otpauth://totp/Login:jens?secret=JBSWY3DPEHPK3PXP", title="Scan <me>")
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg
    assert "<title>Scan &lt;me&gt;</title>" in svg


def test_qr_code_is_about_200_pixels_wide():
    uri = totp.provisioning_uri(totp.generate_secret(), "jens.hansen@example.dk", "Kommune Login")
    match = re.search(r'width="(\d+)"', totp.qr_svg(uri))
    assert match is not None
    assert 150 <= int(match.group(1)) <= 250


def test_secret_is_formatted_in_groups_of_four():
    assert totp.format_secret(RFC_SECRET) == "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
