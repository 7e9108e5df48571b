"""``faillite gateway --routes FILE`` as a process, in front of real agents, driven by a stock OIP
client (tritonclient.http) by app name: metadata, readiness, inference at the primary's measured
accuracy, refusals passed through, a clear 404/503, and a primary SIGKILLed under load."""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton

from faillite.cli import main
from faillite.launch.process import AgentProcess, ManagedProcess
from faillite.wire import Route, RouteTable, RouteTarget
from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.digits import heldout_split
from faillite.zoo.repository import build_repository
from tests.helpers import http_request, start_agent, wait_for

pytestmark = pytest.mark.integration

MANIFEST = load_builtin_family("digits")
PRIMARY, FALLBACK = "digits-mlp-64", "digits-mlp-16"
READY = re.compile(r"faillite gateway ready on (?P<url>http://\S+)")


@dataclass
class Cluster:
    gateway: ManagedProcess
    url: str
    agents: dict[str, AgentProcess]


def _target(agent: AgentProcess, model: str, role: str = "primary") -> RouteTarget:
    return RouteTarget(node=agent.node_id, url=agent.url, model=model, epoch=1, role=role)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("gateway")
    repo = build_repository(tmp / "models", MANIFEST, [PRIMARY, FALLBACK])
    agents: dict[str, AgentProcess] = {}
    gateway = None
    try:
        agents["a"] = start_agent(repo, tmp, node_id="a", memory="64MiB", extra=["--load", PRIMARY])
        agents["b"] = start_agent(repo, tmp, node_id="b", memory="64MiB", extra=["--load", FALLBACK])
        # "ha" has its own primary (v), which one test kills; "digits" stays up for the others.
        agents["v"] = start_agent(repo, tmp, node_id="v", memory="64MiB", extra=["--load", PRIMARY])
        # "h" is stopped by one test; two routes name it as two nodes, so a mark on one (marks are
        # per node) does not change the other's route.
        agents["h"] = start_agent(repo, tmp, node_id="h", memory="64MiB", extra=["--load", PRIMARY])
        fallback = _target(agents["b"], FALLBACK, "backup")
        hung = _target(agents["h"], PRIMARY)
        routes = RouteTable(
            version=1,
            routes=(
                Route(app="digits", state="serving", targets=(_target(agents["a"], PRIMARY), fallback)),
                Route(app="ha", state="serving", targets=(_target(agents["v"], PRIMARY), fallback)),
                Route(app="cold", state="recovering", targets=()),
                Route(
                    app="hung", state="serving", targets=(hung.model_copy(update={"node": "h1"}),), slo_ms=30
                ),
                Route(
                    app="hedged",
                    state="serving",
                    targets=(hung.model_copy(update={"node": "h2"}), fallback),
                    slo_ms=30,
                ),
            ),
        )
        (tmp / "routes.json").write_text(routes.model_dump_json())
        argv = [sys.executable, "-m", "faillite", "gateway", "--routes", str(tmp / "routes.json")]
        argv += ["--port", "0", "--deadline", "0.5"]  # attempt timeouts: from the SLOs
        gateway = ManagedProcess(argv, tmp / "gateway.log")
        gateway.start()
        url = gateway.wait_for(READY, timeout=60).group("url")
        yield Cluster(gateway, url, agents)
        assert gateway.stop() == 0, gateway.log_text()  # SIGTERM: a graceful exit
        assert "faillite gateway stopping" in gateway.log_text()
    finally:
        if gateway is not None:
            gateway.stop()
        for agent in agents.values():
            agent.signal(signal.SIGCONT)  # a test may leave it stopped
            agent.stop()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(
        cluster.url.removeprefix("http://"), connection_timeout=10.0, network_timeout=30.0
    )
    yield client
    client.close()


def _infer(client: triton.InferenceServerClient, app: str, x: np.ndarray, binary: bool = True):
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return client.infer(
        app, [inp], outputs=[triton.InferRequestedOutput("probabilities", binary_data=binary)]
    )


def test_health_and_metadata_by_app_name(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "faillite-gateway"
    assert client.is_model_ready("digits")
    assert not client.is_model_ready("cold")  # recovering: no target
    meta = client.get_model_metadata("digits")
    assert meta["name"] == "digits"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]


def test_metadata_says_which_replica_serves(cluster: Cluster) -> None:
    response = http_request("GET", f"{cluster.url}/v2/models/digits")
    assert response.status == 200
    assert (response.headers["faillite-node"], response.headers["faillite-model"]) == ("a", PRIMARY)


@pytest.mark.parametrize("binary", [True, False])
def test_infer_by_app_name_serves_the_primary_accuracy(
    client: triton.InferenceServerClient, binary: bool
) -> None:
    x, y = heldout_split()
    result = _infer(client, "digits", x, binary)
    assert result.get_response()["model_name"] == PRIMARY
    accuracy = float(np.mean(result.as_numpy("probabilities").argmax(axis=1) == y))
    assert accuracy == pytest.approx(MANIFEST.variant(PRIMARY).accuracy, abs=5e-7)


def test_unknown_app_is_a_404_with_an_oip_error(cluster: Cluster) -> None:
    for method, path in (
        ("POST", "/v2/models/nope/infer"),
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
    ):
        response = http_request(method, cluster.url + path, body={"inputs": []} if method == "POST" else None)
        assert response.status == 404, path
        assert "unknown app 'nope'" in response.json()["error"]


def test_no_target_within_the_deadline_is_a_503_that_says_why(cluster: Cluster) -> None:
    response = http_request("POST", f"{cluster.url}/v2/models/cold/infer", body={"inputs": []})
    assert response.status == 503
    message = response.json()["error"]
    assert "app 'cold' unavailable" in message and "no target" in message


def test_a_refusal_passes_through_unchanged(cluster: Cluster) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    direct = http_request("POST", f"{cluster.agents['a'].url}/v2/models/{PRIMARY}/infer", body=body)
    via = http_request("POST", f"{cluster.url}/v2/models/digits/infer", body=body)
    assert direct.status == 400
    assert (via.status, via.body) == (direct.status, direct.body)
    assert via.headers["faillite-node"] == "a"


def test_sigkill_of_a_primary_under_load_is_invisible_to_a_stock_client(
    cluster: Cluster, client: triton.InferenceServerClient
) -> None:
    x, _ = heldout_split()
    served: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            try:
                served.append(_infer(client, "ha", x[i % 300 : i % 300 + 4]).get_response()["model_name"])
            except Exception as exc:  # a lost request
                errors.append(exc)
            i += 4

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: served.count(PRIMARY) >= 20 or errors, 30, "answers from v")
        cluster.agents["v"].signal(signal.SIGKILL)
        killed_at = len(served)
        wait_for(lambda: served[killed_at + 1 :].count(FALLBACK) >= 20 or errors, 30, "answers from b")
    finally:
        stop.set()
        worker.join(30)
    assert errors == []
    assert set(served[killed_at + 1 :]) == {FALLBACK}  # one request may have been answered at the kill


def test_bad_routes_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "routes.json"
    bad.write_text('{"type": "routes", "version": "x", "routes": []}')
    assert main(["gateway", "--routes", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faillite gateway: error: --routes") and "version" in err and "\n" not in err


def _metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{wanted}}} (\S+)$", text, re.M)
    return None if match is None else float(match.group(1))


def test_a_stopped_primary_is_hedged_and_timeouts_come_from_the_slo(cluster: Cluster) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}]}
    metrics = http_request("GET", f"{cluster.url}/metrics")
    assert metrics.status == 200
    text = metrics.body.decode()
    # 10 x the 30 ms SLO; 0.5 s for routes without an SLO. No history yet: hedge at half the SLO.
    assert _metric(text, "faillite_gateway_attempt_timeout_seconds", app="hung") == pytest.approx(0.3)
    assert _metric(text, "faillite_gateway_attempt_timeout_seconds", app="digits") == pytest.approx(0.5)
    assert _metric(text, "faillite_gateway_hedge_delay_seconds", app="hedged") == pytest.approx(0.015)
    cluster.agents["h"].signal(signal.SIGSTOP)
    try:
        hedged = http_request("POST", f"{cluster.url}/v2/models/hedged/infer", body=body)
        # No fallback: the attempt times out after 0.3 s (the SLO's), within the 0.5 s deadline.
        hung = http_request("POST", f"{cluster.url}/v2/models/hung/infer", body=body)
    finally:
        cluster.agents["h"].signal(signal.SIGCONT)
    assert (hedged.status, hedged.headers["faillite-node"]) == (200, "b")
    assert hung.status == 503
    assert "no answer within 0.3 s" in hung.json()["error"], hung.json()
    text = http_request("GET", f"{cluster.url}/metrics").body.decode()
    assert _metric(text, "faillite_gateway_hedges_sent_total", app="hedged") == 1
    assert _metric(text, "faillite_gateway_hedges_won_total", app="hedged") == 1
    assert _metric(text, "faillite_gateway_hedges_refused_total", app="hedged") == 0
    assert _metric(text, "faillite_gateway_hedges_sent_total", app="hung") == 0  # nothing to hedge to
    assert _metric(text, "faillite_gateway_requests_total", app="hedged", code="200") == 1
    assert _metric(text, "faillite_gateway_requests_total", app="hung", code="503") == 1
    assert _metric(text, "faillite_gateway_request_seconds_count", app="hedged") == 1
