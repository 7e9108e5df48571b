"""``validate``: the real run first, then the simulator with the real run's planner inputs, compared."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from faillite.launch.config import ClusterConfig, NodeConfig, load_cluster_config
from faillite.profiler.format import VariantProfile
from faillite.sim.failures import FailureEvent, FailureSpecError, parse_failures
from faillite.sim.real import RealRun, run_real
from faillite.sim.run import POLICIES, simulate
from faillite.sim.timing import SimTiming
from faillite.sim.validate.calibrate import measured_constants, real_timings
from faillite.sim.validate.compare import Side, ValidationReport, compare, outcome
from faillite.sim.validate.measure import measure_profiles, run_variants

__all__ = [
    "against",
    "failure_nodes",
    "planner_config",
    "real_side",
    "sim_label",
    "sim_side",
    "validate",
    "with_policy",
]


def real_side(run: RealRun) -> Side:
    apps = {a: outcome(r) for a, r in run.apps.items()}
    return Side("real", apps, run.plan_after.get("plan") or [], run.plan_after.get("shared") or [])


def sim_side(doc: Mapping[str, Any]) -> Side:
    """From ``SimResult.to_json()``: the benchmark's per-app records under ``injections``, the final
    plan under ``plan``/``shared`` when the result has them, else each failed app's placement
    (``app_outcomes``)."""
    apps = {r["app"]: outcome(r) for inj in doc.get("injections") or [] for r in inj["apps"]}
    plan = doc.get("plan")
    if plan is None:
        plan = [
            {"app": app, **o["placement"]}
            for app, o in (doc.get("app_outcomes") or {}).items()
            if o.get("placement") is not None
        ]
    return Side("sim", apps, plan, doc.get("shared") or [])


def failure_nodes(
    config: ClusterConfig, spec: str | None, *, seed: int = 0
) -> tuple[tuple[str, ...], str] | None:
    """(nodes, kind) of the one failure ``spec`` describes (None: the real run's default victim).

    The real side injects one failure event (its nodes together): a spec with more events, or a
    repair, is refused with the reason."""
    if spec is None:
        return None
    events = parse_failures(spec, [(n.id, n.domain) for n in config.nodes], seed=seed)
    if len(events) != 1:
        raise FailureSpecError(
            f"{spec!r}: validation injects one failure event on the real cluster "
            f"(this spec gives {len(events)})"
        )
    if events[0].repair_after_s is not None:
        raise FailureSpecError(f"{spec!r}: validation does not repair nodes (drop repair=)")
    return events[0].nodes, events[0].kind


def planner_config(run: RealRun) -> ClusterConfig:
    """The cluster file as the controller saw it: node budgets as the agents registered them (the
    order they registered in does not matter: the controller plans over its nodes in id order,
    ``faillite.controller.model.planning_nodes``, and so does the simulator)."""
    registered = {n["id"]: n for n in run.nodes}
    nodes = tuple(
        NodeConfig(
            id=n.id,
            memory=int(registered.get(n.id, {}).get("memory_bytes") or n.memory),
            cores=float(registered.get(n.id, {}).get("cores") or n.cores),
            domain=registered.get(n.id, {}).get("domain", n.domain),
        )
        for n in run.config.nodes
    )
    return run.config.model_copy(update={"nodes": nodes})


def with_policy(config: ClusterConfig, policy: str | None) -> ClusterConfig:
    if policy is None or policy == config.controller.policy:
        return config
    return config.model_copy(update={"controller": config.controller.model_copy(update={"policy": policy})})


def validate(
    config_path: Path,
    *,
    failures: str | None = None,
    seed: int = 0,
    policy: str | None = None,
    workdir: Path | None = None,
    timing: SimTiming | None = None,
    timing_profiles: Sequence[VariantProfile] | None = None,
    say: Any = lambda _m: None,
) -> ValidationReport:
    """Run the failure on a real local cluster, then in the simulator with the same inputs; compare.
    ``timing``: the simulator's constants (default ``SimTiming()``; see ``measured_timing``).
    ``timing_profiles``: the models' measured times the simulated agents take (default: the real
    run's models profiled here after it, ``faillite.sim.validate.measure``; ``()``: the planner's
    estimates)."""
    config = with_policy(load_cluster_config(Path(config_path)), policy)
    failure = failure_nodes(config, failures, seed=seed)
    nodes, kind = failure if failure is not None else (None, "crash")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="faillite-validate-") as tmp:
            run = run_real(config, Path(tmp), nodes=nodes, kind=kind, say=say)
    else:
        run = run_real(config, workdir, nodes=nodes, kind=kind, say=say)
    source = "given"
    if timing_profiles is None:
        timing_profiles = measure_profiles(run.config, run_variants(run), say=say)
        source = "the real run's models, profiled on this machine after it (faillite.profiler)"
    return against(
        run,
        config=str(config_path),
        seed=seed,
        timing=timing,
        timing_profiles=timing_profiles,
        timing_source=source if timing_profiles else "the planner's estimated profiles",
    )


def sim_label(config: ClusterConfig) -> str:
    """The simulator's policy label for the controller section (its policy and progressive flag)."""
    c = config.controller
    for label, (name, progressive) in POLICIES.items():
        if name == c.policy and progressive == c.progressive:
            return label
    raise ValueError(f"the simulator has no policy {c.policy!r} with progressive={c.progressive}")


def against(
    run: RealRun,
    *,
    config: str,
    seed: int = 0,
    policy: str | None = None,
    timing: SimTiming | None = None,
    timing_profiles: Sequence[VariantProfile] = (),
    timing_source: str = "the planner's estimated profiles",
) -> ValidationReport:
    """Simulate ``run``'s failure with its planner inputs (``policy``: another policy, to see a
    difference) and compare. ``timing_profiles``: measured model times for the simulated agents
    (the planner keeps the run's estimated profiles)."""
    cfg = with_policy(planner_config(run), policy)
    failure = FailureEvent(0.0, run.failed_nodes, kind=run.kind)  # type: ignore[arg-type]
    result = simulate(
        cfg,
        [failure],
        policy=sim_label(cfg),
        seed=seed,
        profiles=run.profiles,
        timing=timing,
        timing_profiles=timing_profiles,
    )
    doc = result.to_json()
    sim, real = sim_side(doc), real_side(run)
    scope = "every app's placement and the shared fallbacks"
    if doc.get("plan") is None:  # the sim result names only the failed apps' placements
        real = Side("real", real.apps, [p for p in real.plan if p["app"] in sim.apps], [])
        scope = "the failed apps' placements (the simulator's result has no full plan)"
    return ValidationReport(
        config=config,
        failure={"nodes": list(run.failed_nodes), "kind": run.kind},
        policy=sim_label(cfg),
        seed=seed,
        sim=sim,
        real=real,
        differences=compare(sim, real),
        placements=scope,
        real_detail=run.to_json(),
        sim_detail={k: v for k, v in doc.items() if k != "injections"},  # events kept, as the real side
        calibration={
            "timing": (timing or SimTiming()).to_json(),
            "timing_profiles": {
                "source": timing_source,
                "ms": {
                    p.variant: {"load": p.load_ms, "first_infer": p.first_infer_ms, "p50": p.infer_p50_ms}
                    for p in sorted(timing_profiles, key=lambda p: p.variant)
                },
            },
            "measured": measured_constants([run]),
            "real_timings": real_timings(run),
        },
    )
