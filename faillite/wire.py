"""Messages on faillite's persistent connections.

Agent <-> controller (WebSocket ``/v1/agents/connect``):
    agent -> controller: ``Register`` once (JSON), then a binary ``Beat`` every
    ``heartbeat_interval_ms`` (22 bytes: sequence, epoch, the agent's event-loop lag, its box's
    CPU pressure, the fence promise it applies, a confirm flag, the session), sent by a small
    thread as a UDP datagram to the Welcome's ``beat_port`` (so beats never queue behind
    request handling), and a ``NodeStatus`` (JSON) only when what it has loaded or the memory it uses changed.
    controller -> agent: ``Welcome`` (JSON: the epoch the node now serves under, the interval,
    the first fence promise), then binary ``Promise`` (the shortest silence after which the
    controller may declare the node dead: the agent fences itself past it) and ``Confirm``
    (the answer to a beat that asked whether the node is still alive under its epoch).
    A closed connection is a crash signal; missing beats reveal a hang or partition.

Controller -> clients (WebSocket ``/v1/routes/watch``): ``RouteTable`` snapshots, versioned.
Requests a client routes carry the node's epoch in the ``Faillite-Epoch`` header; an agent
refuses a request stamped with another epoch (409), so a stale route never gets an answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "EPOCH_HEADER",
    "AgentMessage",
    "Beat",
    "Confirm",
    "NodeStatus",
    "Promise",
    "Register",
    "Route",
    "RouteTable",
    "RouteTarget",
    "Welcome",
    "parse_agent_message",
    "parse_control_frame",
]

EPOCH_HEADER = "Faillite-Epoch"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Register(_Message):
    type: Literal["register"] = "register"
    node_id: str = Field(min_length=1)
    url: str
    memory_bytes: int = Field(gt=0)
    cores: float = Field(default=1.0, gt=0)
    domain: str | None = None
    pid: int | None = None
    epoch: int | None = Field(default=None, description="the epoch the agent last served under")
    loaded: tuple[str, ...] = ()


class NodeStatus(_Message):
    """What the agent holds; sent when it changed (and once after registering)."""

    type: Literal["status"] = "status"
    epoch: int
    loaded: tuple[str, ...] = ()
    used_bytes: int = 0


AgentMessage = Annotated[Register | NodeStatus, Field(discriminator="type")]
_AGENT_MESSAGE: TypeAdapter[Register | NodeStatus] = TypeAdapter(AgentMessage)


def parse_agent_message(data: str | bytes) -> Register | NodeStatus:
    return _AGENT_MESSAGE.validate_json(data)


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    epoch: int
    heartbeat_interval_ms: float = Field(gt=0)
    fence_after_ms: float = Field(gt=0, description="promise 0: fence after a silence this long")
    beat_port: int | None = Field(default=None, description="UDP port for beats (None: on this socket)")
    session: int = Field(default=0, ge=0, description="identifies this session's UDP beats")
    stall_limit_ms: float = Field(default=2000.0, gt=0, description="an event loop stalled longer is dead")


_BEAT = struct.Struct(
    "<BBBxHIIII"
)  # kind, flags, CPU pressure %, lag ms, seq, epoch, promise applied, session
_PROMISE = struct.Struct("<BII")  # kind, version, fence_after microseconds
_CONFIRM = struct.Struct("<BII")  # kind, seq, epoch
_KIND_BEAT, _KIND_PROMISE, _KIND_CONFIRM = 1, 2, 3
_FLAG_CONFIRM = 1
_U16, _U32 = (1 << 16) - 1, (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class Beat:
    """Agent -> controller, binary: "still here" and how late the agent's own loop runs."""

    seq: int
    epoch: int
    lag_ms: int = 0
    ack: int = 0  # the version of the fence promise the agent applies
    confirm: bool = False  # the agent fenced itself after a pause and asks whether it is still alive
    session: int = 0  # the Welcome's session (UDP beats: which connection this beat belongs to)
    pressure: int = 0  # % of the last 10 s some task on the agent's box waited for a CPU (Linux PSI)

    def pack(self) -> bytes:
        flags = _FLAG_CONFIRM if self.confirm else 0
        lag = min(max(self.lag_ms, 0), _U16)
        pressure = min(max(self.pressure, 0), 100)
        return _BEAT.pack(
            _KIND_BEAT,
            flags,
            pressure,
            lag,
            self.seq & _U32,
            self.epoch & _U32,
            self.ack & _U32,
            self.session & _U32,
        )

    @staticmethod
    def unpack(data: bytes) -> Beat:
        if len(data) != _BEAT.size or data[0] != _KIND_BEAT:
            raise ValueError(f"not a beat frame ({len(data)} bytes)")
        _, flags, pressure, lag, seq, epoch, ack, session = _BEAT.unpack(data)
        return Beat(seq, epoch, lag, ack, bool(flags & _FLAG_CONFIRM), session, pressure)


@dataclass(frozen=True, slots=True)
class Promise:
    """Controller -> agent, binary: "I will not declare you dead before this much silence"."""

    version: int
    fence_after_ms: float

    def pack(self) -> bytes:
        us = min(max(round(self.fence_after_ms * 1000), 1), _U32)
        return _PROMISE.pack(_KIND_PROMISE, self.version & _U32, us)


@dataclass(frozen=True, slots=True)
class Confirm:
    """Controller -> agent, binary: the beat ``seq`` arrived and the node is alive under ``epoch``."""

    seq: int
    epoch: int

    def pack(self) -> bytes:
        return _CONFIRM.pack(_KIND_CONFIRM, self.seq & _U32, self.epoch & _U32)


def parse_control_frame(data: bytes) -> Promise | Confirm:
    """A binary controller -> agent frame; ValueError when it is not one."""
    if len(data) == _PROMISE.size and data[0] == _KIND_PROMISE:
        _, version, us = _PROMISE.unpack(data)
        return Promise(version, us / 1000)
    if len(data) == _CONFIRM.size and data[0] == _KIND_CONFIRM:
        _, seq, epoch = _CONFIRM.unpack(data)
        return Confirm(seq, epoch)
    raise ValueError(f"unknown control frame ({len(data)} bytes)")


class RouteTarget(_Message):
    node: str
    url: str
    model: str  # the model name on that agent (the variant)
    epoch: int
    accuracy: float | None = None
    role: Literal["primary", "backup", "stone", "recovery"] = "primary"


class Route(_Message):
    app: str
    state: str
    targets: tuple[RouteTarget, ...] = Field(description="first: where to send; the rest: warm fallbacks")
    slo_ms: float | None = Field(
        default=None, gt=0, description="the app's latency SLO: clients derive hedge delays and timeouts"
    )


class RouteTable(_Message):
    type: Literal["routes"] = "routes"
    version: int
    routes: tuple[Route, ...]

    def get(self, app: str) -> Route | None:
        for route in self.routes:
            if route.app == app:
                return route
        return None
