"""Regenerate the digits family: train the ladder, export to ONNX, measure, write the manifest.

Run with ``faillite zoo train-digits`` (about a minute on 2 cores). The accuracy written to the
manifest is measured by running the exported ONNX file in ONNX Runtime over the held-out split,
so it is exactly what a served variant achieves.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from faillite.zoo import digits
from faillite.zoo.manifest import (
    SCHEMA,
    FamilyManifest,
    HeldoutSplit,
    Signature,
    TensorSpec,
    VariantEntry,
    sha256_file,
    write_manifest,
)

__all__ = ["onnx_accuracy", "train_digits_family"]

SIGNATURE = Signature(
    inputs=(TensorSpec(name=digits.INPUT_NAME, datatype="FP32", shape=(-1, 64)),),
    outputs=(TensorSpec(name=digits.OUTPUT_NAME, datatype="FP32", shape=(-1, 10)),),
)


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (probs,) = session.run([digits.OUTPUT_NAME], {digits.INPUT_NAME: x})
    return float((probs.argmax(axis=1) == y).mean())


def train_digits_family(out_dir: Path, progress: Callable[[str], None] = print) -> FamilyManifest:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, y_train = digits.train_split()
    x_test, y_test = digits.heldout_split()
    entries = []
    for spec in digits.LADDER:
        progress(f"training {spec.name} (hidden layers {spec.hidden}) ...")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = MLPClassifier(
                hidden_layer_sizes=spec.hidden, max_iter=2000, alpha=1e-3, random_state=spec.seed
            ).fit(x_train / 16.0, y_train)
        file = out_dir / f"{spec.name}.onnx"
        file.write_bytes(digits.mlp_to_onnx(list(clf.coefs_), list(clf.intercepts_), spec.name))
        accuracy = onnx_accuracy(file, x_test, y_test)
        params = sum(w.size + b.size for w, b in zip(clf.coefs_, clf.intercepts_, strict=True))
        macs = sum(w.size for w in clf.coefs_)
        progress(f"  held-out accuracy {accuracy:.4f}, {params} parameters")
        entries.append(
            VariantEntry(
                name=spec.name,
                file=file.name,
                accuracy=round(accuracy, 6),
                params=int(params),
                flops=int(macs),
                file_bytes=file.stat().st_size,
                sha256=sha256_file(file),
            )
        )
    manifest = FamilyManifest.model_validate(
        {
            "schema": SCHEMA,
            "family": "digits",
            "task": "digits-10",
            "accuracy_source": "measured",
            "accuracy_note": (
                "top-1 measured by ONNX Runtime on the held-out split of scikit-learn's digits "
                f"(test_size={digits.TEST_SIZE}, stratified, seed {digits.SPLIT_SEED})"
            ),
            "heldout": HeldoutSplit(
                dataset=digits.DATASET,
                test_size=digits.TEST_SIZE,
                seed=digits.SPLIT_SEED,
                samples=len(y_test),
                sha256=digits.split_digest(x_test, y_test),
            ),
            "signature": SIGNATURE,
            "variants": entries,
        }
    )
    write_manifest(manifest, out_dir / "manifest.json")
    progress(f"wrote {out_dir / 'manifest.json'}")
    return manifest
