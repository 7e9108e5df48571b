"""The agent's side of its persistent connection to the controller, and self-fencing.

The agent registers over a WebSocket and learns the epoch it serves under, the beat interval
(60 ms by default) and a UDP port. A small thread then sends a 22-byte binary beat per interval
as a UDP datagram (``faillite.agent.beats``), so a beat never queues behind request handling on the
event loop; it needs only the GIL. Each beat carries how stale the event loop is (the thread
schedules a tick on the loop every 4th beat: a busy or wedged loop shows as lag, and the controller
widens its timeout, or declares a loop stalled past ``stall_limit_ms`` dead), the CPU pressure
of the agent's box (Linux PSI, read every 5 s) and the fence promise it applies. What the
agent has loaded and the memory it uses travel in a JSON status message on the WebSocket only
when they change. Without a UDP port in the Welcome, the beats go on the WebSocket from the
event loop instead.

Self-fencing, consistent with the controller's adaptive detector:

- The controller promises each agent ``fence_after``: the shortest silence after which it may
  declare the node dead by any rule (its adaptive dead timeout, or the shorter one that
  applies after a client's suspicion). It sends a new promise when its estimate moves by more
  than 20 %, and never declares a node dead before a promise the agent may still hold: a
  lower promise counts only once a beat has acknowledged it.
- As long as the beats the agent sends arrive, the silence the controller measures is never
  longer than the time since the agent last sent a beat (a beat arrives after it left; the
  send time is the instant of the fence check, see ``beats.beat_step``). So, for a node that
  is paused, stopped or starved (not cut off), the rule "no beat has left for longer than
  ``fence_after``" holds whenever the controller could have declared it dead. The agent
  checks it before admitting each request and at each beat (the thread raises a flag before
  its next beat leaves, so admission sees it first): a stopped or starved agent sees it at
  once when it runs again, before it answers anything. The same holds for a loop stalled
  longer than ``stall_limit_ms``.
- It does not cover lost beats: UDP datagrams dropped on the way, or a partition that
  leaves the WebSocket open (no close, no Promise or Confirm getting through) while the agent
  keeps sending. The controller may then declare the node dead while the agent, whose beats
  leave on time, serves on until its WebSocket breaks. Requests routed after the failover
  carry the new epoch and go elsewhere, but a client still holding the old route (cut off
  with the agent) may get answers from it. Closing this gap needs a lease (the agent fencing
  itself when the controller's acknowledgements stop); see docs/architecture.md.
- When it holds, the agent does not know whether it was declared dead, so it holds requests
  (up to ``hold_s``, then 503) and sends a beat asking for confirmation. If the controller still
  counts it alive under its epoch, it answers ``Confirm`` and the agent serves on: a pause the
  controller tolerated costs one round trip, not a failover. If it was declared dead, the
  controller closes the connection ("declared dead"): the agent stays fenced (503 for
  everything) and registers again as a new incarnation under a new epoch.

Requests routed by faillite carry the epoch they were routed for; one stamped with another
epoch is refused (409), so a stale route never gets an answer. While the controller is
unreachable (no session), the agent keeps serving: losing the controller is not a reason to
stop the data plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from faillite.agent.beats import BeatThread, beat_step
from faillite.agent.errors import AgentError
from faillite.wire import Beat, NodeStatus, Promise, Register, Welcome, parse_control_frame

__all__ = ["ControllerLink", "Fenced", "LinkSettings", "StaleEpoch"]

log = logging.getLogger("faillite.agent")

DECLARED_DEAD = 4410  # the controller's close code for a node it declared dead


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
    hold_s: float = 0.2  # how long a request waits for the controller's confirmation after a pause


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
        self.fenced = False  # declared dead (or may have been): 503 until registered again
        self.interval_s = 0.06  # until the controller's Welcome says
        self.fence_after_s = math.inf  # the controller's promise (no session: no rule)
        self.promise_version = 0
        self.last_sent = time.monotonic()  # when the last beat left
        self.pauses = 0  # times the fence rule held (confirmed or not)
        self._seq = 0
        self.stall_limit_s = math.inf  # the controller declares a node whose loop stalls longer dead
        self.loop_seen = time.monotonic()  # the event loop last ran a beat's tick (thread beats)
        self._must_confirm = False  # set by the beat thread, read by admit before anything else
        self._thread: BeatThread | None = None
        self._confirming: asyncio.Future[bool] | None = None
        self._confirm_seq = 0
        self._status: tuple[tuple[str, ...], int] | None = None
        self._status_due = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connected = asyncio.Event()

    # -- admission (the request path) ------------------------------------------------------

    async def admit(self, routed_epoch: str | None) -> None:
        """Raise unless this agent may answer a request routed for ``routed_epoch``."""
        if self._ws is not None:
            now = time.monotonic()
            if (
                self._must_confirm
                or now - self.last_sent > self.fence_after_s
                or now - self.loop_seen > self.stall_limit_s
            ):
                self._paused()
        if self._confirming is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._confirming), self.settings.hold_s)
            except TimeoutError:
                raise Fenced(
                    f"node {self.settings.node_id} was paused and waits for the controller's confirmation"
                ) from None
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

    def _paused(self) -> None:
        """No beat left for longer than promised: the controller may have declared us dead."""
        self._must_confirm = False
        if self._confirming is not None or self._ws is None:
            return
        gap = time.monotonic() - min(self.last_sent, self.loop_seen)
        self.pauses += 1
        log.warning(
            "no heartbeat left for %.0f ms (the controller may declare node %s dead after %.0f ms):"
            " holding requests until it confirms",
            gap * 1000,
            self.settings.node_id,
            self.fence_after_s * 1000,
        )
        self._confirming = asyncio.get_running_loop().create_future()
        self._spawn(self._send_beat(self._ws, gap - self.interval_s, confirm=True))

    def _settle(self, alive: bool) -> None:
        if self._confirming is not None:
            if not self._confirming.done():
                self._confirming.set_result(alive)
            self._confirming = None
        if not alive:
            self.fenced = True

    # -- the session -----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session with the controller forever (reconnecting with backoff)."""
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
            for task in list(self._tasks):
                task.cancel()

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
            register = Register(
                node_id=s.node_id,
                url=self.url,
                memory_bytes=s.memory_bytes,
                cores=s.cores,
                domain=s.domain,
                pid=self.pid,
                epoch=self.epoch,  # the controller adopts it only if it still counts it alive
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
            self.fence_after_s = welcome.fence_after_ms / 1000
            self.promise_version = 0
            self._status = None
            self.last_sent = time.monotonic()
            self._settle(True)
            self.fenced = False
            self.stall_limit_s = welcome.stall_limit_ms / 1000
            self.loop_seen = time.monotonic()
            self._ws = ws
            self.connected.set()
            if welcome.beat_port is not None:
                host = urlsplit(s.controller_url).hostname or "127.0.0.1"
                addr = await asyncio.get_running_loop().getaddrinfo(
                    host, welcome.beat_port, type=socket.SOCK_DGRAM
                )
                self._thread = BeatThread(
                    self,
                    asyncio.get_running_loop(),
                    addr[0],
                    node_id=s.node_id,
                    epoch=welcome.epoch,
                    session=welcome.session,
                    interval_s=welcome.heartbeat_interval_ms / 1000,
                )
                self._thread.start()
                beats = asyncio.create_task(self._statuses(ws, welcome.epoch))
            else:
                beats = asyncio.create_task(self._beats(ws, welcome.epoch))
            try:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        self._on_frame(msg.data)
            finally:
                beats.cancel()
                if self._thread is not None:
                    self._thread.stop()
                    self._thread = None
                self._ws = None
                self.fence_after_s = math.inf
                if ws.close_code == DECLARED_DEAD:
                    log.warning("node %s was declared dead: fenced until it registers again", s.node_id)
                    self._settle(False)
                elif self._confirming is not None:  # we cannot know any more: assume the worst
                    self._settle(False)
                with contextlib.suppress(asyncio.CancelledError):
                    await beats

    def _on_frame(self, data: bytes) -> None:
        try:
            frame = parse_control_frame(data)
        except ValueError as exc:
            log.warning("controller link: %s", exc)
            return
        if isinstance(frame, Promise):
            if frame.version > self.promise_version:
                self.promise_version = frame.version
                self.fence_after_s = frame.fence_after_ms / 1000
        elif frame.epoch == self.epoch and frame.seq >= self._confirm_seq and self._confirming is not None:
            log.info("controller confirmed node %s alive after its pause", self.settings.node_id)
            self._settle(True)

    async def _beats(self, ws: aiohttp.ClientWebSocketResponse, epoch: int) -> None:
        """Beat every interval; the lateness of each wake-up is the loop lag the beat reports."""
        due = time.monotonic()
        while not ws.closed:
            due += self.interval_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t = time.monotonic()
            lag = t - due
            if lag > self.interval_s:  # do not burst to catch up after a pause
                due = t
            step = beat_step(t, self.last_sent, self.fence_after_s)
            if step.fence:
                self._paused()
            await self._send_beat(ws, lag, sent_at=step.last_sent)
            status = (tuple(self._loaded()), self._used())
            if status != self._status:
                self._status = status
                message = NodeStatus(epoch=epoch, loaded=status[0], used_bytes=status[1])
                await ws.send_str(message.model_dump_json())

    def _tick(self) -> None:
        """On the loop, once per thread beat: the loop runs; a long stall may have been fatal."""
        now = time.monotonic()
        if now - self.loop_seen > self.stall_limit_s:
            self._paused()
        self.loop_seen = now
        self._status_due.set()

    async def _statuses(self, ws: aiohttp.ClientWebSocketResponse, epoch: int) -> None:
        """With thread beats: send the status when it changed (checked once per beat)."""
        while not ws.closed:
            await self._status_due.wait()
            self._status_due.clear()
            status = (tuple(self._loaded()), self._used())
            if status != self._status:
                self._status = status
                message = NodeStatus(epoch=epoch, loaded=status[0], used_bytes=status[1])
                await ws.send_str(message.model_dump_json())

    async def _send_beat(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        lag_s: float,
        confirm: bool = False,
        sent_at: float | None = None,
    ) -> None:
        """On the loop only (``_seq`` is the loop's counter; the beat thread has its own)."""
        if ws.closed or self.epoch is None:
            return
        self._seq += 1
        if confirm:
            self._confirm_seq = self._seq
        beat = Beat(self._seq, self.epoch, round(lag_s * 1000), self.promise_version, confirm)
        # Before the send, and from the instant the fence check used (``sent_at``): the
        # controller's silence never exceeds our gap, and a pause after that instant counts
        # against the next beat.
        self.last_sent = time.monotonic() if sent_at is None else sent_at
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(beat.pack())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("controller link task failed", exc_info=task.exception())
