"""Run the controller: HTTP API, agent links, the reconcile loop; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from faillite.controller.api import create_app
from faillite.controller.config import ControllerConfig
from faillite.controller.core import Controller

__all__ = ["READY_MESSAGE", "serve"]

log = logging.getLogger("faillite.controller")
READY_MESSAGE = "faillite controller ready on http://{host}:{port}"


async def serve(config: ControllerConfig, *, stop: asyncio.Event | None = None) -> int:
    controller = Controller(config)
    app = create_app(controller)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", config.host, config.port, exc.strerror or exc)
            return 1
        port = next((a[1] for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), config.port)
        await controller.start()
        log.info(READY_MESSAGE.format(host=config.host, port=port))
        await stop.wait()
        log.info("faillite controller stopping")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await controller.stop()
        await runner.cleanup()
