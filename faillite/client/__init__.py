"""Clients of faillite's services. ``OipClient`` speaks the Open Inference Protocol to one server."""

from faillite.client.oip import OipClient, OipConnectionError, OipError, OipTimeout

__all__ = ["OipClient", "OipConnectionError", "OipError", "OipTimeout"]
