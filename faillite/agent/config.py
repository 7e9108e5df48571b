"""The agent's settings, validated once at startup."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AgentConfig"]


class AgentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    node_id: str = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port (printed when ready)")
    memory_bytes: int = Field(gt=0, description="the memory budget for loaded models")
    models_dir: Path
    token: str | None = Field(default=None, description="bearer token required by control endpoints")
    load: tuple[str, ...] = ()
    intra_op_threads: int = Field(default=1, ge=1)
    infer_threads: int = Field(default=4, ge=1, description="threads running ONNX Runtime sessions")
    inline_budget_us: float = Field(
        default=150.0, ge=0, description="runs measured cheaper than this run on the event loop; 0: never"
    )
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    mem_arena: bool = Field(default=False, description="ONNX Runtime CPU arena; off keeps accounting honest")
    controller_url: str | None = Field(default=None, description="join this controller's cluster")
    cores: float = Field(default=1.0, gt=0, description="compute this node offers (told to the controller)")
    domain: str | None = Field(default=None, description="failure domain (told to the controller)")
    shutdown_timeout_s: float = Field(default=5.0, gt=0, description="grace period for in-flight requests")
