"""The route watch: a WebSocket to the controller's ``/v1/routes/watch`` that hands every
``RouteTable`` it receives to a callback, and reconnects with capped exponential backoff.

The controller sends a full table on connect and on every change, so a reconnect needs no
extra fetch. While it is down the client keeps its cache; nothing on the data plane waits here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

import aiohttp
from pydantic import ValidationError

from faillite.wire import RouteTable

__all__ = ["RouteWatch"]

log = logging.getLogger("faillite.client")


class RouteWatch:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Mapping[str, str],
        connect_timeout: float,
        on_table: Callable[[RouteTable], object],
        *,
        heartbeat: float = 2.0,
        backoff: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        self.url = url
        self.connected = False
        self._session = session
        self._headers = dict(headers)
        self._connect_timeout = connect_timeout
        self._on_table = on_table
        self._heartbeat = heartbeat  # a silent controller is noticed within ~1.5 heartbeats
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="faillite-route-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay, failures = self._backoff[0], 0
        while True:
            try:
                await self._follow()
                delay, failures = self._backoff[0], 0  # it was up: reconnect quickly
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                failures += 1
                # Loud once, then quiet: a controller down for minutes must not flood the log.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "route watch %s: %s; retrying (keeping the cached routes)", self.url, exc)
            finally:
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _follow(self) -> None:
        async with asyncio.timeout(self._connect_timeout):
            ws = await self._session.ws_connect(self.url, headers=self._headers, heartbeat=self._heartbeat)
        async with ws:
            self.connected = True
            log.info("route watch connected to %s", self.url)
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    table = RouteTable.model_validate_json(message.data)
                except ValidationError as exc:
                    log.warning("route watch: ignoring a malformed table: %s", exc.errors()[:1])
                    continue
                self._on_table(table)
        log.info("route watch: controller closed the stream")
