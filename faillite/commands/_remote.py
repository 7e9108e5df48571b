"""Talking to a running controller from the command line: the ``--controller`` option and GETs
with a timeout whose failures become one-line ``CliError``s."""

from __future__ import annotations

import argparse
import http.client
import os
from typing import Any
from urllib.parse import urlsplit

from faillite.errors import CliError
from faillite.launch.http import http_json

__all__ = ["DEFAULT_CONTROLLER", "add_controller_arg", "get_json"]

DEFAULT_CONTROLLER = "http://127.0.0.1:7000"


def add_controller_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--controller",
        metavar="URL",
        default=os.environ.get("FAILLITE_CONTROLLER", DEFAULT_CONTROLLER),
        help="the controller (default: $FAILLITE_CONTROLLER or %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="seconds per request (default %(default)s)"
    )


def base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"--controller {url!r} is not an http:// URL")
    return url.rstrip("/")


def get_json(controller: str, path: str, timeout: float) -> Any:
    url = f"{base_url(controller)}{path}"
    try:
        status, body = http_json("GET", url, timeout=timeout)
    except (OSError, TimeoutError, http.client.HTTPException) as exc:
        raise CliError(f"cannot reach the controller at {controller}: {exc}") from exc
    except ValueError as exc:
        raise CliError(f"{url} did not answer JSON; is {controller} a faillite controller?") from exc
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else body
        raise CliError(f"GET {url} failed (HTTP {status}): {error}")
    return body
