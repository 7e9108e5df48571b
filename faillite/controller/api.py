"""The controller's HTTP API (``/v1/...``) and its WebSocket channels, on aiohttp.

Errors are mapped to HTTP in one place (``_errors``): every refusal is a 4xx with an
``{"error": ...}`` body; control endpoints need ``Authorization: Bearer TOKEN`` when the
controller has a token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from faillite.controller.apps import AppConflict, PlanRefused, add_apps, remove_app
from faillite.controller.core import Controller
from faillite.controller.links import agent_connection, suspect
from faillite.controller.metrics import CONTENT_TYPE, ControllerMetrics
from faillite.controller.planning import AppSpec, SpecError, plan_to_json, shared_to_json
from faillite.controller.status import app_view, node_views, status_view
from faillite.dashboard import STATIC_DIR
from faillite.errors import describe_validation

__all__ = ["create_app"]

log = logging.getLogger("faillite.controller")
_SPECS = TypeAdapter(list[AppSpec])
_MAX_BODY = 1 << 20


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return web.json_response({"error": exc.message, **exc.extra}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return web.json_response({"error": exc.reason}, status=exc.status)
        raise
    except Exception as exc:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return web.json_response({"error": f"internal error ({type(exc).__name__}); see the log"}, status=500)


def create_app(controller: Controller) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_BODY)
    api = _Api(controller)
    app.add_routes(
        [
            web.get("/", api.dashboard),
            web.static("/static", STATIC_DIR),
            web.get("/metrics", api.get_metrics),
            web.get("/v1/status", api.get_status),
            web.get("/v1/health", api.health),
            web.post("/v1/apps", api.post_apps),
            web.get("/v1/apps", api.get_apps),
            web.get("/v1/apps/{name}", api.get_app),
            web.delete("/v1/apps/{name}", api.delete_app),
            web.get("/v1/nodes", api.get_nodes),
            web.get("/v1/plan", api.get_plan),
            web.get("/v1/routes", api.get_routes),
            web.get("/v1/routes/watch", api.watch_routes),
            web.get("/v1/events", api.get_events),
            web.get("/v1/events/watch", api.watch_events),
            web.post("/v1/suspect", api.post_suspect),
            web.get("/v1/agents/connect", api.agent_connect),
        ]
    )
    return app


class _Api:
    def __init__(self, controller: Controller) -> None:
        self.c = controller
        self.metrics = ControllerMetrics(controller)

    def _authorize(self, request: web.Request) -> None:
        token = self.c.config.token
        if not token:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HttpError(401, "this endpoint needs 'Authorization: Bearer <cluster token>'")

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "nodes": len(self.c.live_nodes()), "apps": len(self.c.cluster.apps)}
        )

    async def post_apps(self, request: web.Request) -> web.Response:
        self._authorize(request)
        specs = _parse_specs(await request.read(), request.content_type)
        try:
            result = await add_apps(self.c, specs)
        except AppConflict as exc:
            raise HttpError(409, str(exc)) from exc
        except SpecError as exc:
            raise HttpError(422, str(exc)) from exc
        except PlanRefused as exc:
            raise HttpError(422, f"no feasible placement: {exc}", reasons=list(exc.reasons)) from exc
        return web.json_response(result, status=201)

    async def get_apps(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": n, **app_view(self.c, n)} for n in sorted(self.c.cluster.apps)])

    async def get_app(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.c.cluster.apps:
            raise HttpError(404, f"no app named {name!r}")
        return web.json_response({"name": name, **app_view(self.c, name)})

    async def delete_app(self, request: web.Request) -> web.Response:
        self._authorize(request)
        name = request.match_info["name"]
        if not remove_app(self.c, name):
            raise HttpError(404, f"no app named {name!r}")
        return web.json_response({"deleted": name})

    async def get_nodes(self, request: web.Request) -> web.Response:
        return web.json_response(node_views(self.c))

    async def get_status(self, request: web.Request) -> web.Response:
        return web.json_response(status_view(self.c))

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def dashboard(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def get_plan(self, request: web.Request) -> web.Response:
        cluster = self.c.cluster
        return web.json_response(
            {
                "plan": plan_to_json(cluster.plan),
                "home_plan": plan_to_json(cluster.home_plan),
                "shared": shared_to_json(cluster.plan),  # shared warm fallbacks (faillite-shared)
                "home_shared": shared_to_json(cluster.home_plan),
            }
        )

    async def get_routes(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.c.cluster.route_table().model_dump_json(), content_type="application/json"
        )

    async def watch_routes(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=5.0)
        await ws.prepare(request)
        await ws.send_str(self.c.cluster.route_table().model_dump_json())
        self.c.watchers.add(ws)
        try:
            async for _ in ws:  # clients send nothing; this waits for the close
                pass
        finally:
            self.c.watchers.discard(ws)
        return ws

    async def get_events(self, request: web.Request) -> web.Response:
        since = _int_param(request, "since", 0)
        limit = min(_int_param(request, "limit", 1000), 10_000)
        return web.json_response(self.c.events.since(since, limit))

    async def watch_events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=5.0)
        await ws.prepare(request)
        queue = self.c.events.subscribe()
        try:
            # The whole backlog is read before the first await, so nothing emitted meanwhile is
            # both in it and in the queue, and nothing falls between them.
            backlog, last = [], _int_param(request, "since", 0)
            while page := self.c.events.since(last, 1000):
                backlog.extend(page)
                last = page[-1]["id"]
            for event in backlog:
                await ws.send_str(json.dumps(event))
            reader = asyncio.ensure_future(ws.receive())
            while not ws.closed:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    getter.cancel()
                    break
                await ws.send_str(json.dumps(getter.result()))
        finally:
            self.c.events.unsubscribe(queue)
        return ws

    async def post_suspect(self, request: web.Request) -> web.Response:
        self._authorize(request)  # a suspicion can get a node declared dead: a control call
        try:
            body = await request.json()
            node = str(body["node"])
            epoch = body.get("epoch")
            reason = str(body.get("reason", "unreachable"))
        except (ValueError, KeyError, TypeError) as exc:
            raise HttpError(400, 'expected {"node": ID, "epoch": N, "reason": "..."}') from exc
        declared = await suspect(self.c, node, int(epoch) if epoch is not None else None, reason)
        return web.json_response({"node": node, "declared_dead": declared}, status=202)

    async def agent_connect(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        return await agent_connection(self.c, request)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise HttpError(400, f"query parameter {name}={raw!r} is not an integer") from exc
    if value < 0:
        raise HttpError(400, f"query parameter {name} must not be negative")
    return value


def _parse_specs(body: bytes, content_type: str) -> list[AppSpec]:
    """App specs from JSON or YAML: one app, a list, or ``{"apps": [...]}``."""
    if not body.strip():
        raise HttpError(400, "empty body: expected an app spec (JSON or YAML)")
    try:
        doc = yaml.safe_load(body) if "yaml" in content_type else json.loads(body)
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise HttpError(400, f"malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if isinstance(doc, dict) and "apps" in doc:
        doc = doc["apps"]
    if isinstance(doc, dict):
        doc = [doc]
    try:
        return _SPECS.validate_python(doc)
    except ValidationError as exc:
        raise HttpError(400, f"invalid app spec: {describe_validation(exc, first_only=True)}") from exc
