"""Local processes: the one wrapper that starts, watches and stops faillite's own processes.

A process writes its log to a file (never a pipe nobody drains); readiness is a log line
matched with a deadline, which also carries the port the process picked (port 0).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AgentProcess", "LaunchError", "ManagedProcess"]

_AGENT_READY = re.compile(r"faillite agent (?P<node>\S+) ready on (?P<url>http://\S+)")


class LaunchError(RuntimeError):
    """A process did not start, or exited before it was ready."""


@dataclass
class ManagedProcess:
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the children
            )

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise LaunchError("process not started")
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until the log matches ``pattern``; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.log_text())
            if match:
                return match
            if not self.alive():
                tail = "\n".join(self.log_text().splitlines()[-5:])
                raise LaunchError(
                    f"{self.argv[2:4]} exited with {self._popen and self._popen.returncode}: {tail}"
                )
            if time.monotonic() > deadline:
                raise LaunchError(f"{self.argv[2:4]} not ready within {timeout} s (log: {self.log_path})")
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(timeout)
        return self._popen.returncode


class AgentProcess(ManagedProcess):
    """``faillite agent`` as a child process; ``start`` returns once it serves."""

    def __init__(
        self,
        node_id: str,
        models_dir: Path,
        memory: str | int,
        log_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "faillite.agent",  # the agent alone: it starts faster than the whole CLI
            "--node-id",
            node_id,
            "--host",
            host,
            "--port",
            str(port),
            "--memory",
            str(memory),
            "--models",
            str(models_dir),
            *(extra_args or []),
        ]
        env = dict(os.environ)
        if token:
            env["FAILLITE_TOKEN"] = token
        super().__init__(argv=argv, log_path=log_path, env=env)
        self.node_id = node_id
        self.url = ""

    def start_and_wait(self, timeout: float = 30.0) -> str:
        self.start()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> str:
        match = self.wait_for(_AGENT_READY, timeout)
        self.url = match.group("url")
        return self.url
