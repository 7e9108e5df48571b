"""Open Inference Protocol (KServe v2) tensor encoding: JSON and the binary data extension.

Pure functions over bytes and numpy arrays, no HTTP. A request body is a JSON header,
optionally followed by raw tensor bytes; the ``Inference-Header-Content-Length`` header gives
the JSON part's length and each binary input names its size in ``parameters.binary_data_size``.
Outputs are returned as JSON ``data`` or, when asked for with ``binary_data`` (per output) or
``binary_data_output`` (request default), appended as raw bytes the same way.

Every violation raises ``InvalidRequest`` with a message that names the tensor and what was
expected, e.g. ``input 'input': expected shape [-1, 64], got [1, 63]``.

BYTES tensors travel as 4-byte little-endian length-prefixed elements in binary form and as
strings in JSON; ONNX string tensors hold text, so elements must be valid UTF-8.

JSON is parsed and written with orjson (about 8x faster than the standard library on a
request of 64 numbers). What orjson refuses — ``NaN``/``Infinity``, integers beyond 64 bits,
malformed text — is handed to the standard library, which either accepts it as it always did
or raises the precise error the client gets; responses with non-finite floats are written by
the standard library too (orjson would turn them into ``null``).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from faillite.agent.errors import InvalidRequest

__all__ = [
    "DATATYPES",
    "InferRequest",
    "RequestedOutput",
    "TensorInfo",
    "decode_request",
    "deserialize_bytes",
    "encode_response",
    "serialize_bytes",
]

# OIP datatype -> little-endian numpy dtype; BYTES are object arrays of str.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
# Which numpy kinds a JSON array may have for each target kind: ints stay ints (no silent
# truncation of 1.5), floats take ints or floats, booleans only true/false.
_ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: OIP datatype and shape (-1 for a variable dimension,
    ``None`` when the model does not declare its rank)."""

    name: str
    datatype: str
    shape: tuple[int, ...] | None

    def describe_shape(self) -> str:
        return "any" if self.shape is None else _fmt(self.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...]


def _fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def decode_request(
    body: bytes,
    header_length: int | None,
    inputs: Sequence[TensorInfo],
    outputs: Sequence[TensorInfo],
) -> InferRequest:
    """Parse and validate an inference request against a model's signature."""
    if header_length is None:
        header, binary = body, memoryview(b"")
    else:
        if not 0 < header_length <= len(body):
            raise InvalidRequest(
                f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes"
            )
        header, binary = body[:header_length], memoryview(body)[header_length:]
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError:
        request = _loads_lenient(header)
    if not isinstance(request, dict):
        raise InvalidRequest(f"request JSON must be an object, got {type(request).__name__}")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    params = _parameters(request, "request")
    binary_default = params.get("binary_data_output", False)
    if not _is_flag(binary_default):
        raise InvalidRequest("parameter 'binary_data_output' must be true or false")

    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list):
        raise InvalidRequest("'inputs' must be a list of tensors")
    expected = {spec.name: spec for spec in inputs}
    decoded: dict[str, np.ndarray] = {}
    offset = 0
    for position, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidRequest(f"inputs[{position}] must be an object with a string 'name'")
        name = raw["name"]
        spec = expected.get(name)
        if spec is None:
            raise InvalidRequest(f"unexpected input {name!r} (the model's inputs: {_names(inputs)})")
        if name in decoded:
            raise InvalidRequest(f"input {name!r} is given more than once")
        decoded[name], offset = _decode_input(raw, spec, binary, offset)
    missing = [spec.name for spec in inputs if spec.name not in decoded]
    if missing:
        raise InvalidRequest(
            f"missing input {', '.join(map(repr, missing))} (the model's inputs: {_names(inputs)})"
        )
    if offset != len(binary):
        raise InvalidRequest(
            f"the body has {len(binary)} bytes of binary data after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    return InferRequest(request_id, decoded, _requested_outputs(request, outputs, binary_default))


def _loads_lenient(header: bytes) -> Any:
    """The standard library's reading of what orjson refused: the same values as before, or
    an ``InvalidRequest`` saying where the text is wrong."""
    try:
        return json.loads(header.decode("utf-8"))  # no encoding sniffing: OIP JSON is UTF-8
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request JSON is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"malformed request JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def _names(specs: Sequence[TensorInfo]) -> str:
    return ", ".join(repr(s.name) for s in specs) or "none"


def _parameters(obj: dict, where: str) -> dict:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise InvalidRequest(f"'parameters' of {where} must be an object")
    return params


def _requested_outputs(
    request: dict, outputs: Sequence[TensorInfo], binary_default: bool
) -> tuple[RequestedOutput, ...]:
    raw_outputs = request.get("outputs")
    if raw_outputs is None or raw_outputs == []:
        return tuple(RequestedOutput(spec.name, binary_default) for spec in outputs)
    if not isinstance(raw_outputs, list):
        raise InvalidRequest("'outputs' must be a list")
    known = {spec.name for spec in outputs}
    requested: list[RequestedOutput] = []
    for position, raw in enumerate(raw_outputs):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidRequest(f"outputs[{position}] must be an object with a string 'name'")
        name = raw["name"]
        if name not in known:
            raise InvalidRequest(
                f"unknown output {name!r} requested (the model's outputs: {_names(outputs)})"
            )
        if any(r.name == name for r in requested):
            raise InvalidRequest(f"output {name!r} is requested more than once")
        binary = _parameters(raw, f"output {name!r}").get("binary_data", binary_default)
        if not _is_flag(binary):
            raise InvalidRequest(f"output {name!r}: parameter 'binary_data' must be true or false")
        requested.append(RequestedOutput(name, binary))
    return tuple(requested)


def _decode_input(raw: dict, spec: TensorInfo, binary: memoryview, offset: int) -> tuple[np.ndarray, int]:
    name = spec.name
    datatype = raw.get("datatype")
    if datatype != spec.datatype:
        if datatype not in DATATYPES:
            raise InvalidRequest(f"input {name!r}: unknown datatype {datatype!r} (expected {spec.datatype})")
        raise InvalidRequest(f"input {name!r}: expected datatype {spec.datatype}, got {datatype}")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidRequest(
            f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}"
        )
    if spec.shape is not None and (
        len(shape) != len(spec.shape) or any(e not in (-1, d) for e, d in zip(spec.shape, shape, strict=True))
    ):
        raise InvalidRequest(f"input {name!r}: expected shape {_fmt(spec.shape)}, got {_fmt(shape)}")
    count = math.prod(shape)
    dtype = DATATYPES[datatype]
    size = _parameters(raw, f"input {name!r}").get("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise InvalidRequest(f"input {name!r}: has both 'data' and parameter 'binary_data_size'")
        if type(size) is not int or size < 0:
            raise InvalidRequest(f"input {name!r}: 'binary_data_size' must be a non-negative integer")
        if offset + size > len(binary):
            raise InvalidRequest(
                f"input {name!r}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} bytes of binary data left)"
            )
        chunk = binary[offset : offset + size]
        return _from_binary(spec, datatype, dtype, shape, count, chunk), offset + size
    if "data" not in raw:
        raise InvalidRequest(f"input {name!r}: has neither 'data' nor parameter 'binary_data_size'")
    return _from_json(spec, datatype, dtype, shape, count, raw["data"]), offset


def _from_binary(
    spec: TensorInfo, datatype: str, dtype: np.dtype, shape: list[int], count: int, chunk: memoryview
) -> np.ndarray:
    if datatype == "BYTES":
        elements = deserialize_bytes(bytes(chunk), what=f"input {spec.name!r}")
        if len(elements) != count:
            raise InvalidRequest(
                f"input {spec.name!r}: shape {_fmt(shape)} needs {count} BYTES elements, got {len(elements)}"
            )
        return _text_array(spec, elements, shape)
    needed = count * dtype.itemsize
    if len(chunk) != needed:
        raise InvalidRequest(
            f"input {spec.name!r}: shape {_fmt(shape)} needs {needed} bytes of {datatype} data, "
            f"got {len(chunk)}"
        )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


def _from_json(
    spec: TensorInfo, datatype: str, dtype: np.dtype, shape: list[int], count: int, data: Any
) -> np.ndarray:
    name = spec.name
    if not isinstance(data, list):
        data = [data]  # a scalar stands for a one-element tensor
    if datatype == "BYTES":
        flat = _flatten(data, name)
        if len(flat) != count:
            raise InvalidRequest(
                f"input {name!r}: shape {_fmt(shape)} needs {count} elements, got {len(flat)}"
            )
        if not all(isinstance(v, str) for v in flat):
            raise InvalidRequest(f"input {name!r}: BYTES data in JSON must be strings")
        return _text_array(spec, flat, shape)
    try:
        array = np.asarray(data)
    except ValueError as exc:  # ragged nesting
        raise InvalidRequest(f"input {name!r}: 'data' is not a regular nested list ({exc})") from exc
    if array.size != count:
        raise InvalidRequest(f"input {name!r}: shape {_fmt(shape)} needs {count} elements, got {array.size}")
    if count and dtype.kind in "iu" and array.dtype.kind in "fO":
        # Python ints beyond int64 (UINT64 values >= 2**63) come out as float64 or object:
        # look at the JSON values themselves rather than at numpy's lossy guess.
        array = _big_integers(name, datatype, dtype, _flatten(data, name))
    if count and array.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        wanted = {"b": "true/false", "u": "integers", "i": "integers", "f": "numbers"}[dtype.kind]
        raise InvalidRequest(f"input {name!r}: {datatype} data must be {wanted}")
    if count and dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise InvalidRequest(
                f"input {name!r}: values {low}..{high} do not fit {datatype} ({info.min}..{info.max})"
            )
    return array.astype(dtype, copy=False).reshape(shape)


def _big_integers(name: str, datatype: str, dtype: np.dtype, values: list) -> np.ndarray:
    if not all(type(v) is int for v in values):
        raise InvalidRequest(f"input {name!r}: {datatype} data must be integers")
    info = np.iinfo(dtype)
    low, high = min(values), max(values)
    if low < info.min or high > info.max:
        raise InvalidRequest(
            f"input {name!r}: values {low}..{high} do not fit {datatype} ({info.min}..{info.max})"
        )
    return np.array(values, dtype=dtype)


def _flatten(data: list, name: str) -> list:
    flat: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _text_array(spec: TensorInfo, elements: list, shape: list[int]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    for i, element in enumerate(elements):
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest(
                    f"input {spec.name!r}: BYTES element {i} is not UTF-8 text "
                    "(ONNX string tensors hold text)"
                ) from exc
        array[i] = element
    return array.reshape(shape)


def serialize_bytes(array: np.ndarray) -> bytes:
    """BYTES elements as 4-byte little-endian length + content, row-major."""
    parts: list[bytes] = []
    for element in array.ravel():
        data = element.encode("utf-8") if isinstance(element, str) else bytes(element)
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(data: bytes, what: str = "BYTES tensor") -> list[bytes]:
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise InvalidRequest(f"{what}: truncated BYTES length prefix at byte {offset}")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += 4
        if offset + length > len(data):
            raise InvalidRequest(
                f"{what}: BYTES element of {length} bytes runs past the end at byte {offset}"
            )
        elements.append(data[offset : offset + length])
        offset += length
    return elements


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[TensorInfo, np.ndarray, bool]],
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    finite = True
    for spec, array, binary in outputs:
        tensor: dict[str, Any] = {"name": spec.name, "datatype": spec.datatype, "shape": list(array.shape)}
        if binary:
            blob = (
                serialize_bytes(array)
                if spec.datatype == "BYTES"
                else np.ascontiguousarray(array, dtype=DATATYPES[spec.datatype]).tobytes()
            )
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            data = tensor["data"] = _json_data(spec, array)
            if finite and array.dtype.kind in "fc":
                # Small outputs are checked on the list (a ufunc and a reduction cost more).
                small = array.dtype.kind == "f" and len(data) <= 256
                finite = all(map(math.isfinite, data)) if small else bool(np.isfinite(array).all())
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": tensors}
    if request_id is not None:
        response["id"] = request_id
    # NaN and infinities as the standard library writes them (orjson would write null).
    header = orjson.dumps(response) if finite else json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _json_data(spec: TensorInfo, array: np.ndarray) -> list:
    flat = array.ravel()
    if spec.datatype != "BYTES":
        return flat.tolist()
    out: list[str] = []
    for element in flat:
        if isinstance(element, bytes):
            try:
                element = element.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest(
                    f"output {spec.name!r} holds non-UTF-8 bytes; request it with binary_data"
                ) from exc
        out.append(str(element))
    return out
