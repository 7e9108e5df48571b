"""`make demo` runs `faillite demo`: it must finish successfully and show what it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_serves_every_digits_variant_at_its_manifest_accuracy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite", "demo", "--tour"], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("digits-mlp-4", "digits-mlp-8", "digits-mlp-16", "digits-mlp-64", "digits-mlp-256x128"):
        assert f"{name}" in done.stdout
    assert "every variant served exactly the accuracy its manifest states" in done.stdout
    assert done.stdout.count("served accuracy") == 5
