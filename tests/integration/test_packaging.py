"""`pip install .` builds a real wheel that carries everything the app needs."""

from __future__ import annotations

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
