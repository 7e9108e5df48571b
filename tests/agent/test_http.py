"""A real agent process over loopback: every bad input gets a precise 4xx and the agent keeps
serving; the token, the memory budget, idempotent loads, unloads and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.onnx_models import add_model, gather_model, place, types_model
from tests.helpers import AgentProcess, HttpResult, http_request, start_agent

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MiB = 1 << 20
BUDGET = 256 * MiB


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("http")
    repo = tmp / "models"
    place(repo, "add", add_model(), {"memory_bytes": 4 * MiB})
    place(repo, "types", types_model())
    place(repo, "gather", gather_model())
    place(repo, "spare", add_model(8))
    place(repo, "huge", add_model(), {"memory_bytes": 10 * 1024 * MiB})
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"\x08\x01garbage")
    process = start_agent(
        repo,
        tmp,
        node_id="http-node",
        memory=f"{BUDGET}",
        token=TOKEN,
        extra=["--load", "add", "--max-body", "1MiB"],
    )
    yield process
    assert process.stop() == 0, process.log_text()  # SIGTERM: a graceful exit
    assert "faillite agent http-node stopping" in process.log_text()
    assert "Traceback" not in process.log_text()


def infer(
    agent: AgentProcess, body: bytes | dict, model: str = "add", headers: dict | None = None
) -> HttpResult:
    return http_request("POST", f"{agent.url}/v2/models/{model}/infer", body, headers)


def valid_row(rows: int = 1) -> dict:
    return {"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": list(range(4 * rows))}


def assert_still_serving(agent: AgentProcess) -> None:
    result = infer(agent, {"inputs": [valid_row()], "outputs": [{"name": "plus_one"}]})
    assert result.status == 200, result.body
    assert result.json()["outputs"][0]["data"] == [1.0, 2.0, 3.0, 4.0]


def metrics(agent: AgentProcess) -> dict[tuple[str, tuple], float]:
    text = http_request("GET", f"{agent.url}/metrics").body.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_server_metadata(agent: AgentProcess) -> None:
    assert http_request("GET", f"{agent.url}/v2/health/live").json() == {"live": True}
    assert http_request("GET", f"{agent.url}/v2/health/ready").json() == {"ready": True}
    meta = http_request("GET", f"{agent.url}/v2").json()
    assert meta["node_id"] == "http-node" and "model_repository" in meta["extensions"]


def test_model_metadata_and_ready(agent: AgentProcess) -> None:
    meta = http_request("GET", f"{agent.url}/v2/models/add").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["plus_one", "doubled"]
    assert http_request("GET", f"{agent.url}/v2/models/add/versions/1").json() == meta
    assert http_request("GET", f"{agent.url}/v2/models/add/ready").status == 200
    assert http_request("GET", f"{agent.url}/v2/models/add/versions/1/ready").status == 200
    wrong = http_request("GET", f"{agent.url}/v2/models/add/versions/7/ready")
    assert wrong.status == 404 and "no version 7" in wrong.json()["error"]
    unknown = http_request("GET", f"{agent.url}/v2/models/nope/ready")
    assert unknown.status == 404 and "unknown model 'nope'" in unknown.json()["error"]


def test_valid_json_and_binary_requests(agent: AgentProcess) -> None:
    json_result = infer(agent, {"id": "r1", "inputs": [valid_row(2)]})
    assert json_result.status == 200 and "inference-header-content-length" not in json_result.headers
    body = json_result.json()
    assert body["id"] == "r1" and body["model_name"] == "add" and body["model_version"] == "1"
    assert body["outputs"][1] == {
        "name": "doubled",
        "datatype": "FP32",
        "shape": [2, 4],
        "data": list(range(0, 16, 2)),
    }

    blob = np.arange(8, dtype=np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ],
            "outputs": [{"name": "doubled", "parameters": {"binary_data": True}}],
        }
    ).encode()
    binary = infer(agent, header + blob, headers={"Inference-Header-Content-Length": str(len(header))})
    assert binary.status == 200
    split = int(binary.headers["inference-header-content-length"])
    out = json.loads(binary.body[:split])["outputs"]
    assert out == [
        {"name": "doubled", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 32}}
    ]
    assert np.frombuffer(binary.body[split:], np.float32).tolist() == list(range(0, 16, 2))


def _binary_row(declared: int) -> tuple[bytes, dict]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    return header + np.zeros(3, np.float32).tobytes(), {"Inference-Header-Content-Length": str(len(header))}


BAD_REQUESTS = {
    "malformed-json": (
        b'{"inputs": [',
        {},
        "add",
        400,
        "malformed request JSON: Expecting value at line 1 column 13",
    ),
    "unknown-model": ({"inputs": [valid_row()]}, {}, "nope", 404, "unknown model 'nope'"),
    "not-loaded-model": (
        {"inputs": [valid_row()]},
        {},
        "spare",
        503,
        "model 'spare' is not loaded on this agent",
    ),
    "missing-input": ({"inputs": []}, {}, "add", 400, "missing input 'x' (the model's inputs: 'x')"),
    "extra-input": (
        {"inputs": [valid_row(), {**valid_row(), "name": "y"}]},
        {},
        "add",
        400,
        "unexpected input 'y' (the model's inputs: 'x')",
    ),
    "wrong-shape": (
        {"inputs": [{**valid_row(), "shape": [1, 3], "data": [1, 2, 3]}]},
        {},
        "add",
        400,
        "input 'x': expected shape [-1, 4], got [1, 3]",
    ),
    "wrong-datatype": (
        {"inputs": [{**valid_row(), "datatype": "INT64"}]},
        {},
        "add",
        400,
        "input 'x': expected datatype FP32, got INT64",
    ),
    "data-length": (
        {"inputs": [{**valid_row(), "data": [1, 2, 3]}]},
        {},
        "add",
        400,
        "input 'x': shape [1, 4] needs 4 elements, got 3",
    ),
    "binary-length": (
        *_binary_row(12),
        "add",
        400,
        "input 'x': shape [1, 4] needs 16 bytes of FP32 data, got 12",
    ),
    "binary-overrun": (*_binary_row(16), "add", 400, "binary_data_size 16 runs past the end of the body"),
    "bad-header-length": (
        json.dumps({"inputs": [valid_row()]}).encode(),
        {"Inference-Header-Content-Length": "ten"},
        "add",
        400,
        "Inference-Header-Content-Length must be an integer, got 'ten'",
    ),
    "unknown-output": (
        {"inputs": [valid_row()], "outputs": [{"name": "logits"}]},
        {},
        "add",
        400,
        "unknown output 'logits' requested",
    ),
    "oversized-body": (b" " * (2 * MiB), {}, "add", 413, "Maximum request body size 1048576 exceeded"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_precise_error_and_the_agent_keeps_serving(agent: AgentProcess, case: str) -> None:
    body, headers, model, status, message = BAD_REQUESTS[case]
    result = infer(agent, body, model, headers)
    assert result.status == status, result.body
    assert result.headers["content-type"].startswith("application/json")
    error = result.json()["error"]
    assert message in error
    assert "Traceback" not in error
    assert_still_serving(agent)


def test_unknown_route_and_method_are_oip_errors(agent: AgentProcess) -> None:
    missing = http_request("GET", f"{agent.url}/v2/nothing/here")
    assert missing.status == 404 and missing.json() == {"error": "Not Found: GET /v2/nothing/here"}
    wrong = http_request("GET", f"{agent.url}/v2/models/add/infer")
    assert wrong.status == 405 and "Method Not Allowed" in wrong.json()["error"]


@pytest.mark.parametrize(
    "path", ["/v2/repository/index", "/v2/repository/models/spare/load", "/v2/repository/models/add/unload"]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_control_endpoints_need_the_token(agent: AgentProcess, path: str, headers: dict) -> None:
    result = http_request("POST", f"{agent.url}{path}", b"", headers)
    assert result.status == 401
    assert "token" in result.json()["error"] or "Bearer" in result.json()["error"]
    assert_still_serving(agent)  # in particular: 'add' was not unloaded


def test_load_is_idempotent_and_unload_contract(agent: AgentProcess) -> None:
    load = f"{agent.url}/v2/repository/models/spare/load"
    unload = f"{agent.url}/v2/repository/models/spare/unload"
    first = http_request("POST", load, {}, AUTH)
    assert first.status == 200 and first.json()["already_loaded"] is False
    used = metrics(agent)[("faillite_agent_memory_used_bytes", ())]
    second = http_request("POST", load, b"", AUTH)
    assert second.status == 200 and second.json()["already_loaded"] is True
    assert metrics(agent)[("faillite_agent_memory_used_bytes", ())] == used
    row = {"name": "x", "datatype": "FP32", "shape": [1, 8], "data": [0] * 8}
    assert infer(agent, {"inputs": [row]}, "spare").status == 200

    done = http_request("POST", unload, {"parameters": {"unload_dependents": False}}, AUTH)
    assert done.status == 200 and done.json()["was_loaded"] is True
    again = http_request("POST", unload, b"", AUTH)
    assert again.status == 200 and again.json()["was_loaded"] is False  # not loaded: success, as Triton
    assert infer(agent, {"inputs": [row]}, "spare").status == 503
    unknown = http_request("POST", f"{agent.url}/v2/repository/models/nope/unload", b"", AUTH)
    assert unknown.status == 404 and "unknown model 'nope'" in unknown.json()["error"]
    assert_still_serving(agent)


def test_load_beyond_budget_is_refused_and_leaves_others_serving(agent: AgentProcess) -> None:
    before = metrics(agent)[("faillite_agent_memory_used_bytes", ())]
    result = http_request("POST", f"{agent.url}/v2/repository/models/huge/load", b"", AUTH)
    assert result.status == 409
    error = result.json()["error"]
    free = BUDGET - int(before)
    assert f"model 'huge' needs {10 * 1024 * MiB} bytes" in error and f"only {free} bytes" in error
    index = {e["name"]: e for e in http_request("POST", f"{agent.url}/v2/repository/index", b"", AUTH).json()}
    assert index["huge"]["state"] == "UNLOADED" and index["add"]["state"] == "READY"
    assert metrics(agent)[("faillite_agent_memory_used_bytes", ())] == before
    assert (
        metrics(agent)[("faillite_agent_model_loads_total", (("model", "huge"), ("outcome", "refused")))] >= 1
    )
    assert_still_serving(agent)


def test_corrupt_model_is_refused_with_a_reason(agent: AgentProcess) -> None:
    result = http_request("POST", f"{agent.url}/v2/repository/models/broken/load", b"", AUTH)
    assert result.status == 422 and "ONNX Runtime could not load model.onnx" in result.json()["error"]
    index = {e["name"]: e for e in http_request("POST", f"{agent.url}/v2/repository/index", {}, AUTH).json()}
    assert index["broken"]["state"] == "FAILED" and "could not load" in index["broken"]["reason"]
    ready_only = http_request("POST", f"{agent.url}/v2/repository/index", {"ready": True}, AUTH).json()
    assert "broken" not in {e["name"] for e in ready_only} and "add" in {e["name"] for e in ready_only}
    assert_still_serving(agent)


def test_load_rejects_config_overrides(agent: AgentProcess) -> None:
    body = {"parameters": {"config": "{}", "file:1/model.onnx": "AAAA"}}
    result = http_request("POST", f"{agent.url}/v2/repository/models/spare/load", body, AUTH)
    assert result.status == 400 and "config, file:1/model.onnx are not supported" in result.json()["error"]


def test_metrics_follow_requests(agent: AgentProcess) -> None:
    key_requests = ("faillite_agent_inference_requests_total", (("model", "add"),))
    key_failures = ("faillite_agent_inference_failures_total", (("code", "400"), ("model", "add")))
    key_latency = ("faillite_agent_inference_duration_seconds_count", (("model", "add"),))
    before = metrics(agent)
    for _ in range(3):
        assert_still_serving(agent)
    assert infer(agent, {"inputs": []}).status == 400
    after = metrics(agent)
    assert after[key_requests] == before[key_requests] + 4
    assert after[key_failures] == before.get(key_failures, 0) + 1
    assert after[key_latency] == before[key_latency] + 3
    assert after[("faillite_agent_memory_budget_bytes", ())] == BUDGET
    assert after[("faillite_agent_model_memory_bytes", (("model", "add"),))] >= 4 * MiB
    assert after[("faillite_agent_memory_used_bytes", ())] >= 4 * MiB
    assert after[("faillite_agent_model_load_duration_seconds_count", (("model", "add"),))] == 1
    assert after[("faillite_agent_info", (("node_id", "http-node"),))] == 1
    assert not any(labels and dict(labels).get("model") == "nope" for _, labels in after)  # unknown names


def test_every_datatype_round_trips_as_json(agent: AgentProcess) -> None:
    from tests.agent.test_codec import SAMPLES

    assert http_request("POST", f"{agent.url}/v2/repository/models/types/load", b"", AUTH).status == 200
    inputs = [
        {"name": f"in_{dt}", "datatype": dt, "shape": [2, 2], "data": sample.ravel().tolist()}
        for dt, sample in SAMPLES.items()
    ]
    result = infer(agent, {"inputs": inputs}, "types")
    assert result.status == 200, result.body
    outputs = {o["name"]: o for o in result.json()["outputs"]}
    for dt, sample in SAMPLES.items():
        out = outputs[f"out_{dt}"]
        assert out["datatype"] == dt and out["shape"] == [2, 2]
        assert out["data"] == sample.ravel().tolist(), dt


def test_input_refused_by_onnx_runtime_is_a_400(agent: AgentProcess) -> None:
    assert http_request("POST", f"{agent.url}/v2/repository/models/gather/load", b"", AUTH).status == 200
    ok = infer(
        agent, {"inputs": [{"name": "indices", "datatype": "INT64", "shape": [2], "data": [3, 0]}]}, "gather"
    )
    assert ok.status == 200 and ok.json()["outputs"][0]["data"] == [6.0, 7.0, 0.0, 1.0]
    bad = infer(
        agent, {"inputs": [{"name": "indices", "datatype": "INT64", "shape": [1], "data": [9]}]}, "gather"
    )
    assert bad.status == 400
    assert (
        bad.json()["error"].startswith("model 'gather' rejected the input:")
        and "out of" in bad.json()["error"]
    )
    assert_still_serving(agent)


def _binary_request(rows: int, extra: bytes = b"") -> tuple[bytes, dict[str, str]]:
    x = np.arange(rows * 8, dtype="<f4").reshape(rows, 8)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [rows, 8],
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "plus_one", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + x.tobytes() + extra, {"Inference-Header-Content-Length": str(len(header))}


def test_fast_path_keeps_answers_metrics_and_drain(agent: AgentProcess) -> None:
    """Repeated binary requests take the cached plan and, once measured cheap, run inline on
    the loop: answers, metrics, errors and unload are what they were on the full path."""
    load = f"{agent.url}/v2/repository/models/spare/load"
    unload = f"{agent.url}/v2/repository/models/spare/unload"
    assert http_request("POST", load, b"", AUTH).status == 200
    key_requests = ("faillite_agent_inference_requests_total", (("model", "spare"),))
    key_latency = ("faillite_agent_inference_duration_seconds_count", (("model", "spare"),))
    key_failures = ("faillite_agent_inference_failures_total", (("code", "400"), ("model", "spare")))
    before = metrics(agent)
    for rows in (1, 1, 1, 1, 1, 1, 3, 3, 1):  # the same header again and again, then another shape
        body, headers = _binary_request(rows)
        result = infer(agent, body, "spare", headers)
        assert result.status == 200, result.body
        split = int(result.headers["inference-header-content-length"])
        header = json.loads(result.body[:split])
        assert header["outputs"][0]["shape"] == [rows, 8]
        got = np.frombuffer(result.body[split:], np.float32).reshape(rows, 8)
        assert got.tolist() == (np.arange(rows * 8, dtype=np.float32).reshape(rows, 8) + 1).tolist()
    body, headers = _binary_request(1, extra=b"\0\0\0\0")  # a known header, a body 4 bytes too long
    refused = infer(agent, body, "spare", headers)
    assert refused.status == 400 and "binary_data_size add up to 32" in refused.json()["error"]
    after = metrics(agent)
    assert after[key_requests] == before.get(key_requests, 0) + 10
    assert after[key_latency] == before.get(key_latency, 0) + 9
    assert after[key_failures] == before.get(key_failures, 0) + 1
    assert http_request("POST", unload, b"", AUTH).status == 200
    body, headers = _binary_request(1)
    assert infer(agent, body, "spare", headers).status == 503  # unloaded: the plan went with it
    assert http_request("POST", load, b"", AUTH).status == 200
    assert infer(agent, body, "spare", headers).status == 200
    assert http_request("POST", unload, b"", AUTH).status == 200
