"""The aiohttp application in-process: unexpected errors become a 500 with an OIP body and a
log line (never a traceback in the response); each app has its own metrics registry."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from faillite.agent.config import AgentConfig
from faillite.agent.server import ROUTES_KEY, STORE_KEY, create_app
from faillite.agent.store import ModelStore
from tests.agent.onnx_models import add_model, place

ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


async def _client(repo: Path, node_id: str) -> TestClient:
    app = create_app(AgentConfig(node_id=node_id, memory_bytes=1 << 28, models_dir=repo))
    client = TestClient(TestServer(app))
    await client.start_server()
    await app[ROUTES_KEY].load_model("add")
    return client


@pytest.fixture
async def repo(tmp_path: Path) -> Path:
    place(tmp_path, "add", add_model())
    return tmp_path


@pytest.fixture
async def client(repo: Path) -> AsyncIterator[TestClient]:
    client = await _client(repo, "one")
    yield client
    await client.close()


async def test_unexpected_error_is_a_500_with_an_oip_body_and_a_log_line(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_run(self: ModelStore, *args: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(ModelStore, "run", broken_run)
    with caplog.at_level(logging.ERROR, logger="faillite.agent"):
        response = await client.post("/v2/models/add/infer", json=ROW)
        body = await response.json()
    assert response.status == 500
    assert body == {"error": "internal error (KeyError); see the agent's log"}
    assert any(
        "unexpected error handling POST /v2/models/add/infer" in r.getMessage() for r in caplog.records
    )
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    store = client.server.app[STORE_KEY]
    pinned = store.acquire("add")
    assert pinned.inflight == 1  # the failed request released its pin
    store.release(pinned)
    monkeypatch.undo()
    assert (await client.post("/v2/models/add/infer", json=ROW)).status == 200


async def test_each_app_counts_in_its_own_registry(client: TestClient, repo: Path) -> None:
    other = await _client(repo, "two")
    try:
        for _ in range(3):
            assert (await client.post("/v2/models/add/infer", json=ROW)).status == 200
        first = await (await client.get("/metrics")).text()
        second = await (await other.get("/metrics")).text()
        assert 'faillite_agent_inference_requests_total{model="add"} 3.0' in first
        assert 'faillite_agent_inference_requests_total{model="add"}' not in second
        assert 'faillite_agent_info{node_id="two"} 1.0' in second
    finally:
        await other.close()
