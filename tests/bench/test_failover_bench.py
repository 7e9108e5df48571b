"""`faillite bench failover` in a reduced configuration: the report's invariants, no timing."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from faillite.bench.failover import run_benchmark
from faillite.bench.failover.scenarios import SCENARIOS, scenario
from faillite.bench.failover.table import table
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
    # added with the open-loop load and the probe streams
    "phases_ms",
    "phases_p99_ms",
    "accuracy_drop_first",
    "accuracy_drop_settled",
    "settle_ms_mean",
    "protected_after_share",
    "accuracy_time_loss",
    "cpu_utilisation",
    "warm_mttr_mean_ms",
)
_PHASES = ("detect", "decide", "publish", "load", "answer")


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
    assert doc["load"] == "open"
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
        for a in records:  # recovery is measured from the probes' own answers
            if a["mttr_ms"] is None:
                continue
            # MTTR runs from the origin (the failure, or the next probe request after it)
            assert a["steps"] and a["steps"][0]["at_ms"] == pytest.approx(
                a["mttr_ms"] + a["origin_ms"], abs=0.01
            )
            assert all(s["node"] != "edge-1" for s in a["steps"])
            assert a["accuracy_drop_first"] == round(a["accuracy_before"] - a["accuracy_first"], 6)
            if a["settle_ms"] is not None:  # the settled variant answered after (or with) the first
                assert a["settle_ms"] >= a["mttr_ms"]
                assert a["settled_variant"] in [s["variant"] for s in a["steps"]]
                assert a["accuracy_drop_settled"] == round(a["accuracy_before"] - a["accuracy_settled"], 6)
            # nothing answered before the first answer: at least the primary's accuracy x that time
            first_s = a["steps"][0]["at_ms"] / 1000
            assert a["accuracy_time_loss"] >= a["accuracy_before"] * 100 * first_s - 1e-3
            ph = a["phases_ms"]
            if all(ph[k] is not None for k in _PHASES):  # phases add up to failure -> first answer
                assert sum(ph[k] for k in _PHASES) == pytest.approx(a["steps"][0]["at_ms"], abs=0.05)
        # the policy's figures are the per-app ones, aggregated
        recovered = [a for a in records if a["mttr_ms"] is not None]
        for key in ("accuracy_drop_first", "accuracy_drop_settled"):
            values = [a[key] for a in records if a[key] is not None]
            assert p[key] == (round(statistics.fmean(values), 6) if values else None), key
        settles = [a["settle_ms"] for a in records if a["settle_ms"] is not None]
        assert p["settle_ms_mean"] == (round(statistics.fmean(settles), 2) if settles else None)
        losses = [a["accuracy_time_loss"] for a in records]
        assert p["accuracy_time_loss"] == round(statistics.fmean(losses), 4)
        warm = [a["mttr_ms"] for a in recovered if a["mode"] == "warm"]
        assert p["warm_mttr_mean_ms"] == (round(statistics.fmean(warm), 3) if warm else None)
        for k in _PHASES:
            values = [a["phases_ms"][k] for a in recovered if a["phases_ms"][k] is not None]
            assert p["phases_ms"][k] == (round(statistics.fmean(values), 3) if values else None), k
        shares = [i["protected_after_share"] for i in p["injections"]]
        assert p["protected_after_share"] == round(statistics.fmean(shares), 4)
        assert 0 <= p["protected_after_share"] <= 1
        for i in p["injections"]:  # the share counts every app of the scenario
            assert i["protected_after_share"] == round(1 - len(i["unprotected_after"]) / len(sc.apps), 4)
        assert 0 < p["cpu_utilisation"] <= 1 and 0 < p["cpu_utilisation_own"] <= 1
        assert p["load"] == "open" and p["offered_rps"] == sum(a.rate for a in sc.apps)
        assert p["requests"] > 0 and p["steady_latency"]["requests"] > 0
    # ratios come from the measured means of this run
    base = doc["policies"]["full-cold"]["mttr_mean_ms"]
    assert base is not None
    assert doc["policies"]["full-cold"]["mttr_ratio_to_full_cold"] == 1.0
    mine = doc["policies"]["faillite"]
    assert mine["mttr_ratio_to_full_cold"] == round(mine["mttr_mean_ms"] / base, 4)
    json.dumps(doc)  # the report is plain JSON
    assert "faillite" in table(doc)

    from faillite.bench.failover import plots

    # the sweep's rows carry the policies' own figures (here: the one headroom this run measured)
    keys = ("recovered_share", "mttr_mean_ms", "accuracy_drop_settled", "accuracy_time_loss")
    swept = {
        **doc,
        "sweep": [
            {"policy": label, "headroom": p["headroom"], "deployed": True, **{k: p[k] for k in keys}}
            for label, p in doc["policies"].items()
        ],
    }
    made = (
        plots.mttr_cdf(doc, tmp_path / "cdf.png"),
        plots.phases(doc, tmp_path / "phases.png"),
        plots.sweep(swept, tmp_path / "sweep.png"),
    )
    for png in made:
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
