"""Replica lifecycle: an enum and the only transitions allowed between its states.

    UNLOADED --load--> LOADING --ok--> READY --unload--> DRAINING --idle--> UNLOADED
                          |  \\--budget refused (measured)--> UNLOADED
                          \\--ONNX Runtime refused the file--> FAILED --load--> LOADING
                                                              FAILED --unload--> UNLOADED

DRAINING lets requests already running finish before the session is dropped; new requests
are refused with 503 from the moment draining starts.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TRANSITIONS", "InvalidTransition", "ReplicaState", "check_transition"]


class ReplicaState(StrEnum):
    UNLOADED = "UNLOADED"
    LOADING = "LOADING"
    READY = "READY"
    DRAINING = "DRAINING"
    FAILED = "FAILED"


S = ReplicaState
TRANSITIONS: dict[ReplicaState, frozenset[ReplicaState]] = {
    S.UNLOADED: frozenset({S.LOADING}),
    S.LOADING: frozenset({S.READY, S.UNLOADED, S.FAILED}),
    S.READY: frozenset({S.DRAINING}),
    S.DRAINING: frozenset({S.UNLOADED}),
    S.FAILED: frozenset({S.LOADING, S.UNLOADED}),
}


class InvalidTransition(RuntimeError):
    """A bug: the store tried a transition the table does not allow."""


def check_transition(current: ReplicaState, target: ReplicaState) -> ReplicaState:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(f"replica cannot go from {current.value} to {target.value}")
    return target
