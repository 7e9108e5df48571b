"""``faillite bench agent --quick``: the benchmark runs end to end and its figures are coherent
(invariants only, never timings)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_ALWAYS = {"in-process", "health", "agent-json", "agent-binary", "client", "client-raw"}
_GATEWAY = {"gateway-health", "gateway-binary"}
_TC_AGENT = {"tc-agent-health", "tc-agent-binary", "tc-agent-json"}
_TC_TRITON = {"tc-triton-health", "tc-triton-binary", "tc-triton-json"}


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

    latency = {row["mode"]: row for row in report["latency"]}
    skipped = report["skipped"]
    expected = set(_ALWAYS) | _GATEWAY | _TC_AGENT  # the gateway runs; tritonclient is a dev dependency
    if "triton" not in skipped:
        expected |= _TC_TRITON
    assert set(latency) == expected, skipped
    for row in latency.values():
        assert row["requests"] == 100 and 0 < row["p50_ms"] <= row["p99_ms"]
        if row["baseline"] is not None:
            base = latency[row["baseline"]]
            assert row["over_baseline_ms"] == pytest.approx(row["p50_ms"] - base["p50_ms"])
    assert latency["agent-binary"]["baseline"] == "health"
    assert latency["client-raw"]["baseline"] == "agent-binary"
    names = {c["name"] for c in report["checks"]}
    assert "agent binary infer over health" in names and "agent JSON infer over health" in names
    assert ("tritonclient binary: agent / Triton" in names) == ("triton" not in skipped)
    hop = next(c for c in report["checks"] if c["name"].startswith("gateway hop"))
    p50 = {mode: row["p50_ms"] for mode, row in latency.items()}
    expected_hop = p50["gateway-binary"] - p50["agent-binary"] - p50["health"]
    assert hop["value"] == pytest.approx(expected_hop, abs=1e-3)
    assert report["event_loop"] in ("uvloop", "asyncio")
    assert set(report["load"]) == {"before", "after"}


def test_triton_row_is_skipped_with_a_reason_when_not_wanted() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite.cli", "bench", "agent", "--quick", "--no-triton", "--no-gateway"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped triton: --no-triton" in done.stdout
    assert "skipped gateway: --no-gateway" in done.stdout
    assert "tc-triton" not in done.stdout and "gateway-binary" not in done.stdout
    assert "issue 9 targets" in done.stdout


def test_checks_measure_each_target_in_its_unit() -> None:
    from faillite.bench.agent.report import checks

    rows = [
        {"mode": "health", "p50_ms": 0.2},
        {"mode": "agent-binary", "p50_ms": 0.3},
        {"mode": "gateway-binary", "p50_ms": 0.65},
        {"mode": "tc-agent-binary", "p50_ms": 0.3},
        {"mode": "tc-triton-binary", "p50_ms": 0.6},
    ]
    got = {c["name"]: (c["value"], c["unit"], c["ok"]) for c in checks(rows)}
    assert got["agent binary infer over health"] == (0.1, "ms", True)
    assert got["gateway hop over a direct post, less a health trip"] == (0.15, "ms", False)
    assert got["tritonclient binary: agent / Triton"] == (0.5, "x", True)
    assert "agent JSON infer over health" not in got  # its mode did not run
