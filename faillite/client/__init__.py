"""Clients of faillite's services.

``OipClient`` speaks the Open Inference Protocol to one server; ``Client`` serves apps by name
through the route table, failing over to warm fallbacks without a controller round trip.
"""

from faillite.client.failover import (
    Client,
    ControllerError,
    FailoverError,
    InferResult,
    RawResponse,
    Unavailable,
    UnknownApp,
)
from faillite.client.oip import OipClient, OipConnectionError, OipError, OipTimeout

__all__ = [
    "Client",
    "ControllerError",
    "FailoverError",
    "InferResult",
    "OipClient",
    "OipConnectionError",
    "OipError",
    "OipTimeout",
    "RawResponse",
    "Unavailable",
    "UnknownApp",
]
