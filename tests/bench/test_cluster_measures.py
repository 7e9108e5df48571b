"""The cluster benchmarks' pure parts: CPU accounting from /proc text, MTTR from request records,
false-failover counting, and the command line's refusals. Hand-made inputs, no processes."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faillite.bench.cluster.harness import code_path, code_runs, measure_runs
from faillite.bench.cluster.mttr import Sent, app_outcome, latency_stats, summarize_outcomes, top_errors
from faillite.bench.cluster.paced import InFlight
from faillite.bench.cluster.soak import count_events
from faillite.bench.cluster.warm_trials import pick_victim
from faillite.bench.cputime import (
    ProcSample,
    box_sample,
    box_utilisation,
    cpu_seconds,
    cpu_share,
    sample_process,
    with_children,
)
from faillite.cli import main
from faillite.commands.bench import _BENCHMARKS
from faillite.errors import CliError
from faillite.launch.process import LaunchError


def test_cpu_share_is_percent_of_one_core() -> None:
    before = ProcSample(7, cpu_s=10.0, at=10.0)
    after = ProcSample(7, cpu_s=11.5, at=12.0)  # 1.5 s of CPU in 2 s
    assert cpu_share(before, after) == pytest.approx(75.0)
    assert cpu_share(before, ProcSample(7, 10.0, 30.0)) == 0.0
    with pytest.raises(ValueError):
        cpu_share(before, ProcSample(8, 11.5, 12.0))
    with pytest.raises(ValueError):
        cpu_share(before, ProcSample(7, 11.5, 10.0))


def _times(user: float, system: float, idle: float, iowait: float, guest: float = 0.0) -> dict[str, float]:
    """Per-state seconds as psutil.cpu_times() names them."""
    return {
        "user": user, "nice": 0.0, "system": system, "idle": idle, "iowait": iowait, "irq": 0.0,
        "softirq": 0.0, "steal": 0.0, "guest": guest, "guest_nice": 0.0,
    }  # fmt: skip


def test_box_utilisation_from_two_samples() -> None:
    first = box_sample(_times(1.0, 1.0, 7.0, 1.0, guest=0.5), cores=2)
    assert (first.busy, first.total, first.cores) == (2.0, 10.0, 2)  # guest is inside user already
    # +3 s busy (user 2, system 1), +1 idle, +1 iowait: 60 % of the box, 1.2 cores
    second = box_sample(_times(3.0, 2.0, 8.0, 2.0), cores=2)
    assert box_utilisation(first, second) == {"percent": 60.0, "cores_busy": 1.2}
    with pytest.raises(ValueError):
        box_utilisation(second, first)


def test_process_cpu_readings_are_this_process_and_its_children() -> None:
    """psutil's reading of a live process grows with work; a gone one is a lookup error."""
    before = sample_process(os.getpid(), 0.0)
    sum(i * i for i in range(300_000))
    assert sample_process(os.getpid(), 1.0).cpu_s > before.cpu_s
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert with_children(os.getpid())[0] == os.getpid()
        assert child.pid in with_children(os.getpid())
    finally:
        child.communicate(b"")
    with pytest.raises(ProcessLookupError):
        sample_process(child.pid, 2.0)
    assert cpu_seconds([child.pid]) == 0.0


def _r(app: str, start: float, end: float | None, ok: bool = True, node: str | None = "a") -> Sent:
    return Sent(app, start, start, end, ok, node if ok else None, None if ok else "boom")


def test_mttr_runs_from_the_failure_when_a_request_was_in_flight() -> None:
    records = [
        _r("x", 0.000, 0.002),  # answered before the failure: not touched
        _r("x", 0.005, 0.250, ok=False),  # in flight at the failure (t = 0.010), failed
        _r("x", 0.011, 0.012, node="a"),  # the failed node answered: not a recovery
        _r("x", 0.015, 0.018, node="b"),  # the recovery
        _r("x", 0.020, 0.021, node="b"),  # after the recovery began: not touched
        _r("y", 0.012, 0.013, node="b"),  # another app
    ]
    o = app_outcome(records, app="x", failed_node="a", failed_at=0.010, until=1.0)
    assert o.in_flight == 1 and o.origin == 0.010
    assert o.mttr_ms == pytest.approx(8.0)
    assert o.recovered_by == "b"
    assert o.touched == 3 and o.touched_failed == 1 and o.touched_unanswered == 0
    assert sorted(o.touched_latency_ms) == pytest.approx([1.0, 3.0, 245.0])


def test_mttr_runs_from_the_next_request_when_none_was_in_flight() -> None:
    records = [_r("x", 0.000, 0.002), _r("x", 0.005, 0.0065, node="b"), _r("x", 0.010, 0.0112, node="b")]
    o = app_outcome(records, app="x", failed_node="a", failed_at=0.003, until=1.0)
    assert o.in_flight == 0 and o.origin == 0.005
    assert o.mttr_ms == pytest.approx(1.5)  # the pause between paced requests is not counted


def test_a_request_the_failed_node_still_answered_interrupted_nothing() -> None:
    records = [
        _r("x", 0.000, 0.004, node="a"),  # in flight at the failure, answered by the failed node
        _r("x", 0.005, 0.008, node="b"),
    ]
    o = app_outcome(records, app="x", failed_node="a", failed_at=0.002, until=1.0)
    assert o.in_flight == 0 and o.origin == 0.005
    assert o.mttr_ms == pytest.approx(3.0)
    assert o.touched == 2  # it was still touched: in flight at the failure


def test_an_app_never_answered_elsewhere_has_no_mttr_and_its_requests_count_as_unanswered() -> None:
    records = [_r("x", 0.004, None, ok=False), _r("x", 0.009, 0.5, ok=False), _r("x", 0.6, 0.601, node="a")]
    o = app_outcome(records, app="x", failed_node="a", failed_at=0.005, until=1.0)
    assert o.mttr_ms is None and o.recovered_by is None
    assert (o.touched, o.touched_failed, o.touched_unanswered) == (3, 1, 1)
    # no request at all after the failure: nothing to measure from
    assert (
        app_outcome([_r("x", 0.0, 0.001)], app="x", failed_node="a", failed_at=0.5, until=1.0).origin is None
    )


def test_summaries_pool_apps_and_requests() -> None:
    a = app_outcome([_r("x", 0.0, 0.004, node="b")], app="x", failed_node="a", failed_at=0.001, until=1)
    b = app_outcome([_r("y", 0.0, 0.005, ok=False)], app="y", failed_node="a", failed_at=0.001, until=1)
    s = summarize_outcomes([a, b])
    assert s["apps"] == 2 and s["recovered"] == 1 and s["mttr_mean_ms"] == pytest.approx(3.0)
    assert s["touched_requests"] == 2 and s["touched_failed"] == 1
    assert latency_stats([3.0, 1.0, 2.0]) == {"requests": 3, "p50_ms": 2.0, "p99_ms": 3.0, "max_ms": 3.0}
    assert latency_stats([])["p50_ms"] is None


def test_false_failovers_are_the_node_dead_events_after_the_start() -> None:
    events = [
        {"id": 3, "kind": "node_dead", "node": "n0", "reason": "before"},
        {"id": 4, "kind": "failure_suspected", "node": "n1"},
        {"id": 5, "kind": "node_dead", "node": "n1", "reason": "no heartbeat", "detection_ms": 91.0},
        {"id": 6, "kind": "route_changed", "app": "a"},
    ]
    counted = count_events(events, after_id=3)
    assert counted["false_node_dead"] == 1 and counted["failure_suspected"] == 1
    assert counted["node_dead_events"][0]["node"] == "n1"


def test_the_victim_serves_the_most_warm_backed_apps_ties_rotating() -> None:
    warm, cold = {"mode": "warm"}, {"mode": "cold"}
    apps = {
        "a": {"node": "n1", "backup": warm},
        "b": {"node": "n2", "backup": warm},
        "c": {"node": "n2", "backup": warm},
        "d": {"node": "n1", "backup": cold},
        "e": {"node": "n3", "backup": None},
    }
    assert pick_victim(apps, ["n1", "n2", "n3"], 0) == "n2"
    apps["d"]["backup"] = warm
    assert [pick_victim(apps, ["n1", "n2", "n3"], t) for t in range(3)] == ["n1", "n2", "n1"]


def test_in_flight_bookkeeping_counts_per_app_and_drains_the_unanswered() -> None:
    flying = InFlight(["x", "y"])
    flying.add(1, "x", due=0.0, start=0.5)
    flying.add(2, "x", due=1.0, start=1.2)
    flying.add(3, "y", due=0.2, start=0.3)
    assert (flying.count("x"), flying.oldest("x"), flying.oldest("y")) == (2, 0.5, 0.3)
    assert flying.pop(1) == ("x", 0.0, 0.5)
    assert flying.pop(1) is None  # answered twice, or never sent: nothing to pop
    assert flying.oldest("x") == 1.2
    assert {(r.app, r.start, r.end, r.ok) for r in flying.unanswered()} == {
        ("x", 1.2, None, False),
        ("y", 0.3, None, False),
    }
    drained = flying.drain("gone")
    assert {r.error for r in drained} == {"gone"} and len(drained) == 2
    assert flying.count("x") == flying.count("y") == 0 and flying.oldest("x") is None


def test_errors_group_by_message() -> None:
    records = [_r("x", 0, 1, ok=False), _r("x", 0, 1, ok=False), _r("x", 0, 1)]
    assert top_errors(records) == [["boom", 2]]


def test_baseline_and_current_runs_interleave(tmp_path: Path) -> None:
    (tmp_path / "faillite").mkdir()
    (tmp_path / "faillite" / "__init__.py").write_text("")
    args = argparse.Namespace(code_path=None, baseline=tmp_path, rounds=2)
    assert code_runs(args) == [("baseline", tmp_path), ("current", None)] * 2
    assert code_runs(argparse.Namespace(code_path=tmp_path, baseline=None, rounds=1)) == [
        ("current", tmp_path)
    ]


def test_measure_runs_reports_every_run_with_the_fields_in_order(tmp_path: Path) -> None:
    (tmp_path / "faillite").mkdir()
    (tmp_path / "faillite" / "__init__.py").write_text("")
    args = argparse.Namespace(nodes=3, apps=5, code_path=None, baseline=tmp_path, rounds=1, workdir=None)
    seen: list[tuple[Path | None, Path]] = []

    def measure(*, nodes: int, apps: int, workdir: Path, code: Path | None, say: object) -> dict[str, object]:
        assert workdir.is_dir()
        seen.append((code, workdir))
        return {"nodes": nodes, "apps": apps}

    doc = measure_runs(args, "faillite-test-", measure, targets={"x": 1.0})
    assert list(doc) == ["command", "targets", "runs"] and doc["targets"] == {"x": 1.0}
    assert doc["runs"] == [
        {"code": "baseline", "nodes": 3, "apps": 5},
        {"code": "current", "nodes": 3, "apps": 5},
    ]
    assert [code for code, _ in seen] == [tmp_path, None]
    assert not seen[0][1].exists()  # a temporary directory per run, removed after it


def test_a_cluster_that_fails_to_start_is_a_clear_error() -> None:
    args = argparse.Namespace(nodes=2, apps=1, code_path=None, baseline=None, rounds=1, workdir=None)

    def measure(**_: object) -> dict[str, object]:
        raise LaunchError("agent edge-1 exited")

    with pytest.raises(CliError, match="agent edge-1 exited"):
        measure_runs(args, "faillite-test-", measure)


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ("idle", ["command", "target_total_percent", "runs"]),
        ("warm", ["command", "targets", "runs"]),
        ("soak", ["command", "runs"]),
    ],
)
def test_each_command_reports_its_fields(
    command: str, fields: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command-line wiring only: the measurement (a real cluster) is tested elsewhere."""
    module = importlib.import_module(f"faillite.bench.cluster.{command}")
    monkeypatch.setattr(module, f"measure_{command}", lambda **kw: {"nodes": kw["nodes"]})
    assert main(["bench", command, "--nodes", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == fields
    assert doc["runs"] == [{"code": "current", "nodes": 3}]


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "warm", "--kinds", "SIGFOO"],
        ["bench", "warm", "--period-ms", "0"],
        ["bench", "idle", "--nodes", "1"],
        ["bench", "soak", "--minutes", "0"],
        ["bench", "soak", "--hogs", "-1"],
        ["bench", "idle", "--baseline", "/nonexistent/tree"],
        ["bench", "warm", "--code-path", "/nonexistent/tree"],
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


def test_code_path_points_started_processes_at_a_tree_and_restores(tmp_path: Path) -> None:
    (tmp_path / "faillite").mkdir()
    (tmp_path / "faillite" / "__init__.py").write_text("")
    env = (os.environ.get("PYTHONPATH"), os.environ.get("PYTHONSAFEPATH"))
    with code_path(tmp_path) as where:
        assert where == tmp_path.resolve()
        assert os.environ["PYTHONPATH"] == str(where) and os.environ["PYTHONSAFEPATH"] == "1"
    assert (os.environ.get("PYTHONPATH"), os.environ.get("PYTHONSAFEPATH")) == env
    with pytest.raises(ValueError, match="no faillite package"), code_path(tmp_path / "nothing"):
        pass


def test_registered() -> None:
    assert "faillite.bench.cluster" in _BENCHMARKS
