"""From the controller's records to the planner's inputs, and plans to and from JSON.

The controller plans with the pure ``faillite.placement`` package; this module builds its
``Instance`` from app specs, the node registry and the families' variant profiles, and turns
app specs that cannot work into ``SpecError`` with a message a user can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from faillite.placement import (
    App,
    Assignment,
    Backup,
    Family,
    Instance,
    Mode,
    Node,
    Plan,
    PlannerParams,
    SharedFallback,
    Variant,
)
from faillite.plancfg import variant_from_profile
from faillite.profiler.format import VariantProfile

__all__ = [
    "AppSpec",
    "SpecError",
    "build_families",
    "build_instance",
    "plan_from_json",
    "plan_to_json",
    "shared_to_json",
    "to_app",
]


class SpecError(ValueError):
    """An app spec the cluster cannot run (unknown family or variant, SLO nobody meets...)."""


class AppSpec(BaseModel):
    """One app as users declare it (``POST /v1/apps``, the ``apps`` list of a cluster file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    family: str
    variant: str | None = Field(
        default=None, description="primary variant; default: most accurate within SLO"
    )
    slo_ms: float = Field(gt=0, description="latency bound of one request (p99)")
    weight: float = Field(default=1.0, gt=0, description="criticality weight in the objective")
    critical: bool = False
    max_recovery_ms: float | None = Field(default=None, gt=0)
    rate: float = Field(default=0.0, ge=0, description="expected requests per second")
    node: str | None = Field(default=None, description="pin the primary to this node")


def build_families(
    profiles: Iterable[VariantProfile], keys: Mapping[str, str | None] | None = None
) -> dict[str, Family]:
    """Families from variant profiles; ``keys``: each family's fallback key (from its manifest:
    families with equal keys can answer for each other's apps)."""
    grouped: dict[str, list[Variant]] = {}
    for p in profiles:
        grouped.setdefault(p.family, []).append(variant_from_profile(p))
    return {
        name: Family(name, tuple(sorted(vs, key=lambda v: -v.accuracy)), (keys or {}).get(name))
        for name, vs in grouped.items()
    }


def to_app(spec: AppSpec, families: Mapping[str, Family], nodes: Sequence[str] | None = None) -> App:
    family = families.get(spec.family)
    if family is None:
        raise SpecError(
            f"app {spec.name!r}: unknown family {spec.family!r} (known: {', '.join(sorted(families))})"
        )
    if spec.node is not None and nodes is not None and spec.node not in nodes:
        raise SpecError(f"app {spec.name!r}: node {spec.node!r} is not in the cluster ({', '.join(nodes)})")
    if spec.variant is not None:
        names = [v.name for v in family.variants]
        if spec.variant not in names:
            raise SpecError(
                f"app {spec.name!r}: family {family.name!r} has no variant {spec.variant!r}"
                f" (known: {', '.join(names)})"
            )
        chosen = family.variant(spec.variant)
        if chosen.latency_ms > spec.slo_ms:
            raise SpecError(
                f"app {spec.name!r}: variant {chosen.name} takes {chosen.latency_ms:.2f} ms (p99), "
                f"over the SLO of {spec.slo_ms:g} ms"
            )
    else:
        within = [v for v in family.variants if v.latency_ms <= spec.slo_ms]
        if not within:
            fastest = min(family.variants, key=lambda v: v.latency_ms)
            raise SpecError(
                f"app {spec.name!r}: no variant of {family.name!r} meets the SLO of {spec.slo_ms:g} ms "
                f"(fastest: {fastest.name}, {fastest.latency_ms:.2f} ms p99)"
            )
        chosen = max(within, key=lambda v: (v.accuracy, -v.memory_bytes))
    return App(
        name=spec.name,
        family=family.name,
        primary_variant=chosen.name,
        slo_ms=spec.slo_ms,
        weight=spec.weight,
        critical=spec.critical,
        max_recovery_ms=spec.max_recovery_ms,
        request_rate=spec.rate,
        primary_node=spec.node,
    )


def build_instance(
    specs: Iterable[AppSpec],
    nodes: Iterable[Node],
    families: Mapping[str, Family],
    params: PlannerParams,
    primaries: Mapping[str, tuple[str, str]] | None = None,
) -> Instance:
    """``primaries`` pins apps to where they already run (node, variant)."""
    node_list = tuple(nodes)
    node_ids = [n.id for n in node_list]
    apps = []
    for spec in specs:
        pinned = (primaries or {}).get(spec.name)
        # An app already placed is where it runs: its spec's own pin may name a node now down.
        app = to_app(spec, families, None if pinned else node_ids)
        if pinned is not None:
            app = App(**{**app.__dict__, "primary_node": pinned[0], "primary_variant": pinned[1]})
        apps.append(app)
    used = sorted({a.family for a in apps})
    return Instance(node_list, tuple(families[f] for f in used), tuple(apps), params)


def plan_to_json(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "app": a.app,
            "primary_node": a.primary_node,
            "primary_variant": a.primary_variant,
            "backup": None
            if a.backup is None
            else {"node": a.backup.node, "variant": a.backup.variant, "mode": a.backup.mode.value},
        }
        for a in plan
    ]


def shared_to_json(plan: Plan) -> list[dict[str, Any]]:
    """The plan's shared warm fallbacks (stored and served beside ``plan_to_json``'s list)."""
    return [
        {"node": s.node, "family": s.family, "variant": s.variant, "apps": list(s.apps)} for s in plan.shared
    ]


def plan_from_json(doc: list[dict[str, Any]], shared: list[dict[str, Any]] | None = None) -> Plan:
    return Plan(
        tuple(
            Assignment(
                app=d["app"],
                primary_node=d["primary_node"],
                primary_variant=d["primary_variant"],
                backup=None
                if d["backup"] is None
                else Backup(d["backup"]["node"], d["backup"]["variant"], Mode(d["backup"]["mode"])),
            )
            for d in doc
        ),
        tuple(SharedFallback(s["node"], s["family"], s["variant"], tuple(s["apps"])) for s in shared or ()),
    )
