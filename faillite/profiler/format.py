"""The profile format: what the profiler measured for each variant, consumed by the planner.

File format (JSON)::

    {
      "schema": "faillite.profile/v1",
      "machine": {"hostname": "...", "cpu_count": 2, "onnxruntime": "1.31.1", "intra_op_threads": 1},
      "created": "2026-11-28T17:00:00Z",
      "variants": [
        {"family": "digits", "variant": "digits-mlp-8", "accuracy": 0.93,
         "accuracy_source": "measured", "file_bytes": 3012,
         "load_ms": 1.2, "load_ms_samples": [1.3, 1.2, 1.1],
         "memory_bytes": 524288,
         "first_infer_ms": 0.4, "infer_p50_ms": 0.05, "infer_p99_ms": 0.09, "batch": 1}
      ]
    }

``memory_bytes`` is the resident memory the loaded session added (RSS after minus before,
at least the file size). Latencies are for one request of ``batch`` samples, in-process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faillite.errors import describe_validation

__all__ = [
    "PROFILE_SCHEMA",
    "MachineInfo",
    "ProfileError",
    "ProfileSet",
    "VariantProfile",
    "load_profiles",
    "save_profiles",
]

PROFILE_SCHEMA = "faillite.profile/v1"


class ProfileError(ValueError):
    """A profile file is missing or malformed."""


class MachineInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hostname: str
    cpu_count: int
    onnxruntime: str
    intra_op_threads: int = 1


class VariantProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str
    variant: str
    accuracy: float = Field(ge=0.0, le=1.0)
    accuracy_source: Literal["measured", "published"]
    file_bytes: int = Field(ge=0)
    load_ms: float = Field(ge=0.0, description="median load time into a running process")
    load_ms_samples: tuple[float, ...] = ()
    memory_bytes: int = Field(ge=0, description="resident memory added by the loaded session")
    first_infer_ms: float = Field(ge=0.0)
    infer_p50_ms: float = Field(ge=0.0)
    infer_p99_ms: float = Field(ge=0.0)
    batch: int = Field(default=1, ge=1)


class ProfileSet(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_: Literal["faillite.profile/v1"] = Field(default=PROFILE_SCHEMA, alias="schema")
    machine: MachineInfo
    created: str
    variants: tuple[VariantProfile, ...]

    def get(self, family: str, variant: str) -> VariantProfile | None:
        for p in self.variants:
            if p.family == family and p.variant == variant:
                return p
        return None


def load_profiles(path: Path) -> ProfileSet:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ProfileError(f"{path}: profile file not found") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    try:
        return ProfileSet.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"{path}: {describe_validation(exc)}") from exc


def save_profiles(profiles: ProfileSet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profiles.model_dump(mode="json", by_alias=True), indent=2) + "\n")
