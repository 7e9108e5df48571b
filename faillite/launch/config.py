"""The local cluster file (``faillite up --config FILE``): nodes, apps and how to run them.

nodes:                       # at least two
  - {id: edge-1, memory: 512MiB, cores: 1, domain: rack-a}
apps:                        # the same fields as POST /v1/apps
  - {name: digits-a, family: digits, slo_ms: 20, critical: true, weight: 3}
  - {name: vision, family: ResNet, variant: resnet50-imagenet1k_v2, slo_ms: 400}
standins: {scale: 0.02, input_px: 64}   # how stand-in families are generated; macs: scaled|input
                             # ({scale: 1.0, input_px: 32, macs: input}: published sizes, small inputs)
controller: {policy: faillite}        # heartbeat_interval_ms (60), heartbeat_timeout_ms (adaptive)
gateway: true
token: null                  # or a cluster token for control endpoints
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faillite.controller.planning import AppSpec
from faillite.errors import describe_validation
from faillite.units import parse_bytes

# libyaml when the wheel has it: a generated 10,000-app cluster file loads in 4 s instead of 9 s
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = ["ClusterConfig", "ClusterConfigError", "ControllerSection", "NodeConfig", "load_cluster_config"]


class ClusterConfigError(ValueError):
    """The cluster file is missing, malformed, or names something invalid."""


class NodeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    memory: int = Field(gt=0, description="memory budget for models, e.g. 512MiB")
    cores: float = Field(default=1.0, gt=0)
    domain: str | None = None

    @field_validator("memory", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> int:
        return parse_bytes(value)


class StandinSection(BaseModel):
    """How stand-in families are generated (faillite.zoo.standins): ``scale`` x the published
    parameters; MACs ``scaled`` by the same factor, or those of the real model at ``input_px``
    (``input``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float = Field(default=0.02, gt=0, le=1)
    input_px: int = Field(default=64, ge=8, le=1024)
    macs: Literal["scaled", "input"] = Field(
        default="scaled", description="scaled: published MACs x scale; input: at input_px"
    )


class ControllerSection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    heartbeat_interval_ms: float | None = Field(default=None, gt=0, description="the controller's default")
    heartbeat_timeout_ms: float | None = Field(
        default=None, gt=0, description="floor on the adaptive timeout (default: none)"
    )
    policy: str = "faillite"
    method: str = "exact"
    progressive: bool = True


class ClusterConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    nodes: tuple[NodeConfig, ...] = Field(min_length=2)
    apps: tuple[AppSpec, ...] = ()
    standins: StandinSection = StandinSection()
    controller: ControllerSection = ControllerSection()
    gateway: bool = True
    token: str | None = None

    @field_validator("nodes")
    @classmethod
    def _unique(cls, nodes: tuple[NodeConfig, ...]) -> tuple[NodeConfig, ...]:
        ids = [n.id for n in nodes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate node id {dupes[0]!r}")
        return nodes

    def families(self) -> list[str]:
        return sorted({a.family for a in self.apps})


def load_cluster_config(path: Path) -> ClusterConfig:
    try:
        text = Path(path).read_text()
    except FileNotFoundError as exc:
        raise ClusterConfigError(f"{path}: file not found") from exc
    try:
        doc = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ClusterConfigError(f"{path}:{where}: malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(doc, dict):
        raise ClusterConfigError(f"{path}: expected a mapping with 'nodes' and 'apps'")
    try:
        return ClusterConfig.model_validate(doc)
    except ValidationError as exc:
        raise ClusterConfigError(f"{path}: {describe_validation(exc, first_only=True)}") from exc
