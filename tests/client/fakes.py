"""In-process stand-ins for the controller and agents, speaking the wire contract, so the send
loop's reactions (409, hangs, route pushes, a controller going away) are tested without processes."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

from faillite.wire import EPOCH_HEADER, Route, RouteTable, RouteTarget

__all__ = ["FakeAgent", "FakeController", "Server", "table"]


def table(version: int, **apps: tuple[RouteTarget, ...]) -> RouteTable:
    return RouteTable(
        version=version,
        routes=tuple(
            Route(app=app, state="serving" if t else "recovering", targets=t) for app, t in apps.items()
        ),
    )


class Server:
    """An aiohttp app on a loopback port; restartable on the same port."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=0.1, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class FakeAgent:
    """Answers infer with one FP32 output holding ``value``; ``mode`` picks the behaviour:
    ``"ok"``, an HTTP status to refuse with, or ``"hang"`` (never answers)."""

    value: float
    mode: str | int = "ok"
    epochs: list[str | None] = field(default_factory=list)  # Faillite-Epoch of each request seen
    started: asyncio.Event = field(default_factory=asyncio.Event)  # a request arrived
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)  # a hung request was dropped

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/models/{model}/infer", self._infer)
        app.router.add_get("/v2/models/{model}", self._metadata)
        return app

    async def _infer(self, request: web.Request) -> web.Response:
        self.epochs.append(request.headers.get(EPOCH_HEADER))
        await request.read()
        self.started.set()
        if self.mode == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:  # the client closed the connection
                self.cancelled.set()
                raise
        if isinstance(self.mode, int):
            return web.json_response({"error": f"refused with {self.mode}"}, status=self.mode)
        output = {"name": "y", "datatype": "FP32", "shape": [1], "data": [self.value]}
        return web.json_response({"model_name": request.match_info["model"], "outputs": [output]})

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["model"], "inputs": [], "outputs": []})


class FakeController:
    """``GET /v1/routes``, ``/v1/routes/watch`` (table on connect and on publish), ``POST /v1/suspect``."""

    def __init__(self, routes: RouteTable, token: str | None = None) -> None:
        self.routes = routes
        self.token = token
        self.suspicions: list[dict] = []
        self.suspected = asyncio.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self.app = web.Application(middlewares=[self._auth])
        self.app.router.add_get("/v1/routes", self._get)
        self.app.router.add_get("/v1/routes/watch", self._watch)
        self.app.router.add_post("/v1/suspect", self._suspect)
        self.app.on_shutdown.append(self._close_sockets)

    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "wrong bearer token"}, status=401)
        return await handler(request)

    async def publish(self, routes: RouteTable) -> None:
        self.routes = routes
        for ws in list(self._sockets):
            await ws.send_str(routes.model_dump_json())

    async def _get(self, request: web.Request) -> web.Response:
        return web.Response(text=self.routes.model_dump_json(), content_type="application/json")

    async def _watch(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(self.routes.model_dump_json())
            async for _ in ws:
                pass
        finally:
            self._sockets.discard(ws)
        return ws

    async def _suspect(self, request: web.Request) -> web.Response:
        self.suspicions.append(json.loads(await request.read()))
        self.suspected.set()
        return web.json_response({"ok": True})

    async def _close_sockets(self, app: web.Application) -> None:
        for ws in list(self._sockets):
            await ws.close()
