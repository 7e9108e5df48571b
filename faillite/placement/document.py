"""The plan as a JSON-ready dict (``faillite plan --json``): self-contained, so that a plan can be
checked against its instance without reading this code (see ``faillite.plancheck``)."""

from __future__ import annotations

from typing import Any

from faillite.placement.model import Instance, Mode, PlanResult

__all__ = ["PLAN_SCHEMA", "instance_document", "plan_document"]

PLAN_SCHEMA = "faillite.plan/v1"


def instance_document(inst: Instance) -> dict[str, Any]:
    p = inst.params
    return {
        "params": {"detection_ms": p.detection_ms, "switch_ms": p.switch_ms, "use_domains": p.use_domains},
        "nodes": [
            {
                "id": n.id,
                "memory_bytes": n.memory_bytes,
                "domain": n.domain,
                "cores": n.cores,
                "speed": n.speed,
            }
            for n in inst.nodes
        ],
        "families": {
            f.name: [
                {
                    "variant": v.name,
                    "accuracy": v.accuracy,
                    "memory_bytes": v.memory_bytes,
                    "load_ms": v.load_ms,
                    "first_infer_ms": v.first_infer_ms,
                    "latency_ms": v.latency_ms,
                    "service_ms": v.service_ms,
                }
                for v in f.variants
            ]
            for f in inst.families
        },
        # families with the same key can answer for each other (shared warm fallbacks)
        "fallback_keys": {f.name: f.task for f in inst.families if f.task is not None},
        "apps": [
            {
                "name": a.name,
                "family": a.family,
                "slo_ms": a.slo_ms,
                "weight": a.weight,
                "critical": a.critical,
                "max_recovery_ms": a.max_recovery_ms,
                "request_rate": a.request_rate,
                "given_primary": None
                if a.primary_node is None
                else {"node": a.primary_node, "variant": a.primary_variant},
                "primary": None,
                "backup": None,
            }
            for a in inst.apps
        ],
    }


def plan_document(
    inst: Instance, result: PlanResult, *, solve_seconds: float | None = None, best_effort: bool = False
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": PLAN_SCHEMA,
        "method": result.method,
        "policy": result.policy,
        "best_effort": best_effort,
        "status": result.status.value,
        "objective": result.objective,
        "bound": result.bound,
        "solve_seconds": solve_seconds if solve_seconds is not None else result.solver_seconds,
        "reasons": list(result.reasons),
    }
    doc.update(instance_document(inst))
    if result.plan is None:
        return doc
    by_app = result.plan.by_app()
    nodes = {n.id: n for n in inst.nodes}
    weight = drop = rec = 0.0
    warm = cold = protected = 0
    for entry in doc["apps"]:
        app = inst.app(entry["name"])
        asg = by_app[app.name]
        pv = inst.variant(app.family, asg.primary_variant)
        entry["primary"] = {
            "node": asg.primary_node,
            "variant": pv.name,
            "memory_bytes": pv.memory_bytes,
            "accuracy": pv.accuracy,
        }
        kept = 0.0
        b = asg.backup
        if b is not None:
            v = inst.variant(app.family, b.variant)
            node = nodes[b.node]
            if b.mode is Mode.WARM:
                rt = inst.params.warm_recovery_ms()
                warm += v.memory_bytes
            else:
                rt = inst.params.cold_recovery_ms(v, node)
                cold += v.memory_bytes
            entry["backup"] = {
                "node": b.node,
                "variant": v.name,
                "memory_bytes": v.memory_bytes,
                "accuracy": v.accuracy,
                "mode": b.mode.value,
                "expected_recovery_ms": round(rt, 3),
            }
            kept = v.accuracy
            rec += rt
            protected += 1
        sf = result.plan.shared_for(app.name)
        entry["shared_fallback"] = None
        if sf is not None:
            fv = inst.variant(sf.family, sf.variant)
            entry["shared_fallback"] = {"node": sf.node, "variant": fv.name, "accuracy": fv.accuracy}
        entry["expected_accuracy_drop"] = round(pv.accuracy - kept, 6)
        weight += app.weight
        drop += app.weight * (pv.accuracy - kept)
    doc["shared"] = [
        {
            "node": sf.node,
            "family": sf.family,
            "variant": sf.variant,
            "memory_bytes": inst.variant(sf.family, sf.variant).memory_bytes,
            "accuracy": inst.variant(sf.family, sf.variant).accuracy,
            "apps": list(sf.apps),
        }
        for sf in result.plan.shared
    ]
    doc["totals"] = {
        "apps": len(inst.apps),
        "protected": protected,
        "weighted_accuracy_drop": round(drop / weight, 6) if weight else 0.0,
        "mean_expected_recovery_ms": round(rec / protected, 3) if protected else None,
        "warm_backup_bytes": warm,
        "cold_reserved_bytes": cold,
        "shared_fallback_bytes": sum(x["memory_bytes"] for x in doc["shared"]),
        "shared_covered": sum(len(x["apps"]) for x in doc["shared"]),
    }
    return doc
