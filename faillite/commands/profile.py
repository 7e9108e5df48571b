"""``faillite profile <family-or-model>``: measure variants here and write a profile JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from faillite.errors import CliError
from faillite.units import format_bytes

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "profile",
        help="measure load time, memory and latency of a family's variants on this machine",
        description=(
            "Measure, per variant: load time (median of --loads loads), resident memory added, "
            "first-inference and steady latency (p50, p99 over --runs runs); write a profile JSON "
            "that `faillite plan --profiles` consumes."
        ),
    )
    parser.add_argument(
        "target", help="family (digits, ResNet, ...), family/variant, variant, or manifest path"
    )
    parser.add_argument(
        "--out", type=Path, help="profile JSON to write (default: $FAILLITE_CACHE/profiles/<family>.json)"
    )
    parser.add_argument("--loads", type=int, default=5, help="loads per variant (default 5)")
    parser.add_argument("--runs", type=int, default=50, help="inferences per variant (default 50)")
    parser.add_argument("--batch", type=int, default=1, help="samples per inference (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument("--scale", type=float, default=1.0, help="stand-in scale when building stand-ins")
    parser.add_argument("--json", action="store_true", help="print the profile JSON instead of a table")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from faillite.profiler.family import profile_family
    from faillite.profiler.format import save_profiles
    from faillite.zoo.cache import cache_dir
    from faillite.zoo.manifest import ManifestError
    from faillite.zoo.resolve import ResolveError, resolve

    if args.loads < 1 or args.runs < 1 or args.batch < 1 or args.threads < 1:
        raise CliError("--loads, --runs, --batch and --threads must be at least 1")
    quiet = args.json
    try:
        manifest, variants = resolve(args.target, scale=args.scale, progress=_say(quiet))
    except (ManifestError, ResolveError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    profiles = profile_family(
        manifest,
        variants=variants,
        loads=args.loads,
        runs=args.runs,
        batch=args.batch,
        threads=args.threads,
        progress=_say(quiet),
    )
    out = args.out or cache_dir() / "profiles" / f"{manifest.family}.json"
    save_profiles(profiles, out)
    if args.json:
        print(json.dumps(profiles.model_dump(mode="json", by_alias=True), indent=2))
        return 0
    print(
        f"{'variant':<32} {'accuracy':>9} {'file':>10} {'memory':>10} {'load ms':>8} "
        f"{'first ms':>9} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for p in profiles.variants:
        tag = "" if p.accuracy_source == "measured" else "*"
        print(
            f"{p.variant:<32} {p.accuracy:8.2%}{tag:1} {format_bytes(p.file_bytes):>10} "
            f"{format_bytes(p.memory_bytes):>10} {p.load_ms:8.2f} {p.first_infer_ms:9.3f} "
            f"{p.infer_p50_ms:8.3f} {p.infer_p99_ms:8.3f}"
        )
    if any(p.accuracy_source == "published" for p in profiles.variants):
        print("* accuracy is the PUBLISHED ImageNet top-1 of the model the stand-in imitates")
    print(f"wrote {out}")
    return 0


def _say(quiet: bool):  # type: ignore[no-untyped-def]
    import sys

    return (lambda msg: print(msg, file=sys.stderr)) if quiet else print
