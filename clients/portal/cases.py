"""The portal's own small store: the user's cases ("Mine sager"), keyed by
the user's ``sub``, in a SQLite file of the portal's."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass

__all__ = ["Case", "CaseError", "Cases"]

TITLE_MAX = 200
TEXT_MAX = 4000


class CaseError(ValueError):
    """The case cannot be created as given."""


@dataclass(frozen=True)
class Case:
    id: int
    title: str
    text: str
    status: str
    created_at: str


class Cases:
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS cases (id INTEGER PRIMARY KEY, sub TEXT NOT NULL,"
                " title TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL,"
                " created_at TEXT NOT NULL DEFAULT (datetime('now')))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS cases_sub ON cases (sub)")

    def add(self, sub: str, title: str, text: str) -> int:
        title, text = title.strip(), text.strip()
        if not title:
            raise CaseError("Giv sagen en overskrift.")
        if len(title) > TITLE_MAX or len(text) > TEXT_MAX:
            raise CaseError("Overskriften eller beskrivelsen er for lang.")
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO cases (sub, title, text, status) VALUES (?, ?, ?, 'Modtaget')",
                (sub, title, text),
            )
        return int(cursor.lastrowid or 0)

    def of(self, sub: str) -> list[Case]:
        """The user's cases, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, title, text, status, created_at FROM cases WHERE sub = ?"
                " ORDER BY id DESC",
                (sub,),
            ).fetchall()
        return [Case(*row) for row in rows]
