"""Agents' persistent connections: registration with epochs, heartbeats, and what their loss means.

A crashed agent's socket closes at once, so a closed connection declares the node dead
(milliseconds). A hung or partitioned agent keeps its socket but stops beating: the adaptive
detector (``liveness``) declares it dead once its silence is improbable for that node's own
beat history, or sooner after a client's suspicion. Each beat is a 22-byte binary frame
(a UDP datagram, or a WebSocket frame when the controller has no UDP socket), handled
without pydantic; it may carry a request for confirmation (the agent fenced itself after a
pause), answered at once unless judging the node after that beat declares it dead (its own
reported loop lag may be a verdict), and it acknowledges the fence promise the agent
applies; a new promise goes out when the detector's estimate moved. The agent's fencing
covers pauses, not lost beats (dropped datagrams, a partition that leaves the WebSocket
open): see ``faillite.agent.link`` and docs/architecture.md. A node declared dead that comes
back gets a new epoch (fencing) and rejoins empty.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from faillite.controller import policy
from faillite.controller.core import Controller
from faillite.controller.effects import Emit, EventKind
from faillite.controller.model import LIVE_STATES
from faillite.wire import Beat, Confirm, NodeStatus, Promise, Register, Welcome, parse_agent_message

__all__ = ["BeatProtocol", "agent_connection", "on_register", "open_beat_socket", "suspect"]

_REGISTER_TIMEOUT_S = 5.0

log = logging.getLogger("faillite.controller")


class BeatProtocol(asyncio.DatagramProtocol):
    """UDP beats: handled straight from the socket callback (no task, no WebSocket parsing)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            beat = Beat.unpack(data)
        except ValueError:
            return
        node = self.controller.sessions.get(beat.session)
        ws = None if node is None else self.controller.connections.get(node)
        if node is not None and ws is not None:
            _on_beat(self.controller, node, ws, beat)

    def error_received(self, exc: Exception) -> None:
        log.debug("beat socket: %s", exc)


async def open_beat_socket(controller: Controller) -> None:
    """Listen for UDP beats next to the HTTP port (the port travels in each Welcome)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: BeatProtocol(controller), local_addr=(controller.config.host, 0)
    )
    controller.beat_transport = transport
    controller.beat_port = transport.get_extra_info("sockname")[1]


async def agent_connection(controller: Controller, request: web.Request) -> web.WebSocketResponse:
    """``GET /v1/agents/connect``: one agent's session, from registration to disconnect."""
    ws = web.WebSocketResponse(max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        first = await ws.receive(timeout=_REGISTER_TIMEOUT_S)
        message = parse_agent_message(first.data) if first.type is WSMsgType.TEXT else None
    except (TimeoutError, ValidationError):
        message = None
    if not isinstance(message, Register):
        await ws.close(code=4400, message=b"expected a register message")
        return ws
    if controller.stopping:  # nothing is declared dead any more, so no new incarnation is taken
        await ws.close(code=1001, message=b"controller stopping")
        return ws
    welcome = await on_register(controller, message, ws)
    await ws.send_str(welcome.model_dump_json())
    node = message.node_id
    try:
        async for msg in ws:
            if controller.connections.get(node) is not ws:
                continue
            if msg.type is WSMsgType.BINARY:
                try:
                    beat = Beat.unpack(msg.data)
                except ValueError:
                    continue
                _on_beat(controller, node, ws, beat)
            elif msg.type is WSMsgType.TEXT:
                try:
                    status = parse_agent_message(msg.data)
                except ValidationError:
                    continue
                if isinstance(status, NodeStatus):
                    _on_status(controller, node, status)
    finally:
        if controller.connections.get(node) is ws:
            await controller.declare_dead(node, "connection closed", silent_ms=0.0)
        if controller.sessions.get(welcome.session) == node:
            del controller.sessions[welcome.session]
    return ws


async def on_register(controller: Controller, reg: Register, ws: Any) -> Welcome:
    state = controller.state
    old = controller.connections.get(reg.node_id)
    if old is not None and old is not ws:
        # A second session for a live node (agent restarted before anyone noticed): the old
        # incarnation is gone, fail it over first.
        await controller.declare_dead(reg.node_id, "replaced by a new agent session", silent_ms=0.0)
    reason = policy.fail_first(state, reg.node_id, reg.epoch)
    if reason is not None:
        # Back under another epoch (restarted, or fenced itself after a pause) before the
        # detector noticed: its old incarnation is gone, so fail it over first.
        await controller.declare_dead(reg.node_id, reason, silent_ms=0.0)
    effects = policy.node_registered(
        state,
        reg.node_id,
        url=reg.url,
        memory_bytes=reg.memory_bytes,
        cores=reg.cores,
        domain=reg.domain,
        pid=reg.pid,
        epoch=reg.epoch,
        loaded=reg.loaded,
    )
    epoch = effects[0].record.epoch  # type: ignore[union-attr]  # PutNode first
    controller.connections[reg.node_id] = ws
    hb = controller.detector.new(epoch, controller.vnow())
    controller.heartbeats[reg.node_id] = hb
    for stale in [k for k, n in controller.sessions.items() if n == reg.node_id]:
        del controller.sessions[stale]
    session = secrets.randbits(32) or 1
    controller.sessions[session] = reg.node_id
    controller.execute(effects)
    return Welcome(
        epoch=epoch,
        heartbeat_interval_ms=controller.config.heartbeat_interval_ms,
        fence_after_ms=hb.floor() * 1000,
        beat_port=controller.beat_port,
        session=session,
        stall_limit_ms=controller.detector.max_timeout_s * 1000,
    )


def _on_beat(controller: Controller, node: str, ws: Any, beat: Beat) -> None:
    hb = controller.heartbeats.get(node)
    if hb is None or beat.epoch != hb.epoch:
        return
    now = controller.vnow()
    controller.detector.arrival(hb, now, beat.lag_ms / 1000, beat.ack, beat.pressure / 100)
    if beat.confirm:  # the agent paused past its promise: judge it before saying it may serve on
        verdict = controller.detector.judge(node, hb, now)
        if verdict is not None:  # e.g. its own loop lag is past the stall limit: not a confirmation
            controller.spawn(controller.declare_dead(node, verdict.reason, silent_ms=verdict.silent_ms))
            return
        paused = {"node": node, "epoch": hb.epoch, "lag_ms": beat.lag_ms}
        controller.execute([Emit(EventKind.NODE_PAUSED, paused)])
        controller.spawn(_send_frame(ws, Confirm(beat.seq, beat.epoch).pack()))
    promise = controller.detector.next_promise(hb)
    if promise is not None:
        controller.spawn(_send_frame(ws, Promise(promise[0], promise[1] * 1000).pack()))
    if hb.suspected_at is not None:
        hb.suspected_at = None
        controller.execute(policy.node_heard(controller.state, node))


def _on_status(controller: Controller, node: str, status: NodeStatus) -> None:
    hb = controller.heartbeats.get(node)
    if hb is None or status.epoch != hb.epoch:
        return
    controller.execute(policy.agent_status(controller.state, node, status.loaded, status.used_bytes))


async def _send_frame(ws: Any, frame: bytes) -> None:
    if ws.closed:
        return
    try:
        await asyncio.wait_for(ws.send_bytes(frame), 1.0)
    except (ConnectionError, TimeoutError, RuntimeError):
        await ws.close()


async def suspect(controller: Controller, node: str, epoch: int | None, reason: str) -> bool:
    """A client could not reach ``node``; True when that got it declared dead."""
    record = controller.state.nodes.get(node)
    hb = controller.heartbeats.get(node)
    if record is None or hb is None or record.state not in LIVE_STATES:
        return False
    if epoch is not None and epoch != record.epoch:
        return False
    controller.execute(policy.node_suspected(controller.state, node, reason))
    verdict = controller.detector.on_suspicion(hb, controller.vnow())
    if verdict is not None:
        await controller.declare_dead(node, verdict.reason, silent_ms=verdict.silent_ms)
        return True
    controller.spawn(_recheck(controller, controller.detector.deadline(hb) - controller.vnow()))
    return False


async def _recheck(controller: Controller, delay: float) -> None:
    """Judge again when a suspected node's shorter deadline comes (the detector may sleep longer)."""
    await asyncio.sleep(max(delay, 0.0) + 0.001)
    await controller.judge()
