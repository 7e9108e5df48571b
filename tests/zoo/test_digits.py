"""The digits family: reproducible split, accuracies that really differ, and match the manifest."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from faillite.zoo import digits
from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.train_digits import onnx_accuracy


def test_heldout_split_is_the_one_the_manifest_was_measured_on() -> None:
    manifest = load_builtin_family("digits")
    x, y = digits.heldout_split()
    assert manifest.heldout is not None
    assert x.shape == (manifest.heldout.samples, 64) and x.dtype == np.float32
    assert y.shape == (manifest.heldout.samples,) and y.dtype == np.int64
    assert digits.split_digest(x, y) == manifest.heldout.sha256
    # Two calls give the same split (seeded), and train/held-out do not overlap in size.
    x2, y2 = digits.heldout_split()
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x_train, _ = digits.train_split()
    assert len(x_train) + len(x) == 1797


def test_each_variant_scores_its_manifest_accuracy_in_onnxruntime() -> None:
    manifest = load_builtin_family("digits")
    x, y = digits.heldout_split()
    for entry in manifest.variants:
        assert onnx_accuracy(manifest.path_of(entry.name), x, y) == pytest.approx(entry.accuracy, abs=1e-6)


def test_ladder_accuracies_really_differ() -> None:
    accuracies = sorted(v.accuracy for v in load_builtin_family("digits").variants)
    assert len(accuracies) >= 4
    assert accuracies[0] <= 0.92
    assert accuracies[-1] >= 0.97
    assert len(set(accuracies)) == len(accuracies)


def test_variants_share_one_signature_and_give_probabilities() -> None:
    manifest = load_builtin_family("digits")
    x, _ = digits.heldout_split()
    for entry in manifest.variants:
        session = ort.InferenceSession(str(manifest.path_of(entry.name)), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [digits.INPUT_NAME]
        (probs,) = session.run([digits.OUTPUT_NAME], {digits.INPUT_NAME: x[:7]})
        assert probs.shape == (7, 10)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_manifest_counts_match_the_graphs() -> None:
    import onnx

    manifest = load_builtin_family("digits")
    for entry in manifest.variants:
        model = onnx.load(str(manifest.path_of(entry.name)))
        weights = sum(int(np.prod(init.dims)) for init in model.graph.initializer if init.name != "scale")
        assert weights == entry.params
        assert entry.file_bytes == manifest.path_of(entry.name).stat().st_size
