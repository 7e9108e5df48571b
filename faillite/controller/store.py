"""The controller's state in SQLite: the one wrapper that does SQL.

Everything the controller must not lose across a restart lives here: app specs, the node
registry with epochs, the home plan and the current plan, where each app is served, the
route-table version, and the event log. Values are JSON documents; the schema is a handful of
key/value-like tables, so the document shapes can evolve without migrations.

Writes are small and synchronous (WAL, synchronous=NORMAL): a committed change survives a
controller crash, and the reconcile loop never acts on state it has not persisted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["StateStore", "StoreError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (name TEXT PRIMARY KEY, spec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS serving (app TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The state file cannot be opened or is not a faillite state file."""


class StateStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a usable state file ({exc})") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # key/value documents (plans, route version)
    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self._db).execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    # tables of documents keyed by name
    def rows(self, table: str) -> dict[str, Any]:
        key = _key_column(table)
        value = _value_column(table)
        return {k: json.loads(v) for k, v in self._db.execute(f"SELECT {key}, {value} FROM {table}")}

    def upsert(self, table: str, name: str, doc: Any, db: sqlite3.Connection | None = None) -> None:
        key, value = _key_column(table), _value_column(table)
        (db or self._db).execute(
            f"INSERT INTO {table} ({key}, {value}) VALUES (?, ?) "
            f"ON CONFLICT({key}) DO UPDATE SET {value} = excluded.{value}",
            (name, json.dumps(doc)),
        )

    def delete(self, table: str, name: str, db: sqlite3.Connection | None = None) -> None:
        (db or self._db).execute(f"DELETE FROM {table} WHERE {_key_column(table)} = ?", (name,))

    # the event log
    def append_event(self, kind: str, data: dict[str, Any], ts: float | None = None) -> dict[str, Any]:
        stamp = time.time() if ts is None else ts
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO events (ts, kind, data) VALUES (?, ?, ?)", (stamp, kind, json.dumps(data))
            )
        return {"id": cursor.lastrowid, "ts": stamp, "kind": kind, **data}

    def events(self, since: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, ts, kind, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (since, limit)
        )
        return [{"id": i, "ts": ts, "kind": kind, **json.loads(data)} for i, ts, kind, data in rows]

    def last_event_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)


_TABLES = {"apps": ("name", "spec"), "nodes": ("id", "info"), "serving": ("app", "info")}


def _key_column(table: str) -> str:
    return _TABLES[table][0]


def _value_column(table: str) -> str:
    return _TABLES[table][1]
