"""Agent links on the real Controller object, with a stand-in WebSocket (no processes needed):
what a confirm beat gets, and what happens to a background task that raises."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from faillite.controller.config import ControllerConfig
from faillite.controller.core import Controller
from faillite.controller.links import _on_beat, on_register
from faillite.controller.states import NodeState
from faillite.wire import Beat, Confirm, Register, parse_control_frame


class FakeSocket:
    """Records what the controller sends an agent."""

    def __init__(self) -> None:
        self.closed = False
        self.frames: list[bytes] = []
        self.close_code: int | None = None

    async def send_bytes(self, data: bytes) -> None:
        self.frames.append(data)

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed, self.close_code = True, code


async def _settle(controller: Controller) -> None:
    """Let the controller's background tasks run to completion."""
    while controller._background:
        await asyncio.gather(*controller._background, return_exceptions=True)


async def _registered(tmp_path: Path) -> tuple[Controller, FakeSocket, int]:
    controller = Controller(ControllerConfig(state_path=tmp_path / "state.sqlite"))
    ws = FakeSocket()
    reg = Register(node_id="n1", url="http://n1", memory_bytes=64 << 20)
    welcome = await on_register(controller, reg, ws)
    await _settle(controller)
    ws.frames.clear()
    return controller, ws, welcome.epoch


async def test_a_confirm_beat_from_a_node_still_alive_is_confirmed(tmp_path: Path) -> None:
    controller, ws, epoch = await _registered(tmp_path)
    _on_beat(controller, "n1", ws, Beat(seq=5, epoch=epoch, lag_ms=150, confirm=True))
    await _settle(controller)
    frames = [parse_control_frame(f) for f in ws.frames]
    assert Confirm(5, epoch) in frames
    assert controller.cluster.nodes["n1"].state is NodeState.ALIVE
    controller.store.close()


async def test_a_confirm_beat_whose_own_lag_is_a_verdict_declares_the_node_dead(tmp_path: Path) -> None:
    controller, ws, epoch = await _registered(tmp_path)
    stalled_ms = round(controller.detector.max_timeout_s * 1000) + 500  # past the stall limit
    _on_beat(controller, "n1", ws, Beat(seq=5, epoch=epoch, lag_ms=stalled_ms, confirm=True))
    await _settle(controller)
    frames = [parse_control_frame(f) for f in ws.frames]
    assert not any(isinstance(f, Confirm) for f in frames)  # never told it may serve on
    assert controller.cluster.nodes["n1"].state is NodeState.DEAD
    assert ws.close_code == 4410  # "declared dead": the agent stays fenced
    controller.store.close()


async def _boom() -> None:
    raise RuntimeError("a bug in a background task")


async def test_a_background_task_that_raises_is_logged_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    controller = Controller(ControllerConfig(state_path=tmp_path / "state.sqlite"))
    with caplog.at_level(logging.ERROR, logger="faillite.controller"):
        task = controller.spawn(_boom())
        task.set_name("boom-task")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert controller.task_errors == 1
    assert any("boom-task" in r.getMessage() and r.exc_info for r in caplog.records)
    assert not controller._background
    controller.store.close()


async def test_in_strict_mode_a_background_task_error_reaches_the_loop(tmp_path: Path) -> None:
    controller = Controller(ControllerConfig(state_path=tmp_path / "state.sqlite"), strict=True)
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        task = controller.spawn(_boom())
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert controller.task_errors == 1
    assert any(isinstance(c.get("exception"), RuntimeError) for c in seen)
    controller.store.close()
