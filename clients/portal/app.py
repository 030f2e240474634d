"""The customer portal (journey J4): a thin relying party. Everything it
shows about the user comes from the ID token and UserInfo; its only data of
its own are the user's cases ("Mine sager")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from clients.portal.cases import CaseError
from clients.portal.cases import Cases
from clients.rp import ConfigError
from clients.rp import RelyingParty
from clients.rp import display
from clients.rp import load_config

__all__ = ["ConfigError", "create_app"]

DEFAULT_URL = "http://localhost:5001"
NAVIGATION = [
    ("index", "Hjem"),
    ("cases", "Mine sager"),
    ("page:nyheder", "Nyheder"),
    ("page:hjaelpecenteret", "Hjælpecenteret"),
    ("page:kurser", "Kurser & Webinarer"),
    ("page:drift", "Drift & Release"),
    ("page:kalender", "Kalender"),
]
PAGES = {
    "nyheder": ("Nyheder", "Her finder du nyt om dine produkter."),
    "hjaelpecenteret": (
        "Hjælpecenteret",
        "Find vejledninger til dine produkter og hjælp til selvbetjening.",
    ),
    "kurser": ("Kurser & Webinarer", "Se kommende kurser og webinarer i Akademiet."),
    "drift": ("Drift & Release", "Status for drift og kommende releases."),
    "kalender": (
        "Kalender",
        "Her kan du finde vigtige datoer og opgaver at være opmærksom på.",
    ),
}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the portal from ``config``, or from PORTAL_* settings if None."""
    settings = dict(load_config("PORTAL", ("CASES_DB",)) if config is None else config)
    app = Flask(__name__, template_folder="templates")
    rp = RelyingParty(app, settings, default_url=DEFAULT_URL, prefix="PORTAL")
    cases_db = settings.get("CASES_DB") or "instance/portal-cases.sqlite3"
    if cases_db != ":memory:":
        Path(cases_db).parent.mkdir(parents=True, exist_ok=True)
    cases = Cases(cases_db)
    app.extensions["portal_cases"] = cases

    @app.context_processor
    def navigation() -> dict[str, Any]:
        return {"navigation": NAVIGATION, "display": display}

    @app.get("/")
    def index() -> ResponseReturnValue:
        """J4's home page, or a login link."""
        if rp.current() is None:
            return render_template("index.html", user=None)
        user = rp.user()
        if user is None:
            return redirect(url_for("rp.login"))
        return render_template("index.html", user=user)

    @app.route("/sager", methods=["GET", "POST"], endpoint="cases")
    @rp.login_required
    def cases_page(user: dict[str, Any]) -> ResponseReturnValue:
        """Mine sager: create a case, see the status of the ones in progress."""
        error = None
        if request.method == "POST":
            try:
                cases.add(user["sub"], request.form.get("title", ""), request.form.get("text", ""))
            except CaseError as exc:
                error = str(exc)
            else:
                return redirect(url_for("cases"))
        status = 400 if error else 200
        return render_template(
            "cases.html", user=user, cases=cases.of(user["sub"]), error=error
        ), status

    @app.get("/side/<name>")
    @rp.login_required
    def page(user: dict[str, Any], name: str) -> ResponseReturnValue:
        if name not in PAGES:
            return render_template("error.html", error="not_found", description=name), 404
        title, text = PAGES[name]
        return render_template("page.html", user=user, title=title, text=text)

    @app.get("/kontakt")
    @rp.login_required
    def contact(user: dict[str, Any]) -> ResponseReturnValue:
        return render_template(
            "page.html",
            user=user,
            title="Kontakt os",
            text="Skriv til support@example.com, eller opret en sag under Mine sager.",
        )

    return app
