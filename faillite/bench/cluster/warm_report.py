"""``faillite bench warm``'s report: per-kind summaries of the trials, progress lines, the table."""

from __future__ import annotations

import statistics
from typing import Any

from faillite.bench.cluster.mttr import AppOutcome, round_ms, summarize_outcomes

__all__ = ["summary", "table", "trial_line"]


def summary(trials: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in kinds:
        mine = [t for t in trials if t["kind"] == kind]
        outcomes = [
            AppOutcome(
                a["app"],
                0,
                None,
                a["mttr_ms"],
                a["recovered_by"],
                a["touched"],
                a["touched_failed"],
                a["touched_unanswered"],
                tuple(a["touched_latency_ms"]),
            )
            for t in mine
            for a in t["apps"]
            if a["mode"] == "warm"
        ]
        detection = [
            t["node_dead"]["detection_ms"]
            for t in mine
            if t["node_dead"] and t["node_dead"]["detection_ms"] is not None
        ]
        seen = [t["node_dead"]["seen_ms"] for t in mine if t["node_dead"]]
        result[kind] = {
            "trials": len(mine),
            **summarize_outcomes(outcomes),
            "dead_declared": len(seen),
            "detection_mean_ms": round_ms(statistics.fmean(detection) if detection else None),
            "dead_seen_mean_ms": round_ms(statistics.fmean(seen) if seen else None),
            "dead_seen_max_ms": round_ms(max(seen) if seen else None),
        }
    return result


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def trial_line(t: dict[str, Any]) -> str:
    mttrs = ", ".join(f"{a['app']} {_ms(a['mttr_ms'])}" for a in t["apps"])
    nd = t["node_dead"]
    dead = (
        "not declared dead"
        if nd is None
        else f"dead after {_ms(nd['detection_ms'])} ms (seen {_ms(nd['seen_ms'])})"
    )
    return f"trial {t['trial']} {t['kind']} {t['node']}: MTTR ms {mttrs}; {dead}"


def table(doc: dict[str, Any]) -> str:
    targets = doc["targets"]
    lines = [doc["command"], ""]
    for run in doc["runs"]:
        s = run["steady"]
        box = s["box"]
        lines.append(
            f"[{run['code']}] {run['nodes']} nodes, {run['apps']} apps, one request every "
            f"{run['period_ms']:g} ms per app (open loop) via {run['via']}, load generator "
            f"{run['load_generator']}"
        )
        lines.append(
            f"  steady: p50 {_ms(s['p50_ms'])} ms, p99 {_ms(s['p99_ms'])} ms, max {_ms(s['max_ms'])} ms "
            f"over {s['requests']} requests, {s['failed']} failed; "
            f"send lag p99 {_ms(s['send_lag_p99_ms'])} ms; box {box['cpu_percent']} % of {box['cores']} "
            f"cores busy, load {' '.join(f'{v:.2f}' for v in box['loadavg'])}"
            f"  (target p50 <= {targets['steady_p50_ms']:g} ms)"
        )
        lines.append(
            "  CPU during it, % of one core: "
            + ", ".join(f"{name} {share:.1f}" for name, share in s["process_cpu_percent"].items())
        )
        lines.append(
            f"  {'trial':>5} {'kind':<8} {'node':<8} {'app':<10} {'MTTR ms':>9} {'from':<13} {'by':<8} "
            f"{'touched':>7} {'failed':>6} {'max ms':>8} {'dead ms':>8} {'seen ms':>8} "
            f"{'box %':>6} {'load':>5}"
        )
        for t in run["trials"]:
            nd = t["node_dead"] or {}
            for a in t["apps"]:
                lines.append(
                    f"  {t['trial']:>5} {t['kind']:<8} {t['node']:<8} {a['app']:<10} {_ms(a['mttr_ms']):>9} "
                    f"{a['from']:<13} {a['recovered_by'] or '-':<8} {a['touched']:>7} "
                    f"{a['touched_failed'] + a['touched_unanswered']:>6} {_ms(a['touched_max_ms']):>8} "
                    f"{_ms(nd.get('detection_ms')):>8} {_ms(nd.get('seen_ms')):>8} "
                    f"{t['box']['cpu_percent']:>6.1f} {t['box']['loadavg'][0]:>5.2f}"
                )
        for kind, k in run.get("summary", {}).items():
            target = targets.get(f"{kind}_mttr_mean_ms")
            lines.append(
                f"  {kind}: {k['recovered']}/{k['apps']} warm apps recovered in {k['trials']} trials; "
                "MTTR mean "
                f"{_ms(k['mttr_mean_ms'])} ms, p50 {_ms(k['mttr_p50_ms'])}, max {_ms(k['mttr_max_ms'])}"
                f" (target mean <= {target:g} ms); touched requests {k['touched_requests']}, failed "
                f"{k['touched_failed']}, unanswered {k['touched_unanswered']}, "
                f"max {_ms(k['touched_max_ms'])} ms; declared dead {k['dead_declared']}/{k['trials']}, "
                f"detection mean {_ms(k['detection_mean_ms'])} ms,"
                f" seen mean {_ms(k['dead_seen_mean_ms'])} ms, max {_ms(k['dead_seen_max_ms'])} ms"
                + (
                    f" (target <= {targets['dead_ms']:g} ms on a quiet machine)"
                    if kind == "SIGSTOP"
                    else " (a crash is seen by connection close)"
                )
            )
        lines.append(
            f"  requests {run['requests']}, failed {run['failed_requests']}, "
            f"skipped (in-flight cap) {run['skipped']}"
            + (f"; stopped early: {run['error']}" if run.get("error") else "")
        )
        for message, count in run.get("errors", []):
            lines.append(f"    {count} x {message}")
        lines.append("")
    return "\n".join(lines).rstrip()
