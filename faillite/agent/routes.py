"""HTTP handlers of the Open Inference Protocol (KServe v2) REST API and its repository
extension. Handlers translate between HTTP and the store; errors are raised as
``AgentError`` and turned into responses by the middleware in ``faillite.agent.server``.

Status codes: 400 bad request (body, inputs, shapes, datatypes), 401 missing/wrong token on a
control endpoint, 404 unknown model or version, 409 load refused by the memory budget, 413
body over ``--max-body``, 422 ONNX Runtime refused the model file, 503 model (or agent) not
ready here, 500 a bug (logged).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from faillite import __version__
from faillite.agent.config import AgentConfig
from faillite.agent.errors import (
    AgentError,
    BudgetExceeded,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    ModelNotReady,
    Unauthorized,
)
from faillite.agent.link import ControllerLink
from faillite.agent.metrics import AgentMetrics
from faillite.agent.state import ReplicaState
from faillite.agent.store import LoadOutcome, ModelStore
from faillite.wire import EPOCH_HEADER

__all__ = ["HEADER_LENGTH", "AgentRoutes"]

HEADER_LENGTH = "Inference-Header-Content-Length"
_JSON = "application/json"
_BINARY = "application/octet-stream"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)


class AgentRoutes:
    def __init__(self, config: AgentConfig, store: ModelStore, metrics: AgentMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.ready = False  # set once startup loads are done; cleared on shutdown
        self.link: ControllerLink | None = None  # set when the agent joins a controller
        self._token = config.token.encode() if config.token else None

    def register(self, router: web.UrlDispatcher) -> None:
        get, post = router.add_get, router.add_post
        # The infer routes first: the router tries the resources under a prefix in order.
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            post(prefix + "/infer", self.infer)
        get("/v2/health/live", self.live)
        get("/v2/health/ready", self.server_ready)
        get("/v2", self.server_metadata)
        get("/metrics", self.prometheus)
        for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            get(prefix, self.model_metadata)
            get(prefix + "/ready", self.model_ready)
        post("/v2/repository/index", self.repository_index)
        post("/v2/repository/models/{model}/load", self.load)
        post("/v2/repository/models/{model}/unload", self.unload)

    # -- health and metadata --------------------------------------------------------------

    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def server_ready(self, request: web.Request) -> web.Response:
        if not self.ready:
            raise ModelNotReady("agent is not ready (starting up or shutting down)")
        return json_response({"ready": True})

    async def server_metadata(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "name": "faillite-agent",
                "version": __version__,
                "extensions": ["binary_tensor_data", "model_repository"],
                "node_id": self.config.node_id,
            }
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def model_metadata(self, request: web.Request) -> web.Response:
        replica = self.store.replica(request.match_info["model"])
        self._check_version(request, replica.version)

        def tensors(infos: tuple) -> list[dict[str, Any]]:
            return [
                {"name": t.name, "datatype": t.datatype, "shape": None if t.shape is None else list(t.shape)}
                for t in infos
            ]

        return json_response(
            {
                "name": replica.name,
                "versions": [str(replica.version)],
                "platform": "onnxruntime_onnx",
                "inputs": tensors(replica.inputs),
                "outputs": tensors(replica.outputs),
            }
        )

    async def model_ready(self, request: web.Request) -> web.Response:
        replica = self.store.replica(request.match_info["model"])
        self._check_version(request, replica.version)
        return json_response({"name": replica.name, "ready": True})

    def _check_version(self, request: web.Request, version: int | None) -> None:
        # acquire() does the same for infer; metadata and ready are checked here.
        wanted = request.match_info.get("version")
        if wanted is not None and wanted != str(version):
            raise ModelNotFound(
                f"model {request.match_info['model']!r} has no version {wanted} loaded "
                f"(serving version {version})"
            )

    # -- inference ------------------------------------------------------------------------

    async def infer(self, request: web.Request) -> web.Response:
        # The hot path: metric series cached per model, repeated binary headers decoded from a
        # plan (agent.plans), the run inline when measured cheaper than a thread hop (agent.runcost).
        match = request.match_info
        name = match["model"]
        if self.link is not None:  # fencing: a paused node or a stale route gets no answer
            await self.link.admit(request.headers.get(EPOCH_HEADER))
        try:
            replica = self.store.acquire(name, match.get("version"))
        except AgentError as exc:
            if self.store.knows(name):  # unknown names would make label sets unbounded
                series = self.metrics.model(name)
                series.requests += 1
                series.failed(exc.status)
            raise
        series = self.metrics.model(name)
        series.requests += 1
        started = time.perf_counter()
        try:
            body = await request.read()
            codec = replica.codec  # repeated binary headers skip parsing (see agent.plans)
            decoded, plan = codec.decode(body, _header_length(request))
            arrays = await self.store.run(replica, decoded.inputs, [o.name for o in decoded.outputs])
            payload, json_length = codec.encode(name, str(replica.version), decoded, plan, arrays)
        except BaseException as exc:
            series.failed(exc.status if isinstance(exc, AgentError | web.HTTPException) else 500)
            raise
        finally:
            self.store.release(replica)
        series.observe(time.perf_counter() - started)
        return web.Response(body=payload, headers=_answer_headers(json_length))

    # -- repository extension (control) ---------------------------------------------------

    def _authorize(self, request: web.Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("this endpoint needs an 'Authorization: Bearer <token>' header")
        if not hmac.compare_digest(credential.strip().encode(), self._token):
            raise Unauthorized("wrong bearer token")

    async def repository_index(self, request: web.Request) -> web.Response:
        self._authorize(request)
        body = await _control_body(request)
        ready_only = body.get("ready", False)
        if not isinstance(ready_only, bool):
            raise InvalidRequest("'ready' must be true or false")
        entries = [
            {
                "name": e.name,
                "version": "" if e.version is None else str(e.version),
                "state": e.state.value,
                "reason": e.reason,
            }
            for e in self.store.index()
            if not ready_only or e.state is ReplicaState.READY
        ]
        return json_response(entries)

    async def load(self, request: web.Request) -> web.Response:
        self._authorize(request)
        name = request.match_info["model"]
        body = await _control_body(request)
        overrides = sorted(k for k in body.get("parameters", {}) if k == "config" or k.startswith("file:"))
        if overrides:
            raise InvalidRequest(
                f"load parameters {', '.join(overrides)} are not supported: the agent "
                "serves the repository's files as they are"
            )
        outcome = await self.load_model(name)
        return json_response(
            {
                "name": name,
                "version": str(outcome.version),
                "state": ReplicaState.READY.value,
                "already_loaded": outcome.already_loaded,
                "memory_bytes": outcome.footprint,
                "load_seconds": round(outcome.seconds, 6),
                "free_bytes": self.store.free_bytes,
            }
        )

    async def load_model(self, name: str) -> LoadOutcome:
        """Load through the store and record the outcome (also used for ``--load`` at startup)."""
        try:
            outcome = await self.store.load(name)
        except BudgetExceeded:
            self.metrics.loads.labels(name, "refused").inc()
            raise
        except ModelLoadFailed:
            self.metrics.loads.labels(name, "failed").inc()
            raise
        self.metrics.loads.labels(name, "already_loaded" if outcome.already_loaded else "loaded").inc()
        if not outcome.already_loaded:
            self.metrics.load_duration.labels(name).observe(outcome.seconds)
            self.metrics.model_memory.labels(name).set(outcome.footprint)
        return outcome

    async def unload(self, request: web.Request) -> web.Response:
        self._authorize(request)
        name = request.match_info["model"]
        await _control_body(request)
        was_loaded = await self.store.unload(name)
        if was_loaded:
            self.metrics.model_memory.remove(name)
        return json_response(
            {
                "name": name,
                "state": ReplicaState.UNLOADED.value,
                "was_loaded": was_loaded,
                "free_bytes": self.store.free_bytes,
            }
        )


_JSON_HEADERS = CIMultiDict({"Content-Type": _JSON})
_BINARY_HEADERS: dict[int, CIMultiDict[str]] = {}  # by JSON header length


def _answer_headers(json_length: int | None) -> CIMultiDict[str]:
    """An infer answer's headers, built once per JSON header length (``web.Response`` copies them)."""
    if json_length is None:
        return _JSON_HEADERS
    headers = _BINARY_HEADERS.get(json_length)
    if headers is None:
        if len(_BINARY_HEADERS) >= 1024:
            _BINARY_HEADERS.clear()
        headers = _BINARY_HEADERS[json_length] = CIMultiDict(
            {"Content-Type": _BINARY, HEADER_LENGTH: str(json_length)}
        )
    return headers


def _header_length(request: web.Request) -> int | None:
    raw = request.headers.get(HEADER_LENGTH)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{HEADER_LENGTH} must be an integer, got {raw!r}") from exc


async def _control_body(request: web.Request) -> dict[str, Any]:
    """Control bodies are optional JSON objects (tritonclient sends an empty one for the index)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"malformed request JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest(f"request JSON must be an object, got {type(body).__name__}")
    if not isinstance(body.get("parameters", {}), dict):
        raise InvalidRequest("'parameters' must be an object")
    return body
