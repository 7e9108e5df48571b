"""Figures per policy from the runs' records, the JSON document and the terminal table. Pure.

Accuracy drop of a recovered app: its primary's accuracy minus the accuracy of the variant that
served it at the end of the observation (absolute, in points of accuracy); apps that never
recovered are counted in ``recovered_share``, not in the drop. Weighted: by the apps' weights.
MTTR ratio to full-cold: a policy's mean MTTR over full-cold's mean MTTR, both from this run.
"""

from __future__ import annotations

import statistics
from typing import Any

from faillite.bench.failover.run import PolicyRun, plan_backups
from faillite.bench.failover.scenarios import Scenario
from faillite.bench.recovery import AppRecovery, percentile
from faillite.controller.planning import plan_from_json

__all__ = ["PUBLISHED", "document", "policy_figures", "table"]

#: FailLite's published figures (arXiv 2504.15856), GPU edge testbed.
PUBLISHED = {"mttr_mean_ms": 175.5, "accuracy_drop_mean": 0.006, "recovered_share": 1.0}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _app_json(a: AppRecovery, weight: float) -> dict[str, Any]:
    drop = None
    if a.recovered and a.accuracy_before is not None and a.accuracy_after is not None:
        drop = round(a.accuracy_before - a.accuracy_after, 6)
    return {
        "app": a.app,
        "critical": a.critical,
        "weight": weight,
        "mode": a.mode,
        "recovered": a.recovered,
        "mttr_ms": a.mttr_ms,
        "full_recovery_ms": a.full_recovery_ms,
        "failed_requests": a.failed_requests,
        "requests": a.requests_after,
        "accuracy_before": a.accuracy_before,
        "accuracy_after": a.accuracy_after,
        "accuracy_drop": drop,
        "steps": [{"variant": s.variant, "node": s.node, "at_ms": s.at_ms} for s in a.steps],
    }


def planned_drop(run: PolicyRun, scenario: Scenario) -> float | None:
    """Mean accuracy drop the deployed plan promises over protected apps (primary - backup)."""
    drops = []
    for a in plan_from_json(run.plan):
        if a.backup is None:
            continue
        family = run.apps[a.app]["family"]
        drops.append(
            scenario.accuracy_of(family, a.primary_variant) - scenario.accuracy_of(family, a.backup.variant)
        )
    return _r(statistics.fmean(drops), 6) if drops else None


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    mttrs = [r["mttr_ms"] for r in records if r["mttr_ms"] is not None]
    fulls = [r["full_recovery_ms"] for r in records if r["full_recovery_ms"] is not None]
    drops = [(r["accuracy_drop"], r["weight"]) for r in records if r["accuracy_drop"] is not None]
    return {
        "failed_apps": len(records),
        "recovered": sum(1 for r in records if r["recovered"]),
        "recovered_share": _r(sum(1 for r in records if r["recovered"]) / len(records), 4)
        if records
        else None,
        "mttr_mean_ms": _r(statistics.fmean(mttrs)) if mttrs else None,
        "mttr_p50_ms": _r(percentile(mttrs, 50)),
        "mttr_p99_ms": _r(percentile(mttrs, 99)),
        "full_recovery_mean_ms": _r(statistics.fmean(fulls)) if fulls else None,
        "accuracy_drop_mean": _r(statistics.fmean(d for d, _ in drops), 6) if drops else None,
        "accuracy_drop_weighted": _r(sum(d * w for d, w in drops) / sum(w for _, w in drops), 6)
        if drops
        else None,
        "failed_requests": sum(r["failed_requests"] for r in records),
    }


def policy_figures(run: PolicyRun, scenario: Scenario) -> dict[str, Any]:
    if not run.deployed:
        return {"deployed": False, "refusal": run.refusal, "headroom": run.headroom}
    injections = []
    flat: list[dict[str, Any]] = []
    for inj in run.injections:
        apps = [_app_json(a, float(run.apps[a.app].get("weight", 1.0))) for a in inj.apps]
        flat += [{**a, "node": inj.node, "kind": inj.kind} for a in apps]
        injections.append(
            {
                "node": inj.node,
                "kind": inj.kind,
                "observe_ms": inj.observe_ms,
                "restore_ms": inj.restore_ms,
                "apps": apps,
            }
        )
    warm, cold = plan_backups(run, scenario)
    kinds = sorted({r["kind"] for r in flat})
    return {
        "deployed": True,
        "error": run.error,
        "policy": run.policy,
        "progressive": run.progressive,
        "headroom": run.headroom,
        **_summary(flat),
        "by_kind": {k: _summary([r for r in flat if r["kind"] == k]) for k in kinds},
        "by_mode": {
            m: _summary([r for r in flat if r["mode"] == m]) for m in sorted({r["mode"] for r in flat})
        },
        "backup_memory_bytes": warm,
        "cold_reserved_bytes": cold,
        "protected_apps": sum(1 for a in plan_from_json(run.plan) if a.backup is not None),
        "apps": len(run.apps),
        "planned_accuracy_drop_mean": planned_drop(run, scenario),
        "requests": run.requests,
        "failed_requests_all": run.failed_requests_total,
        "cluster_start_s": run.start_s,
        "elapsed_s": run.elapsed_s,
        "injections": injections,
    }


def with_ratios(policies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each policy's mean MTTR over full-cold's, both measured in this run (None where undefined)."""
    base = (policies.get("full-cold") or {}).get("mttr_mean_ms")
    for p in policies.values():
        mean = p.get("mttr_mean_ms")
        p["mttr_ratio_to_full_cold"] = _r(mean / base, 4) if mean is not None and base else None
    return policies


def document(
    scenario: Scenario,
    runs: list[PolicyRun],
    sweep: list[PolicyRun],
    *,
    kinds: list[str],
    failures: list[tuple[str, str]],
    load: str,
    elapsed_s: float,
    command: str,
) -> dict[str, Any]:
    policies = with_ratios({r.label: policy_figures(r, scenario) for r in runs})
    sweep_rows = []
    for r in sweep:
        fig = policy_figures(r, scenario)
        sweep_rows.append(
            {
                "policy": r.label,
                "headroom": r.headroom,
                "deployed": r.deployed,
                "refusal": r.refusal,
                **{
                    k: fig.get(k)
                    for k in (
                        "recovered_share",
                        "mttr_mean_ms",
                        "accuracy_drop_mean",
                        "accuracy_drop_weighted",
                        "backup_memory_bytes",
                        "failed_apps",
                    )
                },
            }
        )
    return {
        "scenario": scenario.name,
        "scale": scenario.scale if scenario.accuracy_source == "published" else 1.0,
        "input_px": scenario.input_px if scenario.accuracy_source == "published" else None,
        "accuracy_source": scenario.accuracy_source,
        "headroom": runs[0].headroom if runs else None,
        "nodes": scenario.nodes,
        "apps": len(scenario.apps),
        "node_budget_bytes": scenario.budget(runs[0].headroom) if runs else None,
        "detector": scenario.detector().describe(),
        "failure_kinds": kinds,
        "failed_nodes": sorted({n for n, _ in failures}),
        "injections_per_policy": [{"node": n, "kind": k} for n, k in failures],
        "load_before": load,
        "elapsed_s": round(elapsed_s, 1),
        "command": command,
        "published_faillite": PUBLISHED,
        "policies": policies,
        "sweep": sweep_rows,
    }


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "pts":
        return f"{v * 100:.2f}"
    if kind == "ms":
        return f"{v:.0f}"
    if kind == "mib":
        return f"{v / 2**20:.1f}"
    if kind == "x":
        return f"{v:.2f}"
    return str(v)


_COLUMNS = [
    ("policy", "", 24),
    ("recovered_share", "pct", 9),
    ("mttr_mean_ms", "ms", 7),
    ("mttr_p50_ms", "ms", 6),
    ("mttr_p99_ms", "ms", 6),
    ("full_recovery_mean_ms", "ms", 7),
    ("accuracy_drop_mean", "pts", 7),
    ("accuracy_drop_weighted", "pts", 7),
    ("failed_requests", "", 6),
    ("backup_memory_bytes", "mib", 8),
    ("mttr_ratio_to_full_cold", "x", 6),
]
_HEAD = ["policy", "recovered", "MTTR", "p50", "p99", "full", "drop", "w.drop", "failed", "warm MiB", "/cold"]


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"failover benchmark: scenario {doc['scenario']}, {doc['apps']} apps on {doc['nodes']} nodes, "
        f"headroom {doc['headroom']:.0%}, failures {'+'.join(doc['failure_kinds'])} of "
        f"{', '.join(doc['failed_nodes'])}",
        "  ".join(
            f"{h:>{w}}" if i else f"{h:<{w}}"
            for i, (h, (_, _, w)) in enumerate(zip(_HEAD, _COLUMNS, strict=True))
        ),
    ]
    for label, p in doc["policies"].items():
        if not p["deployed"]:
            lines.append(f"{label:<24}  plan refused: {p['refusal'][:120]}")
            continue
        cells = [f"{label:<24}"] + [f"{_fmt(p.get(k), kind):>{w}}" for k, kind, w in _COLUMNS[1:]]
        lines.append("  ".join(cells))
    src = (
        "measured on a held-out split" if doc["accuracy_source"] == "measured" else "PUBLISHED ImageNet top-1"
    )
    lines.append(
        "MTTR/full in ms (client-observed, mean over recovered apps); drop in accuracy points over "
        f"recovered apps (accuracies: {src}); /cold = MTTR mean over full-cold's"
    )
    for kind in doc["failure_kinds"]:
        parts = [
            f"{label} {_fmt(p['by_kind'][kind]['mttr_mean_ms'], 'ms')}"
            for label, p in doc["policies"].items()
            if p["deployed"] and kind in p["by_kind"]
        ]
        lines.append(f"  {kind} MTTR mean (ms): " + ", ".join(parts))
    if doc["sweep"]:
        lines.append("spare-memory sweep (recovered share / accuracy drop points):")
        for row in doc["sweep"]:
            if not row["deployed"]:
                lines.append(f"  {row['headroom']:>5.0%} {row['policy']:<24} plan refused")
                continue
            lines.append(
                f"  {row['headroom']:>5.0%} {row['policy']:<24} {_fmt(row['recovered_share'], 'pct'):>7} "
                f"{_fmt(row['accuracy_drop_mean'], 'pts'):>6}"
            )
    return "\n".join(lines)
