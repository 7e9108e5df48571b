"""The SQLite state store: documents, transactions, events, and a clear error for a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from faillite.controller.store import StateStore, StoreError


def test_documents_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path)
    store.put("plan", [{"app": "a"}])
    store.upsert("apps", "a", {"family": "digits"})
    store.upsert("apps", "a", {"family": "ResNet"})
    store.append_event("node_dead", {"node": "n1"}, ts=1.0)
    store.close()
    again = StateStore(path)
    assert again.get("plan") == [{"app": "a"}]
    assert again.rows("apps") == {"a": {"family": "ResNet"}}
    assert again.events() == [{"id": 1, "ts": 1.0, "kind": "node_dead", "node": "n1"}]
    assert again.get("missing", 7) == 7


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), store.transaction() as db:
        store.upsert("nodes", "n1", {"epoch": 1}, db)
        raise RuntimeError("boom")
    assert store.rows("nodes") == {}


def test_events_since_and_limit(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    for i in range(5):
        store.append_event("e", {"i": i})
    assert [e["i"] for e in store.events(since=2, limit=2)] == [2, 3]


def test_not_a_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable state file"):
        StateStore(path)
