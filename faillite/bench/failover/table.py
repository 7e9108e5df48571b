"""The failover benchmark's terminal tables, from the JSON document. Pure.

Three tables per run: recovery (recovered share, MTTR, memory, CPU), accuracy and settling
(first-answer and settled drop, time to settle, accuracy-time loss, protected after), and the
phase breakdown (mean and p99 of each phase, per policy); then the sweep, when there is one.
"""

from __future__ import annotations

from typing import Any

from faillite.bench import phases

__all__ = ["fmt", "table"]


def fmt(v: Any, kind: str = "") -> str:
    """A table cell: - for None; pct, pts (accuracy points), ms, mib, x (ratio), or as it is."""
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "pts":
        return f"{v * 100:.2f}"
    if kind == "ms":
        return f"{v:.0f}" if v >= 10 else f"{v:.1f}"
    if kind == "mib":
        return f"{v / 2**20:.1f}"
    if kind == "x":
        return f"{v:.2f}"
    return str(v)


Column = tuple[str, str, str, int]  # key, format, heading, width

_RECOVERY: list[Column] = [
    ("recovered_share", "pct", "recovered", 9),
    ("mttr_mean_ms", "ms", "MTTR", 6),
    ("mttr_p50_ms", "ms", "p50", 6),
    ("mttr_p99_ms", "ms", "p99", 6),
    ("warm_mttr_mean_ms", "ms", "warm", 6),
    ("shared_mttr_mean_ms", "ms", "shared", 6),
    ("mttr_ratio_to_full_cold", "x", "/cold", 6),
    ("failed_requests", "", "failed", 6),
    ("dropped_requests", "", "dropped", 7),
    ("backup_memory_bytes", "mib", "warm MiB", 8),
    ("cold_reserved_bytes", "mib", "cold MiB", 8),
    ("cpu_utilisation", "pct", "CPU box", 7),
    ("cpu_utilisation_own", "pct", "own", 6),
    ("cpu_utilisation_own_steady", "pct", "steady", 6),
]
_ACCURACY: list[Column] = [
    ("accuracy_drop_first", "pts", "drop 1st", 8),
    ("accuracy_drop_settled", "pts", "settled", 7),
    ("accuracy_drop_weighted", "pts", "w.drop", 6),
    ("settle_ms_mean", "ms", "settle ms", 9),
    ("settled_share", "pct", "settled%", 8),
    ("accuracy_time_loss", "", "pt*s/app", 8),
    ("protected_after_share", "pct", "protected", 9),
]


def _rows(doc: dict[str, Any], columns: list[Column]) -> list[str]:
    head = "  ".join([f"{'policy':<24}"] + [f"{h:>{w}}" for _, _, h, w in columns])
    lines = [head]
    for label, p in doc["policies"].items():
        if not p["deployed"]:
            lines.append(f"{label:<24}  plan refused: {(p['refusal'] or '')[:110]}")
            continue
        cells = [f"{label:<24}"]
        for key, kind, _, w in columns:
            cells.append(f"{fmt(p.get(key), kind):>{w}}")
        lines.append("  ".join(cells))
    return lines


def _phase_rows(doc: dict[str, Any]) -> list[str]:
    names = phases.PHASES
    lines = ["  ".join([f"{'phase breakdown (ms)':<24}"] + [f"{n + ' mean/p99':>18}" for n in names])]
    for label, p in doc["policies"].items():
        if not p["deployed"]:
            continue
        means, p99s = p.get("phases_ms") or {}, p.get("phases_p99_ms") or {}
        cells = [f"{label:<24}"]
        for n in names:
            cells.append(f"{fmt(means.get(n), 'ms') + ' / ' + fmt(p99s.get(n), 'ms'):>18}")
        lines.append("  ".join(cells))
    return lines


def table(doc: dict[str, Any]) -> str:
    load = doc.get("load", "closed")
    load_text = (
        "open-loop (Poisson arrivals at each app's rate)"
        if load == "open"
        else "CLOSED-LOOP STRESS (one request in flight per app, back to back: saturates the box)"
    )
    lines = [
        f"failover benchmark: scenario {doc['scenario']}, {doc['apps']} apps on {doc['nodes']} nodes, "
        f"headroom {doc['headroom']:.0%}, failures {'+'.join(doc['failure_kinds'])} of "
        f"{', '.join(doc['failed_nodes'])}; load {load_text}",
        *_rows(doc, _RECOVERY),
        "MTTR on the probe streams (ms, failure -> first answer from another node; warm: apps with a warm "
        "backup; shared: apps a shared warm fallback stood in for; warm MiB counts shared fallbacks too); "
        "failed/dropped: workload requests; CPU: busy share of all cores over the measured window, "
        "of the whole box and of the benchmark's own processes (steady: outside failures and probes)",
        "",
        *_rows(doc, _ACCURACY),
    ]
    src = (
        "measured on a held-out split" if doc["accuracy_source"] == "measured" else "PUBLISHED ImageNet top-1"
    )
    lines.append(
        f"drops in accuracy points (accuracies: {src}); settle: failure -> first answer from the variant "
        "kept; pt*s/app: accuracy-time loss per failed app; protected: share of all apps with a backup "
        "on a live node after settling"
    )
    lines += [
        "",
        *_phase_rows(doc),
        "phases: failure -> detected -> decided -> loaded -> route published -> first answer -> settled; "
        "controller events (mono) and request records share CLOCK_MONOTONIC (one machine): no alignment",
    ]
    for label, p in doc["policies"].items():
        if p["deployed"] and p.get("steady_latency"):
            st = p["steady_latency"]
            lines.append(
                f"  {label}: steady latency p50 {fmt(st['p50_ms'], 'ms')} ms, "
                f"p99 {fmt(st['p99_ms'], 'ms')} ms ({st['requests']} requests); "
                f"offered {p.get('offered_rps') or '-'} req/s"
            )
    for kind in doc["failure_kinds"]:
        parts = [
            f"{label} {fmt(p['by_kind'][kind]['mttr_mean_ms'], 'ms')}"
            for label, p in doc["policies"].items()
            if p["deployed"] and kind in p["by_kind"]
        ]
        lines.append(f"  {kind} MTTR mean (ms): " + ", ".join(parts))
    if doc["sweep"]:
        lines.append(
            "spare-memory sweep (recovered / MTTR ms / settled drop pts / pt*s per app / protected after):"
        )
        for row in doc["sweep"]:
            if not row["deployed"]:
                lines.append(f"  {row['headroom']:>5.0%} {row['policy']:<24} plan refused")
                continue
            lines.append(
                f"  {row['headroom']:>5.0%} {row['policy']:<24} {fmt(row['recovered_share'], 'pct'):>7} "
                f"{fmt(row['mttr_mean_ms'], 'ms'):>6} {fmt(row['accuracy_drop_settled'], 'pts'):>6} "
                f"{fmt(row['accuracy_time_loss'], ''):>8} {fmt(row['protected_after_share'], 'pct'):>7}"
            )
    return "\n".join(lines)
