"""The failover benchmark's figures (PNG, matplotlib's non-interactive Agg backend).

- ``mttr_cdf``: the client-observed MTTR of every recovered app, one CDF per policy.
- ``sweep``: spare memory (headroom) against the share of failed apps recovered and the mean
  accuracy drop, one line per policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["mttr_cdf", "sweep"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mttr_cdf(doc: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for label, p in doc["policies"].items():
        if not p.get("deployed"):
            continue
        values = sorted(
            a["mttr_ms"] for inj in p["injections"] for a in inj["apps"] if a["mttr_ms"] is not None
        )
        if not values:
            continue
        total = p["failed_apps"]  # unrecovered apps keep the CDF below 1
        ys = [(i + 1) / total for i in range(len(values))]
        ax.step(values, ys, where="post", label=f"{label} ({len(values)}/{total})")
    ax.set_xscale("log")
    ax.set_xlabel("client-observed MTTR (ms, log scale)")
    ax.set_ylabel("share of failed apps recovered")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"MTTR CDF, scenario {doc['scenario']}, headroom {doc['headroom']:.0%}", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def sweep(doc: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    rows = [r for r in doc["sweep"] if r["deployed"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for label in dict.fromkeys(r["policy"] for r in doc["sweep"]):
        mine = sorted((r for r in rows if r["policy"] == label), key=lambda r: r["headroom"])
        if not mine:
            continue
        xs = [r["headroom"] * 100 for r in mine]
        left.plot(xs, [(r["recovered_share"] or 0) * 100 for r in mine], marker="o", label=label)
        drops = [
            (x, r["accuracy_drop_mean"] * 100)
            for x, r in zip(xs, mine, strict=True)
            if r["accuracy_drop_mean"] is not None
        ]
        if drops:
            right.plot([d[0] for d in drops], [d[1] for d in drops], marker="o", label=label)
    left.set_xlabel("spare memory per node (% of primaries)")
    left.set_ylabel("failed apps recovered (%)")
    left.set_ylim(0, 102)
    right.set_xlabel("spare memory per node (% of primaries)")
    right.set_ylabel("accuracy drop (points, recovered apps)")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle(
        f"spare memory sweep, scenario {doc['scenario']} (SIGKILL; missing point: plan refused)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
