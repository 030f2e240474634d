"""The Danish catalogue is complete and its compiled form is current."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).parents[2]
CATALOGUE = ROOT / "idp/translations/da/LC_MESSAGES"


def _source_messages() -> set[str]:
    method_map = [("idp/**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(str(ROOT), method_map):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_a_danish_translation():
    with (CATALOGUE / "messages.po").open("rb") as f:
        catalogue = read_po(f)
    translated = {m.id for m in catalogue if m.id and m.string}
    assert sorted(_source_messages() - translated) == []


def test_compiled_catalogue_matches_the_po_file():
    with (CATALOGUE / "messages.po").open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id}
    mo = {
        m.id: m.string
        for m in read_mo(io.BytesIO((CATALOGUE / "messages.mo").read_bytes()))
        if m.id
    }
    assert po == mo


def test_pages_translate_once_per_page_with_jinja_rules(app):  # type: ignore[no-untyped-def]
    """A page's ``_()``: the request's language, escaped as the template is,
    ``%(name)s`` filled in; an e-mail rendered meanwhile in another language
    gets that language's strings."""
    from types import SimpleNamespace

    from flask import render_template_string

    from idp.notify import render_email

    template = "{{ _('Welcome to %(client)s – activate your account', client=name) }}"
    with app.test_request_context("/", headers={"Accept-Language": "da"}):
        page = render_template_string(template, name="<b>Portal</b>")
        subject, text, _html = render_email(
            "invitation",
            "en",
            client_name="Portal",
            link="x",
            hours=72,
            user=SimpleNamespace(given_name="Ann"),
        )
        again = render_template_string(template, name="Portal")
    assert page == "Velkommen til &lt;b&gt;Portal&lt;/b&gt; – aktiver din konto"
    assert subject == "Welcome to Portal – activate your account"
    assert "Hello Ann," in text
    assert again == "Velkommen til Portal – aktiver din konto"


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("en-GB,en;q=0.9,da;q=0.5", "en"),
        ("fr-FR,fr;q=0.9,da;q=0.8,en;q=0.7", "da"),
        ("de-DE", "da"),  # none of ours: the default
        ("", "da"),
    ],
)
def test_the_browser_language_is_the_best_of_ours(app, accept_language, expected):  # type: ignore[no-untyped-def]
    from idp.web import select_locale

    for _ in range(2):  # parsed once, then remembered: the same answer
        with app.test_request_context("/", headers={"Accept-Language": accept_language}):
            assert str(select_locale()) == expected


def test_a_long_accept_language_is_parsed_but_not_remembered(app):  # type: ignore[no-untyped-def]
    from idp.web import _remembered_language
    from idp.web import select_locale

    header = ",".join(f"x{n}" for n in range(100)) + ",en;q=0.1"
    before = _remembered_language.cache_info().currsize
    with app.test_request_context("/", headers={"Accept-Language": header}):
        assert str(select_locale()) == "en"
    assert _remembered_language.cache_info().currsize == before
