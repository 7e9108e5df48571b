"""``faillite sim``: simulate failures of large clusters with the controller's own decisions.

- ``sim run --config FILE [--failures SPEC] [--policy P|all] ...``: the discrete-event simulator
  (``faillite.sim.run``); prints one row per policy (the failover benchmark's figures, plus the
  simulator's wall time and time per event) and writes the JSON (``--json``), plots (``--plots``);
- ``sim generate --nodes N --apps M --out FILE``: a cluster file (``faillite.sim.generate``);
- ``sim validate --config FILE``: the same failure simulated and on a real local cluster,
  side by side (``faillite.sim.validate``);
- ``sim sweep --nodes N --apps M --vary DIM=V1,V2,..``: generated clusters, one parameter
  varied at a time, every policy (``faillite.sim.sweep``); JSON and one plot per dimension.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faillite.errors import CliError

__all__ = ["register"]

_POLICIES = (
    "faillite",
    "faillite-shared",
    "faillite-no-progressive",
    "hetero-warm-only",
    "full-warm",
    "full-cold",
    "none",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sim",
        help="simulate failures of large clusters (the controller's own policy and planner)",
        description="A discrete-event simulator that runs the real planner and the controller's "
        "pure policy against simulated agents and clients.",
    )
    cmds = parser.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    run = cmds.add_parser("run", help="simulate a failure trace and print the figures per policy")
    run.add_argument("--config", type=Path, required=True, help="cluster file (the `faillite up` format)")
    run.add_argument("--profiles", type=Path, help="profile JSON (`faillite profile`); default: estimates")
    run.add_argument(
        "--failures",
        default=None,
        metavar="SPEC",
        help="node:ID, domain:NAME, random:COUNT[,ttf=..,ttr=..,kind=..], repeat:ID,N,EVERY_S, or a "
        "trace file; join with + (default: node:<the first node>)",
    )
    _timing_profiles_option(run, "none: the planner's profiles' times")
    run.add_argument("--policy", default=None, help=f"{', '.join(_POLICIES)} or all (default: the file's)")
    run.add_argument("--method", choices=("exact", "greedy"), default=None, help="default: the file's")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--horizon", type=float, default=600.0, metavar="S", help="random failures' horizon")
    run.add_argument("--json", type=Path, metavar="PATH", help="write the JSON document here")
    run.add_argument("--no-events", action="store_true", help="leave the event lists out of the JSON")
    run.add_argument("--plots", type=Path, metavar="DIR", help="write the MTTR CDF and phase plots here")
    run.set_defaults(func=_run)

    gen = cmds.add_parser("generate", help="write a generated cluster file")
    gen.add_argument("--nodes", type=int, required=True)
    gen.add_argument("--apps", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--domain-size", type=int, default=10, help="nodes per failure domain")
    gen.add_argument("--spare", type=float, default=0.25, help="share of each node's memory left spare")
    gen.add_argument("--out", type=Path, required=True)
    gen.set_defaults(func=_generate)

    val = cmds.add_parser("validate", help="simulate and run one failure for real, side by side")
    val.add_argument("--config", type=Path, required=True)
    val.add_argument("--failures", default=None, metavar="SPEC")
    val.add_argument("--policy", default=None)
    _timing_profiles_option(val, "the real run's models, profiled on this machine after it")
    val.add_argument("--seed", type=int, default=0)
    val.add_argument("--json", type=Path, metavar="PATH")
    val.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="the real cluster's files and logs (default: a temporary "
        "directory, removed after a success, kept after a failure)",
    )
    val.set_defaults(func=_validate)

    sw = cmds.add_parser("sweep", help="the paper's experiments: vary spare memory, failures, domain size")
    sw.add_argument("--nodes", type=int, required=True)
    sw.add_argument("--apps", type=int, required=True)
    sw.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="DIM=V1,V2,..",
        help="spare=0.1,0.25,0.5 | failures=1,2,5 | domain=1,5,10 (repeat for several dimensions)",
    )
    sw.add_argument("--policy", default="all", help=f"comma-separated, of {', '.join(_POLICIES)}; or all")
    sw.add_argument("--spare", type=float, default=0.25, help="base spare share when not varied")
    sw.add_argument("--failures", type=int, default=1, help="base number of nodes failing at once")
    sw.add_argument("--domain-size", type=int, default=10, help="base nodes per failure domain")
    sw.add_argument("--method", choices=("exact", "greedy"), default=None, help="default: the generator's")
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument(
        "--scale", type=float, default=None, help="stand-in scale (default 0.02; 1.0: published model sizes)"
    )
    sw.add_argument("--json", type=Path, metavar="PATH", help="written after every point")
    sw.add_argument(
        "--plots", type=Path, metavar="DIR", help="one PNG per dimension: DIR/sim-sweep-NxM-DIM.png"
    )
    sw.set_defaults(func=_sweep)


def _timing_profiles_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--timing-profiles",
        type=Path,
        action="append",
        metavar="FILE",
        help="measured profiles (faillite profile; repeat for several files) whose load, first-inference "
        f"and p50 times the simulated agents take; the planner keeps --profiles / the estimated ones "
        f"(default: {default})",
    )


def _read_timing_profiles(paths: list[Path] | None) -> tuple[Any, ...] | None:
    from faillite.profiler.format import ProfileError
    from faillite.sim.inputs import read_profiles

    if not paths:
        return None
    out: list[Any] = []
    for path in paths:
        try:
            out.extend(read_profiles(path))
        except (ProfileError, ValueError) as exc:
            raise CliError(
                f"--timing-profiles: {exc}" if str(path) in str(exc) else f"{path}: {exc}"
            ) from None
    return tuple(out)


def _run(args: argparse.Namespace) -> int:
    from faillite.controller.planning import SpecError
    from faillite.launch.config import ClusterConfigError, load_cluster_config
    from faillite.profiler.format import ProfileError
    from faillite.sim.failures import FailureSpecError, parse_failures
    from faillite.sim.inputs import SimInputError, build_inputs, read_profiles
    from faillite.sim.report import document, table
    from faillite.sim.run import POLICIES, simulate

    try:
        config = load_cluster_config(args.config)
    except ClusterConfigError as exc:
        raise CliError(str(exc)) from None
    profiles = None
    if args.profiles is not None:
        try:
            profiles = read_profiles(args.profiles)
        except ProfileError as exc:
            raise CliError(str(exc)) from None
    timing_profiles = _read_timing_profiles(args.timing_profiles)
    wanted = args.policy or config.controller.policy
    labels = list(POLICIES) if wanted == "all" else [wanted]
    if labels[0] not in POLICIES:
        raise CliError(f"--policy: unknown policy {wanted!r} (known: {', '.join(POLICIES)}, all)")
    spec = args.failures or f"node:{config.nodes[0].id}"
    try:
        failures = parse_failures(
            spec, [(n.id, n.domain) for n in config.nodes], seed=args.seed, horizon_s=args.horizon
        )
    except FailureSpecError as exc:
        raise CliError(f"--failures: {exc}") from None
    try:
        inputs = build_inputs(config, profiles)
    except SimInputError as exc:
        raise CliError(f"{args.profiles or args.config}: {exc}") from None
    started = time.perf_counter()
    results = []
    for label in labels:
        try:
            results.append(
                simulate(
                    config,
                    failures,
                    policy=label,
                    seed=args.seed,
                    method=args.method,
                    inputs=inputs,
                    timing_profiles=timing_profiles,
                )
            )
        except SpecError as exc:
            raise CliError(f"{args.config}: apps: {exc}") from None
        print(f"  {label}: {results[-1].sim_seconds:.2f} s", file=sys.stderr)
    doc = document(
        config,
        inputs,
        results,
        config_path=args.config,
        spec=spec,
        failures=failures,
        seed=args.seed,
        command=" ".join(["faillite", *sys.argv[1:]]) if sys.argv else "faillite sim run",
        sim_seconds=time.perf_counter() - started,
        events=not args.no_events,
    )
    print(table(doc))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"JSON: {args.json}")
    if args.plots is not None:
        _plots(doc, args.plots)
    return 0


def _plots(doc: dict[str, Any], where: Path) -> None:
    from faillite.bench.failover import plots

    stem = Path(doc["scenario"]).stem
    for path in (
        plots.mttr_cdf(doc, where / f"sim-mttr-cdf-{stem}.png"),
        plots.phases(doc, where / f"sim-phases-{stem}.png"),
    ):
        print(f"plot: {path}")


def _generate(args: argparse.Namespace) -> int:
    from faillite.sim.generate import generate_cluster, write_cluster

    try:
        doc = generate_cluster(
            args.nodes, args.apps, seed=args.seed, domain_size=args.domain_size, spare=args.spare
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        write_cluster(doc, args.out)
    except OSError as exc:
        raise CliError(f"{args.out}: {exc.strerror or exc}") from None
    print(f"{args.out}: {args.nodes} nodes, {args.apps} apps (seed {args.seed})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from faillite.launch.config import ClusterConfigError
    from faillite.sim.failures import FailureSpecError
    from faillite.sim.validate import render, validate

    timing_profiles = _read_timing_profiles(args.timing_profiles)
    own = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="faillite-validate-")) if own else args.workdir
    try:
        report = validate(
            args.config,
            failures=args.failures,
            seed=args.seed,
            policy=args.policy,
            workdir=workdir,
            timing_profiles=timing_profiles,
            say=lambda m: print(m, file=sys.stderr),
        )
    except ClusterConfigError as exc:
        raise CliError(str(exc)) from None
    except FailureSpecError as exc:
        raise CliError(f"--failures: {exc}") from None
    except (RuntimeError, ValueError, LookupError, OSError) as exc:
        # LaunchError is a RuntimeError (the cluster did not start); LookupError: an unknown
        # family the zoo cannot build; OSError: the work directory
        raise CliError(f"{args.config}: validation failed: {exc} (logs: {workdir / 'logs'})") from None
    if own:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n")
        print(f"JSON: {args.json}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from faillite.sim.run import POLICIES
    from faillite.sim.sweep import Point, SweepError, parse_vary, sweep
    from faillite.sim.sweep_plots import plots

    vary: dict[str, tuple[float | int, ...]] = {}
    try:
        for text in args.vary:
            dim, values = parse_vary(text)
            if dim in vary:
                raise SweepError(f"{text!r}: {dim} is already varied")
            vary[dim] = values
    except SweepError as exc:
        raise CliError(f"--vary: {exc}") from None
    for option, dim, value in (
        ("--spare", "spare", args.spare),
        ("--failures", "failures", args.failures),
        ("--domain-size", "domain", args.domain_size),
    ):
        try:
            parse_vary(f"{dim}={value}")
        except SweepError as exc:
            raise CliError(f"{option}: {exc}") from None
    base = Point(args.spare, args.failures, args.domain_size)
    if args.scale is not None and not 0 < args.scale <= 1:
        raise CliError(f"--scale: a stand-in scale in (0, 1], got {args.scale:g}")
    policies = list(POLICIES) if args.policy == "all" else [p.strip() for p in args.policy.split(",")]

    def save(doc: dict) -> None:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=1) + "\n")

    command = " ".join(["faillite", *sys.argv[1:]]) if sys.argv else "faillite sim sweep"
    try:
        doc = sweep(
            args.nodes,
            args.apps,
            vary,
            policies,
            base=base,
            seed=args.seed,
            method=args.method,
            scale=args.scale,
            say=lambda m: print(m, file=sys.stderr, flush=True),
            saved=lambda d: save({"command": command, **d}),
        )
    except SweepError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:  # the generator's checks (nodes, apps)
        raise CliError(f"--nodes/--apps: {exc}") from None
    doc = {"command": command, **doc}
    save(doc)
    print(_sweep_table(doc))
    if args.json is not None:
        print(f"JSON: {args.json}")
    if args.plots is not None:
        stem = f"sim-sweep-{args.nodes}x{args.apps}" + ("" if args.scale is None else f"-scale{args.scale:g}")
        for path in plots(doc, args.plots, stem):
            print(f"plot: {path}")
    return 0


def _sweep_table(doc: dict[str, Any]) -> str:
    def cell(v: Any, scale: float = 1.0, fmt: str = ".1f") -> str:
        return "-" if v is None else format(v * scale, fmt)

    lines = [
        f"simulated sweep: {doc['nodes']} nodes x {doc['apps']} apps, base {doc['base']}, seed {doc['seed']}"
    ]
    head = f"{'dim':<9}{'value':>7}  {'policy':<24}{'failed':>7}{'recov':>7}{'MTTR':>8}{'p99':>8}"
    lines.append(head + f"{'drop1st':>8}{'settled':>8}{'protect':>8}{'sim s':>7}")
    for dim, rows in doc["dimensions"].items():
        for r in rows:
            for label, s in r["policies"].items():
                if not s["deployed"]:
                    lines.append(f"{dim:<9}{r['value']:>7g}  {label:<24}plan refused")
                    continue
                lines.append(
                    f"{dim:<9}{r['value']:>7g}  {label:<24}{s['failed_apps']:>7}"
                    f"{cell(s['recovered_share'], 100, '.0f'):>7}{cell(s['mttr_mean_ms']):>8}"
                    f"{cell(s['mttr_p99_ms']):>8}{cell(s['accuracy_drop_first'], 100, '.2f'):>8}"
                    f"{cell(s['accuracy_drop_settled'], 100, '.2f'):>8}"
                    f"{cell(s['protected_after_share'], 100, '.0f'):>8}{s['sim_seconds']:>7.1f}"
                )
    lines.append("MTTR in ms; recovered, protected in %; accuracy drops in points")
    return "\n".join(lines)
