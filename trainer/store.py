"""The server's own state in SQLite (files, jobs, events, checkpoints, fine-tuned models), each object kept
as the JSON the API answers with, so that a restart serves exactly what it served before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists objects (
    kind text not null, id text not null, created_at integer not null, seq integer primary key autoincrement,
    parent text, body text not null, unique (kind, id)
);
create index if not exists objects_by_parent on objects (kind, parent, seq);
"""


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("pragma journal_mode=wal")
        self.db.executescript(SCHEMA)

    def put(self, kind: str, body: dict[str, Any], *, parent: str | None = None) -> dict[str, Any]:
        self.db.execute(
            "insert into objects (kind, id, created_at, parent, body) values (?, ?, ?, ?, ?) "
            "on conflict (kind, id) do update set body = excluded.body",
            (kind, body["id"], int(body.get("created_at") or 0), parent, json.dumps(body)),
        )
        return body

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        row = self.db.execute("select body from objects where kind = ? and id = ?", (kind, object_id)).fetchone()
        return json.loads(row[0]) if row else None

    def delete(self, kind: str, object_id: str) -> None:
        self.db.execute("delete from objects where kind = ? and id = ?", (kind, object_id))

    def newest_first(self, kind: str, *, parent: str | None = None) -> list[dict[str, Any]]:
        """All objects of a kind (under one parent), newest first, as the list endpoints page them."""
        if parent is None:
            rows = self.db.execute("select body from objects where kind = ? order by seq desc", (kind,))
        else:
            rows = self.db.execute(
                "select body from objects where kind = ? and parent = ? order by seq desc", (kind, parent)
            )
        return [json.loads(row[0]) for row in rows]

    def count(self, kind: str, *, parent: str) -> int:
        return int(
            self.db.execute("select count(*) from objects where kind = ? and parent = ?", (kind, parent)).fetchone()[0]
        )
