"""Climbing back after a failover, on the real Controller object (no processes needed: the
climb only reads and writes the controller's state; loading is the reconcile loop's job)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from faillite.controller.climb import climb_once
from faillite.controller.cluster import NodeRecord, Serving
from faillite.controller.config import ControllerConfig
from faillite.controller.core import Controller
from faillite.controller.decide import Load, Replica
from faillite.controller.effects import LoadDone, SetAgent, SetUndesired
from faillite.controller.model import AgentView
from faillite.controller.planning import AppSpec
from faillite.controller.states import AppState, NodeState
from faillite.placement import Assignment, Backup, Mode, Plan
from faillite.profiler.format import MachineInfo, ProfileSet, save_profiles
from faillite.zoo.catalog import estimated_family_profiles


def controller_after_failover(tmp_path: Path) -> Controller:
    profiles = tmp_path / "profiles.json"
    save_profiles(
        ProfileSet(
            machine=MachineInfo(hostname="test", cpu_count=2, onnxruntime="estimated"),
            created=dt.datetime.now(dt.UTC).isoformat(),
            variants=estimated_family_profiles("digits"),
        ),
        profiles,
    )
    c = Controller(ControllerConfig(state_path=tmp_path / "state.sqlite", profiles=(profiles,)))
    for node, state in (("n1", NodeState.DEAD), ("n2", NodeState.ALIVE), ("n3", NodeState.ALIVE)):
        c.cluster.put_node(NodeRecord(node, f"http://{node}", 8 << 20, 1.0, None, None, 1, state))
    c.cluster.put_app(AppSpec(name="a", family="digits", slo_ms=20))
    home = Plan((Assignment("a", "n1", "digits-mlp-256x128", Backup("n2", "digits-mlp-4", Mode.COLD)),))
    now = Plan((Assignment("a", "n2", "digits-mlp-4", Backup("n3", "digits-mlp-4", Mode.COLD)),))
    c.cluster.set_plans(now, home)
    c.cluster.set_serving("a", Serving(AppState.FAILED_OVER, Replica("n2", "digits-mlp-4")))
    return c


async def test_an_app_climbs_to_the_best_variant_that_fits_then_settles(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    await climb_once(c)
    (asg,) = c.cluster.plan
    assert asg.primary_variant == "digits-mlp-256x128"  # home: 8 MiB nodes hold it and a backup
    assert asg.backup is not None  # still protected
    assert c.state.climbing["a"].primary_variant == "digits-mlp-4"
    await climb_once(c)  # the climb has not been served yet: nothing more happens
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-256x128"
    reasons = [e["reason"] for e in c.events.since() if e["kind"] == "plan_changed"]
    assert reasons == ["climb back: a from digits-mlp-4 to digits-mlp-256x128"]
    assert not [e for e in c.events.since() if e["kind"] == "app_settled"]
    # The reconcile loop loaded it and switched: the next pass finds nothing better, once.
    c.cluster.set_serving("a", Serving(AppState.FAILED_OVER, Replica(asg.primary_node, asg.primary_variant)))
    await climb_once(c)
    await climb_once(c)
    settled = [e for e in c.events.since() if e["kind"] == "app_settled"]
    assert [(e["app"], e["variant"], e["protected"]) for e in settled] == [("a", "digits-mlp-256x128", True)]
    assert isinstance(settled[0]["mono"], float)
    c.store.close()


async def test_a_refused_climb_is_undone_and_not_retried_at_once(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    await climb_once(c)
    climbed = c.cluster.plan.by_app()["a"]
    refused = Replica(climbed.primary_node, climbed.primary_variant)
    c.record(LoadDone(refused, False, retry_at=time.monotonic() + 1))
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-4"
    assert "a" not in c.state.climbing and c.state.climb_blocked["a"] > time.monotonic()
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-4"  # blocked for a while
    c.store.close()


async def test_no_climb_when_every_node_is_back_or_a_program_runs(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    c.cluster.set_node_state("n1", NodeState.REJOINING)
    c.cluster.set_node_state("n1", NodeState.ALIVE)
    await climb_once(c)  # failback's job, not climbing's
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-4"
    c.store.close()


async def test_an_app_pinned_to_the_dead_node_does_not_stop_the_climb(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    c.cluster.put_app(AppSpec(name="a", family="digits", slo_ms=20, node="n1"))  # n1 is dead
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-256x128"
    c.store.close()


async def test_settling_plans_in_the_memory_the_agents_report(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    for node, loaded in (("n2", {"digits-mlp-4"}), ("n3", set())):
        used = int(7.9 * (1 << 20))  # e.g. leftovers or footprints over their profiles
        c.record(SetAgent(node, AgentView(frozenset(loaded), used)))
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-4"  # nothing fits beside
    settled = [e for e in c.events.since() if e["kind"] == "app_settled"]
    assert [(e["app"], e["variant"]) for e in settled] == [("a", "digits-mlp-4")]
    c.store.close()


async def test_no_settling_while_a_load_runs_or_a_leftover_is_loaded(tmp_path: Path) -> None:
    c = controller_after_failover(tmp_path)
    c.record(Load(Replica("n3", "digits-mlp-8"), "a", "test"))
    await climb_once(c)
    c.record(LoadDone(Replica("n3", "digits-mlp-8"), True))
    c.record(SetUndesired({Replica("n2", "digits-mlp-16"): time.monotonic()}))
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-4"
    assert not [e for e in c.events.since() if e["kind"] in ("app_settled", "plan_changed")]
    c.record(SetUndesired({}))
    await climb_once(c)
    assert c.cluster.plan.by_app()["a"].primary_variant == "digits-mlp-256x128"
    c.store.close()
