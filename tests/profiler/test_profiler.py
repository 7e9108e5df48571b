"""The profiler measures real loads and inferences and writes the format the planner reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faillite.profiler.family import profile_family
from faillite.profiler.format import ProfileError, load_profiles, save_profiles
from faillite.profiler.measure import measure_model, sample_inputs
from faillite.zoo.catalog import load_builtin_family


def test_measure_model_reports_consistent_figures() -> None:
    manifest = load_builtin_family("digits")
    m = measure_model(manifest.path_of("digits-mlp-256x128"), loads=3, runs=20)
    assert len(m.load_ms_samples) == 3 and all(s > 0 for s in m.load_ms_samples)
    assert len(m.infer_ms_samples) == 20
    assert min(m.load_ms_samples) <= m.load_ms <= max(m.load_ms_samples)
    assert m.infer_percentile(50) <= m.infer_percentile(99)
    # 50k float32 weights are ~200 KB: the session must add at least a good part of that.
    assert m.memory_bytes > 100_000


def test_profile_family_roundtrips_through_the_file(tmp_path: Path) -> None:
    manifest = load_builtin_family("digits")
    profiles = profile_family(
        manifest, variants=["digits-mlp-4", "digits-mlp-64"], loads=2, runs=5, progress=lambda _: None
    )
    assert [p.variant for p in profiles.variants] == ["digits-mlp-4", "digits-mlp-64"]
    for p in profiles.variants:
        entry = manifest.variant(p.variant)
        assert p.accuracy == entry.accuracy and p.accuracy_source == "measured"
        assert p.memory_bytes >= entry.file_bytes
        assert len(p.load_ms_samples) == 2
    path = tmp_path / "p.json"
    save_profiles(profiles, path)
    assert load_profiles(path) == profiles
    assert load_profiles(path).get("digits", "digits-mlp-64") is not None
    assert load_profiles(path).get("digits", "nope") is None


def test_broken_profile_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"schema": "faillite.profile/v1", "machine": {}, "created": "x", "variants": []})
    )
    with pytest.raises(ProfileError, match=r"bad.json: machine.hostname"):
        load_profiles(path)
    with pytest.raises(ProfileError, match="not found"):
        load_profiles(tmp_path / "missing.json")


def test_sample_inputs_replace_the_batch_dimension() -> None:
    feeds = sample_inputs([("a", "FP32", (-1, 3)), ("b", "INT64", (2,))], batch=4)
    assert feeds["a"].shape == (4, 3) and str(feeds["a"].dtype) == "float32"
    assert feeds["b"].shape == (2,) and str(feeds["b"].dtype) == "int64"
    with pytest.raises(ValueError, match="BYTES"):
        sample_inputs([("s", "BYTES", (1,))], batch=1)


def test_profile_command_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "digits.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "faillite",
            "profile",
            "digits/digits-mlp-8",
            "--loads",
            "2",
            "--runs",
            "5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "digits-mlp-8" in done.stdout and "wrote" in done.stdout
    assert [p.variant for p in load_profiles(out).variants] == ["digits-mlp-8"]


def test_profile_command_unknown_target_is_one_line_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite", "profile", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no family or variant named 'no-such-model'" in done.stderr
    assert "Traceback" not in done.stderr
