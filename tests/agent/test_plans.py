"""The binary fast path (pure): a repeated binary header is decoded from its plan with the
same result as the full codec; anything the plan does not cover takes the full path, with the
codec's own errors; cached answer headers give byte-identical responses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faillite.agent.codec import TensorInfo, decode_request, encode_response
from faillite.agent.errors import InvalidRequest
from faillite.agent.plans import ReplicaCodec

INPUTS = (TensorInfo("a", "FP32", (-1, 4)), TensorInfo("b", "INT64", (-1,)))
OUTPUTS = (TensorInfo("p", "FP32", (-1, 2)), TensorInfo("name", "BYTES", (-1,)))


def _binary(rows: int, outputs: list[dict] | None = None, request_id: str | None = None) -> tuple[bytes, int]:
    a = np.arange(rows * 4, dtype="<f4").reshape(rows, 4) + rows
    b = np.arange(rows, dtype="<i8")
    header: dict = {
        "inputs": [
            {
                "name": "a",
                "datatype": "FP32",
                "shape": [rows, 4],
                "parameters": {"binary_data_size": a.nbytes},
            },
            {"name": "b", "datatype": "INT64", "shape": [rows], "parameters": {"binary_data_size": b.nbytes}},
        ],
        "outputs": outputs if outputs is not None else [{"name": "p", "parameters": {"binary_data": True}}],
    }
    if request_id is not None:
        header["id"] = request_id
    text = json.dumps(header).encode()
    return text + a.tobytes() + b.tobytes(), len(text)


def _same(got, want) -> None:
    assert got.id == want.id and got.outputs == want.outputs
    assert got.inputs.keys() == want.inputs.keys()
    for name, array in want.inputs.items():
        assert got.inputs[name].dtype == array.dtype and np.array_equal(got.inputs[name], array)


def test_repeated_binary_header_is_decoded_from_its_plan() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    body, length = _binary(2, request_id="r1")
    first, plan = codec.decode(body, length)
    assert plan is not None and codec.hits == 0
    again, same_plan = codec.decode(body, length)
    assert same_plan is plan and codec.hits == 1
    _same(again, decode_request(body, length, INPUTS, OUTPUTS))
    _same(first, again)


def test_new_bytes_under_the_same_header_are_read_afresh() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    body, length = _binary(2)
    codec.decode(body, length)
    changed = body[:length] + bytes(len(body) - length)  # same header, other tensor values
    decoded, _ = codec.decode(changed, length)
    assert codec.hits == 1 and not decoded.inputs["a"].any() and not decoded.inputs["b"].any()


def test_wrong_body_length_under_a_known_header_gets_the_codec_error() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    body, length = _binary(2)
    codec.decode(body, length)
    with pytest.raises(InvalidRequest, match="binary_data_size add up to"):
        codec.decode(body + b"\0\0\0\0", length)
    with pytest.raises(InvalidRequest, match="runs past the end of the body"):
        codec.decode(body[:-4], length)
    assert codec.hits == 0


def test_json_tensors_and_bytes_inputs_get_no_plan() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    text = json.dumps(
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
                {"name": "b", "datatype": "INT64", "shape": [1], "data": [7]},
            ]
        }
    ).encode()
    for _ in range(2):
        decoded, plan = codec.decode(text, None)
        assert plan is None and decoded.inputs["b"].tolist() == [7]
    bytes_codec = ReplicaCodec((TensorInfo("s", "BYTES", (-1,)),), OUTPUTS)
    blob = b"\x02\x00\x00\x00hi"
    header = json.dumps(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]}
    ).encode()
    for _ in range(2):
        decoded, plan = bytes_codec.decode(header + blob, len(header))
        assert plan is None and decoded.inputs["s"].tolist() == ["hi"]
    assert codec.hits == bytes_codec.hits == 0


def test_cached_answer_header_gives_identical_responses() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    body, length = _binary(3, request_id="x")
    outputs = [np.full((3, 2), 0.25, np.float32)]
    for step in range(3):
        request, plan = codec.decode(body, length)
        outputs = [np.full((3, 2), 0.25 * step, np.float32)]
        got = codec.encode("m", "1", request, plan, outputs)
        want = encode_response("m", "1", "x", [(OUTPUTS[0], outputs[0], True)])
        assert got == want
    assert plan is not None and len(plan.answers) == 1


def test_answers_with_json_or_bytes_outputs_are_not_cached() -> None:
    codec = ReplicaCodec(INPUTS, OUTPUTS)
    body, length = _binary(1, outputs=[{"name": "p"}, {"name": "name", "parameters": {"binary_data": True}}])
    for _ in range(2):
        request, plan = codec.decode(body, length)
        assert plan is not None and not plan.all_binary_out
        arrays = [np.zeros((1, 2), np.float32), np.array(["héllo"], dtype=object)]
        got = codec.encode("m", "1", request, plan, arrays)
        want = encode_response(
            "m", "1", None, [(OUTPUTS[0], arrays[0], False), (OUTPUTS[1], arrays[1], True)]
        )
        assert got == want
    assert not plan.answers


def test_header_only_the_standard_library_reads_gets_no_plan() -> None:
    inputs = (TensorInfo("a", "FP32", (-1,)),)
    header = (
        b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], '
        b'"parameters": {"binary_data_size": 4}}], "id": "n", "x": NaN}'
    )
    codec = ReplicaCodec(inputs, OUTPUTS)
    decoded, plan = codec.decode(header + b"\0\0\x80?", len(header))
    assert plan is None and decoded.inputs["a"].tolist() == [1.0]
