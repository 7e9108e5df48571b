"""``faillite status``: the cluster at a glance, as terminal tables (nodes with memory bars, apps)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from faillite.commands._remote import add_controller_arg, get_json

__all__ = ["register", "render", "run"]

_BAR = 32  # characters per memory bar
_UNICODE = {"primary": "█", "warm": "▓", "cold": "░", "free": "·"}
_ASCII = {"primary": "#", "warm": "=", "cold": "-", "free": "."}
_MODES = {
    "failed_over_warm": "failed over (warm)",
    "failed_over_cold": "failed over (cold)",
    "stepping": "stepping stone",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="the cluster at a glance: nodes, memory, apps",
        description="Print the nodes (state, epoch, memory: primaries, warm backups, cold reservation of "
        "the worst single failure, and what the agent reports in use) and the apps (state, serving "
        "variant and its accuracy, route, protection) of a running controller.",
    )
    add_controller_arg(parser)
    parser.add_argument("--json", action="store_true", help="print GET /v1/status as JSON")
    parser.add_argument("--ascii", action="store_true", help="draw the bars with ASCII only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    status = get_json(args.controller, "/v1/status", args.timeout)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    ascii_only = args.ascii or "utf" not in encoding
    print(render(status, args.controller, ascii_only=ascii_only))
    return 0


def render(status: dict[str, Any], controller: str, *, ascii_only: bool = False) -> str:
    nodes, apps = status["nodes"], status["apps"]
    up = sum(1 for n in nodes if n["state"] in ("alive", "suspect"))
    serving = sum(1 for a in apps if a["node"])
    chars = _ASCII if ascii_only else _UNICODE
    lines = [
        f"controller {controller} · routes v{status['route_version']} · {up}/{len(nodes)} nodes up · "
        f"{serving}/{len(apps)} apps serving",
        "",
        f"NODES  memory: {chars['primary']} primaries  {chars['warm']} warm backups  "
        f"{chars['cold']} cold reservation (worst failure)  {chars['free']} free",
    ]
    rows = [["NODE", "STATE", "EPOCH", "MEMORY", "PRIMARY", "WARM", "COLD", "BUDGET", "IN USE", "LOADED"]]
    for n in nodes:
        p = n["planned"]
        is_up = n["state"] in ("alive", "suspect")
        rows.append(
            [
                n["id"],
                "down" if n["state"] == "dead" else n["state"],
                str(n["epoch"]),
                _bar(p, n["memory_bytes"], chars),
                _mib(p["primary"]),
                _mib(p["warm"]),
                _mib(p["cold"]),
                _mib(n["memory_bytes"]),
                _mib(n["used_bytes"]) if is_up else "-",
                (", ".join(n["loaded"]) or "-") if is_up else "unreachable",
            ]
        )
    lines += _table(rows)
    lines += ["", "APPS"]
    rows = [["APP", "STATE", "SERVING", "ACCURACY", "ROUTE", "PROTECTION"]]
    for a in apps:
        rows.append(
            [
                a["name"] + (" *" if a["spec"].get("critical") else ""),
                _MODES.get(a["mode"], a["mode"]),
                f"{a['variant']} on {a['node']}" if a["node"] else "-",
                _accuracy(a),
                " > ".join(f"{t['node']} ({t['role']})" for t in a["route"]) or "no target",
                (
                    f"{a['backup']['mode']}: {a['backup']['variant']} on {a['backup']['node']}"
                    if a["backup"]
                    else "UNPROTECTED"
                ),
            ]
        )
    lines += _table(rows)
    lines.append("(* critical)")
    return "\n".join(lines)


def _bar(planned: dict[str, int], budget: int, chars: dict[str, str]) -> str:
    cells, used = [], 0
    for kind in ("primary", "warm", "cold"):
        n = round(_BAR * planned[kind] / budget) if budget else 0
        if planned[kind] and not n:
            n = 1  # something planned is never invisible
        n = min(n, _BAR - used)
        cells.append(chars[kind] * n)
        used += n
    return "[" + "".join(cells) + chars["free"] * (_BAR - used) + "]"


def _accuracy(app: dict[str, Any]) -> str:
    if app["accuracy"] is None:
        return "-"
    text = f"{app['accuracy'] * 100:.1f} %"
    drop = app.get("accuracy_drop")
    return f"{text} (-{drop * 100:.1f})" if drop else text


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
