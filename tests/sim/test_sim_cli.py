"""``faillite sim``: the command surface, its JSON keys, and errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faillite.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "faillite" / "demo" / "cluster.yaml"
PAPER = ROOT / "docs" / "bench-runs" / "2026-12-02" / "failover-paper.json"


def test_run_writes_the_failover_benchmarks_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.json"
    rc = main(
        [
            "sim",
            "run",
            "--config",
            str(DEMO),
            "--policy",
            "full-warm",
            "--method",
            "greedy",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "full-warm" in text and "us/event" in text
    doc = json.loads(out.read_text())
    sim = doc["policies"]["full-warm"]
    bench = next(p for p in json.loads(PAPER.read_text())["policies"].values() if p["deployed"])
    assert set(bench) <= set(sim)  # every key of `faillite bench failover --json`, per policy
    assert sim["sim_seconds"] > 0 and sim["method"]["ran"] == "greedy"
    assert sim["failed_apps"] == 3 and set(sim["app_outcomes"]) == {
        "digits-door",
        "mobilenet-cam",
        "resnet-yard",
    }
    assert {"node_dead", "route_changed"} <= {e["kind"] for e in sim["events"]}
    assert doc["failed_nodes"] == ["edge-1"] and doc["nodes"] == 4


def test_generate_writes_a_file_sim_run_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    assert main(["sim", "generate", "--nodes", "6", "--apps", "12", "--seed", "2", "--out", str(path)]) == 0
    assert main(["sim", "run", "--config", str(path), "--failures", "random:1", "--no-events"]) == 0
    assert "faillite" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "/nonexistent/cluster.yaml"], "/nonexistent/cluster.yaml: file not found"),
        (["--config", str(DEMO), "--failures", "node:nope"], "--failures: node:nope: unknown node 'nope'"),
        (["--config", str(DEMO), "--failures", "meteor:3"], "--failures: "),
        (["--config", str(DEMO), "--policy", "best"], "--policy: unknown policy 'best'"),
        (
            ["--config", str(DEMO), "--profiles", "/nonexistent/p.json"],
            "/nonexistent/p.json: profile file not found",
        ),
    ],
)
def test_run_errors_name_the_file_or_option(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "run", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bad_cluster_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes:\n  - {id: a, memory: lots}\n  - {id: b, memory: 1GiB}\n")
    assert main(["sim", "run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "nodes.0.memory" in err
    unknown = tmp_path / "fam.yaml"
    unknown.write_text(
        "nodes:\n  - {id: a, memory: 1GiB}\n  - {id: b, memory: 1GiB}\n"
        "apps:\n  - {name: x, family: Nope, slo_ms: 10}\n"
    )
    assert main(["sim", "run", "--config", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert str(unknown) in err and "Nope" in err


def test_generate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "generate", "--nodes", "1", "--apps", "3", "--out", str(tmp_path / "c.yaml")]) == 2
    assert "nodes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("nodes", "family", "needle"),
    [
        # the controller refuses the plan: the launcher's LaunchError (a RuntimeError)
        ("1MiB", "digits", "deploying the apps failed (HTTP 422): no feasible placement"),
        # the zoo cannot build the family's models
        ("1GiB", "nosuch", "no family or variant named 'nosuch'"),
    ],
)
def test_validate_turns_a_cluster_that_fails_to_start_into_one_line(
    nodes: str, family: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"nodes:\n  - {{id: a, memory: {nodes}}}\n  - {{id: b, memory: {nodes}}}\n"
        f"apps:\n  - {{name: x, family: {family}, slo_ms: 50, node: a}}\ngateway: false\n"
    )
    work = tmp_path / "work"
    assert main(["sim", "validate", "--config", str(config), "--workdir", str(work)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: validation failed: " in err and needle in err
    assert f"(logs: {work / 'logs'})" in err and "Traceback" not in err


def test_timing_profiles_set_the_agents_load_times(tmp_path: Path) -> None:
    from faillite.launch.config import load_cluster_config
    from faillite.profiler.format import MachineInfo, ProfileSet, save_profiles
    from faillite.zoo.catalog import estimated_family_profiles

    config = load_cluster_config(DEMO)
    slow = [
        p.model_copy(update={"load_ms": p.load_ms + 5000.0})
        for f in config.families()
        for p in estimated_family_profiles(f, scale=config.standins.scale)
    ]
    path = tmp_path / "slow.json"
    save_profiles(ProfileSet(machine=MachineInfo(hostname="t", cpu_count=1, onnxruntime="-"), created="now",
                             variants=tuple(slow)), path)  # fmt: skip
    mttr = {}
    for name, extra in (("plain", []), ("slow", ["--timing-profiles", str(path)])):
        out = tmp_path / f"{name}.json"
        args = ["sim", "run", "--config", str(DEMO), "--policy", "full-cold", "--method", "greedy"]
        assert main([*args, "--no-events", "--json", str(out), *extra]) == 0
        mttr[name] = json.loads(out.read_text())["policies"]["full-cold"]["mttr_mean_ms"]
    assert mttr["slow"] > mttr["plain"] + 4000  # every cold recovery loads a model
