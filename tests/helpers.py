"""Shared helpers for integration tests: waiting on conditions, starting real agent processes
on loopback, and a tiny HTTP client with explicit timeouts."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = ["AgentProcess", "HttpResult", "http_request", "start_agent", "wait_for"]

T = TypeVar("T")

_READY = re.compile(r"faillite agent (\S+) ready on (http://\S+)")


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


@dataclass
class AgentProcess:
    """A ``faillite agent`` process started by a test; ``url`` is its base URL."""

    proc: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for a graceful exit; SIGKILL if it does not come."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
                raise AssertionError(f"agent ignored SIGTERM for {timeout} s; log:\n{self.log()}") from None
        return self.proc.returncode


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
    """Start ``faillite agent`` on a free loopback port (``--port 0``) and wait for its ready line."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"agent-{node_id}-{time.monotonic_ns()}.log"
    cmd = [
        sys.executable,
        "-m",
        "faillite.cli",
        "agent",
        "--node-id",
        node_id,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--memory",
        memory,
        "--models",
        str(models_dir),
        *extra,
    ]
    if token is not None:
        cmd += ["--token", token]
    env = {k: v for k, v in os.environ.items() if k != "FAILLITE_TOKEN"}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    agent = AgentProcess(proc, "", log_path)

    def ready() -> str | None:
        match = _READY.search(agent.log())
        if match:
            return match.group(2)
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode} before ready; log:\n{agent.log()}")
        return None

    try:
        agent.url = wait_for(ready, ready_timeout, f"agent {node_id} to log its ready line", interval=0.02)
    except BaseException:
        agent.stop()
        raise
    return agent
