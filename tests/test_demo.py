"""`make demo` runs `faillite demo`: it must finish successfully and show what it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_serves_every_digits_variant_at_its_manifest_accuracy() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faillite", "demo", "--tour"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("digits-mlp-4", "digits-mlp-8", "digits-mlp-16", "digits-mlp-64", "digits-mlp-256x128"):
        assert f"{name}" in done.stdout
    assert "every variant served exactly the accuracy its manifest states" in done.stdout
    assert done.stdout.count("served accuracy") == 5


@pytest.mark.integration
@pytest.mark.slow
def test_failover_demo_json_accounts_for_every_affected_app() -> None:
    import json

    done = subprocess.run(
        [sys.executable, "-m", "faillite", "demo", "--json", "--steady", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (failure,) = result["failures"]
    assert failure["kind"] == "SIGKILL" and failure["apps"]
    fields = {
        "app",
        "critical",
        "mode",
        "mttr_ms",
        "full_recovery_ms",
        "failed_requests",
        "steps",
        "accuracy_before",
        "accuracy_after",
    }
    for app in failure["apps"]:
        assert set(app) == fields
        assert app["mode"] in ("warm", "cold")
        assert app["mttr_ms"] is not None and app["mttr_ms"] > 0
        assert app["steps"] and all(s["node"] != failure["node"] for s in app["steps"])
        assert app["steps"][0]["at_ms"] == pytest.approx(app["mttr_ms"], abs=0.01)
    summary = result["summary"]
    assert summary["affected"] == len(failure["apps"]) == summary["recovered"]
    mttrs = sorted(a["mttr_ms"] for a in failure["apps"])
    assert summary["mttr_mean_ms"] == pytest.approx(sum(mttrs) / len(mttrs), abs=0.01)
    assert summary["failed_requests"] == sum(a["failed_requests"] for a in failure["apps"])
    assert result["failback"]["node"] == failure["node"]
