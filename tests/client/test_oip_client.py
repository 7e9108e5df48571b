"""OipClient against a real agent process: tensors both ways, and failures classified for failover."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from faillite.client.oip import (
    OipClient,
    OipConnectionError,
    OipError,
    OipTimeout,
    decode_infer_response,
    encode_infer_request,
)
from faillite.launch.process import AgentProcess
from faillite.zoo import digits
from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.repository import build_repository

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    tmp = tmp_path_factory.mktemp("client")
    repo = build_repository(tmp / "models", load_builtin_family("digits"), ["digits-mlp-8", "digits-mlp-64"])
    process = AgentProcess(
        "client-test", repo, "64MiB", tmp / "agent.log", extra_args=["--load", "digits-mlp-8"]
    )
    process.start_and_wait(timeout=60)
    yield process
    process.stop()


@pytest.mark.parametrize("binary", [True, False])
async def test_infer_matches_in_process_onnxruntime(agent: AgentProcess, binary: bool) -> None:
    import onnxruntime as ort

    manifest = load_builtin_family("digits")
    x, _ = digits.heldout_split()
    session = ort.InferenceSession(str(manifest.path_of("digits-mlp-8")), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {digits.INPUT_NAME: x[:16]})
    async with OipClient(agent.url) as client:
        out = await client.infer("digits-mlp-8", {digits.INPUT_NAME: x[:16]}, binary=binary)
    assert out[digits.OUTPUT_NAME].dtype == np.float32
    assert np.allclose(out[digits.OUTPUT_NAME], expected, atol=1e-6)


async def test_repository_calls_roundtrip(agent: AgentProcess) -> None:
    async with OipClient(agent.url) as client:
        assert await client.live() and await client.ready()
        names = {m["name"] for m in await client.repository_index()}
        assert names == {"digits-mlp-8", "digits-mlp-64"}
        await client.load("digits-mlp-64")
        assert await client.model_ready("digits-mlp-64")
        meta = await client.model_metadata("digits-mlp-64")
        assert meta["inputs"][0]["name"] == digits.INPUT_NAME
        await client.unload("digits-mlp-64")
        assert not await client.model_ready("digits-mlp-64")


async def test_refusal_is_an_oip_error_not_a_connection_error(agent: AgentProcess) -> None:
    async with OipClient(agent.url) as client:
        with pytest.raises(OipError) as info:
            await client.infer("no-such-model", {digits.INPUT_NAME: np.zeros((1, 64), np.float32)})
    assert 400 <= info.value.status < 500
    assert "no-such-model" in info.value.message


async def test_dead_server_is_a_connection_error(tmp_path: Path) -> None:
    repo = build_repository(tmp_path / "models", load_builtin_family("digits"), ["digits-mlp-4"])
    victim = AgentProcess("victim", repo, "32MiB", tmp_path / "victim.log")
    url = victim.start_and_wait(timeout=60)
    victim.signal(signal.SIGKILL)
    await asyncio.to_thread(victim.stop)
    async with OipClient(url, timeout=2.0) as client:
        with pytest.raises(OipConnectionError):
            await client.live()


async def test_hung_server_is_a_timeout(tmp_path: Path) -> None:
    repo = build_repository(tmp_path / "models", load_builtin_family("digits"), ["digits-mlp-4"])
    hung = AgentProcess("hung", repo, "32MiB", tmp_path / "hung.log")
    url = hung.start_and_wait(timeout=60)
    hung.signal(signal.SIGSTOP)
    try:
        async with OipClient(url, timeout=0.3) as client:
            with pytest.raises(OipTimeout):
                await client.live()
    finally:
        hung.signal(signal.SIGCONT)
        hung.stop()


@pytest.mark.parametrize("binary", [True, False])
async def test_non_finite_inputs_round_trip(agent: AgentProcess, binary: bool) -> None:
    """NaN travels as the standard library writes it (orjson would write null), both ways."""
    x, _ = digits.heldout_split()
    rows = x[:2].copy()
    rows[1, 3] = np.nan
    async with OipClient(agent.url) as client:
        out = await client.infer("digits-mlp-8", {digits.INPUT_NAME: rows}, binary=binary)
    probabilities = out[digits.OUTPUT_NAME]
    assert np.isfinite(probabilities[0]).all() and np.isnan(probabilities[1]).all()


def test_json_encoding_keeps_nan_and_reads_it_back() -> None:
    body, headers = encode_infer_request({"x": np.array([1.5, np.nan], np.float32)}, None, binary=False)
    assert b"NaN" in body and headers["Content-Type"] == "application/json"
    answer = b'{"outputs": [{"name": "y", "datatype": "FP32", "shape": [2], "data": [NaN, 2.5]}]}'
    y = decode_infer_response(answer, None)["y"]
    assert np.isnan(y[0]) and y[1] == 2.5


def test_binary_header_is_built_once_per_signature_and_bodies_carry_each_requests_bytes() -> None:
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    body_a, headers_a = encode_infer_request({"x": a}, ["y"], binary=True)
    body_b, headers_b = encode_infer_request({"x": b}, ["y"], binary=True)
    split = int(headers_a["Inference-Header-Content-Length"])
    assert headers_a == headers_b and headers_a is not headers_b  # each caller gets its own dict
    assert body_a[:split] == body_b[:split]
    assert body_a[split:] == a.tobytes() and body_b[split:] == b.tobytes()
    other, other_headers = encode_infer_request({"x": a[:1]}, None, binary=True)  # another shape
    assert b'"shape":[1,3]' in other[: int(other_headers["Inference-Header-Content-Length"])]
    with pytest.raises(TypeError, match="unsupported dtype"):
        encode_infer_request({"x": np.array(["s"], dtype=object)}, None, binary=True)


def test_repeated_binary_answers_decode_alike_and_mixed_ones_in_full() -> None:
    header = b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}'
    for values in ([1.0, 2.0], [3.0, 4.0]):  # the second one comes from the cached plan
        y = decode_infer_response(header + np.array(values, np.float32).tobytes(), str(len(header)))["y"]
        assert y.tolist() == values and y.flags.writeable
    mixed = (
        b'{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}},'
        b'{"name":"z","datatype":"INT64","shape":[2],"data":[5,6]}]}'
    )
    out = decode_infer_response(mixed + np.array([7.0], np.float32).tobytes(), str(len(mixed)))
    assert out["y"].tolist() == [7.0] and out["z"].tolist() == [5, 6]
