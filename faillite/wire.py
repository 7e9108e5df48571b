"""Messages on faillite's persistent connections, as pydantic models (one JSON object each).

Agent <-> controller (WebSocket ``/v1/agents/connect``):
    agent -> controller: ``Register`` once, then ``Heartbeat`` every ``heartbeat_interval_ms``.
    controller -> agent: ``Welcome`` (the epoch the node now serves under, and the timing).
    A closed connection is a crash signal; missing heartbeats reveal a hang or partition.

Controller -> clients (WebSocket ``/v1/routes/watch``): ``RouteTable`` snapshots, versioned.
Requests a client routes carry the node's epoch in the ``Faillite-Epoch`` header; an agent
refuses a request stamped with another epoch (409), so a stale route never gets an answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "EPOCH_HEADER",
    "AgentMessage",
    "Heartbeat",
    "Register",
    "Route",
    "RouteTable",
    "RouteTarget",
    "Welcome",
    "parse_agent_message",
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


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    seq: int
    epoch: int
    loaded: tuple[str, ...] = ()
    used_bytes: int = 0
    fenced: bool = False


AgentMessage = Annotated[Register | Heartbeat, Field(discriminator="type")]
_AGENT_MESSAGE: TypeAdapter[Register | Heartbeat] = TypeAdapter(AgentMessage)


def parse_agent_message(data: str | bytes) -> Register | Heartbeat:
    return _AGENT_MESSAGE.validate_json(data)


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    epoch: int
    heartbeat_interval_ms: float
    heartbeat_timeout_ms: float


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
