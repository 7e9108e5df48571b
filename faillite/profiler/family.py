"""Profile every variant of a family manifest and assemble a ProfileSet."""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable, Iterable

from faillite.profiler.format import MachineInfo, ProfileSet, VariantProfile
from faillite.profiler.measure import measure_model
from faillite.zoo.manifest import FamilyManifest

__all__ = ["machine_info", "profile_family"]


def machine_info(threads: int) -> MachineInfo:
    import onnxruntime as ort

    return MachineInfo(
        hostname=socket.gethostname(),
        cpu_count=os.cpu_count() or 1,
        onnxruntime=ort.__version__,
        intra_op_threads=threads,
    )


def profile_family(
    manifest: FamilyManifest,
    *,
    variants: Iterable[str] | None = None,
    loads: int = 5,
    runs: int = 50,
    batch: int = 1,
    threads: int = 1,
    progress: Callable[[str], None] = print,
) -> ProfileSet:
    names = list(variants) if variants else [v.name for v in manifest.variants]
    results = []
    for index, name in enumerate(names):
        entry = manifest.variant(name)
        progress(f"[{index + 1}/{len(names)}] profiling {manifest.family}/{name} ...")
        m = measure_model(manifest.path_of(name), loads=loads, runs=runs, batch=batch, threads=threads)
        results.append(
            VariantProfile(
                family=manifest.family,
                variant=name,
                accuracy=entry.accuracy,
                accuracy_source=manifest.accuracy_source,
                file_bytes=entry.file_bytes,
                load_ms=round(m.load_ms, 3),
                load_ms_samples=tuple(round(s, 3) for s in m.load_ms_samples),
                memory_bytes=max(m.memory_bytes, entry.file_bytes),
                first_infer_ms=round(m.first_infer_ms, 3),
                infer_p50_ms=round(m.infer_percentile(50), 4),
                infer_p99_ms=round(m.infer_percentile(99), 4),
                batch=batch,
            )
        )
    return ProfileSet(
        machine=machine_info(threads),
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        variants=tuple(results),
    )
