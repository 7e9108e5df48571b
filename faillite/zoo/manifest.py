"""The family manifest: the single source of truth for a model family.

A family is a set of ONNX variants sharing one signature (input/output names, datatypes and
shapes), so that any variant can stand in for another after a failure. The manifest lists,
for every variant, its file, sha256, size, parameter count, FLOPs and accuracy, and says where
the accuracy comes from (``measured`` here on a held-out split, or ``published``).

File format (JSON, ``<family>.manifest.json`` next to the ONNX files)::

    {
      "schema": "faillite.family/v1",
      "family": "digits",
      "task": "digits-10",
      "accuracy_source": "measured",
      "accuracy_note": "held-out split of scikit-learn digits, ...",
      "signature": {"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
                    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]},
      "variants": [{"name": "digits-mlp-8", "file": "digits-mlp-8.onnx", "accuracy": 0.93,
                    "params": 610, "flops": 1220, "file_bytes": 3012, "sha256": "..."}]
    }

``task`` names what the outputs mean (``imagenet-1k-classification``, ``digits-10``); it is
optional (older manifests load with ``None``). Two families with the same task and the same
signature answer the same question the same way, so one warm model of either can be the shared
fallback of apps of both: ``fallback_key`` says when that holds.

A variant whose weights live in external data (``<file>.data`` beside ``<file>``, for graphs
over protobuf's 2 GB cap) is one unit: ``file_bytes`` and ``sha256`` cover both files, graph
first (``variant_bytes``, ``variant_sha256``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faillite.errors import describe_validation

__all__ = [
    "SCHEMA",
    "FamilyManifest",
    "HeldoutSplit",
    "ManifestError",
    "Signature",
    "TensorSpec",
    "VariantEntry",
    "external_data_path",
    "fallback_key",
    "load_manifest",
    "onnx_signature",
    "sha256_file",
    "variant_bytes",
    "variant_sha256",
    "verify_files",
    "write_manifest",
]

SCHEMA = "faillite.family/v1"

# OIP (KServe v2) datatype names; ONNX element types map onto these one to one.
Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class ManifestError(ValueError):
    """A family manifest is malformed or does not match the files next to it."""


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    datatype: Datatype
    shape: tuple[int, ...] = Field(description="-1 marks a variable dimension (the batch)")


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


class HeldoutSplit(BaseModel):
    """How the accuracy was measured: a reproducible held-out split (``measured`` families)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    test_size: float = Field(gt=0.0, lt=1.0)
    seed: int
    samples: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="digest of the held-out inputs and labels")


class VariantEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    file: str
    accuracy: float = Field(ge=0.0, le=1.0, description="top-1, as a fraction")
    params: int = Field(ge=0)
    flops: int = Field(ge=0, description="multiply-accumulates per sample")
    file_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    published_model: str | None = Field(default=None, description="the published model stood in for")


class FamilyManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_: Literal["faillite.family/v1"] = Field(default=SCHEMA, alias="schema")
    family: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="what the outputs mean, e.g. imagenet-1k-classification; None: unknown",
    )
    accuracy_source: Literal["measured", "published"]
    accuracy_note: str = ""
    heldout: HeldoutSplit | None = None
    signature: Signature
    variants: tuple[VariantEntry, ...] = Field(min_length=1)
    directory: Path | None = Field(default=None, exclude=True, description="where the files are")

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: tuple[VariantEntry, ...]) -> tuple[VariantEntry, ...]:
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate variant names: {', '.join(dupes)}")
        return variants

    def variant(self, name: str) -> VariantEntry:
        for entry in self.variants:
            if entry.name == name:
                return entry
        known = ", ".join(v.name for v in self.variants)
        raise KeyError(f"family {self.family!r} has no variant {name!r} (known: {known})")

    def path_of(self, name: str) -> Path:
        if self.directory is None:
            raise ManifestError(f"family {self.family!r} was not loaded from a directory")
        return self.directory / self.variant(name).file

    def by_accuracy(self) -> list[VariantEntry]:
        """Variants from the most to the least accurate."""
        return sorted(self.variants, key=lambda v: (-v.accuracy, v.file_bytes))


def fallback_key(manifest: FamilyManifest) -> str | None:
    """Equal for two families exactly when they share the task and the input and output
    signatures (names, datatypes, shapes), so a model of one can answer requests of the other.
    None when the task is unknown: such a family shares a fallback with nobody."""
    if manifest.task is None:
        return None
    signature = manifest.signature.model_dump(mode="json")
    return json.dumps({"task": manifest.task, "signature": signature}, sort_keys=True, separators=(",", ":"))


def sha256_file(path: Path) -> str:
    return _sha256_of(path)


def _sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def external_data_path(path: Path) -> Path:
    """Where a graph's external weights live, if it has any (``<file>.data``)."""
    return path.with_name(path.name + ".data")


def variant_bytes(path: Path) -> int:
    """Bytes of a variant on disk: the graph plus its external data, if any."""
    data = external_data_path(path)
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def variant_sha256(path: Path) -> str:
    """sha256 of the graph followed by its external data (of the graph alone when it has none)."""
    data = external_data_path(path)
    return _sha256_of(path, data) if data.is_file() else _sha256_of(path)


_ONNX_TO_OIP = {
    1: "FP32",
    2: "UINT8",
    3: "INT8",
    4: "UINT16",
    5: "INT16",
    6: "INT32",
    7: "INT64",
    8: "BYTES",
    9: "BOOL",
    10: "FP16",
    11: "FP64",
    12: "UINT32",
    13: "UINT64",
}


def onnx_signature(path: Path) -> Signature:
    """Read the graph's input/output signature without loading external weights."""
    import onnx  # local import: only manifest checks need the onnx package

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / OSError variants
        raise ManifestError(f"{path}: not a readable ONNX model ({exc})") from exc
    initializers = {init.name for init in model.graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        ttype = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim)
        dtype = _ONNX_TO_OIP.get(ttype.elem_type)
        if dtype is None:
            raise ManifestError(
                f"{path}: tensor {value.name!r} has unsupported element type {ttype.elem_type}"
            )
        return TensorSpec(name=value.name, datatype=dtype, shape=dims)

    return Signature(
        inputs=tuple(spec(v) for v in model.graph.input if v.name not in initializers),
        outputs=tuple(spec(v) for v in model.graph.output),
    )


def load_manifest(path: Path, *, verify: bool = True) -> FamilyManifest:
    """Load and validate a family manifest.

    With ``verify`` every variant file must exist, match its sha256 and size, and carry the
    family signature; every problem found is reported in one ManifestError naming the variants.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: manifest not found") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    try:
        manifest = FamilyManifest.model_validate({**raw, "directory": path.parent})
    except ValidationError as exc:
        raise ManifestError(f"{path}: {describe_validation(exc)}") from exc
    if verify:
        verify_files(manifest, path)
    return manifest


def verify_files(manifest: FamilyManifest, source: Path | str = "manifest") -> None:
    problems: list[str] = []
    for entry in manifest.variants:
        file = manifest.path_of(entry.name)
        if not file.is_file():
            problems.append(f"variant {entry.name}: file {file} is missing")
            continue
        size = variant_bytes(file)
        if size != entry.file_bytes:
            problems.append(f"variant {entry.name}: file is {size} bytes, manifest says {entry.file_bytes}")
        digest = variant_sha256(file)
        if digest != entry.sha256:
            problems.append(f"variant {entry.name}: sha256 {digest} does not match manifest {entry.sha256}")
            continue
        signature = onnx_signature(file)
        if signature != manifest.signature:
            problems.append(
                f"variant {entry.name}: signature {_describe(signature)} differs from the family "
                f"signature {_describe(manifest.signature)}"
            )
    if problems:
        raise ManifestError(f"{source}: family {manifest.family!r}: " + "; ".join(problems))


def _describe(signature: Signature) -> str:
    def one(specs: tuple[TensorSpec, ...]) -> str:
        return ", ".join(f"{s.name}:{s.datatype}{list(s.shape)}" for s in specs)

    return f"({one(signature.inputs)}) -> ({one(signature.outputs)})"


def write_manifest(manifest: FamilyManifest, path: Path) -> None:
    data = manifest.model_dump(mode="json", by_alias=True, exclude={"directory"})
    path.write_text(json.dumps(data, indent=2) + "\n")
