from __future__ import annotations

import pytest

from idp.services.password_policy import PasswordPolicy
from idp.services.password_policy import Rule
from idp.services.password_policy import Violation
from idp.services.password_policy import common_passwords

GOOD_PASSWORD = "Vinter-Kaffe-42"


def _codes(violations: list[Violation]) -> list[str]:
    return [violation.code for violation in violations]


def test_good_password_passes_every_rule():
    assert PasswordPolicy().check(GOOD_PASSWORD, "jens.hansen@example.dk") == []


def test_short_password_reports_the_minimum_length():
    assert PasswordPolicy().check("Ab#4567", None) == [Violation(Rule.TOO_SHORT, {"min_length": 8})]


def test_password_of_exactly_min_length_is_long_enough():
    assert PasswordPolicy().check("Ab#45678", None) == []


def test_long_password_reports_the_maximum_length():
    policy = PasswordPolicy(max_length=64)
    password = "A#" + "x" * 63
    assert policy.check(password, None) == [Violation(Rule.TOO_LONG, {"max_length": 64})]
    assert policy.check(password[:64], None) == []


def test_password_without_uppercase_is_refused():
    assert _codes(PasswordPolicy().check("vinter-kaffe-42", None)) == ["no_uppercase"]


def test_non_ascii_uppercase_letter_counts():
    assert PasswordPolicy().check("Ærlig-kaffe-42", None) == []


def test_password_without_special_character_is_refused():
    assert _codes(PasswordPolicy().check("VinterKaffe42", None)) == ["no_special"]


@pytest.mark.parametrize("special", ["!", "#", "&", " ", "€", "_"])
def test_any_character_that_is_not_a_letter_or_digit_is_special(special: str):
    assert PasswordPolicy().check(f"Vinter{special}Kaffe42", None) == []


@pytest.mark.parametrize("password", ["P@ssw0rd", "P@SSW0RD", "!QAZ2wsx", "Close-Up"])
def test_common_password_is_refused_in_any_case(password: str):
    assert _codes(PasswordPolicy().check(password, None)) == ["common"]


def test_common_password_list_is_shipped_lower_cased():
    passwords = common_passwords()
    assert len(passwords) == 10_000
    assert {"password", "123456", "qwerty"} <= passwords
    assert all(password == password.lower() for password in passwords)


def test_common_password_list_is_loaded_once():
    assert common_passwords() is common_passwords()


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("Jens.Hansen#1", "jens.hansen@example.dk"),
        ("xJENSHANSEN!x", "JensHansen@example.dk"),
        ("Hansen-2024!", "jens.hansen@example.dk"),
        ("Mette_Kaffe42", "kaffe_mette+idp@example.dk"),
        ("Abe#1234xyz", "abe@example.dk"),
    ],
)
def test_password_containing_the_email_name_is_refused(password: str, email: str):
    assert _codes(PasswordPolicy().check(password, email)) == ["contains_email_name"]


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("Jo#kaffe-42", "jo@example.dk"),
        ("Li#kaffe-4242", "jens.li@example.dk"),
        ("Example#1234", "someone@example.dk"),
    ],
)
def test_short_email_names_and_the_domain_are_allowed(password: str, email: str):
    assert PasswordPolicy().check(password, email) == []


def test_every_failed_rule_is_reported():
    violations = PasswordPolicy().check("jens", "jens@example.dk")
    assert _codes(violations) == [
        "too_short",
        "no_uppercase",
        "no_special",
        "contains_email_name",
    ]


def test_common_password_breaking_other_rules_reports_them_all():
    assert _codes(PasswordPolicy().check("password", "password@example.dk")) == [
        "no_uppercase",
        "no_special",
        "common",
        "contains_email_name",
    ]


def test_disabled_rules_are_not_checked():
    policy = PasswordPolicy(
        require_uppercase=False,
        require_special=False,
        forbid_common=False,
        forbid_email_name=False,
    )
    assert policy.check("password", "password@example.dk") == []


def test_violation_codes_are_plain_strings():
    assert Rule.TOO_SHORT == "too_short"
    assert {rule.value for rule in Rule} == {
        "too_short",
        "too_long",
        "no_uppercase",
        "no_special",
        "common",
        "contains_email_name",
    }


@pytest.mark.parametrize(
    "settings",
    [
        {"max_length": 63},
        {"min_length": 0},
        {"min_length": 100, "max_length": 64},
    ],
)
def test_policy_refuses_unsafe_limits(settings: dict[str, int]):
    with pytest.raises(ValueError, match="_length"):
        PasswordPolicy(**settings)
