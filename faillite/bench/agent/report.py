"""The agent benchmark's report: the acceptance checks (figures of one run against issue 9's
targets) and the printed tables."""

from __future__ import annotations

import argparse
from typing import Any

from faillite.bench import cputime

__all__ = ["checks", "loadavg", "print_report"]

# (name, mode, reference mode, how, target). how: "minus" (p50 difference, ms), "ratio", or
# "hop" (p50 difference less the health round trip: what a forwarding hop adds beyond one more
# loopback round trip).
_CHECKS = (
    ("agent binary infer over health", "agent-binary", "health", "minus", 0.15),
    ("agent JSON infer over health", "agent-json", "health", "minus", 0.15),
    ("client library over a raw post of the same bytes", "client-raw", "agent-binary", "minus", 0.1),
    ("Client.infer (numpy in and out) over a raw post", "client", "agent-binary", "minus", 0.1),
    ("gateway hop over a direct post, less a health trip", "gateway-binary", "agent-binary", "hop", 0.1),
    ("tritonclient binary: agent / Triton", "tc-agent-binary", "tc-triton-binary", "ratio", 1.0),
    ("tritonclient JSON: agent / Triton", "tc-agent-json", "tc-triton-json", "ratio", 1.0),
)


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg writes them ("0.52 0.61 0.70")."""
    try:
        return " ".join(f"{v:.2f}" for v in cputime.loadavg())
    except OSError:
        return "n/a"


def checks(latency: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 9's latency targets, on the p50s of this run (a check whose modes did not run is left out)."""
    p50 = {row["mode"]: row["p50_ms"] for row in latency}
    out = []
    for name, mode, reference, how, target in _CHECKS:
        if mode not in p50 or reference not in p50 or (how == "hop" and "health" not in p50):
            continue
        if how == "ratio":
            value = p50[mode] / p50[reference]
        else:
            value = p50[mode] - p50[reference] - (p50["health"] if how == "hop" else 0.0)
        unit = "x" if how == "ratio" else "ms"
        out.append(
            {"name": name, "value": round(value, 4), "target": target, "unit": unit, "ok": value <= target}
        )
    return out


def print_report(report: dict[str, Any], args: argparse.Namespace) -> None:
    limit = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
    print(f"command: {report['command']}")
    print(
        f"model {args.variant}, batch {args.batch}; agent event loop {report['event_loop']}; "
        f"load average {report['load']['before']} before, {report['load']['after']} after; "
        f"every path's outputs match in-process ONNX Runtime: {'yes' if report['outputs_match'] else 'NO'}"
    )
    print()
    print(
        f"throughput: {args.concurrency} closed-loop clients, {limit} per run, medians of {args.repeats} runs"
    )
    print(
        f"{'mode':<16}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'tput ratio':>12}{'p50 +ms':>9}"
    )
    modes = report["modes"]
    base = modes[0]
    for r in modes:
        print(
            f"{r['mode']:<16}{r['requests']:>10}{r['throughput_rps']:>10.0f}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}"
            f"{r['throughput_rps'] / base['throughput_rps']:>12.3f}{r['p50_ms'] - base['p50_ms']:>9.3f}"
        )
    print()
    rows = report["latency"]
    print(
        f"latency: one client, one request in flight, {rows[0]['requests']} requests per mode, "
        f"{args.rounds} interleaved rounds"
    )
    print(f"{'mode':<22}{'p50 ms':>8}{'p99 ms':>8}  {'vs':<18}{'p50 +ms':>8}{'cpu us':>8}  what")
    for r in rows:
        over = "" if r["over_baseline_ms"] is None else f"{r['over_baseline_ms']:+.3f}"
        vs = r["baseline"] or ""
        cpu = "" if r["server_cpu_us"] is None else f"{r['server_cpu_us']:.0f}"
        print(
            f"{r['mode']:<22}{r['p50_ms']:>8.3f}{r['p99_ms']:>8.3f}  {vs:<18}{over:>8}{cpu:>8}  {r['what']}"
        )
    if report["checks"]:
        print()
        print("issue 9 targets (p50, this run):")
        for c in report["checks"]:
            print(
                f"  {'ok  ' if c['ok'] else 'MISS'} {c['name']}: {c['value']:.3f} {c['unit']} "
                f"(target <= {c['target']:g} {c['unit']})"
            )
    print("cpu us: CPU time (user + system) of the answering server per request (gateway: gateway + agent;")
    print("        triton: tritonserver + its Python stub), from /proc, in the same blocks as the latency")
    for what, why in report["skipped"].items():
        print(f"skipped {what}: {why}")
