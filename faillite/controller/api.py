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
from faillite.controller.planning import AppSpec, SpecError, plan_to_json

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

    def _app_view(self, name: str) -> dict[str, Any]:
        spec = self.c.cluster.apps[name]
        serving = self.c.cluster.serving.get(name)
        asg = self.c.cluster.plan.by_app().get(name)
        replica = serving.replica if serving else None
        return {
            "spec": spec.model_dump(mode="json"),
            "state": serving.state.value if serving else "pending",
            "node": replica.node if replica else None,
            "variant": replica.variant if replica else None,
            "accuracy": self.c.cluster.accuracy_of(name, replica.variant) if replica else None,
            "stone": bool(serving and serving.stone),
            "protected": bool(asg and asg.backup),
            "backup": None
            if asg is None or asg.backup is None
            else {"node": asg.backup.node, "variant": asg.backup.variant, "mode": asg.backup.mode.value},
        }

    async def get_apps(self, request: web.Request) -> web.Response:
        return web.json_response([{"name": n, **self._app_view(n)} for n in sorted(self.c.cluster.apps)])

    async def get_app(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.c.cluster.apps:
            raise HttpError(404, f"no app named {name!r}")
        return web.json_response({"name": name, **self._app_view(name)})

    async def delete_app(self, request: web.Request) -> web.Response:
        self._authorize(request)
        name = request.match_info["name"]
        if not remove_app(self.c, name):
            raise HttpError(404, f"no app named {name!r}")
        return web.json_response({"deleted": name})

    async def get_nodes(self, request: web.Request) -> web.Response:
        nodes = []
        for n in sorted(self.c.cluster.nodes.values(), key=lambda n: n.id):
            hb = self.c.heartbeats.get(n.id)
            nodes.append(
                {
                    "id": n.id,
                    "url": n.url,
                    "pid": n.pid,
                    "state": n.state.value,
                    "epoch": n.epoch,
                    "memory_bytes": n.memory_bytes,
                    "cores": n.cores,
                    "domain": n.domain,
                    "loaded": sorted(hb.loaded) if hb else [],
                    "used_bytes": hb.used_bytes if hb else 0,
                }
            )
        return web.json_response(nodes)

    async def get_plan(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"plan": plan_to_json(self.c.cluster.plan), "home_plan": plan_to_json(self.c.cluster.home_plan)}
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
            for event in self.c.events.since(_int_param(request, "since", 0)):
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
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise HttpError(400, f"invalid app spec: {where}: {err['msg']} (got {err.get('input')!r})") from exc
