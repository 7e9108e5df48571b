"""The binary fast path: requests that repeat a JSON header skip parsing and validation.

A client sending binary tensors (tritonclient, faillite's ``Client``, the gateway) sends the
same JSON header on every request of a given shape: only the raw bytes after it change. The
first time a header is seen it is decoded and validated in full by ``codec.decode_request``;
if every input came as binary data (no JSON ``data``, no BYTES), the outcome is kept as a
*plan* — each input's dtype, shape and byte range, the outputs asked for, the request id —
keyed by the header's bytes. The next request with the same header and the same body length
is decoded by slicing the body. Anything else (JSON tensors, BYTES, a new header, a body of
another length) takes the full path, so every error message stays the codec's.

Responses are the mirror image: when every output is sent as binary, the JSON header of the
answer depends only on the request's plan and the outputs' shapes, and is cached too.

One ``ReplicaCodec`` per loaded replica (its signature is fixed); bounded, pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from faillite.agent.codec import (
    DATATYPES,
    InferRequest,
    RequestedOutput,
    TensorInfo,
    decode_request,
    encode_response,
)

__all__ = ["ReplicaCodec"]

_MAX_PLANS = 64  # distinct headers remembered per replica (then the cache starts over)
_MAX_HEADER = 4096  # longer headers are not worth keeping


@dataclass(frozen=True)
class _Input:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    start: int  # offset in the binary part
    end: int


@dataclass(frozen=True, eq=False)
class _Plan:
    id: str | None
    inputs: tuple[_Input, ...]
    outputs: tuple[RequestedOutput, ...]
    binary_size: int
    all_binary_out: bool  # every requested output goes back as binary data
    answers: dict[tuple[tuple[int, ...], ...], bytes] = field(default_factory=dict)  # by output shapes


class ReplicaCodec:
    """Decode requests and encode answers for one model signature, caching binary plans."""

    def __init__(self, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> None:
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._specs = {spec.name: spec for spec in outputs}
        self._plans: dict[bytes, _Plan] = {}
        self.hits = 0  # requests decoded from a plan (for tests and curiosity)

    def decode(self, body: bytes, header_length: int | None) -> tuple[InferRequest, _Plan | None]:
        """The request, and its plan when it has (or now got) one."""
        if header_length is not None and 0 < header_length <= len(body):
            header = body[:header_length]
            plan = self._plans.get(header)
            if plan is not None and len(body) - header_length == plan.binary_size:
                self.hits += 1
                data = memoryview(body)[header_length:]
                inputs = {
                    i.name: np.frombuffer(data[i.start : i.end], dtype=i.dtype).reshape(i.shape)
                    for i in plan.inputs
                }
                return InferRequest(plan.id, inputs, plan.outputs), plan
            request = decode_request(body, header_length, self.inputs, self.outputs)
            return request, self._remember(header, request, len(body) - header_length)
        return decode_request(body, header_length, self.inputs, self.outputs), None

    def encode(
        self,
        model_name: str,
        model_version: str,
        request: InferRequest,
        plan: _Plan | None,
        arrays: Sequence[np.ndarray],
    ) -> tuple[bytes, int | None]:
        """The response body, and the JSON header's length when binary outputs follow it."""
        if plan is not None and plan.all_binary_out:
            shapes = tuple(array.shape for array in arrays)
            header = plan.answers.get(shapes)
            if header is not None:
                blobs = [
                    np.ascontiguousarray(array, dtype=DATATYPES[self._specs[o.name].datatype]).tobytes()
                    for o, array in zip(plan.outputs, arrays, strict=True)
                ]
                return b"".join([header, *blobs]), len(header)
        specs = self._specs
        outputs = [(specs[o.name], array, o.binary) for o, array in zip(request.outputs, arrays, strict=True)]
        payload, json_length = encode_response(model_name, model_version, request.id, outputs)
        if plan is not None and plan.all_binary_out and json_length is not None:
            if len(plan.answers) >= _MAX_PLANS:
                plan.answers.clear()
            plan.answers[tuple(array.shape for array in arrays)] = payload[:json_length]
        return payload, json_length

    def _remember(self, header: bytes, request: InferRequest, binary_size: int) -> _Plan | None:
        """A plan for ``header`` if every input came as binary data (BYTES excluded)."""
        if len(header) > _MAX_HEADER:
            return None
        try:
            raw = orjson.loads(header)
        except orjson.JSONDecodeError:  # only the standard library took it (NaN, huge integers)
            return None
        inputs: list[_Input] = []
        offset = 0
        for tensor in raw["inputs"]:
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is None or tensor["datatype"] == "BYTES":
                return None
            array = request.inputs[tensor["name"]]
            inputs.append(_Input(tensor["name"], array.dtype, array.shape, offset, offset + size))
            offset += size
        all_binary_out = all(o.binary and self._specs[o.name].datatype != "BYTES" for o in request.outputs)
        plan = _Plan(request.id, tuple(inputs), request.outputs, binary_size, all_binary_out)
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[header] = plan
        return plan
