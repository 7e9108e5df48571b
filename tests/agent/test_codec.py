"""OIP tensor encoding, pure: every datatype both ways, and a precise error for every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from faillite.agent.codec import (
    DATATYPES,
    TensorInfo,
    decode_request,
    deserialize_bytes,
    encode_response,
    serialize_bytes,
)
from faillite.agent.errors import InvalidRequest

X = TensorInfo("input", "FP32", (-1, 4))
OUTS = (TensorInfo("probabilities", "FP32", (-1, 2)), TensorInfo("label", "INT64", (-1,)))

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False], [False, True]]),
    "UINT8": np.array([[0, 255], [1, 2]], np.uint8),
    "UINT16": np.array([[0, 65535], [1, 2]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1], [1, 2]], np.uint32),
    "UINT64": np.array([[0, 2**64 - 1], [1, 2]], np.uint64),
    "INT8": np.array([[-128, 127], [0, 1]], np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1], [0, 1]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [0, 1]], np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [0, 1]], np.int64),
    "FP16": np.array([[0.5, -1.25], [65504.0, 0.0]], np.float16),
    "FP32": np.array([[0.1, -2.5], [3.25, 1e30]], np.float32),
    "FP64": np.array([[0.1, -2.5], [3.25, 1e300]], np.float64),
    "BYTES": np.array([["a", "héllo"], ["", "x y"]], dtype=object),
}


def _json_body(tensors: list[dict], **extra) -> bytes:
    return json.dumps({"inputs": tensors, **extra}).encode()


def _binary_body(tensors: list[tuple[dict, bytes]], **extra) -> tuple[bytes, int]:
    header = json.dumps({"inputs": [t for t, _ in tensors], **extra}).encode()
    return header + b"".join(blob for _, blob in tensors), len(header)


def _blob(datatype: str, array: np.ndarray) -> bytes:
    return serialize_bytes(array) if datatype == "BYTES" else array.astype(DATATYPES[datatype]).tobytes()


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_every_datatype_decodes_from_json_and_binary(datatype: str) -> None:
    spec = TensorInfo("t", datatype, (-1, 2))
    sample = SAMPLES[datatype]
    data = sample.ravel().tolist()
    from_json = decode_request(
        _json_body([{"name": "t", "datatype": datatype, "shape": [2, 2], "data": data}]), None, [spec], [spec]
    )
    blob = _blob(datatype, sample)
    body, length = _binary_body(
        [
            (
                {
                    "name": "t",
                    "datatype": datatype,
                    "shape": [2, 2],
                    "parameters": {"binary_data_size": len(blob)},
                },
                blob,
            )
        ]
    )
    from_binary = decode_request(body, length, [spec], [spec])
    for request in (from_json, from_binary):
        array = request.inputs["t"]
        assert array.shape == (2, 2)
        assert array.dtype == DATATYPES[datatype]
        assert array.tolist() == sample.tolist()


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_encodes_as_json_and_binary(datatype: str, binary: bool) -> None:
    spec = TensorInfo("t", datatype, (-1, 2))
    sample = SAMPLES[datatype]
    body, length = encode_response("m", "1", "req-7", [(spec, sample, binary)])
    if not binary:
        assert length is None
        out = json.loads(body)["outputs"][0]
        decoded = np.array(out["data"], dtype=DATATYPES[datatype]).reshape(out["shape"])
    else:
        assert length is not None
        header = json.loads(body[:length])
        out = header["outputs"][0]
        raw = body[length:]
        assert out["parameters"]["binary_data_size"] == len(raw)
        if datatype == "BYTES":
            decoded = np.array([b.decode() for b in deserialize_bytes(raw)], dtype=object).reshape(
                out["shape"]
            )
        else:
            decoded = np.frombuffer(raw, DATATYPES[datatype]).reshape(out["shape"])
    assert out["datatype"] == datatype and out["shape"] == [2, 2]
    assert decoded.tolist() == sample.tolist()


def test_response_carries_id_and_version_and_mixes_binary_with_json() -> None:
    probs = np.array([[0.25, 0.75]], np.float32)
    labels = np.array([1], np.int64)
    body, length = encode_response("digits", "3", "abc", [(OUTS[0], probs, True), (OUTS[1], labels, False)])
    assert length is not None
    header = json.loads(body[:length])
    assert header["model_name"] == "digits" and header["model_version"] == "3" and header["id"] == "abc"
    assert header["outputs"][1]["data"] == [1]
    assert np.frombuffer(body[length:], np.float32).tolist() == [0.25, 0.75]


def test_requested_outputs_and_binary_flags() -> None:
    row = {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
    everything = decode_request(_json_body([row]), None, [X], OUTS)
    assert [(o.name, o.binary) for o in everything.outputs] == [("probabilities", False), ("label", False)]
    default_binary = decode_request(
        _json_body([row], parameters={"binary_data_output": True}), None, [X], OUTS
    )
    assert all(o.binary for o in default_binary.outputs)
    chosen = decode_request(
        _json_body([row], outputs=[{"name": "label", "parameters": {"binary_data": True}}]), None, [X], OUTS
    )
    assert [(o.name, o.binary) for o in chosen.outputs] == [("label", True)]


def test_nested_json_data_is_accepted() -> None:
    row = {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}
    assert decode_request(_json_body([row]), None, [X], OUTS).inputs["input"][1, 3] == 8.0


def _error(body: bytes, header_length: int | None = None) -> str:
    with pytest.raises(InvalidRequest) as info:
        decode_request(body, header_length, [X], OUTS)
    return info.value.message


def _row(**changes) -> dict:
    return {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4], **changes}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "malformed request JSON: Expecting property name enclosed in double quotes at line 1"),
        (b"[1, 2]", "request JSON must be an object, got list"),
        (b"\xff\xfe", "request JSON is not UTF-8 text"),
        (json.dumps({"inputs": {}}).encode(), "'inputs' must be a list of tensors"),
        (_json_body([]), "missing input 'input' (the model's inputs: 'input')"),
        (_json_body([_row(), _row(name="extra")]), "unexpected input 'extra' (the model's inputs: 'input')"),
        (_json_body([_row(), _row()]), "input 'input' is given more than once"),
        (
            _json_body([_row(shape=[1, 3], data=[1, 2, 3])]),
            "input 'input': expected shape [-1, 4], got [1, 3]",
        ),
        (_json_body([_row(shape=[4])]), "input 'input': expected shape [-1, 4], got [4]"),
        (_json_body([_row(shape=[1, -4])]), "input 'input': 'shape' must be a list of non-negative integers"),
        (_json_body([_row(datatype="INT64")]), "input 'input': expected datatype FP32, got INT64"),
        (_json_body([_row(datatype="FLOAT")]), "input 'input': unknown datatype 'FLOAT' (expected FP32)"),
        (_json_body([_row(data=[1, 2, 3])]), "input 'input': shape [1, 4] needs 4 elements, got 3"),
        (_json_body([_row(data=[1, 2, "x", 4])]), "input 'input': FP32 data must be numbers"),
        (_json_body([_row(data=[[1, 2], [3]])]), "input 'input': 'data' is not a regular nested list"),
        (_json_body([{"name": "input", "datatype": "FP32", "shape": [1, 4]}]), "has neither 'data' nor"),
        (
            _json_body([_row()], outputs=[{"name": "logits"}]),
            "unknown output 'logits' requested (the model's outputs: 'probabilities', 'label')",
        ),
        (_json_body([_row()], parameters={"binary_data_output": "yes"}), "'binary_data_output' must be true"),
    ],
)
def test_json_errors_say_what_is_wrong(body: bytes, expected: str) -> None:
    assert expected in _error(body)


def test_integer_json_data_must_be_integers_in_range() -> None:
    spec = TensorInfo("n", "UINT8", (-1,))

    def error(data: list) -> str:
        body = _json_body([{"name": "n", "datatype": "UINT8", "shape": [len(data)], "data": data}])
        with pytest.raises(InvalidRequest) as info:
            decode_request(body, None, [spec], [spec])
        return info.value.message

    assert error([1, 300]) == "input 'n': values 1..300 do not fit UINT8 (0..255)"
    assert error([1, -1]) == "input 'n': values -1..1 do not fit UINT8 (0..255)"
    assert error([1.5, 2]) == "input 'n': UINT8 data must be integers"


def test_binary_errors_say_what_is_wrong() -> None:
    blob = np.zeros(4, np.float32).tobytes()
    header = _row(data=None)
    del header["data"]

    def body(size: int, payload: bytes) -> tuple[bytes, int]:
        return _binary_body([({**header, "parameters": {"binary_data_size": size}}, payload)])

    assert _error(*body(12, blob[:12])) == "input 'input': shape [1, 4] needs 16 bytes of FP32 data, got 12"
    assert "binary_data_size 20 runs past the end of the body" in _error(*body(20, blob))
    extra, length = body(16, blob + b"junk")
    assert (
        "20 bytes of binary data after the JSON header but the inputs' binary_data_size add up to 16"
        in _error(extra, length)
    )
    ok, length = body(16, blob)
    assert "Inference-Header-Content-Length is 999" in _error(ok, 999)
    assert "Inference-Header-Content-Length is 0" in _error(ok, 0)
    both = _json_body([{**_row(), "parameters": {"binary_data_size": 16}}])
    assert "has both 'data' and parameter 'binary_data_size'" in _error(both + blob, len(both))


def test_bytes_binary_errors() -> None:
    spec = TensorInfo("s", "BYTES", (-1,))
    tensor = {"name": "s", "datatype": "BYTES", "shape": [2]}

    def error(payload: bytes) -> str:
        body, length = _binary_body([({**tensor, "parameters": {"binary_data_size": len(payload)}}, payload)])
        with pytest.raises(InvalidRequest) as info:
            decode_request(body, length, [spec], [spec])
        return info.value.message

    assert error(serialize_bytes(np.array(["a"], dtype=object))) == (
        "input 's': shape [2] needs 2 BYTES elements, got 1"
    )
    assert "truncated BYTES length prefix" in error(serialize_bytes(np.array(["a"], dtype=object)) + b"\x01")
    assert "runs past the end" in error(b"\x09\x00\x00\x00abc")
    assert "not UTF-8 text" in error(b"\x01\x00\x00\x00\xff\x01\x00\x00\x00a")
