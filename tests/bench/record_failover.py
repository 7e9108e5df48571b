"""Record one real failover for the phase-breakdown tests: controller events and probe records.

    python -m tests.bench.record_failover

Starts the controller tests' small cluster (three nodes, four digits apps: two warm-backed and
one cold app on n1), keeps one request in flight per app, back to back (a probe stream),
SIGKILLs n1, waits until every app it served answers again and has settled (``app_settled``) or
10 s pass, and writes ``tests/bench/data/failover_sigkill.json``: the failure, the controller's
events from /v1/events (with ``mono``) and the affected apps' request records until shortly
after each has answered from its settled variant (``records_until``), all ``time.monotonic()``
seconds on this machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from faillite.bench.load import LoadGenerator
from faillite.client.failover import Client
from tests.controller.cluster import app_states, digit_inputs, events, start, until

OUT = Path(__file__).parent / "data" / "failover_sigkill.json"
NODE = "n1"
KEEP_S = 0.05  # records kept: from this long before the failure to this long after the last
# affected app's first answer from the variant it settled on (at least 100 ms after the failure)


async def record(workdir: Path) -> dict[str, Any]:
    cluster = start(workdir)
    try:
        before = app_states(cluster)
        affected = sorted(n for n, a in before.items() if a["node"] == NODE)
        async with Client(cluster.controller_url) as client:
            load = LoadGenerator(client, digit_inputs(cluster), deadline=10.0)
            load.start()
            try:
                await until(lambda: len(load.records) > 50, 20, "steady load")
                failed_at = time.monotonic()
                cluster.kill_node(NODE, signal.SIGKILL)
                await until(
                    lambda: all(
                        any(
                            r.ok and r.app == n and r.node != NODE and r.end > failed_at for r in load.records
                        )
                        for n in affected
                    ),
                    30,
                    "every affected app to answer again",
                )
                try:
                    await until(
                        lambda: {e["app"] for e in events(cluster, "app_settled")} >= set(affected),
                        10,
                        "every affected app to settle",
                    )
                except AssertionError as exc:
                    print(exc, file=sys.stderr)
                await asyncio.sleep(0.3)
            finally:
                await load.stop()
        log = [e for e in events(cluster) if e.get("mono", 0) >= failed_at - 1.0]
    finally:
        cluster.stop()
    settled = {e["app"]: e["variant"] for e in log if e["kind"] == "app_settled"}
    answered = [
        min((r.end for r in load.records if r.app == app and r.ok and r.node != NODE and r.end > failed_at
             and r.variant == settled.get(app, r.variant)), default=failed_at)
        for app in affected
    ]  # fmt: skip
    cut = max(failed_at + 0.1, *answered) + KEEP_S
    records = [
        dataclasses.asdict(r)
        for r in load.records
        if r.app in affected and failed_at - KEEP_S <= r.end <= cut
    ]
    return {
        "failure": {"node": NODE, "kind": "SIGKILL", "at": failed_at},
        "records_until": cut,
        "apps": {
            n: {"mode": before[n]["backup"]["mode"], "accuracy": before[n]["accuracy"]} for n in affected
        },
        "events": log,
        "records": records,
    }


def _dump(doc: dict[str, Any]) -> str:
    """One event or record a line: a readable fixture."""
    head = json.dumps({k: v for k, v in doc.items() if k not in ("events", "records")})[:-1]
    events_ = ",\n".join(json.dumps(e) for e in doc["events"])
    records = ",\n".join(json.dumps(r) for r in doc["records"])
    return f'{head}, "events": [\n{events_}\n], "records": [\n{records}\n]}}\n'


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        doc = asyncio.run(record(Path(tmp)))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(_dump(doc))
    print(f"wrote {OUT}: {len(doc['events'])} events, {len(doc['records'])} records")


if __name__ == "__main__":
    main()
