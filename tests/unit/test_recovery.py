from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from idp.services import recovery
from idp.services import secrets


def test_code_is_five_groups_of_four_from_the_alphabet():
    for _ in range(50):
        code = recovery.generate_code()
        assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){4}", code)
        assert set(code.replace("-", "")) <= set(recovery.ALPHABET)


def test_alphabet_leaves_out_confusable_characters():
    assert not set("0O1IL5S") & set(recovery.ALPHABET)
    assert len(set(recovery.ALPHABET)) == len(recovery.ALPHABET) == 29


def test_codes_differ():
    assert len({recovery.generate_code() for _ in range(20)}) == 20


def test_hash_is_the_sha256_of_the_normalized_code():
    assert recovery.hash_code("abcd-ef23-gh46-jk78-mn9p") == secrets.digest("ABCDEF23GH46JK78MN9P")


@pytest.mark.parametrize(
    "retype",
    [
        pytest.param(lambda code: code, id="as-shown"),
        pytest.param(str.lower, id="lower-case"),
        pytest.param(lambda code: code.replace("-", ""), id="no-dashes"),
        pytest.param(lambda code: code.replace("-", "").lower(), id="lower-case-no-dashes"),
        pytest.param(lambda code: code.replace("-", " "), id="spaces"),
        pytest.param(lambda code: f" {code}\n", id="surrounding-whitespace"),
    ],
)
def test_code_verifies_in_any_case_with_or_without_dashes(retype: Callable[[str], str]):
    code = recovery.generate_code()
    assert recovery.verify_code(retype(code), recovery.hash_code(code))


def test_normalize_removes_dashes_and_spaces_and_upper_cases():
    assert recovery.normalize(" abcd-ef23 gh46-jk78-mn9p ") == "ABCDEF23GH46JK78MN9P"


def test_wrong_code_is_refused():
    stored = recovery.hash_code(recovery.generate_code())
    assert not recovery.verify_code(recovery.generate_code(), stored)


def test_code_with_one_character_changed_is_refused():
    code = recovery.generate_code()
    changed = ("A" if code[0] != "A" else "B") + code[1:]
    assert not recovery.verify_code(changed, recovery.hash_code(code))


def test_missing_hash_never_verifies():
    assert not recovery.verify_code(recovery.generate_code(), None)
    assert not recovery.verify_code("", "")
