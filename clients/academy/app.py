"""Akademiet: a second, small product (courses and webinars) that logs in
through the same IdP, to show single sign-on and logout everywhere."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask import render_template
from flask.typing import ResponseReturnValue

from clients.rp import ConfigError
from clients.rp import RelyingParty
from clients.rp import load_config

__all__ = ["ConfigError", "create_app"]

DEFAULT_URL = "http://localhost:5002"
COURSES = [
    ("Kom godt i gang med portalen", "Webinar · 45 minutter"),
    ("Løn og personale for superbrugere", "Kursus · 2 dage"),
    ("Nyt i denne release", "Webinar · 30 minutter"),
]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build Akademiet from ``config``, or from ACADEMY_* settings if None."""
    settings = dict(load_config("ACADEMY") if config is None else config)
    app = Flask(__name__, template_folder="templates")
    rp = RelyingParty(app, settings, default_url=DEFAULT_URL, prefix="ACADEMY")

    @app.get("/")
    @rp.login_required
    def index(user: dict[str, Any]) -> ResponseReturnValue:
        """The courses, for logged-in users only (single sign-on from the portal)."""
        return render_template("index.html", user=user, courses=COURSES)

    return app
