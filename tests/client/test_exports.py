"""The client and gateway packages' public surfaces are pinned, and every name in them resolves."""

from __future__ import annotations

import faillite.client
import faillite.gateway


def test_client_public_surface() -> None:
    assert sorted(faillite.client.__all__) == [
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
    for name in faillite.client.__all__:
        assert getattr(faillite.client, name) is not None


def test_gateway_public_surface() -> None:
    assert sorted(faillite.gateway.__all__) == ["CLIENT_KEY", "READY_MESSAGE", "create_app", "serve"]
    for name in faillite.gateway.__all__:
        assert getattr(faillite.gateway, name) is not None
