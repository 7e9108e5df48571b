"""The agent's side of its persistent connection to the controller, and self-fencing.

The agent registers over a WebSocket, learns the epoch it serves under, and heartbeats every
``heartbeat_interval_ms``. A ticker watches the agent's own event loop: if it could not tick
for longer than the heartbeat timeout (the process was stopped, or starved), the controller
has declared it dead by now, so the agent fences itself — it refuses requests (503) — drops the
connection and registers again as a new incarnation. Requests routed by faillite carry the
epoch they were routed for; one stamped with another epoch is refused (409), so a stale route
never gets an answer. While the controller is unreachable the agent keeps serving: losing the
controller is not a reason to stop the data plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from faillite.agent.errors import AgentError
from faillite.wire import Heartbeat, Register, Welcome

__all__ = ["ControllerLink", "Fenced", "LinkSettings", "StaleEpoch"]

log = logging.getLogger("faillite.agent")


class Fenced(AgentError):
    """The node fenced itself after a pause; it serves again once re-registered."""

    status = 503


class StaleEpoch(AgentError):
    """The request was routed for another epoch of this node: the route is stale."""

    status = 409


@dataclass(frozen=True)
class LinkSettings:
    controller_url: str
    node_id: str
    memory_bytes: int
    cores: float = 1.0
    domain: str | None = None
    token: str | None = None
    connect_timeout_s: float = 1.0
    max_backoff_s: float = 0.5


class ControllerLink:
    def __init__(
        self,
        settings: LinkSettings,
        url: str,
        pid: int,
        loaded: Callable[[], list[str]],
        used_bytes: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.url = url
        self.pid = pid
        self._loaded = loaded
        self._used = used_bytes
        self.epoch: int | None = None
        self.fenced = False
        self.interval_s = 0.02
        self.timeout_s = 0.09
        self.last_tick = time.monotonic()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.connected = asyncio.Event()

    def admit(self, routed_epoch: str | None) -> None:
        """Raise unless this agent may answer a request routed for ``routed_epoch``."""
        self._check_pause(time.monotonic())
        if self.fenced:
            raise Fenced(f"node {self.settings.node_id} is fenced (it was paused); re-registering")
        if routed_epoch is not None and self.epoch is not None:
            try:
                epoch = int(routed_epoch)
            except ValueError as exc:
                raise StaleEpoch(f"Faillite-Epoch {routed_epoch!r} is not an integer") from exc
            if epoch != self.epoch:
                raise StaleEpoch(
                    f"stale route: node {self.settings.node_id} serves epoch {self.epoch},"
                    f" the request was routed for epoch {epoch}"
                )

    def _check_pause(self, now: float) -> None:
        gap = now - self.last_tick
        if self.epoch is not None and not self.fenced and gap > self.timeout_s:
            self.fenced = True
            log.warning(
                "event loop was paused for %.0f ms: fencing node %s", gap * 1000, self.settings.node_id
            )
            if self._ws is not None and not self._ws.closed:
                asyncio.get_running_loop().create_task(self._ws.close())

    async def run(self) -> None:
        """Keep a session with the controller forever (reconnecting with backoff)."""
        ticker = asyncio.create_task(self._tick())
        backoff = 0.02
        try:
            async with aiohttp.ClientSession() as session:
                while True:
                    try:
                        await self._session(session)
                        backoff = 0.02
                    except (aiohttp.ClientError, ConnectionError, TimeoutError, ValueError) as exc:
                        log.debug("controller link: %s", exc)
                    self.connected.clear()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.settings.max_backoff_s)
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s / 2)
            now = time.monotonic()
            self._check_pause(now)
            self.last_tick = now

    async def _session(self, session: aiohttp.ClientSession) -> None:
        s = self.settings
        headers = {"Authorization": f"Bearer {s.token}"} if s.token else {}
        url = s.controller_url.rstrip("/") + "/v1/agents/connect"
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0)
        async with session.ws_connect(
            url,
            headers=headers,
            timeout=timeout,
            heartbeat=None,
            autoping=True,
            max_msg_size=1 << 20,
        ) as ws:
            self._ws = ws
            register = Register(
                node_id=s.node_id,
                url=self.url,
                memory_bytes=s.memory_bytes,
                cores=s.cores,
                domain=s.domain,
                pid=self.pid,
                epoch=None if self.fenced else self.epoch,
                loaded=tuple(self._loaded()),
            )
            await ws.send_str(register.model_dump_json())
            reply = await ws.receive(timeout=s.connect_timeout_s)
            if reply.type is not aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"controller closed the session ({reply.type.name})")
            welcome = Welcome.model_validate_json(reply.data)
            if welcome.epoch != self.epoch or self.fenced:
                log.info("node %s serves epoch %d", s.node_id, welcome.epoch)
            self.epoch = welcome.epoch
            self.interval_s = welcome.heartbeat_interval_ms / 1000
            self.timeout_s = welcome.heartbeat_timeout_ms / 1000
            self.last_tick = time.monotonic()
            self.fenced = False
            self.connected.set()
            reader = asyncio.create_task(ws.receive())  # only the close matters
            seq = 0
            try:
                while not ws.closed and not reader.done() and not self.fenced:
                    seq += 1
                    beat = Heartbeat(
                        seq=seq,
                        epoch=welcome.epoch,
                        loaded=tuple(self._loaded()),
                        used_bytes=self._used(),
                        fenced=self.fenced,
                    )
                    await ws.send_str(beat.model_dump_json())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(reader), self.interval_s)
            finally:
                reader.cancel()
                self._ws = None
