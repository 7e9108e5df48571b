"""The agent package's public surface is pinned, and every name in it resolves."""

from __future__ import annotations

import faillite.agent


def test_public_surface() -> None:
    assert sorted(faillite.agent.__all__) == [
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
    for name in faillite.agent.__all__:
        assert getattr(faillite.agent, name) is not None
