"""Rules for new passwords.

The rules follow NIST SP 800-63B §5.1.1.2
(https://pages.nist.gov/800-63-3/sp800-63b.html#memsecretver). A password must
be long enough, must allow long passphrases (at least 64 characters), and must
not be a known common password. We also refuse passwords built from the
account's e-mail name ("context-specific words" in NIST's terms), because that
is among the first guesses against a given account. NIST advises against
composition rules (upper case, special character), but this deployment asks for
them, so each one is a flag.

:meth:`PasswordPolicy.check` returns codes, not messages. The web layer turns
each :class:`Violation` into translated text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from dataclasses import field
from enum import StrEnum
from importlib import resources

__all__ = [
    "PasswordPolicy",
    "Rule",
    "Violation",
    "common_passwords",
    "contains_email_name",
]

#: NIST SP 800-63B: verifiers SHOULD allow passwords of at least 64 characters.
MIN_ALLOWED_MAX_LENGTH = 64
#: The shortest e-mail local part that counts as a "name" in the password.
EMAIL_NAME_MIN_LENGTH = 3
#: The shortest piece of the local part (split on ``. _ - +``) that counts.
EMAIL_PART_MIN_LENGTH = 4

_EMAIL_SEPARATORS = re.compile(r"[._+\-]")


class Rule(StrEnum):
    """The stable code of each rule. The web layer translates these codes."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NO_UPPERCASE = "no_uppercase"
    NO_SPECIAL = "no_special"
    COMMON = "common"
    CONTAINS_EMAIL_NAME = "contains_email_name"


@dataclass(frozen=True)
class Violation:
    """A rule the password breaks, with the numbers the message needs."""

    code: Rule
    #: For example ``{"min_length": 8}`` for :attr:`Rule.TOO_SHORT`.
    params: dict[str, int] = field(default_factory=dict, hash=False)


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased.

    It is read on first use and kept afterwards, so importing this module does
    no work. The file and where it came from are described in
    ``idp/data/README.md``.
    """
    text = (resources.files("idp") / "data" / "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line for line in (raw.strip() for raw in text.splitlines()) if line)


@dataclass(frozen=True)
class PasswordPolicy:
    """Which rules a new password must pass.

    The length rules count Unicode code points, so ``"æøå"`` has length 3.
    """

    min_length: int = 8
    #: A cap only to bound the work of hashing. It must allow passphrases.
    max_length: int = 128
    require_uppercase: bool = True
    #: A special character is anything that is not a letter or a digit,
    #: including a space.
    require_special: bool = True
    forbid_common: bool = True
    forbid_email_name: bool = True

    def __post_init__(self) -> None:
        if self.min_length < 1:
            raise ValueError("min_length must be at least 1")
        if self.max_length < MIN_ALLOWED_MAX_LENGTH:
            raise ValueError(f"max_length must be at least {MIN_ALLOWED_MAX_LENGTH}")
        if self.min_length > self.max_length:
            raise ValueError("min_length must not exceed max_length")

    def check(self, password: str, email: str | None = None) -> list[Violation]:
        """Every rule ``password`` breaks, in a fixed order. Empty if it passes.

        All failures are reported, not only the first, so the user can fix them
        in one go.

        :param email: the account's e-mail address, for the e-mail name rule.
        """
        violations: list[Violation] = []
        if len(password) < self.min_length:
            violations.append(Violation(Rule.TOO_SHORT, {"min_length": self.min_length}))
        if len(password) > self.max_length:
            violations.append(Violation(Rule.TOO_LONG, {"max_length": self.max_length}))
        if self.require_uppercase and not any(c.isupper() for c in password):
            violations.append(Violation(Rule.NO_UPPERCASE))
        if self.require_special and all(c.isalnum() for c in password):
            violations.append(Violation(Rule.NO_SPECIAL))
        if self.forbid_common and password.lower() in common_passwords():
            violations.append(Violation(Rule.COMMON))
        if self.forbid_email_name and email and contains_email_name(password, email):
            violations.append(Violation(Rule.CONTAINS_EMAIL_NAME))
        return violations


def contains_email_name(password: str, email: str) -> bool:
    """Whether ``password`` contains the local part of ``email``, or a piece of it.

    The comparison ignores case. The whole local part counts from
    :data:`EMAIL_NAME_MIN_LENGTH` characters. Its pieces, split on
    ``. _ - +``, count from :data:`EMAIL_PART_MIN_LENGTH` characters, so
    ``jens.hansen@…`` refuses ``Hansen2024!`` but not a password that happens
    to contain ``jen``.
    """
    local = email.rpartition("@")[0] if "@" in email else email
    local = local.lower()
    lowered = password.lower()
    if len(local) >= EMAIL_NAME_MIN_LENGTH and local in lowered:
        return True
    return any(
        len(part) >= EMAIL_PART_MIN_LENGTH and part in lowered
        for part in _EMAIL_SEPARATORS.split(local)
    )
