"""The controller's settings, validated once at startup."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ControllerConfig"]


class ControllerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=7000, ge=0, le=65535)
    state_path: Path
    token: str | None = None
    profiles: tuple[Path, ...] = Field(
        default=(), description="profile JSON files: the families the cluster knows"
    )
    heartbeat_interval_ms: float = Field(default=20.0, gt=0)
    heartbeat_timeout_ms: float = Field(default=90.0, gt=0, description="silence that declares a node dead")
    suspect_timeout_ms: float = Field(default=40.0, gt=0, description="silence after a client's suspicion")
    adopt_grace_ms: float = Field(
        default=3000.0, gt=0, description="after a restart, time for agents to return"
    )
    unload_grace_ms: float = Field(default=1000.0, ge=0, description="keep unneeded replicas this long")
    reconcile_interval_ms: float = Field(default=50.0, gt=0)
    load_timeout_s: float = Field(default=60.0, gt=0)
    agent_timeout_s: float = Field(default=2.0, gt=0, description="timeout of other calls to agents")
    policy: str = "faillite"
    method: str = "exact"
    plan_time_limit_s: float = Field(default=5.0, gt=0)
    progressive: bool = True
    climb_interval_ms: float = Field(default=2000.0, gt=0, description="how often to try climbing back")
