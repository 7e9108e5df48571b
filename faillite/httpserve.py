"""Serving an aiohttp app until told to stop: shared by the agent, the controller and the gateway."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from aiohttp import web

__all__ = ["ListenError", "listening", "stop_on_signals"]


class ListenError(OSError):
    """The address could not be bound (in use, not local, no permission)."""


@asynccontextmanager
async def listening(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0 picks a free port) and yield the bound port.

    On exit, requests in flight get ``shutdown_timeout`` seconds to finish.
    """
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        yield next((int(a[1]) for a in runner.addresses if isinstance(a, tuple) and len(a) >= 2), port)
    finally:
        await runner.cleanup()


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT while inside the block."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
