"""``faillite plan`` end to end, as a subprocess on the documented examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from faillite.plancheck import check
from faillite.sim.generate import generate_cluster, write_cluster

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def faillite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faillite.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def plan(
    *extra: str, cluster: str = "cluster.yaml", apps: str = "apps.yaml"
) -> subprocess.CompletedProcess[str]:
    return faillite("plan", "--cluster", str(EXAMPLES / cluster), "--apps", str(EXAMPLES / apps), *extra)


def test_table_on_the_example() -> None:
    r = plan()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["app", "primary", "node"]
    for name in ("gate-camera", "shelf-monitor", "dock-counter", "badge-reader", "yard-watch"):
        assert any(line.startswith(name) for line in lines), name
    assert "5/5 apps protected" in r.stdout
    assert "method exact, policy faillite, status optimal" in r.stdout


@pytest.mark.parametrize("method", ["exact", "greedy"])
def test_json_is_complete_and_checks(method: str) -> None:
    r = plan("--json", "--method", method)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"method", "policy", "objective", "solve_seconds", "nodes", "apps"} <= set(doc)
    assert doc["method"] == method and doc["policy"] == "faillite"
    for n in doc["nodes"]:
        assert {"id", "memory_bytes", "domain"} <= set(n)
    for a in doc["apps"]:
        assert {"name", "family", "primary", "backup"} <= set(a)
        assert set(a["primary"]) == {"node", "variant", "memory_bytes", "accuracy"}
        assert set(a["backup"]) == {
            "node",
            "variant",
            "memory_bytes",
            "accuracy",
            "mode",
            "expected_recovery_ms",
        }
        assert a["backup"]["mode"] in ("warm", "cold")
    assert next(a for a in doc["apps"] if a["name"] == "gate-camera")["backup"]["mode"] == "warm"  # critical
    assert check(doc).violations == []


def test_baseline_policy() -> None:
    r = plan("--json", "--policy", "none")
    assert r.returncode == 0, r.stderr
    assert all(a["backup"] is None for a in json.loads(r.stdout)["apps"])


def test_infeasible_example_says_why_and_fails() -> None:
    r = plan(cluster="infeasible-cluster.yaml")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "no plan (infeasible)" in r.stderr
    assert "node edge-4" in r.stderr and "after a failure of domain rack-a" in r.stderr
    assert "budget 140.0 MiB" in r.stderr
    assert "Traceback" not in r.stderr


def test_config_errors_name_file_field_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "cluster.yaml"
    bad.write_text("nodes:\n  - {id: n1, memory: lots}\n")
    r = faillite("plan", "--cluster", str(bad), "--apps", str(EXAMPLES / "apps.yaml"))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "nodes[0].memory" in r.stderr and "'lots'" in r.stderr
    apps = tmp_path / "apps.yaml"
    apps.write_text("apps:\n  - {name: a, family: ResNot, slo_ms: 10}\n")
    r = faillite("plan", "--cluster", str(EXAMPLES / "cluster.yaml"), "--apps", str(apps))
    assert r.returncode == 2
    assert str(apps) in r.stderr and "apps[0].family" in r.stderr and "'ResNot'" in r.stderr
    apps.write_text("apps:\n  - {name: a, family: ResNet, slo_ms: -5}\n")
    r = faillite("plan", "--cluster", str(EXAMPLES / "cluster.yaml"), "--apps", str(apps))
    assert r.returncode == 2 and "apps[0].slo_ms" in r.stderr and "-5" in r.stderr
    apps.write_text("apps:\n  - {name: a, family: ResNet, slo_ms: 500, node: edge-9}\n")
    r = faillite("plan", "--cluster", str(EXAMPLES / "cluster.yaml"), "--apps", str(apps))
    assert r.returncode == 2 and "apps[0].node" in r.stderr and "'edge-9'" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_command_offers_exactly_the_planner_methods_and_policies() -> None:
    from faillite.commands.plan import METHODS, POLICIES
    from faillite.placement import Method, Policy

    assert set(METHODS) == {m.value for m in Method}
    assert set(POLICIES) == {p.value for p in Policy}


def test_a_generated_cluster_file_plans_without_apps_file(tmp_path: Path) -> None:
    path = tmp_path / "gen.yaml"
    write_cluster(generate_cluster(12, 40, seed=3, domain_size=3, spare=0.5), path)
    r = faillite("plan", "--cluster", str(path), "--json", "--method", "greedy")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["apps"]) == 40 and doc["method"] == "greedy" and doc["policy"] == "faillite"
    assert check(doc).violations == []
    # the file's controller section picks the method and policy when the command does not
    r = faillite("plan", "--cluster", str(path), "--json", "--policy", "full-cold")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["method"] == "exact" and doc["policy"] == "full-cold"


def test_cluster_file_without_apps_needs_apps_file(tmp_path: Path) -> None:
    r = faillite("plan", "--cluster", str(EXAMPLES / "cluster.yaml"))
    assert r.returncode == 2
    assert "cluster.yaml" in r.stderr and "--apps" in r.stderr and "Traceback" not in r.stderr
    bare = tmp_path / "bare.yaml"
    bare.write_text("nodes:\n  - {id: a, memory: 64MiB}\n  - {id: b, memory: 64MiB}\n")
    r = faillite("plan", "--cluster", str(bare))
    assert r.returncode == 2 and "lists no apps" in r.stderr and "--apps" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "nodes:\n  - {id: a, memory: 64MiB}\n  - {id: b, memory: 64MiB}\n"
        "apps:\n  - {name: x, family: ResNot, slo_ms: 50}\n"
    )
    r = faillite("plan", "--cluster", str(bad))
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "ResNot" in r.stderr
    assert "Traceback" not in r.stderr
