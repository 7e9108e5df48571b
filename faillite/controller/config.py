"""The controller's settings, validated once at startup."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from faillite.controller.liveness import DEFAULT_INTERVAL_MS, Detector

__all__ = ["ControllerConfig", "make_detector"]


def make_detector(
    heartbeat_interval_ms: float | None = None,
    heartbeat_timeout_ms: float | None = None,
    *,
    phi_dead: float = 8.0,
    phi_suspect: float = 3.0,
    acceptable_pause_ms: float = 30.0,
    min_std_ms: float = 5.0,
    max_timeout_ms: float = 2000.0,
    pressure_pause_ms: float = 400.0,
) -> Detector:
    """The failure detector these settings give (the controller's, and the planner's estimate)."""
    return Detector(
        interval_s=(heartbeat_interval_ms or DEFAULT_INTERVAL_MS) / 1000,
        phi_dead=phi_dead,
        phi_suspect=phi_suspect,
        acceptable_pause_s=acceptable_pause_ms / 1000,
        min_std_s=min_std_ms / 1000,
        max_timeout_s=max(max_timeout_ms, heartbeat_timeout_ms or 0.0) / 1000,
        min_timeout_s=(heartbeat_timeout_ms or 0.0) / 1000,
        pressure_pause_s=pressure_pause_ms / 1000,
    )


class ControllerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=7000, ge=0, le=65535)
    state_path: Path
    token: str | None = None
    profiles: tuple[Path, ...] = Field(
        default=(), description="profile JSON files: the families the cluster knows"
    )
    manifests: tuple[Path, ...] = Field(
        default=(), description="family manifests: which families may share a warm fallback (task, signature)"
    )
    heartbeat_interval_ms: float = Field(
        default=DEFAULT_INTERVAL_MS, gt=0, description="how often agents beat"
    )
    heartbeat_timeout_ms: float | None = Field(
        default=None, gt=0, description="optional floor: never declare a node dead by silence sooner"
    )
    phi_dead: float = Field(default=8.0, gt=0, description="dead when a beat this late has P < 10**-phi")
    phi_suspect: float = Field(default=3.0, gt=0, description="the same after a client's suspicion")
    acceptable_pause_ms: float = Field(default=30.0, ge=0, description="silence always tolerated on top")
    min_std_ms: float = Field(default=5.0, gt=0, description="floor on a node's inter-arrival spread")
    max_timeout_ms: float = Field(default=2000.0, gt=0, description="ceiling of the adaptive timeout")
    pressure_pause_ms: float = Field(
        default=400.0, ge=0, description="extra pause at 100 % CPU pressure on the agent's box"
    )
    adopt_grace_ms: float = Field(
        default=3000.0, gt=0, description="after a restart, time for agents to return"
    )
    unload_grace_ms: float = Field(default=1000.0, ge=0, description="keep unneeded replicas this long")
    reconcile_interval_ms: float = Field(
        default=500.0, gt=0, description="reconcile at least this often (changes wake it at once)"
    )
    load_timeout_s: float = Field(default=60.0, gt=0)
    agent_timeout_s: float = Field(default=2.0, gt=0, description="timeout of other calls to agents")
    policy: str = "faillite"
    method: str = "exact"
    plan_time_limit_s: float = Field(default=5.0, gt=0)
    progressive: bool = True
    climb_interval_ms: float = Field(
        default=250.0, gt=0, description="how often to try settling failed-over apps (climbing back)"
    )

    def detector(self) -> Detector:
        return make_detector(
            self.heartbeat_interval_ms,
            self.heartbeat_timeout_ms,
            phi_dead=self.phi_dead,
            phi_suspect=self.phi_suspect,
            acceptable_pause_ms=self.acceptable_pause_ms,
            min_std_ms=self.min_std_ms,
            max_timeout_ms=self.max_timeout_ms,
            pressure_pause_ms=self.pressure_pause_ms,
        )
