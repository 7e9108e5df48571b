"""Telling the controller that a node looks gone or hung (``POST /v1/suspect``), in the background.

At most once per node, epoch and cooldown; a controller that is down or refuses is logged at
debug level and otherwise ignored: the data plane never waits on the controller.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

import aiohttp

from faillite.client.oip import OipConnectionError, OipTimeout, send
from faillite.wire import RouteTarget

__all__ = ["SuspicionReporter"]

log = logging.getLogger("faillite.client")


class SuspicionReporter:
    def __init__(
        self,
        controller_url: str,
        session: Callable[[], aiohttp.ClientSession | None],
        auth: Mapping[str, str],
        timeout: float,
        cooldown: float,
    ) -> None:
        self._url = f"{controller_url}/v1/suspect"
        self._session = session
        self._auth = dict(auth)
        self._timeout = timeout
        self._cooldown = cooldown
        self._reported: dict[tuple[str, int], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, target: RouteTarget, reason: str, now: float) -> None:
        session = self._session()
        if session is None:
            return
        key = (target.node, target.epoch)
        if self._reported.get(key, float("-inf")) > now:
            return
        self._reported[key] = now + self._cooldown
        task = asyncio.get_running_loop().create_task(self._post(session, target, reason))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("reporting a suspicion failed", exc_info=exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _post(self, session: aiohttp.ClientSession, target: RouteTarget, reason: str) -> None:
        payload = json.dumps({"node": target.node, "epoch": target.epoch, "reason": reason}).encode()
        try:
            status, _, _ = await send(
                session,
                "POST",
                self._url,
                body=payload,
                headers={**self._auth, "Content-Type": "application/json"},
                timeout=self._timeout,
            )
        except (OipConnectionError, OipTimeout) as exc:  # the controller may be down: that is fine
            log.debug("suspicion about %s not delivered: %s", target.node, exc)
            return
        if status >= 300:
            log.debug("controller answered %d to a suspicion about %s", status, target.node)
