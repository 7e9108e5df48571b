"""``faillite events``: print the controller's event log, and with ``--follow`` stream it live."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Any, TextIO

from faillite.commands._remote import add_controller_arg, base_url, get_json
from faillite.errors import CliError

__all__ = ["format_event", "register", "run"]

_PAGE = 1000
_RECONNECT_MAX_S = 5.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "events",
        help="print the controller's event log (--follow: stream it)",
        description="Print the controller's structured events (failures suspected, nodes declared dead, "
        "route changes, loads, progressive steps, recoveries with their MTTR, rejoins, failbacks), "
        "oldest first; with --follow, keep streaming new ones over a WebSocket.",
    )
    add_controller_arg(parser)
    parser.add_argument("--since", type=int, default=0, metavar="ID", help="only events after this id")
    parser.add_argument("--last", type=int, metavar="N", help="only the last N events")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.since < 0 or (args.last is not None and args.last < 0):
        raise CliError("--since and --last must not be negative")
    since = args.since
    if args.last is not None:
        last_id = int(get_json(args.controller, "/v1/status", args.timeout)["last_event_id"])
        since = max(since, last_id - args.last)
    show = _printer(args.json, sys.stdout)
    while page := get_json(args.controller, f"/v1/events?since={since}&limit={_PAGE}", args.timeout):
        for event in page:
            show(event)
        since = page[-1]["id"]
    if args.follow:
        try:
            asyncio.run(_follow(base_url(args.controller), since, args.timeout, show))
        except KeyboardInterrupt:
            return 0
    return 0


def _printer(as_json: bool, out: TextIO) -> Any:
    def show(event: dict[str, Any]) -> None:
        out.write((json.dumps(event) if as_json else format_event(event)) + "\n")
        out.flush()

    return show


def format_event(event: dict[str, Any]) -> str:
    """``#id HH:MM:SS.mmm kind key=value ...`` (recoveries lead with their MTTR)."""
    stamp = dt.datetime.fromtimestamp(event["ts"]).strftime("%H:%M:%S.%f")[:-3]
    data = {k: v for k, v in event.items() if k not in ("id", "ts", "kind", "mono")}
    head = f"MTTR {data.pop('recovery_ms')} ms " if "recovery_ms" in data else ""
    fields = " ".join(f"{k}={_value(v)}" for k, v in data.items())
    return f"#{event['id']:<5} {stamp} {event['kind']:<18} {head}{fields}".rstrip()


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v if v and " " not in v and "=" not in v else json.dumps(v)
    return json.dumps(v, separators=(",", ":"))


async def _follow(controller: str, since: int, timeout: float, show: Any) -> None:
    import aiohttp  # only --follow needs it

    ws_url = controller.replace("http", "ws", 1) + "/v1/events/watch"
    client_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout)
    delay, connected_once = 0.25, False
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        while True:
            try:
                async with session.ws_connect(
                    f"{ws_url}?since={since}", heartbeat=timeout, receive_timeout=None
                ) as ws:
                    connected_once, delay = True, 0.25
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            break
                        event = json.loads(msg.data)
                        if event["id"] > since:
                            since = event["id"]
                            show(event)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if not connected_once:
                    raise CliError(f"cannot follow the events of {controller}: {exc}") from exc
            print(f"faillite events: lost the controller; reconnecting from #{since}", file=sys.stderr)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_MAX_S)
