"""Agent processes from start to stop: loads never stall inference on other models, startup
failures are reported, user errors are one line, signals stop the agent gracefully."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from faillite.cli import main
from tests.agent.onnx_models import add_model, place
from tests.helpers import AgentProcess, HttpResult, http_request, start_agent, wait_for

pytestmark = pytest.mark.integration

ROW = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def state_of(agent: AgentProcess, model: str) -> str:
    index = http_request("POST", f"{agent.url}/v2/repository/index", b"").json()
    return next(entry["state"] for entry in index if entry["name"] == model)


def test_inference_on_other_models_continues_while_a_load_is_in_progress(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    place(repo, "add", add_model())
    place(repo, "slow", add_model())
    # The agent reads faillite.json in its load thread; a FIFO there holds the load in LOADING
    # until the test writes to it, so "during the load" needs no timing at all.
    fifo = repo / "slow" / "faillite.json"
    os.mkfifo(fifo)
    agent = start_agent(repo, tmp_path, node_id="busy", extra=["--load", "add"])
    loaded: list[HttpResult] = []
    loader = threading.Thread(
        target=lambda: loaded.append(
            http_request("POST", f"{agent.url}/v2/repository/models/slow/load", b"", timeout=60)
        )
    )
    try:
        loader.start()
        wait_for(lambda: state_of(agent, "slow") == "LOADING", 30, "'slow' to be LOADING")
        for _ in range(20):
            result = http_request("POST", f"{agent.url}/v2/models/add/infer", ROW)
            assert result.status == 200 and result.json()["outputs"][0]["data"] == [2.0, 3.0, 4.0, 5.0]
        assert http_request("GET", f"{agent.url}/v2/health/ready").status == 200
        assert http_request("POST", f"{agent.url}/v2/models/slow/infer", ROW).status == 503
        assert state_of(agent, "slow") == "LOADING" and loader.is_alive()
    finally:
        with open(fifo, "w") as writer:  # blocks until the load thread opens it, then releases it
            writer.write("{}")
        loader.join(60)
        assert agent.stop() == 0, agent.log_text()
    assert loaded and loaded[0].status == 200, loaded
    assert loaded[0].json()["state"] == "READY"


def test_failed_startup_load_exits_nonzero_with_the_reason(tmp_path: Path) -> None:
    place(tmp_path / "models", "huge", add_model(), {"memory_bytes": 1 << 30})
    agent = AgentProcess(
        "tight", tmp_path / "models", "1MiB", tmp_path / "tight.log", extra_args=["--load", "huge"]
    )
    agent.start()
    wait_for(lambda: not agent.alive(), 60, "the agent to exit")
    assert agent.stop() == 1
    assert "--load huge failed: model 'huge' needs 1073741824 bytes" in agent.log_text()


def test_sigint_stops_gracefully(tmp_path: Path) -> None:
    place(tmp_path / "models", "add", add_model())
    agent = start_agent(tmp_path / "models", tmp_path, node_id="int")
    agent.signal(signal.SIGINT)
    wait_for(lambda: not agent.alive(), 30, "the agent to exit on SIGINT")
    assert agent.stop() == 0
    assert "stopping" in agent.log_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory", "lots"], "not a byte quantity: 'lots'"),
        (["--memory", "0"], "memory_bytes: Input should be greater than 0"),
        (["--max-body", "1XB"], "unknown byte unit 'XB'"),
        (["--models", "/nonexistent/models"], "--models /nonexistent/models: not a directory"),
    ],
)
def test_user_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = {"--node-id": "n", "--memory": "1GiB", "--models": str(tmp_path)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["agent", *[item for pair in base.items() for item in pair]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("faillite agent: error: ") and message in err and "Traceback" not in err
