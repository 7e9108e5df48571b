"""Node and app states: enums plus the only transitions allowed between them.

Node::

    ALIVE --missed heartbeats / suspicion--> SUSPECT --heartbeat--> ALIVE
    ALIVE | SUSPECT --connection closed / heartbeat timeout--> DEAD
    DEAD --registers again (new epoch)--> REJOINING --cleaned--> ALIVE
    REJOINING --connection closed--> DEAD

A node that comes back after being declared DEAD is fenced: it registers under a new epoch,
so requests stamped with its old epoch are refused, and its stale replicas are unloaded
before it serves again.

App::

    PENDING --primary loaded--> PRIMARY
    PRIMARY --primary node dead, warm backup--> FAILED_OVER
    PRIMARY --primary node dead, cold backup--> RECOVERING --first step served--> STEPPING
    STEPPING --planned variant served--> FAILED_OVER
    RECOVERING --planned variant served (no stepping stone)--> FAILED_OVER
    FAILED_OVER --home node back, primary reloaded--> PRIMARY       (failback)
    any --no variant fits anywhere--> UNAVAILABLE --capacity found--> RECOVERING | FAILED_OVER | PRIMARY
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

__all__ = ["APP_TRANSITIONS", "NODE_TRANSITIONS", "AppState", "InvalidTransition", "NodeState", "check"]


class NodeState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    REJOINING = "rejoining"


class AppState(StrEnum):
    PENDING = "pending"
    PRIMARY = "primary"
    RECOVERING = "recovering"
    STEPPING = "stepping"  # served by the progressive failover's fast first variant
    FAILED_OVER = "failed_over"
    UNAVAILABLE = "unavailable"


S = TypeVar("S", NodeState, AppState)
N, A = NodeState, AppState
NODE_TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    N.ALIVE: frozenset({N.SUSPECT, N.DEAD}),
    N.SUSPECT: frozenset({N.ALIVE, N.DEAD}),
    N.DEAD: frozenset({N.REJOINING}),
    N.REJOINING: frozenset({N.ALIVE, N.DEAD}),
}
APP_TRANSITIONS: dict[AppState, frozenset[AppState]] = {
    A.PENDING: frozenset({A.PRIMARY, A.RECOVERING, A.UNAVAILABLE}),
    A.PRIMARY: frozenset({A.FAILED_OVER, A.RECOVERING, A.UNAVAILABLE}),
    A.RECOVERING: frozenset({A.STEPPING, A.FAILED_OVER, A.PRIMARY, A.UNAVAILABLE}),
    A.STEPPING: frozenset({A.FAILED_OVER, A.RECOVERING, A.UNAVAILABLE}),
    A.FAILED_OVER: frozenset({A.PRIMARY, A.FAILED_OVER, A.RECOVERING, A.UNAVAILABLE}),
    A.UNAVAILABLE: frozenset({A.RECOVERING, A.PRIMARY, A.FAILED_OVER}),
}


class InvalidTransition(RuntimeError):
    """A bug: code tried a transition the table does not allow."""


def check(current: S, target: S) -> S:
    table = NODE_TRANSITIONS if isinstance(current, NodeState) else APP_TRANSITIONS
    if target not in table[current]:  # type: ignore[index]
        raise InvalidTransition(f"{type(current).__name__} cannot go from {current.value} to {target.value}")
    return target
