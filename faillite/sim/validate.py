"""``faillite sim validate``: the same failure on a real local cluster and in the simulator, compared.

``validate(config_path)`` runs the real side first (``faillite.sim.real.run_real``), then the
simulator with the real run's planner inputs: the profiles the controller planned with (as
``faillite up`` writes them: estimated, not profiled), the node budgets as the agents registered
them, the controller's policy, method and progressive setting, the same failure (the node the real
run failed, resolved before the simulator runs) and the same seed. Then ``compare`` lists every
difference in what must match exactly -- which apps recovered, the node and variant of each
affected app's first answer and of its settled replica, the final plan (primary and backup
node/variant/mode per app, shared fallbacks) -- and the MTTR ratio (sim mean / real mean, over
the apps each side recovered; within 25 % is the target, noted in the verdict, not part of
``match``: timings on a shared 2-core box are noisy).

Both sides are reduced to one shape (``Side``: per-app ``Outcome`` + plan) before comparison, so
the comparison is pure and tested on hand-made outcomes.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faillite.launch.config import ClusterConfig, NodeConfig, load_cluster_config
from faillite.sim.failures import FailureEvent, FailureSpecError, parse_failures
from faillite.sim.real import RealRun, run_real
from faillite.sim.run import simulate
from faillite.sim.timing import SimTiming

__all__ = [
    "MTTR_TOLERANCE",
    "Outcome",
    "Side",
    "ValidationReport",
    "against",
    "compare",
    "mttr_ratio",
    "outcome",
    "render",
    "validate",
]

#: the MTTR target: sim mean within this share of the real mean
MTTR_TOLERANCE = 0.25


@dataclass(frozen=True)
class Outcome:
    """One affected app, as either side saw it."""

    app: str
    recovered: bool
    first_node: str | None = None
    first_variant: str | None = None
    settled_node: str | None = None
    settled_variant: str | None = None
    mttr_ms: float | None = None
    phases_ms: Mapping[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "phases_ms": dict(self.phases_ms)}


@dataclass(frozen=True)
class Side:
    """One side's result: the affected apps' outcomes and the final plan."""

    name: str  # sim / real
    apps: Mapping[str, Outcome]
    plan: Sequence[Mapping[str, Any]]  # plan_to_json entries (app, primary_node, ..., backup)
    shared: Sequence[Mapping[str, Any]] = ()  # shared_to_json entries (node, family, variant, apps)

    def mttr_mean_ms(self) -> float | None:
        values = [o.mttr_ms for o in self.apps.values() if o.recovered and o.mttr_ms is not None]
        return round(statistics.fmean(values), 3) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "mttr_mean_ms": self.mttr_mean_ms(),
            "apps": {a: o.to_json() for a, o in sorted(self.apps.items())},
            "plan": [dict(p) for p in self.plan],
            "shared": [dict(s) for s in self.shared],
        }


def _placement(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    b = entry.get("backup")
    backup = None if b is None else (b.get("node"), b.get("variant"), b.get("mode"))
    return entry.get("primary_node"), entry.get("primary_variant"), backup


def _describe(p: tuple[Any, ...] | None) -> str:
    if p is None:
        return "absent"
    primary = f"{p[1]}@{p[0]}"
    if p[2] is None:
        return f"{primary}, no backup"
    return f"{primary}, {p[2][2]} backup {p[2][1]}@{p[2][0]}"


def _shared_key(s: Mapping[str, Any]) -> tuple[Any, ...]:
    return s.get("node"), s.get("family"), s.get("variant"), tuple(sorted(s.get("apps") or ()))


def compare(sim: Side, real: Side) -> list[str]:
    """Every mismatch between the two sides, one human-readable line each (empty: they match)."""
    out: list[str] = []
    only_sim, only_real = sorted(set(sim.apps) - set(real.apps)), sorted(set(real.apps) - set(sim.apps))
    if only_sim or only_real:
        out.append(f"affected apps differ: only in sim {only_sim or '-'}, only in real {only_real or '-'}")
    for app in sorted(set(sim.apps) & set(real.apps)):
        s, r = sim.apps[app], real.apps[app]
        if s.recovered != r.recovered:
            out.append(f"{app}: recovered in sim {s.recovered}, in real {r.recovered}")
            continue
        for what in ("first_variant", "first_node", "settled_variant", "settled_node"):
            sv, rv = getattr(s, what), getattr(r, what)
            if sv != rv:
                out.append(f"{app}: {what.replace('_', ' ')} sim {sv}, real {rv}")
    splan = {p["app"]: _placement(p) for p in sim.plan}
    rplan = {p["app"]: _placement(p) for p in real.plan}
    for app in sorted(set(splan) | set(rplan)):
        sp, rp = splan.get(app), rplan.get(app)
        if sp != rp:
            out.append(f"{app}: final placement sim {_describe(sp)}; real {_describe(rp)}")
    sshared = {_shared_key(s) for s in sim.shared}
    rshared = {_shared_key(s) for s in real.shared}
    for key in sorted(sshared - rshared, key=str):
        out.append(f"shared fallback {key[2]}@{key[0]} for {', '.join(key[3])} only in sim")
    for key in sorted(rshared - sshared, key=str):
        out.append(f"shared fallback {key[2]}@{key[0]} for {', '.join(key[3])} only in real")
    return out


def mttr_ratio(sim: Side, real: Side) -> float | None:
    """Sim mean MTTR / real mean MTTR (None when either side recovered nothing)."""
    s, r = sim.mttr_mean_ms(), real.mttr_mean_ms()
    if s is None or r is None or r <= 0:
        return None
    return round(s / r, 4)


@dataclass
class ValidationReport:
    config: str
    failure: dict[str, Any]  # {"nodes": [...], "kind": ...}
    policy: str
    seed: int
    sim: Side
    real: Side
    differences: list[str]
    real_detail: dict[str, Any] = field(default_factory=dict)  # RealRun.to_json()
    sim_detail: dict[str, Any] = field(default_factory=dict)  # SimResult.to_json()
    calibration: dict[str, Any] = field(default_factory=dict)  # timing inputs the sim was given

    @property
    def match(self) -> bool:
        return not self.differences

    @property
    def mttr_ratio(self) -> float | None:
        return mttr_ratio(self.sim, self.real)

    @property
    def mttr_within(self) -> bool | None:
        ratio = self.mttr_ratio
        return None if ratio is None else abs(ratio - 1) <= MTTR_TOLERANCE

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "failure": self.failure,
            "policy": self.policy,
            "seed": self.seed,
            "match": self.match,
            "mttr_ratio": self.mttr_ratio,
            "mttr_within_25pct": self.mttr_within,
            "differences": list(self.differences),
            "sim": {**self.sim.to_json(), "detail": self.sim_detail},
            "real": {**self.real.to_json(), "detail": self.real_detail},
            "calibration": self.calibration,
        }


# rendering


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _at(variant: str | None, node: str | None) -> str | None:
    return None if variant is None else f"{variant}@{node}"


_PHASES = ("detect", "decide", "load", "publish", "answer")


def render(report: ValidationReport) -> str:
    """Sim and real side by side: per failed app a sim row and a real row (``*``: the real value
    differs), with MTTR and its phases; then the placements, then the verdict."""
    sim, real = report.sim, report.real
    nodes = ", ".join(report.failure.get("nodes", []))
    out = [f"{report.failure.get('kind', 'crash')} {nodes} (policy {report.policy}, seed {report.seed})", ""]
    rows = []
    for app in sorted(set(sim.apps) | set(real.apps)):
        s, r = sim.apps.get(app), real.apps.get(app)
        cells: dict[str, list[Any]] = {}
        for side, o in (("sim", s), ("real", r)):
            cells[side] = [
                None if o is None else o.recovered,
                None if o is None else _at(o.first_variant, o.first_node),
                None if o is None else _at(o.settled_variant, o.settled_node),
            ]
        mark = ["" if a == b else " *" for a, b in zip(cells["sim"], cells["real"], strict=True)]
        for side, o in (("sim", s), ("real", r)):
            shown = [_cell(v) + (m if side == "real" else "") for v, m in zip(cells[side], mark, strict=True)]
            times = [_cell(None if o is None else o.mttr_ms)]
            times += [_cell(None if o is None else o.phases_ms.get(p)) for p in _PHASES]
            rows.append([app if side == "sim" else "", side, *shown, *times])
    header = ["app", "", "recovered", "first answer", "settled", "MTTR ms", *_PHASES]
    out += _table(header, rows)
    out += ["", "final placements (sim / real):"]
    splan = {p["app"]: _placement(p) for p in sim.plan}
    rplan = {p["app"]: _placement(p) for p in real.plan}
    prow = []
    for app in sorted(set(splan) | set(rplan)):
        sp, rp = splan.get(app), rplan.get(app)
        prow.append([app, _describe(sp), "same" if sp == rp else _describe(rp) + " *"])
    out += _table(["app", "sim", "real"], prow)
    if sim.shared or real.shared:
        fmt = lambda ss: "; ".join(sorted(f"{s['variant']}@{s['node']}" for s in ss)) or "-"  # noqa: E731
        out.append(f"shared fallbacks: sim {fmt(sim.shared)}; real {fmt(real.shared)}")
    ratio = report.mttr_ratio
    out += [
        "",
        f"MTTR mean: sim {_cell(sim.mttr_mean_ms())} ms, real {_cell(real.mttr_mean_ms())} ms, "
        f"ratio {'-' if ratio is None else f'{ratio:.2f}'}"
        + (
            ""
            if report.mttr_within is None
            else (" (within 25 %)" if report.mttr_within else " (NOT within 25 %)")
        ),
    ]
    if report.match:
        out.append("match: recovered apps, variants, nodes and placements agree")
    else:
        out.append(f"MISMATCH ({len(report.differences)}):")
        out += [f"  - {d}" for d in report.differences]
    return "\n".join(out)


# the two sides


def outcome(record: Mapping[str, Any]) -> Outcome:
    """An ``Outcome`` from the failover benchmark's per-app record (``injection_apps``), which both
    sides produce: the first answer is the first of its ``steps`` (each (variant, node) in the order
    the probe first got an answer from it), the settled node that of the last step of the settled
    variant."""
    steps = record.get("steps") or []
    first = steps[0] if steps else {}
    settled = record.get("settled_variant")
    node = next((s["node"] for s in reversed(steps) if s["variant"] == settled), None)
    return Outcome(
        app=record["app"],
        recovered=bool(record["recovered"]),
        first_node=first.get("node"),
        first_variant=first.get("variant"),
        settled_node=node,
        settled_variant=settled,
        mttr_ms=record.get("mttr_ms"),
        phases_ms=dict(record.get("phases_ms") or {}),
    )


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
    """The cluster file as the controller saw it: node budgets as the agents registered them, the
    nodes in the order they registered (the controller plans over its nodes in that order, and the
    exact planner breaks ties between equally good plans by it)."""
    registered = {n["id"]: n for n in run.nodes}
    order = {node: i for i, node in enumerate(run.registered)}
    nodes = tuple(
        NodeConfig(
            id=n.id,
            memory=int(registered.get(n.id, {}).get("memory_bytes") or n.memory),
            cores=float(registered.get(n.id, {}).get("cores") or n.cores),
            domain=registered.get(n.id, {}).get("domain", n.domain),
        )
        for n in sorted(run.config.nodes, key=lambda n: order.get(n.id, len(order)))
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
    say: Any = lambda _m: None,
) -> ValidationReport:
    """Run the failure on a real local cluster, then in the simulator with the same inputs; compare."""
    config = with_policy(load_cluster_config(Path(config_path)), policy)
    failure = failure_nodes(config, failures, seed=seed)
    nodes, kind = failure if failure is not None else (None, "crash")
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="faillite-validate-") as tmp:
            run = run_real(config, Path(tmp), nodes=nodes, kind=kind, say=say)
    else:
        run = run_real(config, workdir, nodes=nodes, kind=kind, say=say)
    return against(run, config=str(config_path), seed=seed)


def against(
    run: RealRun,
    *,
    config: str,
    seed: int = 0,
    policy: str | None = None,
    timing: SimTiming | None = None,
) -> ValidationReport:
    """Simulate ``run``'s failure with its planner inputs (``policy``: another policy, to see a
    difference) and compare."""
    cfg = with_policy(planner_config(run), policy)
    failure = FailureEvent(0.0, run.failed_nodes, kind=run.kind)  # type: ignore[arg-type]
    result = simulate(
        cfg, [failure], policy=cfg.controller.policy, seed=seed, profiles=run.profiles, timing=timing
    )
    doc = result.to_json()
    sim, real = sim_side(doc), real_side(run)
    if doc.get("plan") is None:  # the sim result names only the failed apps' placements
        real = Side("real", real.apps, [p for p in real.plan if p["app"] in sim.apps], real.shared)
    return ValidationReport(
        config=config,
        failure={"nodes": list(run.failed_nodes), "kind": run.kind},
        policy=cfg.controller.policy,
        seed=seed,
        sim=sim,
        real=real,
        differences=compare(sim, real),
        real_detail=run.to_json(),
        sim_detail={k: v for k, v in doc.items() if k not in ("injections", "events")},
        calibration={"timing": (timing or SimTiming()).to_json(), "real_timings": run.timings()},
    )
