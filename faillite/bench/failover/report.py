"""Figures per policy from the runs' records, the JSON document and the terminal tables. Pure.

MTTR (and settle time, first-answer and settled accuracy) come from the probe streams
(``faillite.bench.failover.outcome``); failed requests and touched latency from the workload.
Accuracy drop of a recovered app: its primary's accuracy minus the accuracy of the variant that
served it at the end of the observation (the settled one when it answered; as fractions, shown as
points); apps that never recovered are counted in ``recovered_share``, not in the drop. Weighted:
by the apps' weights. MTTR ratio to full-cold: a policy's mean MTTR over full-cold's mean MTTR,
both from this run. Timestamps: controller events' ``mono`` and every request record are
CLOCK_MONOTONIC, one clock for all processes on this machine.
"""

from __future__ import annotations

import statistics
from typing import Any

from faillite.bench import phases
from faillite.bench.failover.outcome import injection_apps, steady_latency
from faillite.bench.failover.run import PolicyRun, plan_backups
from faillite.bench.failover.scenarios import Scenario
from faillite.bench.stats import percentile
from faillite.controller.planning import plan_from_json

__all__ = ["PUBLISHED", "document", "policy_figures"]

#: FailLite's published figures (arXiv 2504.15856), GPU edge testbed.
PUBLISHED = {"mttr_mean_ms": 175.5, "accuracy_drop_mean": 0.006, "recovered_share": 1.0}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


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


def _mean(values: list[float], nd: int = 2) -> float | None:
    return _r(statistics.fmean(values), nd) if values else None


def _phase_stats(records: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per phase, (mean, p99) in ms over the recovered apps that have it (as phase_summary.summarize)."""
    means, p99s = {}, {}
    for name in phases.PHASES:
        values = [v for r in records if r["recovered"] and (v := r["phases_ms"].get(name)) is not None]
        means[name] = _mean(values, 3)
        p99s[name] = _r(percentile(values, 99), 3)
    return means, p99s


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    mttrs = [r["mttr_ms"] for r in records if r["mttr_ms"] is not None]
    fulls = [r["full_recovery_ms"] for r in records if r["full_recovery_ms"] is not None]
    drops = [(r["accuracy_drop"], r["weight"]) for r in records if r["accuracy_drop"] is not None]
    warm = [r["mttr_ms"] for r in records if r["mttr_ms"] is not None and r["mode"] == "warm"]
    shared = [r["mttr_ms"] for r in records if r["mttr_ms"] is not None and r["shared_fallback"]]
    losses = [r["accuracy_time_loss"] for r in records if r["accuracy_time_loss"] is not None]
    means, p99s = _phase_stats(records)
    return {
        "failed_apps": len(records),
        "recovered": sum(1 for r in records if r["recovered"]),
        "recovered_share": _r(sum(1 for r in records if r["recovered"]) / len(records), 4)
        if records
        else None,
        "mttr_mean_ms": _mean(mttrs),
        "mttr_p50_ms": _r(percentile(mttrs, 50), 3),
        "mttr_p99_ms": _r(percentile(mttrs, 99), 3),
        "warm_mttr_mean_ms": _mean(warm, 3),
        "shared_mttr_mean_ms": _mean(shared, 3),  # apps a shared warm fallback stood in for
        "full_recovery_mean_ms": _mean(fulls),
        "accuracy_drop_mean": _mean([d for d, _ in drops], 6),
        "accuracy_drop_weighted": _r(sum(d * w for d, w in drops) / sum(w for _, w in drops), 6)
        if drops
        else None,
        "accuracy_drop_first": _mean(
            [r["accuracy_drop_first"] for r in records if r["accuracy_drop_first"] is not None], 6
        ),
        "accuracy_drop_settled": _mean(
            [r["accuracy_drop_settled"] for r in records if r["accuracy_drop_settled"] is not None], 6
        ),
        "settled_share": _r(sum(1 for r in records if r["settle_ms"] is not None) / len(records), 4)
        if records
        else None,
        "settle_ms_mean": _mean([r["settle_ms"] for r in records if r["settle_ms"] is not None]),
        "accuracy_time_loss": _mean(losses, 4),
        "accuracy_time_loss_total": _r(sum(losses), 4) if losses else None,
        "phases_ms": means,
        "phases_p99_ms": p99s,
        "failed_requests": sum(r["failed_requests"] for r in records),
        "touched_requests": sum(r["requests"] for r in records),
        "probe_failed_requests": sum(r["probe_failed_requests"] for r in records),
    }


def policy_figures(run: PolicyRun, scenario: Scenario) -> dict[str, Any]:
    if not run.deployed:
        return {"deployed": False, "refusal": run.refusal, "headroom": run.headroom, "load": run.load}
    weights = {a: float(spec.get("weight", 1.0)) for a, spec in run.apps.items()}
    injections = []
    flat: list[dict[str, Any]] = []
    for inj in run.injections:
        apps = injection_apps(inj, run.records, weights, {a for sf in run.shared for a in sf["apps"]})
        flat += [{**a, "node": inj.node, "kind": inj.kind} for a in apps]
        injections.append(
            {
                "node": inj.node,
                "kind": inj.kind,
                "observe_ms": round((inj.until - inj.failed_at) * 1000, 1),
                "restore_ms": inj.restore_ms,
                "protected_after_share": inj.protected_after,
                "unprotected_after": inj.extra.get("unprotected_after", []),
                "events": len(inj.events),
                "apps": apps,
            }
        )
    warm, cold, shared = plan_backups(run, scenario)
    kinds = sorted({r["kind"] for r in flat})
    shares = [i.protected_after for i in run.injections if i.protected_after is not None]
    return {
        "deployed": True,
        "error": run.error,
        "policy": run.policy,
        "progressive": run.progressive,
        "headroom": run.headroom,
        "load": run.load,
        **_summary(flat),
        "protected_after_share": _r(statistics.fmean(shares), 4) if shares else None,
        "protected_after_min": min(shares) if shares else None,
        "cpu_utilisation": run.cpu_utilisation,
        "cpu_utilisation_steady": run.cpu_utilisation_steady,
        "cpu_utilisation_own": run.cpu_utilisation_own,
        "cpu_utilisation_own_steady": run.cpu_utilisation_own_steady,
        "steady_latency": steady_latency(run.records, [i.window for i in run.injections]),
        "offered_rps": run.offered_rps,
        "dropped_requests": run.dropped,
        "generator_lag_p99_ms": run.lag_p99_ms,
        "window_s": run.window_s,
        "by_kind": {k: _summary([r for r in flat if r["kind"] == k]) for k in kinds},
        "by_mode": {
            m: _summary([r for r in flat if r["mode"] == m]) for m in sorted({r["mode"] for r in flat})
        },
        "backup_memory_bytes": warm + shared,  # every warm model held for failover
        "cold_reserved_bytes": cold,
        "shared_fallback_memory_bytes": shared,
        "shared_fallbacks": len(run.shared),
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
    load_before: str,
    load_mode: str = "open",
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
                        "accuracy_drop_first",
                        "accuracy_drop_settled",
                        "accuracy_time_loss",
                        "settle_ms_mean",
                        "protected_after_share",
                        "warm_mttr_mean_ms",
                        "cpu_utilisation",
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
        "load": load_mode,  # open: Poisson arrivals at the apps' rates; closed: saturating stress
        "rates": {a.name: a.rate for a in scenario.apps} if load_mode == "open" else None,
        "clock": "CLOCK_MONOTONIC (time.monotonic()), shared by every process on this machine",
        "load_before": load_before,
        "elapsed_s": round(elapsed_s, 1),
        "command": command,
        "published_faillite": PUBLISHED,
        "policies": policies,
        "sweep": sweep_rows,
    }
