"""Byte quantities: parse "2GiB"/"512MB"/"1048576" and format them back for humans."""

from __future__ import annotations

import re

__all__ = ["format_bytes", "parse_bytes"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: str | int | float) -> int:
    """Return a byte count from an int or a string such as ``"2GiB"``, ``"1.5 GB"``, ``"4096"``.

    Raises ValueError with the offending text when it is not a non-negative quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a byte quantity: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"byte quantity must not be negative: {value!r}")
        return int(value)
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"not a byte quantity: {value!r} (expected e.g. 512MiB, 2GiB, 1.5GB)")
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown byte unit {unit!r} in {value!r} (use B, KB, MB, GB, KiB, MiB, GiB)")
    return int(float(number) * factor)


def format_bytes(n: float) -> str:
    """Format a byte count with binary units, e.g. ``1.5 GiB``."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
