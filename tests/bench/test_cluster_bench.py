"""The cluster benchmarks on real local clusters, at tiny sizes: the reports' structure and sane
values (no timing assertions: the figures themselves are the benchmarks' output)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from faillite.bench.cluster.harness import Progress, code_path, current_code
from faillite.bench.cluster.idle import measure_idle
from faillite.bench.cluster.loadgen import paced_load
from faillite.bench.cluster.mttr import Sent
from faillite.bench.cluster.soak import _all_events, count_events, measure_soak
from faillite.bench.cluster.warm import measure_warm
from tests.controller.cluster import start
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

_quiet = Progress(enabled=False)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0): gone all the same once it is not running
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_idle_reports_one_row_per_cluster_process(tmp_path: Path) -> None:
    result = measure_idle(
        nodes=2, apps=2, gateway=True, seconds=1.0, settle=0.2, workdir=tmp_path, code=None, say=_quiet
    )
    names = [row["process"] for row in result["processes"]]
    assert names == ["controller", "agent edge-1", "agent edge-2", "gateway"]
    pids = [row["pid"] for row in result["processes"]]
    assert len(set(pids)) == 4 and all(_gone(pid) for pid in pids)  # measured, then ended
    assert all(0 <= row["cpu_percent"] < 100 * (os.cpu_count() or 1) for row in result["processes"])
    assert result["total_cpu_percent"] == pytest.approx(sum(r["cpu_percent"] for r in result["processes"]))
    assert 0 <= result["box"]["cpu_percent"] <= 100 and len(result["box"]["loadavg"]) == 3


def test_warm_mttr_comes_from_a_real_sigkill_and_the_apps_recovered(tmp_path: Path) -> None:
    result = measure_warm(
        nodes=2,
        apps=2,
        via="client",
        period_s=0.02,
        steady_s=0.5,
        trials=1,
        kinds=["SIGKILL"],
        observe_s=5.0,
        deadline_s=5.0,
        workdir=tmp_path,
        code=None,
        say=_quiet,
    )
    assert result["error"] is None
    assert result["steady"]["requests"] > 0 and result["steady"]["p50_ms"] > 0
    assert "bench" in result["steady"]["process_cpu_percent"]
    (trial,) = result["trials"]
    assert trial["kind"] == "SIGKILL" and trial["node"] == "edge-1" and _gone(trial["pid"])
    # the victim served digits-1; its warm backup on the other node answered after the kill
    (app,) = trial["apps"]
    assert app["app"] == "digits-1" and app["mode"] == "warm"
    assert app["mttr_ms"] is not None and app["mttr_ms"] > 0
    assert app["recovered_by"] == "edge-2"
    # the controller saw the agent die (connection close) and said so in a node_dead event
    assert trial["node_dead"] is not None and trial["node_dead"]["seen_ms"] > 0
    assert result["summary"]["SIGKILL"]["recovered"] == 1
    assert result["requests"] > result["steady"]["requests"]


def test_soak_counts_node_dead_events_of_a_real_controller(tmp_path: Path) -> None:
    cluster = start(tmp_path)
    try:
        before = _all_events(cluster, 0)
        first = int(before[-1]["id"])
        cluster.kill_node("n2", signal.SIGKILL)
        wait_for(lambda: any(e["kind"] == "node_dead" for e in _all_events(cluster, first)), 20, "node_dead")
        counted = count_events(_all_events(cluster, 0), first)
        assert counted["false_node_dead"] == 1 and counted["node_dead_events"][0]["node"] == "n2"
    finally:
        cluster.stop()


def test_soak_runs_bounded_and_ends_its_hogs(tmp_path: Path) -> None:
    result = measure_soak(
        minutes=0.05, hogs=1, nodes=2, apps=2, period_s=0.02, workdir=tmp_path, code=None, say=_quiet
    )
    assert result["hogs"] == 1 and 2 <= result["seconds"] < 30
    assert result["requests"] > 0 and result["latency"]["p50_ms"] is not None
    assert result["events"]["false_node_dead"] >= 0
    assert result["box"]["cpu_percent"] > 0
    assert all(_gone(pid) for pid in result["hog_pids"])


def test_the_separate_load_generator_runs_the_given_tree(tmp_path: Path) -> None:
    # a "tree" of its own whose faillite is this one: the child must import it from there
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "faillite").symlink_to(current_code() / "faillite")
    cluster = start(tmp_path / "cluster")
    try:

        async def load() -> tuple[list[Sent], int | None]:
            async with paced_load(cluster, 0.01, separate=True) as gen:
                await asyncio.sleep(0.5)
                return gen.records, gen.pid

        with code_path(tree):
            records, pid = asyncio.run(load())
    finally:
        cluster.stop()
    assert pid is not None and pid != os.getpid() and _gone(pid)
    assert len(records) > 10 and all(r.ok for r in records if r.end is not None)
    assert {r.app for r in records} == {a.name for a in cluster.config.apps}
    assert f"client from {tree}" in (tmp_path / "cluster" / "logs" / "loadgen.log").read_text()
