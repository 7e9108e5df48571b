"""What the cluster benchmarks share: their cluster, which code it runs, progress, and meters.

The cluster is ``faillite up``'s (``faillite.launch.cluster.LocalCluster``): a controller, N
agents and a gateway on loopback, apps deployed (all digits, critical, so the planner gives each a
warm backup; primaries pinned round-robin). Controller settings are the defaults unless a
benchmark says otherwise.

``code_path(dir)``, a benchmarking aid: the cluster's processes import faillite from ``dir``
(PYTHONPATH, with PYTHONSAFEPATH so that the working directory does not come first)
instead of this checkout, so one benchmark run can measure an older tree's cluster beside the
current one. Python reads PYTHONPATH only at start-up, so setting it here changes only the
processes started while it is set, never the benchmark process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

import faillite
from faillite.bench.cputime import (
    BoxSample,
    ProcSample,
    box_utilisation,
    cpu_share,
    loadavg,
    sample_box,
    sample_process,
)
from faillite.launch.cluster import LocalCluster
from faillite.launch.config import ClusterConfig
from faillite.launch.http import http_json
from faillite.launch.process import LaunchError
from faillite.zoo import digits

__all__ = [
    "BoxMeter",
    "EventWatch",
    "ProcessMeter",
    "Progress",
    "add_code_args",
    "bench_config",
    "cluster_processes",
    "code_path",
    "code_runs",
    "command_line",
    "current_code",
    "digit_inputs",
    "emit",
    "finish_parser",
    "measure_runs",
    "poll",
    "run_dir",
    "running_cluster",
    "separate_load",
    "until",
]

log = logging.getLogger("faillite.bench")


def current_code() -> Path:
    """The directory this faillite was imported from (the parent of the package)."""
    return Path(faillite.__file__).resolve().parent.parent


@contextlib.contextmanager
def code_path(directory: Path | None) -> Iterator[Path]:
    """Processes started inside import faillite from ``directory`` (default: this checkout)."""
    target = (directory or current_code()).resolve()
    if not (target / "faillite" / "__init__.py").is_file():
        raise ValueError(f"{target}: no faillite package there")
    # `python -m`/`-c` put the working directory before PYTHONPATH: started from a checkout, a
    # child would import that checkout's faillite whatever PYTHONPATH says. PYTHONSAFEPATH stops it.
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "PYTHONSAFEPATH")}
    os.environ.update(PYTHONPATH=str(target), PYTHONSAFEPATH="1")
    try:
        yield target
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def finish_parser(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int], *, load: bool = True
) -> None:
    """The options every cluster benchmark ends with (code trees, rounds, workdir, --json)."""
    add_code_args(parser, load=load)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def add_code_args(parser: argparse.ArgumentParser, *, load: bool = True) -> None:
    parser.add_argument(
        "--code-path",
        type=Path,
        metavar="DIR",
        help="benchmarking aid: the cluster's processes import faillite from DIR (default: this checkout)",
    )
    parser.add_argument(
        "--baseline",
        "--baseline-code",
        dest="baseline",
        type=Path,
        metavar="DIR",
        help="also measure a cluster running the faillite in DIR (e.g. a git worktree of an older commit)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measurements per code tree, interleaved")
    parser.add_argument(
        "--workdir",
        type=Path,
        metavar="DIR",
        help="keep each cluster's logs and state under DIR (default: temporary)",
    )
    if not load:
        return
    parser.add_argument(
        "--load-process",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send the load from a process of its own running the cluster's faillite (its client); "
        "default: on with --baseline or --code-path, else the load runs in the benchmark process",
    )


@contextlib.contextmanager
def run_dir(keep: Path | None, name: str, prefix: str) -> Iterator[Path]:
    """``keep``/``name`` (kept afterwards) or a temporary directory (removed)."""
    if keep is not None:  # a fresh directory each run: a controller must not adopt an old state file
        path = (keep / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}").resolve()
        path.mkdir(parents=True, exist_ok=False)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def separate_load(args: argparse.Namespace) -> bool:
    if getattr(args, "load_process", None) is not None:
        return bool(args.load_process)
    return args.baseline is not None or args.code_path is not None


def code_runs(args: argparse.Namespace) -> list[tuple[str, Path | None]]:
    """(label, code dir) for each measurement, baseline and current interleaved."""
    from faillite.errors import CliError

    for option, where in (("--baseline", args.baseline), ("--code-path", args.code_path)):
        if where is not None and not (where / "faillite" / "__init__.py").is_file():
            raise CliError(f"{option} {where}: no faillite package there")
    current = ("current", args.code_path)
    order = [("baseline", args.baseline), current] if args.baseline else [current]
    return [run for _ in range(args.rounds) for run in order]


def measure_runs(
    args: argparse.Namespace, prefix: str, measure: Callable[..., dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """The report of ``measure(nodes=, apps=, workdir=, code=, say=)`` run once per code run
    (baseline and current interleaved, ``--rounds`` times), each in a directory of its own:
    ``{"command": ..., **fields, "runs": [...]}``. A cluster that fails to start is a clear
    error, not a traceback."""
    from faillite.errors import CliError

    command = command_line()
    say = Progress()
    runs = []
    try:
        for i, (label, code) in enumerate(code_runs(args)):
            with run_dir(args.workdir, f"{i + 1}-{label}", prefix) as tmp:
                result = measure(nodes=args.nodes, apps=args.apps, workdir=tmp, code=code, say=say)
            runs.append({"code": label, **result})
    except LaunchError as exc:  # a process did not start: say so, no traceback
        raise CliError(f"the benchmark's cluster failed: {exc}", exit_code=1) from exc
    return {"command": command, **fields, "runs": runs}


def command_line() -> str:
    """This benchmark's command line, as the report's first line."""
    return "faillite " + shlex.join(sys.argv[1:])


def emit(doc: dict[str, Any], as_json: bool, table: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(doc) if as_json else table(doc))


def bench_config(
    nodes: int = 4,
    apps: int = 8,
    *,
    gateway: bool = True,
    controller: dict[str, Any] | None = None,
    memory: str = "12MiB",
) -> ClusterConfig:
    """``nodes`` nodes, ``apps`` critical digits apps pinned round-robin (warm backups for all)."""
    doc: dict[str, Any] = {
        "nodes": [{"id": f"edge-{i + 1}", "memory": memory, "cores": 1} for i in range(nodes)],
        "apps": [
            {
                "name": f"digits-{i + 1}",
                "family": "digits",
                "slo_ms": 20,
                "critical": True,
                "weight": 2,
                "node": f"edge-{i % nodes + 1}",
            }
            for i in range(apps)
        ],
        "gateway": gateway,
    }
    if controller:
        doc["controller"] = controller
    return ClusterConfig.model_validate(doc)


@contextlib.contextmanager
def running_cluster(
    config: ClusterConfig, workdir: Path, code: Path | None, say: Callable[[str], None]
) -> Iterator[LocalCluster]:
    """A started cluster running ``code``'s faillite; every process ended on leaving, however."""
    with code_path(code) as where:
        say(f"starting {len(config.nodes)} nodes, {len(config.apps)} apps (code: {where})")
        cluster = LocalCluster(config, workdir, say=lambda m: say(m.strip()))
        try:
            cluster.start(timeout=180)
            yield cluster
        finally:
            cluster.stop()


def app_inputs(cluster: LocalCluster) -> dict[str, dict[str, np.ndarray]]:
    """One request's input per app (held-out digits; seeded random images for stand-ins)."""
    x, _ = digits.heldout_split()
    rng = np.random.default_rng(0)
    feeds = {}
    for app in cluster.config.apps:
        spec = cluster.manifests[app.family].signature.inputs[0]
        if app.family == "digits":
            feeds[app.name] = {spec.name: x[:1]}
        else:
            shape = tuple(1 if d < 0 else d for d in spec.shape)
            feeds[app.name] = {spec.name: rng.random(shape, dtype=np.float32)}
    return feeds


def digit_inputs(cluster: LocalCluster) -> dict[str, dict[str, np.ndarray]]:
    x, _ = digits.heldout_split()
    return {a.name: {digits.INPUT_NAME: x[:1]} for a in cluster.config.apps}


async def until(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` (run in a thread: it may do blocking HTTP) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll a quick, non-blocking ``condition`` on the loop until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


class Progress:
    """Progress lines on stderr, stamped with the seconds since the benchmark started."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled and message:
            sys.stderr.write(f"[{time.monotonic() - self.started:6.1f} s] {message}\n")
            sys.stderr.flush()


@dataclass
class BoxMeter:
    """The box's CPU utilisation and load average over a window: ``start()`` ... ``stop()``."""

    _first: BoxSample | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def start(self) -> BoxMeter:
        self._first = sample_box()
        self.result = {}
        return self

    def stop(self) -> dict[str, Any]:
        if self._first is None:
            raise RuntimeError("BoxMeter.stop() before start()")
        last = sample_box()
        self.result = {
            "cpu_percent": box_utilisation(self._first, last)["percent"],
            "cores_busy": box_utilisation(self._first, last)["cores_busy"],
            "cores": last.cores,
            "loadavg": loadavg(),
        }
        return self.result


def cluster_processes(cluster: LocalCluster) -> list[tuple[str, int]]:
    """(name, pid) of the cluster's processes, and of this benchmark process ("bench")."""
    found = []
    if cluster.controller is not None:
        found.append(("controller", cluster.controller.pid))
    found.extend((f"agent {node}", agent.pid) for node, agent in cluster.agents.items())
    if cluster.gateway is not None:
        found.append(("gateway", cluster.gateway.pid))
    return found


class ProcessMeter:
    """Each process's CPU share (% of one core) over a window: ``start()`` ... ``stop()``."""

    def __init__(self, processes: list[tuple[str, int]]) -> None:
        self.processes = processes
        self._first: dict[int, ProcSample] = {}

    def start(self) -> ProcessMeter:
        self._first = {}
        for _, pid in self.processes:
            with contextlib.suppress(OSError):
                self._first[pid] = sample_process(pid, time.monotonic())
        return self

    def stop(self) -> dict[str, float]:
        shares = {}
        for name, pid in self.processes:
            try:
                last = sample_process(pid, time.monotonic())
            except OSError:  # exited during the window
                continue
            if pid in self._first:
                shares[name] = round(cpu_share(self._first[pid], last), 2)
        return shares


class EventWatch:
    """The controller's event stream (``/v1/events/watch``), each event stamped with
    ``time.monotonic()`` when it reached this process. Reconnects (from the last id seen)."""

    def __init__(self, session: aiohttp.ClientSession, controller_url: str, since: int = 0) -> None:
        self.session = session
        self.url = controller_url.rstrip("/")
        self.since = since
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_now(cls, session: aiohttp.ClientSession, cluster: LocalCluster) -> EventWatch:
        status = http_json("GET", f"{cluster.controller_url}/v1/status")[1]
        return cls(session, cluster.controller_url, int(status.get("last_event_id") or 0))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def of_kind(self, kind: str, after: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e.get("kind") == kind and t >= after]

    async def _run(self) -> None:
        while True:
            try:
                async with self.session.ws_connect(
                    f"{self.url}/v1/events/watch?since={self.since}", heartbeat=5.0
                ) as ws:
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        event = json.loads(message.data)
                        self.events.append((time.monotonic(), event))
                        self.since = max(self.since, int(event.get("id", 0)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the controller is up for the whole benchmark; log and retry
                log.warning("event watch: %s; reconnecting", exc)
            await asyncio.sleep(0.2)
