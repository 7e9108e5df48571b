"""An asyncio Open Inference Protocol (KServe v2 REST) client for one server, on aiohttp.

Failures are classified the way failover needs them (STYLE §7):
- ``OipError``: the server answered with an error status (the request was refused: do not
  fail over, the input or the model name is wrong);
- ``OipConnectionError``: the server could not be reached (connection refused or reset: the
  process is gone, fail over now);
- ``OipTimeout``: no answer within the deadline (slow or hung: suspect it).

Tensors travel with the binary tensor data extension by default (no JSON encoding cost);
``binary=False`` sends JSON tensors. Infer headers and answers are written and read with orjson
(the standard library reads what orjson refuses, e.g. NaN in a JSON answer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import numpy as np
import orjson

__all__ = [
    "DATATYPES",
    "OipClient",
    "OipConnectionError",
    "OipError",
    "OipTimeout",
    "decode_infer_response",
    "encode_infer_request",
    "error_from_response",
    "send",
]

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}
_HEADER = "Inference-Header-Content-Length"


class OipError(Exception):
    """The server refused the request (HTTP 4xx/5xx with an OIP error body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class OipConnectionError(Exception):
    """The server could not be reached: connection refused, reset or closed."""


class OipTimeout(Exception):
    """No answer within the request's deadline."""


class OipClient:
    """Client for one OIP server. Reuse one instance (and its connection pool) per server."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 5.0,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def __aenter__(self) -> OipClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        return await send(
            self._client(),
            method,
            f"{self.base_url}{path}",
            body=body,
            headers={**self._headers, **(headers or {})},
            timeout=timeout if timeout is not None else self.timeout,
        )

    async def _json(self, method: str, path: str, payload: Any = None, timeout: float | None = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else None
        status, _, data = await self._request(method, path, body=body, headers=headers, timeout=timeout)
        result = _decode_json(data) if data else {}
        if status >= 400:
            raise OipError(status, _message(result, data))
        return result

    async def live(self) -> bool:
        status, _, _ = await self._request("GET", "/v2/health/live")
        return status == 200

    async def ready(self) -> bool:
        status, _, _ = await self._request("GET", "/v2/health/ready")
        return status == 200

    async def model_ready(self, model: str) -> bool:
        status, _, _ = await self._request("GET", f"/v2/models/{model}/ready")
        return status == 200

    async def server_metadata(self) -> dict[str, Any]:
        return await self._json("GET", "/v2")

    async def model_metadata(self, model: str) -> dict[str, Any]:
        return await self._json("GET", f"/v2/models/{model}")

    async def repository_index(self) -> list[dict[str, Any]]:
        return await self._json("POST", "/v2/repository/index", {})

    async def load(self, model: str, timeout: float | None = None) -> None:
        await self._json("POST", f"/v2/repository/models/{model}/load", {}, timeout=timeout)

    async def unload(self, model: str, timeout: float | None = None) -> None:
        await self._json("POST", f"/v2/repository/models/{model}/unload", {}, timeout=timeout)

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        outputs: list[str] | None = None,
        binary: bool = True,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one inference; returns the output tensors by name."""
        body, headers = encode_infer_request(inputs, outputs, binary)
        status, resp_headers, data = await self._request(
            "POST", f"/v2/models/{model}/infer", body=body, headers=headers, timeout=timeout
        )
        if status >= 400:
            raise error_from_response(status, data)
        return decode_infer_response(data, resp_headers.get(_HEADER))


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
) -> tuple[int, Mapping[str, str], bytes]:
    """One HTTP exchange, with aiohttp's failures translated to ``OipTimeout``/``OipConnectionError``.

    Any HTTP status is returned, not raised: what a status means is the caller's decision.
    """
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with session.request(method, url, data=body, headers=headers, timeout=limit) as resp:
            return resp.status, resp.headers, await resp.read()
    except TimeoutError as exc:
        raise OipTimeout(f"{method} {url}: no answer within {timeout} s") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError) as exc:
        # A payload error is a response cut short: the server went away mid-answer.
        raise OipConnectionError(f"{method} {url}: {exc}") from exc


def encode_infer_request(
    inputs: Mapping[str, np.ndarray], outputs: list[str] | None, binary: bool
) -> tuple[bytes, dict[str, str]]:
    if binary:
        return _encode_binary(inputs, outputs)
    tensors = []
    finite = True  # JSON tensors with NaN or infinities go out as the standard library writes them
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        datatype = _BY_DTYPE.get(array.dtype)
        if datatype is None:
            raise TypeError(f"input {name!r}: unsupported dtype {array.dtype}")
        finite = finite and (array.dtype.kind != "f" or bool(np.isfinite(array).all()))
        tensors.append(
            {"name": name, "shape": list(array.shape), "datatype": datatype, "data": array.ravel().tolist()}
        )
    request: dict[str, Any] = {"inputs": tensors}
    if outputs is not None:
        request["outputs"] = [{"name": n, "parameters": {"binary_data": False}} for n in outputs]
    header = orjson.dumps(request) if finite else json.dumps(request).encode()  # orjson: NaN -> null
    return header, {"Content-Type": "application/json"}


# Binary requests of one signature (input names, shapes, dtypes; outputs asked for) share their
# JSON header: it is built once and kept, the way the agent keeps decoding plans (agent.plans).
_HeaderKey = tuple[tuple[tuple[str, tuple[int, ...], np.dtype], ...], tuple[str, ...] | None]
_HEADERS: dict[_HeaderKey, tuple[bytes, dict[str, str]]] = {}
_MAX_CACHED = 256


def _encode_binary(
    inputs: Mapping[str, np.ndarray], outputs: list[str] | None
) -> tuple[bytes, dict[str, str]]:
    arrays = [(name, np.ascontiguousarray(array)) for name, array in inputs.items()]
    key = (tuple((name, a.shape, a.dtype) for name, a in arrays), None if outputs is None else tuple(outputs))
    cached = _HEADERS.get(key)
    if cached is None:
        tensors = []
        for name, array in arrays:
            datatype = _BY_DTYPE.get(array.dtype)
            if datatype is None:
                raise TypeError(f"input {name!r}: unsupported dtype {array.dtype}")
            tensors.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": array.nbytes},
                }
            )
        request: dict[str, Any] = {"inputs": tensors}
        if outputs is not None:
            request["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
        else:
            request["parameters"] = {"binary_data_output": True}
        header = orjson.dumps(request)
        headers = {"Content-Type": "application/octet-stream", _HEADER: str(len(header))}
        if len(_HEADERS) >= _MAX_CACHED:
            _HEADERS.clear()
        cached = _HEADERS[key] = (header, headers)
    header, headers = cached
    return b"".join([header, *(array.tobytes() for _, array in arrays)]), dict(headers)


# Answers of one signature repeat their JSON header too: its outputs (name, dtype, shape, byte
# size) are parsed once per distinct header.
_Output = tuple[str, np.dtype, list[int], int | None]
_ANSWERS: dict[bytes, list[_Output]] = {}


def decode_infer_response(data: bytes, header_length: str | None) -> dict[str, np.ndarray]:
    split = int(header_length) if header_length else len(data)
    if split < len(data):  # binary outputs follow: the header may be one seen before
        header = data[:split]
        plan = _ANSWERS.get(header)
        if plan is not None:
            return _from_plan(plan, memoryview(data)[split:])
        response = _decode_json(header)
        plan = _answer_plan(response)
        if plan is not None:
            if len(_ANSWERS) >= _MAX_CACHED:
                _ANSWERS.clear()
            _ANSWERS[header] = plan
            return _from_plan(plan, memoryview(data)[split:])
    else:
        response = _decode_json(data[:split])
    binary = memoryview(data)[split:]
    offset = 0
    result: dict[str, np.ndarray] = {}
    for out in response.get("outputs", []):
        dtype = DATATYPES.get(out["datatype"])
        if dtype is None:
            raise OipError(200, f"output {out['name']!r}: datatype {out['datatype']} not supported here")
        size = (out.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            array = np.frombuffer(binary[offset : offset + size], dtype=dtype).copy()
            offset += size
        else:
            array = np.asarray(out["data"], dtype=dtype)
        result[out["name"]] = array.reshape(out["shape"])
    return result


def _answer_plan(response: Any) -> list[_Output] | None:
    """The outputs of an all-binary answer header, or None (anything else is decoded in full)."""
    try:
        plan = []
        for out in response["outputs"]:
            dtype = DATATYPES[out["datatype"]]
            size = out["parameters"]["binary_data_size"]
            shape = out["shape"]
            if not isinstance(size, int) or "data" in out or not all(type(d) is int for d in shape):
                return None
            plan.append((out["name"], dtype, shape, size))
    except (KeyError, TypeError, ValueError):
        return None
    return plan


def _from_plan(plan: list[_Output], binary: memoryview) -> dict[str, np.ndarray]:
    result: dict[str, np.ndarray] = {}
    offset = 0
    for name, dtype, shape, size in plan:
        assert size is not None
        result[name] = np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape).copy()
        offset += size
    return result


def error_from_response(status: int, body: bytes) -> OipError:
    """The ``OipError`` for an error answer, with the message of its OIP error body."""
    return OipError(status, _message(_decode_json(body) if body else {}, body))


def _decode_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:  # what orjson refuses but the standard library reads (NaN, huge integers)
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _message(result: Any, raw: bytes) -> str:
    if isinstance(result, dict) and "error" in result:
        return str(result["error"])
    return raw[:200].decode(errors="replace") or "no error body"
