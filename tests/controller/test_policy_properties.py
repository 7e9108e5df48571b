"""Property tests of the policy's invariants over random clusters, failures and refused loads.

Each example deploys a random cluster (nodes, apps, planner policy), kills one or two nodes
(sometimes a node comes back), with agents refusing some loads once, and runs the policy to
quiet (``World``: reconcile, programs, re-protection, climbing, rejoin, failback). Then:

- every app the failures touched is served from a live node or was given up explicitly
  (UNAVAILABLE after an ``app_lost`` event);
- no plan the policy adopted has more loaded at once on a live node than its memory;
- node epochs only grow;
- every app and node state change is in the transition tables of ``states``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from faillite.controller.decide import Replica
from faillite.controller.model import LIVE_STATES
from faillite.controller.planning import AppSpec
from faillite.controller.states import APP_TRANSITIONS, NODE_TRANSITIONS, AppState
from faillite.placement import Mode, Plan
from tests.controller.policy_world import FAMILIES, MIB, World, deployed

SERVED = (AppState.PRIMARY, AppState.FAILED_OVER, AppState.STEPPING)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    n_nodes = draw(st.integers(3, 5))
    nodes = {f"n{i}": draw(st.sampled_from([3, 4, 6, 12])) * MIB for i in range(1, n_nodes + 1)}
    apps = [
        AppSpec(
            name=f"app{i}",
            family="digits",
            slo_ms=20,
            critical=draw(st.booleans()),
            weight=draw(st.sampled_from([1.0, 2.0, 3.0])),
        )
        for i in range(draw(st.integers(1, 8)))
    ]
    policy_name = draw(st.sampled_from(["faillite", "faillite-shared", "full-warm", "full-cold", "none"]))
    victims = draw(st.lists(st.sampled_from(sorted(nodes)), min_size=1, max_size=2, unique=True))
    return {
        "nodes": nodes,
        "apps": apps,
        "policy": policy_name,
        "progressive": draw(st.booleans()),
        "victims": victims,
        "refused": draw(st.sets(st.sampled_from([v.name for v in FAMILIES["digits"].variants]), max_size=2)),
        "rejoin": draw(st.booleans()),
    }


def plan_bytes(plan: Plan) -> dict[str, int]:
    """Bytes each node holds loaded at once under ``plan``: primaries, warm backups, shared
    fallbacks (one copy per node and variant)."""
    replicas = {Replica(a.primary_node, a.primary_variant) for a in plan}
    replicas |= {
        Replica(a.backup.node, a.backup.variant) for a in plan if a.backup and a.backup.mode is Mode.WARM
    }
    replicas |= {Replica(s.node, s.variant) for s in plan.shared}
    used: dict[str, int] = {}
    for r in replicas:
        used[r.node] = used.get(r.node, 0) + FAMILIES["digits"].variant(r.variant).memory_bytes
    return used


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_through_failures_refusals_and_rejoins(sc: dict) -> None:  # type: ignore[type-arg]
    try:
        state = deployed(sc["nodes"], sc["apps"], policy_name=sc["policy"], progressive=sc["progressive"])
    except AssertionError:
        return  # no feasible home plan for this draw: nothing to fail over
    refused_once: set[Replica] = set()

    def refuse(r: Replica) -> bool:  # an agent refuses a load of these variants once per replica
        if r.variant in sc["refused"] and r not in refused_once:
            refused_once.add(r)
            return True
        return False

    world = World(state, refuse=refuse)
    world.settle()
    affected: set[str] = set()
    for victim in sc["victims"]:
        affected |= {
            a for a, s in state.serving.items() if s.replica is not None and s.replica.node == victim
        }
        affected |= {a.app for a in state.plan if a.primary_node == victim}
        world.kill(victim, silent_ms=40)
        world.now += 0.5
        world.settle()
    if sc["rejoin"]:
        back = sc["victims"][0]
        world.register(back, state.nodes[back].epoch, loaded=["digits-mlp-8"])
        world.settle()

    live = {n.id for n in state.nodes.values() if n.state in LIVE_STATES}
    lost = {e["app"] for e in world.events("app_lost")}
    event(f"affected apps: {bool(affected)}, some given up: {bool(lost)}")
    for app in affected:
        serving = state.serving[app]
        served = serving.state in SERVED and serving.replica is not None and serving.replica.node in live
        given_up = serving.state is AppState.UNAVAILABLE and app in lost
        assert served or given_up, f"{app} ends {serving}"
    assert not state.programs and not state.pinned and state.reprotecting == 0
    for plan, live_then in world.plans:
        for node, used in plan_bytes(plan).items():
            if node in live_then:
                assert used <= state.nodes[node].memory_bytes, f"{node} over budget in {plan}"
    for node, before, after in world.epochs:
        assert before is None or after >= before, f"{node}: epoch {before} -> {after}"
    for before, after in world.app_moves:
        assert after in APP_TRANSITIONS[before]
    for before, after in world.node_moves:
        assert after in NODE_TRANSITIONS[before]
    assert world.plans or not affected  # a failure that touched apps changed the plan
