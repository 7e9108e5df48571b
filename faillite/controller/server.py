"""Run the controller: HTTP API, agent links, the reconcile loop; stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from faillite.controller.api import create_app
from faillite.controller.config import ControllerConfig
from faillite.controller.core import Controller
from faillite.controller.links import open_beat_socket
from faillite.httpserve import ListenError, listening, stop_on_signals

__all__ = ["READY_MESSAGE", "serve"]

log = logging.getLogger("faillite.controller")
READY_MESSAGE = "faillite controller ready on http://{host}:{port}"


async def serve(config: ControllerConfig, *, stop: asyncio.Event | None = None) -> int:
    controller = Controller(config)
    stop = stop or asyncio.Event()
    try:
        with stop_on_signals(stop):
            async with listening(
                create_app(controller), config.host, config.port, shutdown_timeout=2.0
            ) as port:
                try:
                    await open_beat_socket(controller)
                except OSError as exc:  # agents then beat on their WebSocket
                    log.warning("no UDP beat socket (%s): agents beat on their WebSocket", exc)
                await controller.start()
                try:
                    log.info(READY_MESSAGE.format(host=config.host, port=port))
                    await stop.wait()
                    log.info("faillite controller stopping")
                finally:
                    await controller.stop()
                return 0
    except ListenError as exc:
        log.error("%s", exc)
        controller.store.close()
        return 1
