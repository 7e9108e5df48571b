"""``faillite events`` (and the controller's /v1/events and /v1/events/watch) on a real cluster."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from faillite.cli import main
from tests.controller.cluster import events, start
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class Follower:
    """``faillite events --follow`` in a child process, its lines collected by a thread."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faillite", "events", "--follow", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for_kind(self, kind: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            match = next((e for e in self.seen if e["kind"] == kind), None)
            if match is not None:
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(
                    f"no {kind} event from the follower; got {[e['kind'] for e in self.seen]}"
                )
            try:
                self.seen.append(json.loads(self.lines.get(timeout=min(left, 0.5))))
            except queue.Empty:
                continue

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)  # the pipe is at its end once the process is gone
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_events_print_a_failure_and_follow_the_rejoin(tmp_path, capsys):
    cluster = start(tmp_path)
    follower = None
    try:
        url = cluster.controller_url
        deployed = events(cluster)
        last = deployed[-1]["id"]
        follower = Follower("--controller", url, "--json", "--since", str(last))

        cluster.kill_node("n1", signal.SIGKILL)
        wait_for(lambda: len(events(cluster, "app_recovered")) >= 3, 60, "three apps to recover")
        wait_for(lambda: events(cluster, "progressive_step"), 60, "cold-a's progressive failover")

        code, out, _ = run_cli(capsys, "events", "--controller", url, "--json", "--since", str(last))
        assert code == 0
        printed = [json.loads(line) for line in out.splitlines()]
        ids = [e["id"] for e in printed]
        assert ids == sorted(ids) and ids[0] > last and len(set(ids)) == len(ids)
        kinds = {e["kind"] for e in printed}
        assert {"node_dead", "route_changed", "load_started", "load_finished", "progressive_step"} <= kinds
        recovered = {e["app"]: e for e in printed if e["kind"] == "app_recovered"}
        assert set(recovered) == {"warm-a", "warm-b", "cold-a"}
        assert all(e["failed_node"] == "n1" and e["recovery_ms"] >= 0 for e in recovered.values())
        dead = next(e for e in printed if e["kind"] == "node_dead")
        assert dead["node"] == "n1" and dead["id"] < min(e["id"] for e in recovered.values())

        code, out, _ = run_cli(capsys, "events", "--controller", url, "--last", "3")
        lines = out.splitlines()
        assert code == 0 and len(lines) == 3 and all(line.startswith("#") for line in lines)
        code, out, _ = run_cli(capsys, "events", "--controller", url, "--since", str(last))
        assert any(line.split()[2] == "app_recovered" and "MTTR" in line for line in out.splitlines())

        # The follower saw the failure live, then sees the node come back and the apps fail back.
        assert follower.wait_for_kind("node_dead", 60)["node"] == "n1"
        assert follower.wait_for_kind("app_recovered", 60)["failed_node"] == "n1"
        cluster.restart_node("n1")
        assert follower.wait_for_kind("node_rejoined", 60)["node"] == "n1"
        assert "warm-a" in follower.wait_for_kind("failback", 60)["apps"]
        ids = [e["id"] for e in follower.seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] > last
    finally:
        if follower is not None:
            follower.stop()
        cluster.stop()


def test_events_from_an_unreachable_controller_is_one_line(capsys):
    code, out, err = run_cli(capsys, "events", "--controller", "http://127.0.0.1:9", "--timeout", "2")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "cannot reach the controller" in err
    code, _, err = run_cli(capsys, "events", "--controller", "ftp://x")
    assert code == 2 and "not an http:// URL" in err
