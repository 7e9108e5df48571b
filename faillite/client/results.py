"""What the failover client returns and raises (``faillite.client.failover`` re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from faillite.wire import RouteTarget

__all__ = [
    "ControllerError",
    "FailoverError",
    "InferResult",
    "RawResponse",
    "Unavailable",
    "UnknownApp",
]


class FailoverError(Exception):
    """Base of the failover client's own errors (refusals stay ``OipError``)."""


class UnknownApp(FailoverError):
    def __init__(self, app: str) -> None:
        super().__init__(f"unknown app {app!r}: the route table does not list it")
        self.app = app


class Unavailable(FailoverError):
    """No target of the app answered within the request's deadline."""

    def __init__(self, app: str, waited_ms: float, last_error: str | None) -> None:
        super().__init__(
            f"app {app!r} unavailable: no target answered within {waited_ms:.0f} ms"
            f" (last error: {last_error or 'none'})"
        )
        self.app = app
        self.waited_ms = waited_ms
        self.last_error = last_error


class ControllerError(FailoverError):
    """The controller refused the client (e.g. a wrong token): a configuration error."""


class RawResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]
    body: bytes
    target: RouteTarget  # the target that answered


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]
    target: RouteTarget  # which node and variant answered (accuracy, role)
    attempts: int  # targets tried, 1 when the first answered (a hedge counts as one)
