"""``faillite zoo``: list families, verify manifests, build stand-ins, retrain the digits ladder."""

from __future__ import annotations

import argparse
from pathlib import Path

from faillite.errors import CliError
from faillite.units import format_bytes

__all__ = ["register"]

MACS_CHOICES = ("scaled", "input")  # faillite.zoo.standins.MACS_MODES, without importing numpy here


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("zoo", help="the model zoo: list, verify, build stand-ins, train digits")
    zsub = parser.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    ls = zsub.add_parser("list", help="families and their variants with accuracy (measured or published)")
    ls.add_argument("family", nargs="?", help="only this family")
    ls.set_defaults(func=_list)

    verify = zsub.add_parser("verify", help="check a family manifest against its files")
    verify.add_argument("target", help="family name or manifest path")
    verify.add_argument("--scale", type=float, default=1.0, help="stand-ins: as for `zoo standins`")
    verify.add_argument("--input-px", type=int, default=224, help="stand-ins: as for `zoo standins`")
    verify.add_argument(
        "--macs", choices=MACS_CHOICES, default="scaled", help="stand-ins: as for `zoo standins`"
    )
    verify.set_defaults(func=_verify)

    st = zsub.add_parser("standins", help="generate stand-in ONNX models matching published params and FLOPs")
    st.add_argument("--family", action="append", help="family to build (repeatable; default: all)")
    st.add_argument(
        "--model", action="append", help="only these published models, e.g. resnet50 (repeatable)"
    )
    st.add_argument("--scale", type=float, default=1.0, help="multiply params and FLOPs by this (0 < s <= 1)")
    st.add_argument("--input-px", type=int, default=224, help="input image side in pixels (default 224)")
    st.add_argument(
        "--macs",
        choices=MACS_CHOICES,
        default="scaled",
        help=(
            "compute per sample: 'scaled' = published MACs x --scale (default); 'input' = the real "
            "model's MACs at --input-px (published x scale x (input-px / published crop)^2, at least "
            "one per parameter). --scale 1 --input-px 32 --macs input: published sizes, memory and "
            "load times, at a compute a small CPU affords"
        ),
    )
    st.add_argument("--out", type=Path, help="root directory (default: $FAILLITE_CACHE/standins)")
    st.set_defaults(func=_standins)

    tr = zsub.add_parser("train-digits", help="retrain the digits ladder and rewrite its manifest")
    tr.add_argument("--out", type=Path, help="output directory (default: the package's digits family)")
    tr.set_defaults(func=_train)


def _list(args: argparse.Namespace) -> int:
    from faillite.zoo.catalog import builtin_family_names, load_builtin_family, standin_families

    shown = False
    for family in builtin_family_names():
        if args.family and args.family != family:
            continue
        manifest = load_builtin_family(family, verify=False)
        print(f"{family}  (trained here; accuracy {manifest.accuracy_source} on a held-out split)")
        for v in manifest.variants:
            print(
                f"  {v.name:<28} acc {v.accuracy:7.2%}  {v.params:>10,} params"
                f"  {format_bytes(v.file_bytes):>10}"
            )
        shown = True
    for family, models in standin_families().items():
        if args.family and args.family != family:
            continue
        print(f"{family}  (stand-ins; accuracy PUBLISHED ImageNet top-1)")
        for m in models:
            print(
                f"  {m.variant:<36} acc {m.accuracy:7.2%}  {m.params / 1e6:8.2f} M params"
                f"  {m.macs / 1e9:8.3f} GMACs"
            )
        shown = True
    if not shown:
        raise CliError(f"no family named {args.family!r}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from faillite.zoo.manifest import ManifestError, verify_files
    from faillite.zoo.resolve import ResolveError, resolve

    try:
        manifest, _ = resolve(args.target, scale=args.scale, input_px=args.input_px, macs=args.macs)
        verify_files(manifest, args.target)  # every file hashed, even where the cache trusts its stamps
    except (ManifestError, ResolveError) as exc:
        raise CliError(str(exc)) from exc
    print(f"{manifest.family}: {len(manifest.variants)} variants verified (files, sha256, signature)")
    return 0


def _standins(args: argparse.Namespace) -> int:
    from faillite.zoo.cache import standin_dir
    from faillite.zoo.catalog import standin_families
    from faillite.zoo.standins import generate_family

    families = args.family or list(standin_families())
    for family in families:
        if family not in standin_families():
            raise CliError(f"unknown stand-in family {family!r} (known: {', '.join(standin_families())})")
    try:
        for family in families:
            models = _models_in(family, args.model)
            if models == []:
                continue  # --model named none of this family's models
            out = standin_dir(family, args.scale, args.input_px, args.out, macs=args.macs)
            manifest = generate_family(
                family, out, scale=args.scale, input_px=args.input_px, macs=args.macs, models=models
            )
            total = sum(v.file_bytes for v in manifest.variants)
            print(f"{family}: {len(manifest.variants)} stand-ins, {format_bytes(total)} in {out}")
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc.args[0] if isinstance(exc, KeyError) else exc)) from exc
    return 0


def _models_in(family: str, models: list[str] | None) -> list[str] | None:
    """Restrict a --model list to the ones of this family (None: all of them)."""
    if not models:
        return None
    from faillite.zoo.catalog import standin_families

    wanted = {m.lower() for m in models}
    known = {m.variant for m in standin_families()[family]} | {
        m.model.lower() for m in standin_families()[family]
    }
    mine = sorted(wanted & known)
    if not mine:
        all_known = {m.variant for ms in standin_families().values() for m in ms}
        all_known |= {m.model.lower() for ms in standin_families().values() for m in ms}
        unknown = sorted(wanted - all_known)
        if unknown:
            raise KeyError(f"unknown published model(s): {', '.join(unknown)}")
        return []
    return mine


def _train(args: argparse.Namespace) -> int:
    from faillite.zoo.catalog import builtin_manifest_path
    from faillite.zoo.train_digits import train_digits_family

    out = args.out or builtin_manifest_path("digits").parent
    train_digits_family(out)
    return 0
