"""What a simulation starts from: the cluster file's nodes and apps, and the families' profiles.

Profiles come from a ``faillite profile`` file when given, else from the published-size
estimates of each family at the cluster file's stand-in scale
(``faillite.zoo.catalog.estimated_family_profiles``, what ``faillite sim generate`` sized the
nodes with). Families get their fallback keys (which may share a warm fallback) as the
controller gives them (``faillite.controller.shared.fallback_keys``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faillite.controller.planning import AppSpec, build_families
from faillite.controller.shared import fallback_keys
from faillite.launch.config import ClusterConfig
from faillite.placement import Family, Node
from faillite.profiler.format import VariantProfile, load_profiles
from faillite.zoo.catalog import estimated_family_profiles

__all__ = ["SimInputError", "SimInputs", "build_inputs", "read_profiles"]


class SimInputError(ValueError):
    """The inputs do not fit together (an app's family has no profile...)."""


@dataclass(frozen=True)
class SimInputs:
    config: ClusterConfig
    families: Mapping[str, Family]
    specs: tuple[AppSpec, ...]
    nodes: tuple[Node, ...]
    profile_source: str  # "estimated (scale 0.02)" or the profile file

    def accuracy(self, family: str, variant: str) -> float:
        return self.families[family].variant(variant).accuracy

    def variant_accuracy(self) -> dict[str, float]:
        """variant name -> accuracy (a shared fallback answers with another family's variant)."""
        return {v.name: v.accuracy for f in self.families.values() for v in f.variants}


def read_profiles(path: Path) -> tuple[VariantProfile, ...]:
    return tuple(load_profiles(path).variants)


def build_inputs(config: ClusterConfig, profiles: Sequence[VariantProfile] | None = None) -> SimInputs:
    wanted = config.families()
    if profiles is None:
        scale = config.standins.scale
        found: list[VariantProfile] = []
        for family in wanted:
            try:
                found.extend(estimated_family_profiles(family, scale=scale))
            except KeyError as exc:
                raise SimInputError(f"apps: {exc.args[0]}") from None
        profiles, source = tuple(found), f"estimated (published sizes x {scale:g})"
    else:
        source = "profile file"
        have = {p.family for p in profiles}
        missing = [f for f in wanted if f not in have]
        if missing:
            raise SimInputError(f"profiles: no profile of family {missing[0]!r} (apps use it)")
    keys = fallback_keys((), sorted({p.family for p in profiles}), standin_px=config.standins.input_px)
    families = build_families(profiles, keys)
    nodes = tuple(Node(n.id, n.memory, cores=n.cores, domain=n.domain) for n in config.nodes)
    return SimInputs(config, families, tuple(config.apps), nodes, source)
