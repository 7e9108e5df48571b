"""The agent's error hierarchy: every failure a request can meet, with its HTTP status.

Handlers and the model store raise these; ``faillite.agent.server`` turns them into OIP error
bodies (``{"error": "..."}``) in one place. The status classes matter for failover (see the
design brief): 4xx means "this request or command is wrong, retrying elsewhere will not help";
503 means "this replica cannot serve now, route elsewhere"; 500 is a bug, logged.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "BudgetExceeded",
    "InferenceFailed",
    "InvalidRequest",
    "ModelLoadFailed",
    "ModelNotFound",
    "ModelNotReady",
    "Unauthorized",
]


class AgentError(Exception):
    """Base of all errors the agent reports to a client; ``status`` is the HTTP status."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(AgentError):
    """Malformed body, wrong inputs, shapes, datatypes or sizes: the client must fix it."""

    status = 400


class Unauthorized(AgentError):
    status = 401


class ModelNotFound(AgentError):
    """No such model in the repository (unknown name)."""

    status = 404


class ModelNotReady(AgentError):
    """The model exists but is not loaded here (unloaded, loading, draining, failed)."""

    status = 503


class BudgetExceeded(AgentError):
    """A load would not fit in the node's memory budget; nothing else was disturbed."""

    status = 409

    def __init__(self, message: str, *, needed: int, free: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.free = free


class ModelLoadFailed(AgentError):
    """ONNX Runtime refused the model file (corrupt, unsupported operator, ...)."""

    status = 422


class InferenceFailed(AgentError):
    """ONNX Runtime failed while running a request it had accepted."""

    status = 500
