"""Triton-style model repositories: ``DIR/<model>/<version>/model.onnx`` plus ``DIR/<model>/faillite.json``.

``faillite.json`` (optional; a model without it is served with defaults) tells the agent and
the controller what the model is::

    {"family": "digits", "variant": "digits-mlp-8", "accuracy": 0.93,
     "accuracy_source": "measured", "memory_bytes": 524288}

``memory_bytes`` is the profiled resident footprint; when absent the agent estimates the
footprint from the file size. Versions are positive integers; the highest one is served.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faillite.errors import describe_validation
from faillite.zoo.manifest import FamilyManifest

__all__ = [
    "META_FILE",
    "ModelMeta",
    "RepositoryError",
    "add_variant",
    "build_repository",
    "latest_model_file",
    "model_versions",
    "read_meta",
]

META_FILE = "faillite.json"


class RepositoryError(ValueError):
    """A model directory in a repository is malformed."""


class ModelMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str | None = None
    variant: str | None = None
    accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    accuracy_source: Literal["measured", "published"] | None = None
    memory_bytes: int | None = Field(default=None, ge=0)


def read_meta(model_dir: Path) -> ModelMeta:
    path = model_dir / META_FILE
    if not path.exists():
        return ModelMeta()
    try:
        return ModelMeta.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise RepositoryError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    except ValidationError as exc:
        raise RepositoryError(f"{path}: {describe_validation(exc)}") from exc


def model_versions(model_dir: Path) -> list[int]:
    """Version directories holding a model.onnx, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / "model.onnx").is_file()
    )


def latest_model_file(model_dir: Path) -> Path:
    versions = model_versions(model_dir)
    if not versions:
        raise RepositoryError(f"{model_dir}: no <version>/model.onnx found")
    return model_dir / str(versions[-1]) / "model.onnx"


def add_variant(
    repo: Path,
    manifest: FamilyManifest,
    variant: str,
    *,
    model_name: str | None = None,
    memory_bytes: int | None = None,
    link: bool = True,
) -> Path:
    """Place one variant of a family into ``repo`` as ``<model_name>/1/model.onnx``.

    Files are hard-linked when possible (same file system), else copied; a variant with
    external weights (``<file>.data`` beside it) brings them along.
    """
    entry = manifest.variant(variant)
    source = manifest.path_of(variant)
    name = model_name or variant
    model_dir = repo / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    _place(source, version_dir / "model.onnx", link)
    external = source.with_name(source.name + ".data")
    if external.exists():
        _place(external, version_dir / external.name, link)
    meta = ModelMeta(
        family=manifest.family,
        variant=entry.name,
        accuracy=entry.accuracy,
        accuracy_source=manifest.accuracy_source,
        memory_bytes=memory_bytes,
    )
    (model_dir / META_FILE).write_text(json.dumps(meta.model_dump(exclude_none=True), indent=2) + "\n")
    return model_dir


def build_repository(repo: Path, manifest: FamilyManifest, variants: list[str] | None = None) -> Path:
    """A repository holding ``variants`` (default: all) of one family, each under its variant name."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in variants or [v.name for v in manifest.variants]:
        add_variant(repo, manifest, name)
    return repo


def _place(source: Path, dest: Path, link: bool) -> None:
    if dest.exists():
        dest.unlink()
    if link:
        try:
            os.link(source, dest)
            return
        except OSError:
            pass
    shutil.copyfile(source, dest)
