"""The foundation demo: one real agent process serving the digits family.

Starts ``faillite agent`` on loopback with a repository of every digits variant, loads each
variant through the repository API, sends held-out digits through the Open Inference Protocol,
prints a few predictions and the accuracy measured over the whole held-out split next to the
one the manifest states, and unloads. (The failover demo replaces this once the controller
lands.)
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from faillite.client.oip import OipClient
from faillite.launch.process import AgentProcess
from faillite.zoo import digits
from faillite.zoo.catalog import load_builtin_family
from faillite.zoo.repository import build_repository

__all__ = ["run_agent_tour"]

_GLYPHS = " .:-=+*#%@"


def _ascii_digit(pixels: np.ndarray) -> list[str]:
    return ["".join(_GLYPHS[min(9, int(v) * 10 // 17)] * 2 for v in row) for row in pixels.reshape(8, 8)]


async def _tour(url: str, say: Callable[[str], None]) -> list[tuple[str, float, float]]:
    manifest = load_builtin_family("digits")
    x, y = digits.heldout_split()
    results = []
    async with OipClient(url, timeout=10.0) as client:
        index = await client.repository_index()
        say(f"repository: {', '.join(m['name'] for m in index)}")
        shown = False
        for entry in manifest.variants:
            started = time.perf_counter()
            await client.load(entry.name)
            load_ms = (time.perf_counter() - started) * 1000
            if not shown:
                sample = x[:4]
                out = await client.infer(entry.name, {digits.INPUT_NAME: sample})
                predicted = out[digits.OUTPUT_NAME].argmax(axis=1)
                say(f"\nfour held-out digits through {entry.name} (label -> prediction):")
                art = [_ascii_digit(img) for img in sample]
                for row in range(8):
                    say("   " + "    ".join(a[row] for a in art))
                say(
                    "   "
                    + "    ".join(
                        f"{int(t)} -> {int(p)}".center(16) for t, p in zip(y[:4], predicted, strict=True)
                    )
                )
                say("")
                shown = True
            correct = 0
            for start in range(0, len(x), 64):
                batch = x[start : start + 64]
                out = await client.infer(entry.name, {digits.INPUT_NAME: batch})
                correct += int((out[digits.OUTPUT_NAME].argmax(axis=1) == y[start : start + 64]).sum())
            measured = correct / len(y)
            say(
                f"{entry.name:<22} loaded in {load_ms:6.1f} ms   served accuracy {measured:7.2%}"
                f"   manifest {entry.accuracy:7.2%}   ({len(y)} held-out digits)"
            )
            results.append((entry.name, measured, entry.accuracy))
            await client.unload(entry.name)
    return results


def run_agent_tour(say: Callable[[str], None] = print) -> int:
    manifest = load_builtin_family("digits")
    with tempfile.TemporaryDirectory(prefix="faillite-demo-") as tmp:
        repo = build_repository(Path(tmp) / "models", manifest)
        agent = AgentProcess("edge-1", repo, "256MiB", Path(tmp) / "agent.log")
        say("starting a faillite agent (node edge-1, 256 MiB budget) on loopback ...")
        started = time.perf_counter()
        url = agent.start_and_wait(timeout=60)
        say(f"agent ready on {url} (pid {agent.pid}) in {(time.perf_counter() - started) * 1000:.0f} ms")
        try:
            results = asyncio.run(_tour(url, say))
        finally:
            agent.stop()
    mismatched = [name for name, measured, stated in results if abs(measured - stated) > 1e-6]
    if mismatched:
        say(f"served accuracy differs from the manifest for: {', '.join(mismatched)}")
        return 1
    say("\nevery variant served exactly the accuracy its manifest states.")
    return 0
