"""``faillite sim sweep``: the JSON's keys, every point equal to a direct ``simulate`` call of the
same point, and CLI errors for a bad ``--vary``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faillite.cli import main
from faillite.launch.config import ClusterConfig
from faillite.sim.failures import FailureEvent
from faillite.sim.generate import generate_cluster
from faillite.sim.run import simulate
from faillite.sim.sweep import SUMMARY_KEYS, Point, SweepError, parse_vary, summary

POLICIES = ("faillite", "full-cold")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    where = tmp_path_factory.mktemp("sweep")
    out = where / "sweep.json"
    rc = main(
        [
            "sim", "sweep", "--nodes", "6", "--apps", "30", "--seed", "3",
            "--vary", "failures=1,2", "--vary", "domain=1,2",
            "--policy", ",".join(POLICIES), "--json", str(out), "--plots", str(where / "img"),
            # greedy: CP-SAT's time limit makes exact plans depend on the machine's load
            "--method", "greedy",
        ]
    )  # fmt: skip
    assert rc == 0
    return json.loads(out.read_text()), where / "img"


def test_the_json_has_every_point_and_policy(swept: tuple[dict, Path]) -> None:
    doc, img = swept
    assert doc["kind"] == "sim-sweep" and doc["nodes"] == 6 and doc["apps"] == 30
    assert doc["base"] == {"spare": 0.25, "failures": 1, "domain": 10}
    assert doc["scale"] == 0.02 and doc["seed"] == 3
    assert [r["value"] for r in doc["dimensions"]["failures"]] == [1, 2]
    assert [r["value"] for r in doc["dimensions"]["domain"]] == [1, 2]
    for rows in doc["dimensions"].values():
        for r in rows:
            assert set(r["policies"]) == set(POLICIES)
            for s in r["policies"].values():
                assert set(SUMMARY_KEYS) | {"sim_seconds", "planner_seconds", "method"} <= set(s)
    # nested failures: the 2-node failure holds the 1-node one; a domain of 2 fails 2 nodes
    one, two = (r["failed_nodes"] for r in doc["dimensions"]["failures"])
    assert len(one) == 1 and len(two) == 2 and set(one) < set(two)
    assert [len(r["failed_nodes"]) for r in doc["dimensions"]["domain"]] == [1, 2]
    assert sorted(p.name for p in img.iterdir()) == [
        "sim-sweep-6x30-domain.png",
        "sim-sweep-6x30-failures.png",
    ]


def test_each_point_equals_a_direct_simulation(swept: tuple[dict, Path]) -> None:
    doc, _ = swept
    for dim, rows in doc["dimensions"].items():
        for r in rows:
            config = ClusterConfig.model_validate(
                generate_cluster(6, 30, seed=3, domain_size=r["domain"], spare=r["spare"])
            )
            failure = FailureEvent(0.0, tuple(r["failed_nodes"]))
            for label, got in r["policies"].items():
                want = summary(simulate(config, (failure,), policy=label, seed=3, method="greedy"))
                for key in ("sim_seconds", "planner_seconds"):
                    got.pop(key), want.pop(key)
                assert got == want, (dim, r["value"], label)


def test_a_domain_point_fails_the_whole_domain(swept: tuple[dict, Path]) -> None:
    doc, _ = swept
    row = doc["dimensions"]["domain"][1]
    config = ClusterConfig.model_validate(generate_cluster(6, 30, seed=3, domain_size=2, spare=0.25))
    domains = {n.id: n.domain for n in config.nodes}
    failed = row["failed_nodes"]
    assert {domains[n] for n in failed} != {None} and len({domains[n] for n in failed}) == 1
    assert sorted(failed) == sorted(n for n, d in domains.items() if d == domains[failed[0]])


@pytest.mark.parametrize(
    ("vary", "needle"),
    [
        ("speed=1,2", "--vary: 'speed=1,2': expected DIM=V1,V2,... with DIM one of spare, failures, domain"),
        ("spare", "--vary: 'spare': expected DIM="),
        ("spare=0.1,lots", "'lots' is not a number"),
        ("spare=0.1,1.5", "spare must be in [0, 1), got 1.5"),
        ("failures=0,1", "failures must be at least 1, got 0"),
        ("failures=1.5", "'1.5' is not a whole number"),
        ("domain=2,2", "a value repeats"),
    ],
)
def test_a_bad_vary_is_one_line(vary: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "sweep", "--nodes", "6", "--apps", "30", "--vary", vary]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_other_bad_sweeps_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "sweep", "--nodes", "6", "--apps", "30"]
    assert main([*args, "--vary", "failures=1", "--vary", "failures=2"]) == 2
    assert "--vary: 'failures=2': failures is already varied" in capsys.readouterr().err
    assert main([*args, "--vary", "failures=6", "--policy", "full-cold"]) == 2
    assert "failures: 6 of 6 nodes would leave none to fail over to" in capsys.readouterr().err
    assert main([*args, "--vary", "failures=1", "--policy", "best"]) == 2
    assert "--policy: unknown policy 'best'" in capsys.readouterr().err
    assert main([*args, "--vary", "failures=1", "--spare", "1"]) == 2
    assert "--spare: 'spare=1.0': spare must be in [0, 1)" in capsys.readouterr().err
    assert main([*args, "--vary", "failures=1", "--scale", "0"]) == 2
    assert "--scale: a stand-in scale in (0, 1], got 0" in capsys.readouterr().err


def test_parse_vary_and_points() -> None:
    assert parse_vary("spare=0.1, 0.5") == ("spare", (0.1, 0.5))
    assert parse_vary("domain=1,20") == ("domain", (1, 20))
    assert Point(0.25, 1, 10).with_value("failures", 5) == Point(0.25, 5, 10)
    with pytest.raises(SweepError):
        parse_vary("=1")
