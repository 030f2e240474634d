"""`pip install .` builds a real wheel that carries everything the app needs."""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_wheel_contains_templates_static_files_migrations_and_catalogues(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("idp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "templates").rglob("*.html"):
        assert "idp/templates/" + template.relative_to(ROOT / "templates").as_posix() in names
    for static in (ROOT / "idp" / "static").iterdir():
        assert "idp/static/" + static.name in names  # the scripts and stylesheets
    assert "idp/migrations/script.py.mako" in names
    assert any(n.startswith("idp/migrations/versions/0001_") for n in names)
    assert "idp/translations/da/LC_MESSAGES/messages.mo" in names


def test_every_folder_that_ships_is_a_listed_package():
    """setuptools ships folders of data files as packages without code and
    warns, on every install, about each one missing from ``packages``: a new
    folder (an e-mail's templates, say) is listed in setup.cfg."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    folders = {
        "idp." + ".".join(folder.relative_to(ROOT / "idp").parts)
        for folder in (ROOT / "idp").rglob("*")
        if folder.is_dir() and "__pycache__" not in folder.parts
    } | {
        "idp.templates." + ".".join(folder.relative_to(ROOT / "templates").parts)
        for folder in (ROOT / "templates").rglob("*")
        if folder.is_dir() and "__pycache__" not in folder.parts
    }
    assert folders - listed == set()
