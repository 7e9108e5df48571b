"""Shared helpers for integration tests: waiting on conditions, starting real agent processes
on loopback (through faillite's own launcher), and a tiny HTTP client with explicit timeouts."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from faillite.launch.process import AgentProcess

__all__ = ["AgentProcess", "HttpResult", "http_request", "start_agent", "wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll ``condition`` until it returns a truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    url: str,
    body: bytes | dict | list | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResult:
    """One request on a fresh connection; dict/list bodies are sent as JSON."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode() if isinstance(body, dict | list) else body
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), payload, headers or {})
        response = conn.getresponse()
        return HttpResult(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def start_agent(
    models_dir: Path,
    log_dir: Path,
    *,
    node_id: str = "test-node",
    memory: str = "1GiB",
    token: str | None = None,
    extra: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> AgentProcess:
    """Start ``faillite agent`` on a free loopback port (``--port 0``) and wait for its ready line.

    The token, when given, travels in ``FAILLITE_TOKEN`` (the launcher's way).
    """
    agent = AgentProcess(
        node_id, models_dir, memory, log_dir / f"agent-{node_id}.log", token=token, extra_args=list(extra)
    )
    try:
        agent.start_and_wait(timeout=ready_timeout)
    except BaseException:
        agent.stop()
        raise
    return agent
