"""Where generated models live: ``$FAILLITE_CACHE`` or ``~/.cache/faillite``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["GENERATOR_REVISION", "cache_dir", "standin_dir"]

# Bumped when the stand-in graphs change for the same options, so stale builds are never reused
# (2: the pooling gives exactly side x side positions when side does not divide the input).
GENERATOR_REVISION = 2


def cache_dir() -> Path:
    env = os.environ.get("FAILLITE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "faillite"


def standin_dir(
    family: str, scale: float, input_px: int = 224, root: Path | None = None, *, macs: str = "scaled"
) -> Path:
    """Each (generator revision, scale, input size, MAC target) gets its own directory so
    differently built stand-ins never mix."""
    base = root or cache_dir() / "standins"
    suffix = "" if macs == "scaled" else f"-macs-{macs}"
    return base / f"r{GENERATOR_REVISION}" / f"scale-{scale:g}-px{input_px}{suffix}" / family
