"""The agent works unmodified with a standard OIP client library (tritonclient.http): every
digits variant serves the whole held-out split at exactly the accuracy its manifest states."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.digits import heldout_split
from faillite.zoo.repository import build_repository
from tests.agent.onnx_models import ALL_TYPES, place, types_model
from tests.agent.test_codec import SAMPLES
from tests.helpers import AgentProcess, start_agent

pytestmark = pytest.mark.integration

TOKEN = "triton-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MANIFEST = load_builtin_family("digits")


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("triton")
    repo = build_repository(tmp / "models", MANIFEST)
    place(repo, "types", types_model())
    process = start_agent(repo, tmp, node_id="triton-node", memory="512MiB", token=TOKEN)
    yield process
    assert process.stop() == 0, process.log_text()


@pytest.fixture
def client(agent: AgentProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(
        agent.url.removeprefix("http://"), connection_timeout=10.0, network_timeout=30.0
    )
    yield client
    client.close()


def _accuracy(
    client: triton.InferenceServerClient, model: str, x: np.ndarray, y: np.ndarray, binary: bool
) -> float:
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer(model, [inp], outputs=outputs)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (len(x), 10) and probabilities.dtype == np.float32
    return float(np.mean(probabilities.argmax(axis=1) == y))


@pytest.mark.parametrize("variant", [v.name for v in MANIFEST.variants])
def test_each_digits_variant_serves_its_manifest_accuracy(
    client: triton.InferenceServerClient, variant: str
) -> None:
    x, y = heldout_split()
    assert client.is_server_live() and client.is_server_ready()
    index = {m["name"]: m for m in client.get_model_repository_index(headers=AUTH)}
    assert index[variant]["state"] != "READY"
    assert not client.is_model_ready(variant)

    client.load_model(variant, headers=AUTH)
    assert client.is_model_ready(variant)
    meta = client.get_model_metadata(variant)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata(variant, model_version="1")["name"] == variant

    stated = MANIFEST.variant(variant).accuracy
    for binary in (True, False):  # tritonclient's default (binary tensors) and plain JSON
        assert _accuracy(client, variant, x, y, binary) == pytest.approx(stated, abs=5e-7)

    client.unload_model(variant, headers=AUTH)
    assert not client.is_model_ready(variant)
    assert client.get_model_repository_index(headers=AUTH)[0]["name"]  # index still answers


def test_default_request_gets_binary_outputs(client: triton.InferenceServerClient) -> None:
    x, _ = heldout_split()
    client.load_model("digits-mlp-4", headers=AUTH)
    inp = triton.InferInput("input", [3, 64], "FP32")
    inp.set_data_from_numpy(x[:3])
    result = client.infer("digits-mlp-4", [inp])  # no outputs named: binary_data_output
    assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 3 * 10 * 4
    assert np.allclose(result.as_numpy("probabilities").sum(axis=1), 1.0, atol=1e-5)
    client.unload_model("digits-mlp-4", headers=AUTH)


@pytest.mark.parametrize("binary", [True, False])
def test_every_datatype_through_tritonclient(client: triton.InferenceServerClient, binary: bool) -> None:
    client.load_model("types", headers=AUTH)
    inputs, outputs = [], []
    for dt in ALL_TYPES:
        sample = SAMPLES[dt]
        if dt == "BYTES":
            sample = np.array([s.encode() for s in sample.ravel()], dtype=object).reshape(sample.shape)
        inp = triton.InferInput(f"in_{dt}", [2, 2], dt)
        inp.set_data_from_numpy(sample, binary_data=binary)
        inputs.append(inp)
        outputs.append(triton.InferRequestedOutput(f"out_{dt}", binary_data=binary))
    result = client.infer("types", inputs, outputs=outputs)
    for dt in ALL_TYPES:
        got = result.as_numpy(f"out_{dt}")
        if dt == "BYTES":
            got = np.array([g.decode() if isinstance(g, bytes) else g for g in got.ravel()], dtype=object)
        assert got.ravel().tolist() == SAMPLES[dt].ravel().tolist(), dt


def test_errors_reach_tritonclient_as_exceptions(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
        client.load_model("nope", headers=AUTH)
    with pytest.raises(InferenceServerException, match="Bearer"):
        client.load_model("digits-mlp-4")
    inp = triton.InferInput("input", [1, 63], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 63), np.float32))
    client.load_model("digits-mlp-8", headers=AUTH)
    with pytest.raises(InferenceServerException, match=r"expected shape \[-1, 64\], got \[1, 63\]") as info:
        client.infer("digits-mlp-8", [inp])
    assert info.value.status() == "400"
    client.unload_model("digits-mlp-8", headers=AUTH)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client: triton.InferenceServerClient, algorithm: str) -> None:
    x, y = heldout_split()
    client.load_model("digits-mlp-16", headers=AUTH)
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(
        "digits-mlp-16",
        [inp],
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )
    accuracy = float(np.mean(result.as_numpy("probabilities").argmax(axis=1) == y))
    assert accuracy == pytest.approx(MANIFEST.variant("digits-mlp-16").accuracy, abs=5e-7)
    client.unload_model("digits-mlp-16", headers=AUTH)
