"""The two YAML files of ``faillite plan``, as pydantic models (validation only, no I/O)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from faillite.units import parse_bytes

__all__ = ["AppSpec", "AppsFile", "ClusterFile", "NodeSpec"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_NAME)
    memory: int = Field(gt=0, description='memory budget for models, e.g. "2GiB"')
    cores: float = Field(default=1.0, gt=0)
    speed: float = Field(default=1.0, gt=0, description="inference speed relative to the profiled machine")
    domain: str | None = Field(default=None, pattern=_NAME)

    @field_validator("memory", mode="before")
    @classmethod
    def _bytes(cls, v: object) -> int:
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ValueError("expected a byte quantity such as 2GiB or 512MiB")
        return parse_bytes(v)


class ClusterFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    detection_ms: float = Field(default=50.0, ge=0)
    switch_ms: float = Field(default=5.0, ge=0)
    use_domains: bool = True
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)


class AppSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    family: str
    variant: str | None = None  # primary variant; default: the most accurate that meets the SLO
    node: str | None = None  # primary node; default: the planner places it
    slo_ms: float = Field(gt=0)
    weight: float = Field(default=1.0, gt=0, le=1000)
    critical: bool = False
    max_recovery_ms: float | None = Field(default=None, gt=0)
    request_rate: float = Field(default=0.0, ge=0, description="requests per second")


class AppsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    apps: tuple[AppSpec, ...] = Field(min_length=1)
