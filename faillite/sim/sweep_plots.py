"""``faillite sim sweep``'s figures (PNG, matplotlib's Agg backend): one per varied dimension,
mean MTTR and settled accuracy drop against the parameter, one line per policy (a missing
point: the policy's plan was refused, or it recovered no app)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["dimension_plot", "plots"]

_XLABEL = {
    "spare": "spare memory per node (share left after its primaries)",
    "failures": "nodes failing at once",
    "domain": "failure-domain size (nodes; the whole domain fails)",
}
#: one colour per policy in every figure, whatever order a sweep ran them in
_COLOURS = {
    "faillite": "tab:blue",
    "faillite-shared": "tab:orange",
    "full-cold": "tab:green",
    "full-warm": "tab:red",
    "none": "tab:purple",
    "hetero-warm-only": "tab:brown",
    "faillite-no-progressive": "tab:cyan",
}
_PANELS = (
    ("mttr_mean_ms", 1.0, "mean MTTR (ms)"),
    ("mttr_p99_ms", 1.0, "p99 MTTR (ms)"),
    ("accuracy_drop_settled", 100.0, "settled accuracy drop (points)"),
    ("recovered_share", 100.0, "recovered apps (%)"),
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def dimension_plot(doc: dict[str, Any], dim: str, path: Path) -> Path:
    plt = _pyplot()
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # lazily, as pyplot (Agg first)

    rows = doc["dimensions"][dim]
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(15.5, 3.6), dpi=100)
    for label in doc["policies"]:
        for ax, (key, factor, _) in zip(axes, _PANELS, strict=True):
            pts = [
                (r["value"], r["policies"][label][key] * factor)
                for r in rows
                if label in r["policies"]
                and r["policies"][label]["deployed"]
                and r["policies"][label].get(key) is not None
            ]
            if pts:
                ax.plot(
                    [x for x, _ in pts],
                    [y for _, y in pts],
                    marker="o",
                    label=label,
                    color=_COLOURS.get(label),
                )
    for ax, (key, _, ylabel) in zip(axes, _PANELS, strict=True):
        ax.set_xlabel(_XLABEL[dim], fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if key.startswith("mttr"):
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    base = ", ".join(f"{k} {v:g}" for k, v in doc["base"].items() if k != dim)
    fig.suptitle(
        f"simulated: {doc['nodes']} nodes x {doc['apps']} apps, stand-in scale {doc.get('scale', 0.02):g}, "
        f"{dim} varied ({base}), seed {doc['seed']}",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plots(doc: dict[str, Any], where: Path, stem: str) -> list[Path]:
    """One figure per varied dimension: ``WHERE/STEM-DIM.png``."""
    return [
        dimension_plot(doc, dim, where / f"{stem}-{dim}.png")
        for dim, rows in doc["dimensions"].items()
        if rows
    ]
