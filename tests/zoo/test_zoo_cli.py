"""``faillite zoo``: listing, verification and stand-in building from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if cache:
        env["FAILLITE_CACHE"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "faillite", "zoo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_list_labels_published_accuracy() -> None:
    done = _run("list")
    assert done.returncode == 0
    assert "digits  (trained here; accuracy measured" in done.stdout
    assert "ResNet  (stand-ins; accuracy PUBLISHED" in done.stdout
    assert "resnet50-imagenet1k_v2" in done.stdout


def test_standins_build_and_verify(tmp_path: Path) -> None:
    done = _run(
        "standins",
        "--family",
        "MobileNet",
        "--model",
        "mobilenet_v3_small",
        "--scale",
        "0.01",
        "--input-px",
        "32",
        cache=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "MobileNet: 1 stand-ins" in done.stdout
    manifest = tmp_path / "standins" / "r2" / "scale-0.01-px32" / "MobileNet" / "manifest.json"
    assert manifest.is_file()
    verify = _run("verify", str(manifest))
    assert verify.returncode == 0 and "1 variants verified" in verify.stdout


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    for args, message in [
        (("standins", "--family", "Nope"), "unknown stand-in family 'Nope'"),
        (
            ("standins", "--model", "resnet9000", "--family", "ResNet"),
            "unknown published model(s): resnet9000",
        ),
        (("standins", "--family", "ResNet", "--scale", "3"), "--scale must be in (0, 1]"),
        (("verify", str(tmp_path / "missing.json")), "manifest not found"),
    ]:
        done = _run(*args, cache=tmp_path)
        assert done.returncode == 2, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
