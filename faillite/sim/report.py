"""``faillite sim run``'s JSON document and terminal table. Pure.

The document has the failover benchmark's shape (``faillite.bench.failover.report.document``):
scenario facts, then ``policies`` with the same per-policy keys, plus what the simulator adds
(``sim_seconds``: its wall time; ``method``: the planner that ran; per-app outcomes; events).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faillite.bench.failover.report import with_ratios
from faillite.bench.failover.table import fmt
from faillite.controller.config import make_detector
from faillite.launch.config import ClusterConfig
from faillite.sim.failures import FailureEvent
from faillite.sim.inputs import SimInputs
from faillite.sim.run import SimResult
from faillite.sim.timing import SimTiming

__all__ = ["document", "spare_share", "table"]


def spare_share(config: ClusterConfig, inputs: SimInputs) -> float | None:
    """1 - the home primaries' memory over all node memory (the share left for backups)."""
    total = sum(n.memory for n in config.nodes)
    used = 0
    for spec in config.apps:
        fam = inputs.families[spec.family]
        variant = (
            spec.variant
            or max(
                (v for v in fam.variants if v.latency_ms <= spec.slo_ms),
                key=lambda v: (v.accuracy, -v.memory_bytes),
                default=fam.variants[0],
            ).name
        )
        used += fam.variant(variant).memory_bytes
    return round(1 - used / total, 4) if total else None


def document(
    config: ClusterConfig,
    inputs: SimInputs,
    results: Sequence[SimResult],
    *,
    config_path: Path,
    spec: str,
    failures: Sequence[FailureEvent],
    seed: int,
    command: str,
    sim_seconds: float,
    events: bool = True,
    timing: SimTiming | None = None,
) -> dict[str, Any]:
    detector = make_detector(config.controller.heartbeat_interval_ms, config.controller.heartbeat_timeout_ms)
    policies = with_ratios({r.label: r.to_json(events=events) for r in results})
    kinds = sorted({f.kind for f in failures})
    return {
        "scenario": str(config_path),
        "simulated": True,
        "scale": config.standins.scale,
        "accuracy_source": "published" if inputs.profile_source.startswith("estimated") else "profile file",
        "profiles": inputs.profile_source,
        "headroom": spare_share(config, inputs),
        "nodes": len(config.nodes),
        "apps": len(config.apps),
        "seed": seed,
        "detector": detector.describe(),
        "timing": (timing or SimTiming()).to_json(),
        "failures": spec,
        "failure_kinds": kinds,
        "failed_nodes": sorted({n for f in failures for n in f.nodes}),
        "failure_events": [
            {"at_s": f.at_s, "nodes": list(f.nodes), "kind": f.kind, "repair_after_s": f.repair_after_s}
            for f in failures
        ],
        "load": "open",
        "clock": "simulated seconds (event mono and request records alike)",
        "command": command,
        "sim_seconds": round(sim_seconds, 3),
        "policies": policies,
        "sweep": [],
    }


_COLUMNS = (
    ("recovered_share", "pct", "recovered", 9),
    ("mttr_mean_ms", "ms", "MTTR", 6),
    ("mttr_p50_ms", "ms", "p50", 6),
    ("mttr_p99_ms", "ms", "p99", 6),
    ("warm_mttr_mean_ms", "ms", "warm", 6),
    ("mttr_ratio_to_full_cold", "x", "/cold", 6),
    ("accuracy_drop_first", "pts", "drop1st", 7),
    ("accuracy_drop_settled", "pts", "settled", 7),
    ("settle_ms_mean", "ms", "settle", 6),
    ("accuracy_time_loss", "", "pt*s/app", 8),
    ("protected_after_share", "pct", "protected", 9),
    ("backup_memory_bytes", "mib", "warmMiB", 7),
    ("cold_reserved_bytes", "mib", "coldMiB", 7),
    ("sim_seconds", "", "sim s", 7),
    ("planner_seconds", "", "plan s", 7),
    ("sim_us_per_event", "", "us/event", 8),
)


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"simulated: {doc['scenario']}, {doc['apps']} apps on {doc['nodes']} nodes, "
        f"failures {doc['failures']} "
        f"({len(doc['failure_events'])} events, {'+'.join(doc['failure_kinds']) or '-'}), seed {doc['seed']}",
        "  ".join(
            [f"{'policy':<24}", f"{'failed':>6}"] + [f"{h:>{w}}" for _, _, h, w in _COLUMNS] + ["planner"]
        ),
    ]
    for label, p in doc["policies"].items():
        if not p.get("deployed"):
            lines.append(f"{label:<24}  plan refused: {(p.get('refusal') or '')[:110]}")
            continue
        cells = [f"{label:<24}", f"{fmt(p.get('failed_apps')):>6}"]
        cells += [f"{fmt(p.get(k), kind):>{w}}" for k, kind, _, w in _COLUMNS]
        cells.append(p["method"]["ran"])
        lines.append("  ".join(cells))
    lines.append(
        "MTTR on simulated probe streams (ms, failure -> first answer from another node); drops in accuracy "
        "points; settle: failure -> first answer from the variant kept; protected: share of all apps with a "
        "backup on a live node after settling; sim s: the simulator's wall time, plan s: of which in planner "
        "calls (us/event: per engine event)"
    )
    lines.append("phase breakdown, mean ms (detect / decide / load / publish / answer / settle):")
    for label, p in doc["policies"].items():
        if p.get("deployed") and p.get("phases_ms"):
            ph = p["phases_ms"]
            lines.append(f"  {label:<24} " + " / ".join(fmt(ph.get(k), "ms") for k in ph))
    return "\n".join(lines)
