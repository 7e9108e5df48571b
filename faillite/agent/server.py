"""The agent process: the aiohttp application, error mapping, startup and graceful shutdown.

Every error leaves as an OIP error body ``{"error": "..."}``: ``AgentError`` with its status,
aiohttp's own HTTP errors (404 no route, 405, 413 body too large) with theirs, and anything
unexpected as 500 with a log line (never a traceback in the response).
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from faillite.agent.config import AgentConfig
from faillite.agent.errors import AgentError
from faillite.agent.link import ControllerLink, LinkSettings
from faillite.agent.metrics import AgentMetrics
from faillite.agent.routes import AgentRoutes, json_response
from faillite.agent.store import ModelStore
from faillite.httpserve import ListenError, listening, stop_on_signals

__all__ = ["READY_MESSAGE", "ROUTES_KEY", "STORE_KEY", "create_app", "serve"]

log = logging.getLogger("faillite.agent")

# Tests and launchers wait for this line; the URL carries the real port (also for --port 0).
READY_MESSAGE = "faillite agent {node_id} ready on http://{host}:{port}"

STORE_KEY = web.AppKey("store", ModelStore)
ROUTES_KEY = web.AppKey("routes", AgentRoutes)


@web.middleware
async def _errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AgentError as exc:
        return json_response({"error": exc.message}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text or exc.reason
        if exc.status in (404, 405):  # aiohttp's router: say what was asked for
            message = f"{exc.reason}: {request.method} {request.path}"
        response = json_response({"error": message}, status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return json_response(
            {"error": f"internal error ({type(exc).__name__}); see the agent's log"}, status=500
        )


def create_app(config: AgentConfig) -> web.Application:
    store = ModelStore(
        config.models_dir,
        config.memory_bytes,
        intra_op_threads=config.intra_op_threads,
        infer_threads=config.infer_threads,
        mem_arena=config.mem_arena,
        inline_budget_s=config.inline_budget_us / 1e6,
    )
    metrics = AgentMetrics(config.node_id, config.memory_bytes, lambda: store.used_bytes, store.ready_count)
    routes = AgentRoutes(config, store, metrics)
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_errors])
    routes.register(app.router)
    app[STORE_KEY] = store
    app[ROUTES_KEY] = routes

    async def close_store(app: web.Application) -> None:
        app[STORE_KEY].close()

    app.on_cleanup.append(close_store)
    return app


async def serve(config: AgentConfig, *, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); the exit status."""
    app = create_app(config)
    routes = app[ROUTES_KEY]
    stop = stop or asyncio.Event()
    link_task: asyncio.Task[None] | None = None
    try:
        with stop_on_signals(stop):
            async with listening(
                app, config.host, config.port, shutdown_timeout=config.shutdown_timeout_s
            ) as port:
                await app[STORE_KEY].warm_up()
                # Listen first, load after: liveness answers at once while startup models load.
                for name in config.load:
                    try:
                        await routes.load_model(name)
                    except AgentError as exc:
                        log.error("--load %s failed: %s", name, exc.message)
                        return 1
                routes.ready = True
                if config.controller_url:
                    link_task = _join(config, routes, app[STORE_KEY], port)
                log.info(READY_MESSAGE.format(node_id=config.node_id, host=config.host, port=port))
                await stop.wait()
                if link_task is not None:
                    link_task.cancel()
                routes.ready = False
                log.info("faillite agent %s stopping", config.node_id)
                return 0
    except ListenError as exc:
        log.error("%s", exc)
        return 1


def _join(config: AgentConfig, routes: AgentRoutes, store: ModelStore, port: int) -> asyncio.Task[None]:
    """Start the persistent link to the controller (heartbeats, epochs, self-fencing)."""
    assert config.controller_url is not None
    settings = LinkSettings(
        controller_url=config.controller_url,
        node_id=config.node_id,
        memory_bytes=config.memory_bytes,
        cores=config.cores,
        domain=config.domain,
        token=config.token,
    )
    link = ControllerLink(
        settings, f"http://{config.host}:{port}", os.getpid(), store.ready_names, lambda: store.used_bytes
    )
    routes.link = link
    return asyncio.create_task(link.run())
