"""The terminal view of a ``ValidationReport``: sim and real side by side."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from faillite.sim.validate.compare import PHASES, ValidationReport, describe_placement, phase_means, placement

__all__ = ["render"]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _ms(seconds: Any) -> float | None:
    return None if seconds is None else seconds * 1000


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _at(variant: str | None, node: str | None) -> str | None:
    return None if variant is None else f"{variant}@{node}"


def render(report: ValidationReport) -> str:
    """Sim and real side by side: per failed app a sim row and a real row (``*``: the real value
    differs), with MTTR and its phases; then the placements, then the verdict."""
    sim, real = report.sim, report.real
    nodes = ", ".join(report.failure.get("nodes", []))
    out = [f"{report.failure.get('kind', 'crash')} {nodes} (policy {report.policy}, seed {report.seed})", ""]
    rows = []
    for app in sorted(set(sim.apps) | set(real.apps)):
        s, r = sim.apps.get(app), real.apps.get(app)
        cells: dict[str, list[Any]] = {}
        for side, o in (("sim", s), ("real", r)):
            cells[side] = [
                None if o is None else o.recovered,
                None if o is None else _at(o.first_variant, o.first_node),
                None if o is None else _at(o.settled_variant, o.settled_node),
            ]
        mark = ["" if a == b else " *" for a, b in zip(cells["sim"], cells["real"], strict=True)]
        for side, o in (("sim", s), ("real", r)):
            shown = [_cell(v) + (m if side == "real" else "") for v, m in zip(cells[side], mark, strict=True)]
            times = [_cell(None if o is None else o.mttr_ms)]
            times += [_cell(None if o is None else o.phases_ms.get(p)) for p in PHASES]
            rows.append([app if side == "sim" else "", side, *shown, *times])
    header = ["app", "", "recovered", "first answer", "settled", "MTTR ms", *PHASES]
    out += _table(header, rows)
    out += ["", f"final placements (sim / real; compared: {report.placements}):"]
    splan = {p["app"]: placement(p) for p in sim.plan}
    rplan = {p["app"]: placement(p) for p in real.plan}
    prow = []
    for app in sorted(set(splan) | set(rplan)):
        sp, rp = splan.get(app), rplan.get(app)
        prow.append([app, describe_placement(sp), "same" if sp == rp else describe_placement(rp) + " *"])
    out += _table(["app", "sim", "real"], prow)
    if sim.shared or real.shared:
        fmt = lambda ss: "; ".join(sorted(f"{s['variant']}@{s['node']}" for s in ss)) or "-"  # noqa: E731
        out.append(f"shared fallbacks: sim {fmt(sim.shared)}; real {fmt(real.shared)}")
    ratio = report.mttr_ratio
    out += [
        "",
        f"MTTR mean: sim {_cell(sim.mttr_mean_ms())} ms, real {_cell(real.mttr_mean_ms())} ms, "
        f"ratio {'-' if ratio is None else f'{ratio:.2f}'}"
        + (
            ""
            if report.mttr_within is None
            else (" (within 25 %)" if report.mttr_within else " (NOT within 25 %)")
        ),
    ]
    sp, rp = phase_means(sim), phase_means(real)
    out.append(
        "phase means ms (sim / real): " + ", ".join(f"{p} {_cell(sp[p])} / {_cell(rp[p])}" for p in PHASES)
    )
    used, measured = report.calibration.get("timing") or {}, report.calibration.get("measured") or {}
    if measured:
        out.append(
            "timing constants ms (sim / measured here): "
            + ", ".join(
                f"{name.removesuffix('_s')} {_cell(_ms(used.get(name)))} / {_cell(_ms(value))}"
                for name, value in measured.items()
            )
        )
    if report.match:
        out.append("match: recovered apps, variants, nodes and placements agree")
    else:
        out.append(f"MISMATCH ({len(report.differences)}):")
        out += [f"  - {d}" for d in report.differences]
    return "\n".join(out)
