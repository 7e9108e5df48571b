"""The paced load in a process of its own, so that it can run another faillite tree's client.

With ``--baseline DIR`` a benchmark compares a cluster running DIR's faillite with the current
one; the failover client is part of what is compared (hedging lives there), so the load must
run DIR's ``faillite.client`` too. ``RemoteLoad`` starts a child Python with PYTHONPATH=DIR
(inherited from ``harness.code_path``) that appends this checkout's ``faillite/bench`` to
``faillite.bench.__path__``: ``faillite.bench.cluster`` (the pacing) comes from here, everything
else (client, gateway protocol, zoo) from DIR. The child writes one line per request sent and
one per answer, stamped with ``time.monotonic()`` -- CLOCK_MONOTONIC is one clock for every
process on the machine, so its stamps and the parent's failure instant compare directly.

Lines (tab-separated): ``R`` ready; ``S seq app due start``; ``E seq ok end node error``;
``K skipped``. The child stops when its stdin closes (or on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from faillite.bench.cluster.harness import digit_inputs
from faillite.bench.cluster.mttr import Sent
from faillite.bench.cluster.paced import LoadBase, PacedLoad, Sender, client_sender, gateway_sender
from faillite.client.failover import Client
from faillite.launch.cluster import LocalCluster

__all__ = ["RemoteLoad", "child_main", "paced_load"]

_BOOT = (
    "import sys, faillite.bench as b; b.__path__.append(sys.argv[1]); "
    "from faillite.bench.cluster.loadgen import child_main; sys.exit(child_main(sys.argv[2:]))"
)


class RemoteLoad(LoadBase):
    """``PacedLoad``'s interface (records, skipped, in-flight), the load running in a child."""

    def __init__(
        self,
        apps: list[str],
        period_s: float,
        *,
        via: str,
        controller_url: str,
        gateway_url: str,
        deadline_s: float,
        log_path: Path,
        max_in_flight: int = 16,
    ) -> None:
        super().__init__(apps, period_s)
        self._argv = [
            "--apps", ",".join(apps), "--period-s", repr(period_s), "--via", via,
            "--controller", controller_url, "--gateway", gateway_url or "",
            "--deadline-s", repr(deadline_s), "--max-in-flight", str(max_in_flight),
        ]  # fmt: skip
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def begin(self, timeout: float = 60.0) -> None:
        bench_dir = str(Path(__file__).resolve().parent.parent)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _BOOT, bench_dir, *self._argv,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                start_new_session=True, limit=1 << 20,
            )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(
                f"the load generator did not start within {timeout:g} s; see {self.log_path}"
            ) from None

    async def stop(self, drain_s: float = 1.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), drain_s + 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:  # the child is gone: read what it wrote to the end
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 30)
        self.records.extend(self._in_flight.drain("unanswered"))

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            fields = raw.decode().rstrip("\n").split("\t")
            kind = fields[0]
            if kind == "S":
                self._in_flight.add(int(fields[1]), fields[2], float(fields[3]), float(fields[4]))
            elif kind == "E":
                sent = self._in_flight.pop(int(fields[1]))
                if sent is None:
                    continue
                app, due, start = sent
                ok = fields[2] == "1"
                self.records.append(
                    Sent(app, due, start, float(fields[3]), ok, fields[4] or None, None if ok else fields[5])
                )
            elif kind == "K":
                self.skipped = int(fields[1])
            elif kind == "R":
                self._ready.set()


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="faillite-loadgen")
    parser.add_argument("--apps", required=True)
    parser.add_argument("--period-s", type=float, required=True)
    parser.add_argument("--via", choices=("client", "gateway"), required=True)
    parser.add_argument("--controller", required=True)
    parser.add_argument("--gateway", default="")
    parser.add_argument("--deadline-s", type=float, default=5.0)
    parser.add_argument("--max-in-flight", type=int, default=16)
    args = parser.parse_args(argv)
    # the client's own log lines (failovers at INFO) go to loadgen.log in the cluster's logs
    logging.basicConfig(
        level=os.environ.get("FAILLITE_LOADGEN_LOG", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    import faillite.client.failover

    logging.getLogger("faillite.bench").warning(
        "load generator: client from %s", Path(faillite.client.failover.__file__).parent.parent.parent
    )
    asyncio.run(_child(args))
    return 0


async def _child(args: argparse.Namespace) -> None:
    from faillite.zoo import digits

    apps = args.apps.split(",")
    x, _ = digits.heldout_split()
    inputs = {app: {digits.INPUT_NAME: x[:1]} for app in apps}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True
    ).start()
    lines: list[str] = []

    def on_send(seq: int, app: str, due: float, start: float) -> None:
        lines.append(f"S\t{seq}\t{app}\t{due!r}\t{start!r}\n")

    def on_end(seq: int, r: Sent) -> None:
        error = (r.error or "").replace("\t", " ").replace("\n", " ")
        lines.append(f"E\t{seq}\t{int(r.ok)}\t{r.end!r}\t{r.node or ''}\t{error}\n")

    out = sys.stdout
    with contextlib.suppress(OSError, ValueError):  # a bigger pipe: a busy reader never blocks the load
        fcntl.fcntl(out.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ (Linux)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024)) as session:
        client: Client | None = None
        try:
            if args.via == "client":
                client = Client(args.controller)
                await client.start()
                while not all(client.knows(a) for a in apps) and not stop.is_set():
                    await asyncio.sleep(0.01)
                send: Sender = client_sender(client, inputs, args.deadline_s)
            else:
                send = gateway_sender(session, args.gateway, inputs, args.deadline_s)
            load = PacedLoad(
                send, apps, args.period_s, max_in_flight=args.max_in_flight, on_send=on_send, on_end=on_end
            )
            out.write("R\n")
            out.flush()
            load.start()
            skipped = 0
            while not stop.is_set():
                await asyncio.sleep(0.005)
                if load.skipped != skipped:
                    skipped = load.skipped
                    lines.append(f"K\t{skipped}\n")
                if lines:
                    out.write("".join(lines))
                    lines.clear()
                    out.flush()
            await load.stop()
            lines.append(f"K\t{load.skipped}\n")
            out.write("".join(lines))
            out.flush()
        finally:
            if client is not None:
                await client.close()


@contextlib.asynccontextmanager
async def paced_load(
    cluster: LocalCluster,
    period_s: float,
    *,
    via: str = "client",
    deadline_s: float = 5.0,
    separate: bool = False,
) -> AsyncIterator[PacedLoad | RemoteLoad]:
    """Open-loop load on every app of ``cluster``, running until the block ends: in this process
    (``separate=False``) or in a child running the cluster's own faillite (``separate=True``)."""
    names = sorted(a.name for a in cluster.config.apps)
    if separate:
        remote = RemoteLoad(
            names,
            period_s,
            via=via,
            controller_url=cluster.controller_url,
            gateway_url=cluster.gateway_url,
            deadline_s=deadline_s,
            log_path=cluster.workdir / "logs" / "loadgen.log",
        )
        await remote.begin()
        try:
            yield remote
        finally:
            await remote.stop()
        return
    inputs = digit_inputs(cluster)
    async with contextlib.AsyncExitStack() as stack:
        if via == "client":
            client = await stack.enter_async_context(
                Client(cluster.controller_url, token=cluster.config.token)
            )
            deadline = asyncio.get_running_loop().time() + 10
            while not all(client.knows(a) for a in names):
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError("the client never received the route table")
                await asyncio.sleep(0.01)
            send: Sender = client_sender(client, inputs, deadline_s)
        else:
            session = await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
            )
            send = gateway_sender(session, cluster.gateway_url, inputs, deadline_s)
        load = PacedLoad(send, names, period_s)
        await load.begin()
        try:
            yield load
        finally:
            await load.stop()
