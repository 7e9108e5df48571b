"""Timing profiles for the simulator: the real run's models, profiled on this machine.

The controller plans with *estimated* profiles (``faillite up`` never profiles), and the simulator
must plan with the same ones or its plans differ. But the stand-ins load 3-8x slower and answer
slower than those estimates say, so the simulated agents take their load, first-inference and
p50 times from a measurement instead (``simulate(timing_profiles=...)``): ``faillite.profiler``
(what ``faillite profile`` runs: median of ``loads`` loads in a fresh process, first inference,
p50 of ``runs`` inferences) on the very stand-in files the real cluster served, the variants of
the real run's plans (before and after the failure) and every variant it loaded. Profiled after
the real run, alone: the measurement does not come from the run it is compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from faillite.launch.config import ClusterConfig
from faillite.profiler.family import profile_family
from faillite.profiler.format import VariantProfile
from faillite.sim.real import RealRun
from faillite.zoo.catalog import builtin_family_names, load_builtin_family
from faillite.zoo.manifest import FamilyManifest
from faillite.zoo.resolve import resolve

__all__ = ["measure_profiles", "run_variants"]


def run_variants(run: RealRun) -> set[tuple[str, str]]:
    """(family, variant) of every model the real run's plans name or its agents loaded."""
    family = {p.variant: p.family for p in run.profiles}
    names: set[str] = set()
    for plan in (run.plan_before, run.plan_after):
        for a in plan.get("plan") or []:
            names.add(a["primary_variant"])
            if a.get("backup"):
                names.add(a["backup"]["variant"])
        names.update(s["variant"] for s in plan.get("shared") or [])
    names.update(e["variant"] for e in run.events if e["kind"] == "load_started" and e.get("variant"))
    return {(family[v], v) for v in names if v in family}


def _manifest(config: ClusterConfig, family: str) -> FamilyManifest:
    """The family's models as ``faillite up`` built them (``LocalCluster.prepare``)."""
    if family in builtin_family_names():
        return load_builtin_family(family)
    s = config.standins
    manifest, _ = resolve(family, scale=s.scale, input_px=s.input_px, macs=s.macs, progress=lambda _m: None)
    return manifest


def measure_profiles(
    config: ClusterConfig,
    variants: Iterable[tuple[str, str]],
    *,
    loads: int = 5,
    runs: int = 50,
    say: Callable[[str], None] = lambda _m: None,
) -> tuple[VariantProfile, ...]:
    """``faillite.profiler``'s profile of each (family, variant), on this machine."""
    by_family: dict[str, list[str]] = {}
    for fam, v in sorted(variants):
        by_family.setdefault(fam, []).append(v)
    out: list[VariantProfile] = []
    for fam, names in by_family.items():
        say(f"profiling {len(names)} {fam} variant(s) for the simulator's timing")
        found = profile_family(_manifest(config, fam), variants=names, loads=loads, runs=runs, progress=say)
        out.extend(found.variants)
    return tuple(out)
