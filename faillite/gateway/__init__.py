"""The gateway: the Open Inference Protocol per app name, with the failover client behind it, so
stock OIP clients get failover transparently (``faillite gateway``)."""

from faillite.gateway.server import CLIENT_KEY, READY_MESSAGE, create_app, serve

__all__ = ["CLIENT_KEY", "READY_MESSAGE", "create_app", "serve"]
