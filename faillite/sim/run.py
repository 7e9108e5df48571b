"""``simulate``: one policy on one cluster through a list of failures, on the simulated clock.

The cluster starts deployed: the controller's own app addition (``policy.add_request`` and
``app_added``: the real planner) gives the plan, and every node holds what the plan wants
loaded (primaries, warm backups, shared fallbacks), every app served from its primary (only the
primaries have answered: a warm backup's first request is a first run, as on a real cluster). Each
failure happens ``start_s`` + its ``at_s`` into the run; a repair restarts the node's agent,
which registers again (``policy.node_registered``: REJOINING, cleaned, failback). The run ends
once the last failure's observation closed and the last repair is ``tail_s`` behind.

Planner choice: the configured method, except exact beyond ``EXACT_MAX_APPS`` apps, where
CP-SAT cannot finish within the controller's time limit: greedy then, and ``method`` says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from faillite.bench.failover.run import POLICIES  # the failover benchmark's policies, one table
from faillite.controller import policy as pol
from faillite.controller.config import make_detector
from faillite.controller.decide import Replica, SetServing
from faillite.controller.effects import SetAgent
from faillite.controller.model import AgentView, ControlState, PolicyConfig
from faillite.controller.planning import plan_to_json, shared_to_json
from faillite.controller.reduce import apply
from faillite.controller.states import AppState
from faillite.launch.config import ClusterConfig
from faillite.placement import Assignment, Mode, PlannerParams, Variant
from faillite.profiler.format import VariantProfile
from faillite.sim.agents import SimAgent
from faillite.sim.control import SimController
from faillite.sim.detect import BeatModel
from faillite.sim.engine import Engine
from faillite.sim.failures import FailureEvent
from faillite.sim.inputs import SimInputs, build_inputs
from faillite.sim.metrics import figures, memory_figures
from faillite.sim.observe import Observer
from faillite.sim.timing import SimTiming

__all__ = ["EXACT_MAX_APPS", "POLICIES", "SimResult", "simulate"]

#: Beyond this many apps the exact planner cannot finish in the controller's time limit.
EXACT_MAX_APPS = 200


_START_S = 1.0  # failures happen this long after the start (the probes lead them)
_TAIL_S = 30.0  # after the last repair: rejoin, failback


@dataclass
class SimResult:
    label: str
    figures: dict[str, Any]
    method: dict[str, Any]
    apps: dict[str, dict[str, Any]]  # per failed app: recovered, where it serves, its placement
    events: list[dict[str, Any]]
    sim_seconds: float  # wall time of the run (with planner_seconds, the figures that vary)
    engine_events: int
    simulated_s: float
    planner_calls: int
    extra: dict[str, Any] = field(default_factory=dict)
    planner_seconds: float = 0.0  # wall time in planner calls (part of sim_seconds)
    plan: list[dict[str, Any]] = field(default_factory=list)  # the final plan, every app
    shared: list[dict[str, Any]] = field(default_factory=list)  # the final shared fallbacks

    def to_json(self, *, events: bool = True) -> dict[str, Any]:
        doc = {
            **self.figures,
            "method": self.method,
            "sim_seconds": round(self.sim_seconds, 3),
            "planner_seconds": round(self.planner_seconds, 3),
            "engine_events": self.engine_events,
            "sim_us_per_event": round(self.sim_seconds / max(self.engine_events, 1) * 1e6, 2),
            "simulated_s": round(self.simulated_s, 3),
            "planner_calls": self.planner_calls,
            "app_outcomes": self.apps,
            **self.extra,
            "plan": self.plan,
            "shared": self.shared,
        }
        if events:
            doc["events"] = self.events
        return doc


def choose_method(config: ClusterConfig, method: str | None) -> dict[str, Any]:
    asked = method or config.controller.method
    n = len(config.apps)
    if asked == "exact" and n > EXACT_MAX_APPS:
        why = f"{n} apps: exact (CP-SAT) cannot finish within the time limit beyond {EXACT_MAX_APPS}"
        return {"asked": asked, "ran": "greedy", "reason": why}
    return {"asked": asked, "ran": asked, "reason": "as configured" if method is None else "as asked"}


def simulate(
    config: ClusterConfig,
    failures: Sequence[FailureEvent],
    *,
    policy: str,
    seed: int = 0,
    profiles: Sequence[VariantProfile] | None = None,
    method: str | None = None,
    timing: SimTiming | None = None,
    inputs: SimInputs | None = None,
    full_reconcile: bool = False,
    timing_profiles: Sequence[VariantProfile] | None = None,
) -> SimResult:
    """``full_reconcile``: every reconcile pass on the whole state (slow at scale; the focused
    passes must give the same run, ``faillite.sim.focus``). ``timing_profiles``: measured
    profiles whose load, first-inference and steady times the simulated agents take (timing
    only: the planner keeps ``profiles``, else the plans differ from the controller's)."""
    started = time.perf_counter()
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (known: {', '.join(POLICIES)})")
    name, progressive = POLICIES[policy]
    timing = timing or SimTiming()
    inputs = inputs or build_inputs(config, profiles)
    chosen = choose_method(config, method)
    detector = make_detector(config.controller.heartbeat_interval_ms, config.controller.heartbeat_timeout_ms)
    params = PlannerParams(detection_ms=detector.quiet_timeout_s() * 1000, switch_ms=5.0)
    cfg = PolicyConfig(
        policy=name, method=chosen["ran"], progressive=progressive, unload_grace_s=timing.unload_grace_s
    )
    state = ControlState(families=dict(inputs.families), params=params, config=cfg)
    engine = Engine()
    variants = timed_variants(inputs, timing_profiles)
    agents = {n.id: SimAgent(n.id, n.memory_bytes, engine, timing, variants) for n in inputs.nodes}
    beats = BeatModel(detector, timing.beat_jitter_s, seed)
    accuracy = {(f.name, v.name): v.accuracy for f in inputs.families.values() for v in f.variants}
    box: dict[str, Observer] = {}
    controller = SimController(
        engine, timing, state, agents, detector, beats, publish=lambda: box["o"].publish()
    )
    observer = box["o"] = Observer(
        engine, timing, controller, agents, accuracy, inputs.variant_accuracy(), seed=seed
    )
    for agent in agents.values():
        agent.on_change = lambda _node: observer.touch()
    for n in inputs.nodes:
        controller.execute(
            pol.node_registered(
                state,
                n.id,
                url=f"sim://{n.id}",
                memory_bytes=n.memory_bytes,
                cores=n.cores,
                domain=n.domain,
                pid=None,
                epoch=0,
            )
        )
    request = pol.add_request(state, inputs.specs)
    result = controller._timed(request.solve)
    chosen["initial_status"] = result.status.value
    try:
        controller.execute(pol.app_added(state, request, result))
    except pol.PlanRefused as exc:
        return _refused(policy, name, progressive, chosen, str(exc), started)
    _deploy(state, agents)
    controller.focus.reset()
    controller.full_passes = full_reconcile
    weights = {s.name: s.weight for s in inputs.specs}
    app_family = {s.name: s.family for s in inputs.specs}
    memory = memory_figures(state.plan, inputs.families, app_family)
    shared_apps = {a for sf in state.plan.shared for a in sf.apps}

    last = 0.0
    for f in failures:
        at = _START_S + f.at_s
        engine.at(at - timing.probe_lead_s, observer.lead, f.nodes, at)
        engine.at(at, _fail, f, controller, observer, agents)
        last = max(last, at)
        if f.repair_after_s is not None:
            engine.at(at + f.repair_after_s, _repair, f, controller, observer, agents)
            last = max(last, at + f.repair_after_s + _TAIL_S)
    engine.run(until=last)
    while observer.open:  # the last observations close by their own timeout
        engine.run(until=engine.now + timing.settle_timeout_s)
    end = engine.now
    figs = figures(
        label=policy,
        policy=name,
        progressive=progressive,
        injections=observer.injections,
        workload=observer.workload(),
        weights=weights,
        shared_apps=shared_apps,
        memory=memory,
        offered_rps=sum(s.rate for s in inputs.specs),
        dropped=observer.dropped(),
        window_s=end,
    )
    outcomes = _outcomes(state, figs, accuracy)
    return SimResult(
        label=policy,
        figures=figs,
        method=chosen,
        apps=outcomes,
        events=controller.events,
        sim_seconds=time.perf_counter() - started,
        engine_events=engine.events,
        simulated_s=end,
        planner_calls=controller.replans + 1,
        extra={"controller_task_errors": controller.task_errors},
        planner_seconds=controller.planner_seconds,
        plan=sorted(plan_to_json(state.plan), key=lambda a: a["app"]),  # as GET /v1/plan says it
        shared=shared_to_json(state.plan),
    )


def timed_variants(inputs: SimInputs, timing_profiles: Sequence[VariantProfile] | None) -> dict[str, Variant]:
    """variant name -> the variant the agents time (the planner's, with the measured load,
    first-inference and p50 times of ``timing_profiles`` where they name it)."""
    measured = {(p.family, p.variant): p for p in timing_profiles or ()}
    out: dict[str, Variant] = {}
    for f in inputs.families.values():
        for v in f.variants:
            p = measured.get((f.name, v.name))
            out[v.name] = (
                v
                if p is None
                else replace(v, load_ms=p.load_ms, first_infer_ms=p.first_infer_ms, service_ms=p.infer_p50_ms)
            )
    return out


def _deploy(state: ControlState, agents: dict[str, SimAgent]) -> None:
    """Every node holds what the plan wants loaded; every app answers from its primary (only the
    primaries have served a request: a backup's or shared fallback's first answer is a first run)."""
    wanted: dict[str, set[str]] = {}
    for a in state.plan:
        wanted.setdefault(a.primary_node, set()).add(a.primary_variant)
        agents[a.primary_node].served.add(a.primary_variant)
        if a.backup is not None and a.backup.mode is Mode.WARM:
            wanted.setdefault(a.backup.node, set()).add(a.backup.variant)
    for sf in state.plan.shared:
        wanted.setdefault(sf.node, set()).add(sf.variant)
    for node, variants in wanted.items():
        agent = agents[node]
        for v in variants:
            agent.loaded[v] = agent.variants[v].memory_bytes
        apply(state, SetAgent(node, AgentView(frozenset(variants), agent.used, True), "deployed"))
    for a in state.plan:
        replica = Replica(a.primary_node, a.primary_variant)
        apply(state, SetServing(a.app, replica, AppState.PRIMARY, "deployed: the primary is ready"))


def _fail(
    f: FailureEvent, controller: SimController, observer: Observer, agents: dict[str, SimAgent]
) -> None:
    now = controller.now
    for node in f.nodes:
        agent = agents[node]
        if agent.state != "up":
            continue
        observer.failing(node, f.kind)
        observer.touch()
        if f.kind == "crash":
            waiting = agent.crash()
            observer.node_fault(node, crashed=True)
            close = now + controller.timing.crash_close_s
            controller.engine.at(close, controller.connection_closed, node)
            for done in waiting:
                controller.engine.at(close, done, False, "connection closed")
        else:
            agent.hang()
            observer.node_fault(node, crashed=False)
            controller.stopped_beating(node, now)


def _repair(
    f: FailureEvent, controller: SimController, observer: Observer, agents: dict[str, SimAgent]
) -> None:
    for node in f.nodes:
        agent = agents[node]
        if agent.state == "up":
            continue
        observer.touch()
        agent.restart()
        controller.registered(agent, f"sim://{node}")


def _outcomes(
    state: ControlState, figs: dict[str, Any], accuracy: dict[tuple[str, str], float]
) -> dict[str, Any]:
    plan = state.plan.by_app()
    out: dict[str, dict[str, Any]] = {}
    for inj in figs["injections"]:
        for a in inj["apps"]:
            app = a["app"]
            s = state.serving.get(app)
            asg = plan.get(app)
            prior = out.get(app, {})
            out[app] = {
                "recovered": bool(prior.get("recovered", True)) and a["recovered"],
                "failures": prior.get("failures", 0) + 1,
                "state": None if s is None else s.state.value,
                "node": None if s is None or s.replica is None else s.replica.node,
                "variant": None if s is None or s.replica is None else s.replica.variant,
                "placement": None if asg is None else _placement(asg),
            }
    return dict(sorted(out.items()))


def _placement(asg: Assignment) -> dict[str, Any]:
    b = asg.backup
    backup = None if b is None else {"node": b.node, "variant": b.variant, "mode": b.mode.value}
    return {"primary_node": asg.primary_node, "primary_variant": asg.primary_variant, "backup": backup}


def _refused(
    policy: str, name: str, progressive: bool, chosen: dict[str, Any], why: str, started: float
) -> SimResult:
    figs = {"deployed": False, "refusal": why, "headroom": None, "load": "open", "policy": name}
    return SimResult(
        policy, figs, chosen, {}, [], time.perf_counter() - started, 0, 0.0, 1, {"progressive": progressive}
    )
