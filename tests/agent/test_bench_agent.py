"""``faillite bench agent --quick``: the benchmark runs end to end and its figures are coherent
(invariants only, never timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quick_benchmark_reports_every_mode() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite.cli", "bench", "agent", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["command"] == "faillite bench agent --quick --json"
    assert report["outputs_match"] is True
    modes = {m["mode"]: m for m in report["modes"]}
    assert set(modes) == {"in-process", "agent-json", "agent-binary"}
    for mode in modes.values():
        assert mode["requests"] == 200  # --quick: a fixed request count, every one answered 200
        assert mode["throughput_rps"] > 0
        assert 0 < mode["p50_ms"] <= mode["p99_ms"]
