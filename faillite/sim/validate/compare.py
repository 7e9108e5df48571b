"""The comparison: both sides reduced to one shape (``Side``: per failed app an ``Outcome``, the
final plan), the differences that break ``match``, the MTTR ratio, the report. Pure."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MTTR_TOLERANCE",
    "PHASES",
    "Outcome",
    "Side",
    "ValidationReport",
    "compare",
    "describe_placement",
    "mttr_ratio",
    "outcome",
    "phase_means",
    "placement",
]

#: the MTTR phases shown side by side (faillite.bench.phases; ``settle`` comes after the MTTR)
PHASES = ("detect", "decide", "load", "publish", "answer")

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


def placement(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    b = entry.get("backup")
    backup = None if b is None else (b.get("node"), b.get("variant"), b.get("mode"))
    return entry.get("primary_node"), entry.get("primary_variant"), backup


def describe_placement(p: tuple[Any, ...] | None) -> str:
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
    splan = {p["app"]: placement(p) for p in sim.plan}
    rplan = {p["app"]: placement(p) for p in real.plan}
    for app in sorted(set(splan) | set(rplan)):
        sp, rp = splan.get(app), rplan.get(app)
        if sp != rp:
            out.append(f"{app}: final placement sim {describe_placement(sp)}; real {describe_placement(rp)}")
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
    placements: str = "every app's placement and the shared fallbacks"  # what was compared
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
            "placements_compared": self.placements,
            "mttr_ratio": self.mttr_ratio,
            "mttr_within_25pct": self.mttr_within,
            "differences": list(self.differences),
            "sim": {**self.sim.to_json(), "detail": self.sim_detail},
            "real": {**self.real.to_json(), "detail": self.real_detail},
            "phases_ms": {"sim": phase_means(self.sim), "real": phase_means(self.real)},
            "calibration": self.calibration,
        }


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


def phase_means(side: Side) -> dict[str, float | None]:
    """Mean of each MTTR phase (ms) over the side's recovered apps that have it."""
    out: dict[str, float | None] = {}
    for name in (*PHASES, "settle"):
        values = [v for o in side.apps.values() if o.recovered and (v := o.phases_ms.get(name)) is not None]
        out[name] = round(statistics.fmean(values), 3) if values else None
    return out
