"""The controller's one state survives a restart: effects recorded through ``ClusterState``
are written through to SQLite, and ``load_state`` reads back the same nodes, apps, serving
and plans (what lives only in memory, e.g. loads in flight, starts empty)."""

from __future__ import annotations

from pathlib import Path

from faillite.controller import policy
from faillite.controller.cluster import ClusterState, load_state
from faillite.controller.decide import Load, Replica
from faillite.controller.model import PolicyConfig
from faillite.controller.planning import AppSpec
from faillite.controller.store import StateStore
from faillite.placement import PlannerParams
from tests.controller.policy_world import FAMILIES, MIB, SMALL


def open_cluster(path: Path) -> ClusterState:
    store = StateStore(path)
    return ClusterState(
        store, {}, load_state(store, FAMILIES, PlannerParams(), PolicyConfig(method="greedy"))
    )


def test_what_the_policy_changed_is_read_back_after_a_restart(tmp_path: Path) -> None:
    cluster = open_cluster(tmp_path / "state.sqlite")
    state = cluster.state
    for node in ("n1", "n2"):
        effects = policy.node_registered(
            state, node, url=f"http://{node}", memory_bytes=8 * MIB, cores=1.0, domain=node, pid=1, epoch=0
        )
        for effect in effects:
            cluster.record(effect)
    request = policy.add_request(state, [AppSpec(name="a", family="digits", slo_ms=20)])
    for effect in policy.app_added(state, request, request.solve()):
        cluster.record(effect)
    asg = state.plan.by_app()["a"]
    for effect in [*policy.reconcile(state, 0.0), Load(Replica("n2", SMALL), "a", "in flight")]:
        cluster.record(effect)
    for effect in policy.load_finished(state, Replica(asg.primary_node, asg.primary_variant), "a", True, 0.1):
        cluster.record(effect)
    for effect in policy.reconcile(state, 0.2):  # serves a from its primary
        cluster.record(effect)
    for effect in policy.node_dead(state, asg.primary_node, 1.0):
        cluster.record(effect)
    cluster.store.close()

    again = open_cluster(tmp_path / "state.sqlite")
    back = again.state
    assert back.nodes == state.nodes and back.apps == state.apps
    assert back.serving == state.serving and back.serving["a"].state.value == "recovering"
    assert back.plan == state.plan and back.home_plan == state.home_plan
    assert back.nodes[asg.primary_node].state.value == "dead"
    assert not back.loading and not back.programs and not back.agents  # memory only
    again.store.close()
