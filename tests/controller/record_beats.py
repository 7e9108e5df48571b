"""Record a real agent's beat arrivals, quiet and beside CPU hogs, for the detector's tests.

    python -m tests.controller.record_beats [SECONDS] [HOGS]

Starts a stand-in controller (it speaks the agent protocol and only records: arrival time on its
own event loop, and the loop lag each beat reports) and one real ``faillite agent`` process,
records SECONDS quiet, then SECONDS beside HOGS busy loops, and writes
``tests/controller/data/beats.json`` (arrival times in seconds, lags in seconds).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import WSMsgType, web

from faillite.launch.process import AgentProcess
from faillite.wire import Beat, Welcome

OUT = Path(__file__).parent / "data" / "beats.json"


async def record(seconds: float, hogs: int) -> dict[str, dict[str, list[float]]]:
    beats: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    async def connect(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the Register
        await ws.send_str(
            Welcome(epoch=1, heartbeat_interval_ms=60.0, fence_after_ms=60_000.0).model_dump_json()
        )
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                beats.append((loop.time(), Beat.unpack(msg.data).lag_ms / 1000))
        return ws

    app = web.Application()
    app.router.add_get("/v1/agents/connect", connect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(
            "rec",
            Path(tmp),
            64 << 20,
            Path(tmp) / "agent.log",
            extra_args=["--controller", f"http://127.0.0.1:{port}"],
        )
        agent.start()
        await asyncio.to_thread(agent.wait_ready, 60)
        out = {}
        try:
            for phase, n in (("quiet", 0), ("saturated", hogs)):
                procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
                await asyncio.sleep(2.0)
                start = len(beats)
                await asyncio.sleep(seconds)
                for p in procs:
                    p.kill()
                part = beats[start:]
                t0 = part[0][0]
                out[phase] = {
                    "arrivals": [round(t - t0, 5) for t, _ in part],
                    "lags": [round(lag, 4) for _, lag in part],
                    "load": Path("/proc/loadavg").read_text().split()[:3],  # type: ignore[dict-item]
                    "recorded": time.strftime("%Y-%m-%d"),  # type: ignore[dict-item]
                }
        finally:
            agent.stop()
            await runner.cleanup()
    return out


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    hogs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    data = asyncio.run(record(seconds, hogs))
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    for phase, d in data.items():
        gaps = [b - a for a, b in zip(d["arrivals"], d["arrivals"][1:], strict=False)]
        print(f"{phase}: {len(gaps)} gaps, max {max(gaps) * 1000:.0f} ms, load {d['load']}")


if __name__ == "__main__":
    main()
