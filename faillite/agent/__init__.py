"""The faillite agent: serves a model repository on one node through the Open Inference
Protocol (KServe v2) REST API with ONNX Runtime, within a memory budget.

Names are imported lazily so that ``import faillite.agent.codec`` (or the CLI) does not pay
for ONNX Runtime and aiohttp until they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AgentConfig",
    "AgentError",
    "AgentMetrics",
    "BudgetExceeded",
    "InferenceFailed",
    "InvalidRequest",
    "ModelLoadFailed",
    "ModelNotFound",
    "ModelNotReady",
    "ModelStore",
    "ReplicaState",
    "TensorInfo",
    "Unauthorized",
    "create_app",
    "serve",
]

_SOURCES = {
    "AgentConfig": "config",
    "AgentError": "errors",
    "AgentMetrics": "metrics",
    "BudgetExceeded": "errors",
    "InferenceFailed": "errors",
    "InvalidRequest": "errors",
    "ModelLoadFailed": "errors",
    "ModelNotFound": "errors",
    "ModelNotReady": "errors",
    "ModelStore": "store",
    "ReplicaState": "state",
    "TensorInfo": "codec",
    "Unauthorized": "errors",
    "create_app": "server",
    "serve": "server",
}


def __getattr__(name: str) -> Any:
    module = _SOURCES.get(name)
    if module is None:
        raise AttributeError(f"module 'faillite.agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"faillite.agent.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
