"""The model store in-process: budget admission, idempotent load, unload, draining, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from faillite.agent.errors import (
    BudgetExceeded,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    ModelNotReady,
)
from faillite.agent.runcost import should_run_inline
from faillite.agent.state import ReplicaState
from faillite.agent.store import ModelStore
from tests.agent.onnx_models import add_model, big_model, gather_model, place

MiB = 1 << 20
X = {"x": np.arange(8, dtype=np.float32).reshape(2, 4)}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    place(tmp_path, "add", add_model(), {"memory_bytes": 4 * MiB})
    place(tmp_path, "huge", add_model(), {"memory_bytes": 200 * MiB})
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"this is not a protobuf")
    return tmp_path


@pytest.fixture
async def store(repo: Path):
    store = ModelStore(repo, 64 * MiB)
    await store.warm_up()
    yield store
    store.close()


def states(store: ModelStore) -> dict[str, ReplicaState]:
    return {entry.name: entry.state for entry in store.index()}


async def infer(store: ModelStore, name: str) -> list[np.ndarray]:
    replica = store.acquire(name)
    try:
        return await store.run(replica, X, ["plus_one"])
    finally:
        store.release(replica)


async def test_load_serve_unload_accounts_memory(store: ModelStore) -> None:
    outcome = await store.load("add")
    assert not outcome.already_loaded and outcome.version == 1
    assert outcome.footprint >= 4 * MiB  # max(profiled estimate, measured)
    assert store.used_bytes == outcome.footprint
    assert states(store) == {
        "add": ReplicaState.READY,
        "broken": ReplicaState.UNLOADED,
        "huge": ReplicaState.UNLOADED,
    }
    (plus_one,) = await infer(store, "add")
    assert plus_one.tolist() == (X["x"] + 1).tolist()
    assert await store.unload("add") is True
    assert store.used_bytes == 0 and states(store)["add"] is ReplicaState.UNLOADED
    with pytest.raises(ModelNotReady, match="'add' is not loaded on this agent"):
        store.acquire("add")


async def test_load_is_idempotent(store: ModelStore) -> None:
    first = await store.load("add")
    again = await store.load("add")
    assert again.already_loaded and again.footprint == first.footprint
    assert store.used_bytes == first.footprint


async def test_load_beyond_budget_is_refused_and_disturbs_nothing(store: ModelStore) -> None:
    await store.load("add")
    used = store.used_bytes
    with pytest.raises(BudgetExceeded) as info:
        await store.load("huge")
    assert info.value.needed == 200 * MiB and info.value.free == 64 * MiB - used
    assert (
        f"needs {200 * MiB} bytes" in info.value.message
        and f"only {64 * MiB - used} bytes" in info.value.message
    )
    assert store.used_bytes == used
    assert states(store)["huge"] is ReplicaState.UNLOADED and states(store)["add"] is ReplicaState.READY
    assert (await infer(store, "add"))[0].shape == (2, 4)


async def test_measured_footprint_over_budget_is_refused(tmp_path: Path) -> None:
    # The profile claims 1 byte; the 48 MiB weight shows up in the RSS measurement.
    place(tmp_path, "liar", big_model(48), {"memory_bytes": 1})
    store = ModelStore(tmp_path, 32 * MiB)
    try:
        await store.warm_up()
        with pytest.raises(BudgetExceeded, match=r"'liar' measured \d+ bytes .* after loading") as info:
            await store.load("liar")
        assert info.value.needed >= 0.95 * 48 * MiB and info.value.free == 32 * MiB  # the real weight shows
        assert store.used_bytes == 0 and states(store)["liar"] is ReplicaState.UNLOADED
    finally:
        store.close()


async def test_unknown_and_unloaded_models(store: ModelStore) -> None:
    for call in (store.load, store.unload):
        with pytest.raises(ModelNotFound, match="unknown model 'nope'"):
            await call("nope")
    with pytest.raises(ModelNotFound, match=r"unknown model '\.\./add'"):
        await store.load("../add")
    with pytest.raises(ModelNotFound):
        store.acquire("nope")
    assert await store.unload("add") is False  # exists, not loaded: success, nothing done


async def test_corrupt_model_fails_and_can_be_cleared(store: ModelStore) -> None:
    with pytest.raises(ModelLoadFailed, match=r"ONNX Runtime could not load model\.onnx"):
        await store.load("broken")
    entry = next(e for e in store.index() if e.name == "broken")
    assert entry.state is ReplicaState.FAILED and "could not load" in entry.reason
    assert store.used_bytes == 0
    assert await store.unload("broken") is False
    assert states(store)["broken"] is ReplicaState.UNLOADED


async def test_unload_drains_requests_in_flight(store: ModelStore) -> None:
    await store.load("add")
    pinned = store.acquire("add")
    unloading = asyncio.create_task(store.unload("add"))
    for _ in range(100):  # the task reaches DRAINING within a few loop turns
        if states(store)["add"] is ReplicaState.DRAINING:
            break
        await asyncio.sleep(0)
    assert states(store)["add"] is ReplicaState.DRAINING
    with pytest.raises(ModelNotReady, match="state DRAINING"):
        store.acquire("add")
    assert not unloading.done()
    (plus_one,) = await store.run(pinned, X, ["plus_one"])  # the pinned request still completes
    assert plus_one[0, 0] == 1.0
    store.release(pinned)
    assert await unloading is True
    assert states(store)["add"] is ReplicaState.UNLOADED


class _NoPool:
    """An executor that refuses work: proves a run did not leave the event loop."""

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("this run should have been inline, not handed to the pool")


async def test_cheap_runs_go_inline_once_measured(store: ModelStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.load("add")
    replica = store._replicas["add"]
    assert replica.cost.predict(8) is None  # nothing measured yet: the pool
    for _ in range(4):
        (plus_one,) = await infer(store, "add")
    assert replica.cost.runs == 4 and replica.cost.predict(8) is not None
    assert replica.cost.predict(8) < store.inline_budget_s  # a 2x4 Add is far below the budget
    monkeypatch.setattr(store, "_infer_pool", _NoPool())
    (plus_one,) = await infer(store, "add")  # inline now: the refusing pool is never asked
    assert plus_one.tolist() == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    assert replica.cost.runs == 5
    monkeypatch.undo()  # the fixture shuts the real pool down


async def test_zero_budget_always_uses_the_pool(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore(repo, 64 * MiB, inline_budget_s=0.0)
    try:
        await store.load("add")
        for _ in range(4):
            await infer(store, "add")
        monkeypatch.setattr(store, "_infer_pool", _NoPool())
        with pytest.raises(AssertionError, match="should have been inline"):
            await infer(store, "add")
    finally:
        monkeypatch.undo()
        store.close()


async def test_inline_runs_report_onnx_runtime_refusals_as_before(tmp_path: Path) -> None:
    place(tmp_path, "gather", gather_model())
    store = ModelStore(tmp_path, 64 * MiB)
    try:
        await store.load("gather")
        good = {"indices": np.array([3, 0], dtype=np.int64)}
        for _ in range(4):
            replica = store.acquire("gather")
            try:
                (rows,) = await store.run(replica, good, ["rows"])
            finally:
                store.release(replica)
        assert rows.tolist() == [[6.0, 7.0], [0.0, 1.0]]
        assert should_run_inline(replica.cost.predict(1), store.inline_budget_s)
        replica = store.acquire("gather")
        try:
            with pytest.raises(InvalidRequest, match="model 'gather' rejected the input:"):
                await store.run(replica, {"indices": np.array([9], dtype=np.int64)}, ["rows"])
        finally:
            store.release(replica)
        assert replica.inflight == 0
    finally:
        store.close()


async def test_reload_measures_the_new_session_afresh(store: ModelStore) -> None:
    await store.load("add")
    for _ in range(3):
        await infer(store, "add")
    assert store._replicas["add"].cost.runs == 3
    await store.unload("add")
    await store.load("add")
    assert store._replicas["add"].cost.runs == 0
