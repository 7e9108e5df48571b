"""`faillite bench failover` in a reduced configuration: the report's invariants, no timing."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from faillite.bench.failover import run_benchmark
from faillite.bench.failover.report import table
from faillite.bench.failover.scenarios import SCENARIOS, scenario
from faillite.commands.bench import _BENCHMARKS

_FIELDS = (
    "recovered_share",
    "mttr_mean_ms",
    "mttr_p50_ms",
    "mttr_p99_ms",
    "full_recovery_mean_ms",
    "accuracy_drop_mean",
    "accuracy_drop_weighted",
    "failed_requests",
    "backup_memory_bytes",
    "mttr_ratio_to_full_cold",
)


def test_registered_and_scenarios_are_what_the_docs_say() -> None:
    assert "faillite.bench.failover" in _BENCHMARKS
    paper = SCENARIOS["paper"]
    assert len(paper.apps) == 27
    assert len({a.family for a in paper.apps}) >= 8
    # Memory budgets at the default headroom make full replication impossible.
    total = sum(paper.memory_of(a.family, a.variant) for a in paper.apps)
    assert paper.budget(paper.default_headroom) * paper.nodes < 2 * total


@pytest.mark.integration
@pytest.mark.slow
def test_reduced_run_accounts_for_every_failure(tmp_path: Path) -> None:
    doc = run_benchmark(
        scenario_name="digits",
        policies=["faillite", "full-cold"],
        nodes=1,
        kinds=["SIGKILL"],
        stop_nodes=None,
        headroom=None,
        sweep=(),
        sweep_nodes=0,
        workdir=tmp_path,
        command="test",
        progress=False,
    )
    sc = scenario("digits")
    assert doc["scenario"] == "digits" and "scale" in doc
    assert set(doc["policies"]) == {"faillite", "full-cold"}
    for label, p in doc["policies"].items():
        assert p["deployed"], p
        for field in _FIELDS:
            assert field in p, (label, field)
        # every injected failure is accounted for: one per (node, kind), every app it served
        assert [(i["node"], i["kind"]) for i in p["injections"]] == [("edge-1", "SIGKILL")]
        on_victim = sorted(a for a, n in sc.primaries().items() if n == "edge-1")
        recorded = sorted(a["app"] for a in p["injections"][0]["apps"])
        assert recorded == on_victim
        assert p["failed_apps"] == len(on_victim)
        records = [a for i in p["injections"] for a in i["apps"]]
        assert p["recovered"] == sum(1 for a in records if a["mttr_ms"] is not None)
        assert p["recovered_share"] == round(p["recovered"] / p["failed_apps"], 4)
        assert p["failed_requests"] == sum(a["failed_requests"] for a in records)
        mttrs = [a["mttr_ms"] for a in records if a["mttr_ms"] is not None]
        if mttrs:
            assert p["mttr_mean_ms"] == round(statistics.fmean(mttrs), 2)
            assert min(mttrs) <= p["mttr_p50_ms"] <= p["mttr_p99_ms"] <= max(mttrs)
        for a in records:  # recovery is measured from the clients' own answers
            if a["mttr_ms"] is not None:
                assert a["steps"] and a["steps"][0]["at_ms"] == a["mttr_ms"]
                assert all(s["node"] != "edge-1" for s in a["steps"])
    # ratios come from the measured means of this run
    base = doc["policies"]["full-cold"]["mttr_mean_ms"]
    assert base is not None
    assert doc["policies"]["full-cold"]["mttr_ratio_to_full_cold"] == 1.0
    mine = doc["policies"]["faillite"]
    assert mine["mttr_ratio_to_full_cold"] == round(mine["mttr_mean_ms"] / base, 4)
    json.dumps(doc)  # the report is plain JSON
    assert "faillite" in table(doc)

    from faillite.bench.failover import plots

    png = plots.mttr_cdf(doc, tmp_path / "cdf.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_rejects_an_unknown_policy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite", "bench", "failover", "--policies", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown policy" in done.stderr
