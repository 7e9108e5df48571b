"""`faillite up --json`: a local cluster from a file, described in one line, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faillite.launch.http import http_json
from tests.controller.cluster import SMALL
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_up_prints_endpoints_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump({**SMALL, "gateway": True}))
    argv = [
        sys.executable,
        "-m",
        "faillite",
        "up",
        "--config",
        str(config),
        "--json",
        "--workdir",
        str(tmp_path),
    ]
    stderr = tmp_path / "stderr.txt"
    with (
        stderr.open("w") as err,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True) as process,
    ):
        try:
            _check_up(process, stderr)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _check_up(process: subprocess.Popen[str], stderr: Path) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, stderr.read_text()
    described = json.loads(line)
    assert set(described) == {"controller", "gateway", "nodes", "apps"}
    assert described["apps"] == [a["name"] for a in SMALL["apps"]]
    nodes = {n["id"]: n for n in http_json("GET", f"{described['controller']}/v1/nodes")[1]}
    for node in described["nodes"]:
        assert nodes[node["id"]]["pid"] == node["pid"] and nodes[node["id"]]["url"] == node["url"]
        assert _alive(node["pid"])
    apps = http_json("GET", f"{described['controller']}/v1/apps")[1]
    assert all(a["state"] == "primary" and a["backup"] for a in apps)  # deployed and protected
    assert http_json("GET", f"{described['gateway']}/v2/health/ready")[0] == 200
    pids = [n["pid"] for n in described["nodes"]]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    wait_for(lambda: not any(_alive(p) for p in pids), 10, "every agent to exit")


def test_up_names_the_file_and_field_of_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        yaml.safe_dump({"nodes": [{"id": "a", "memory": "lots"}, {"id": "b", "memory": "1GiB"}]})
    )
    done = subprocess.run(
        [sys.executable, "-m", "faillite", "up", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"{config}: nodes.0.memory" in done.stderr and "lots" in done.stderr
    assert "Traceback" not in done.stderr
