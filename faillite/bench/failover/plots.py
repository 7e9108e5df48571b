"""The failover benchmark's figures (PNG, matplotlib's non-interactive Agg backend).

- ``mttr_cdf``: the MTTR (probe streams) of every recovered app, one CDF per policy.
- ``phases``: the MTTR taken apart, stacked bars of each phase's mean per policy.
- ``sweep``: spare memory (headroom) against mean MTTR, settled accuracy drop and accuracy-time
  loss, one line per policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["mttr_cdf", "phases", "sweep"]

_PHASES = ("detect", "decide", "load", "publish", "answer")


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
    ax.set_xlabel("MTTR on the probe streams (ms, log scale)")
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


def phases(doc: dict[str, Any], path: Path) -> Path:
    """Stacked bars: mean ms of each phase (detect ... answer) per policy; their sum is the mean
    time from the failure to the first answer of the recovered apps."""
    plt = _pyplot()
    labels = [label for label, p in doc["policies"].items() if p.get("deployed") and p.get("phases_ms")]
    fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=100)
    bottoms = [0.0] * len(labels)
    for name in _PHASES:
        values = [doc["policies"][label]["phases_ms"].get(name) or 0.0 for label in labels]
        ax.bar(labels, values, bottom=bottoms, label=name)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("mean ms (recovered apps)")
    ax.set_title(
        f"MTTR phases, scenario {doc['scenario']}, headroom {doc['headroom']:.0%}, "
        f"{doc.get('load', '?')} load",
        fontsize=10,
    )
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def sweep(doc: dict[str, Any], path: Path) -> Path:
    plt = _pyplot()
    rows = [r for r in doc["sweep"] if r["deployed"]]
    panels = (
        ("mttr_mean_ms", 1.0, "mean MTTR (ms)"),
        ("accuracy_drop_settled", 100.0, "settled accuracy drop (points)"),
        ("accuracy_time_loss", 1.0, "accuracy-time loss (points x s per failed app)"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.6), dpi=100)
    for label in dict.fromkeys(r["policy"] for r in doc["sweep"]):
        mine = sorted((r for r in rows if r["policy"] == label), key=lambda r: r["headroom"])
        for ax, (key, factor, _) in zip(axes, panels, strict=True):
            pts = [(r["headroom"] * 100, r[key] * factor) for r in mine if r.get(key) is not None]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
    for ax, (_, _, ylabel) in zip(axes, panels, strict=True):
        ax.set_xlabel("spare memory per node (% of primaries)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"spare memory sweep, scenario {doc['scenario']} (SIGKILL; missing point: plan refused)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
