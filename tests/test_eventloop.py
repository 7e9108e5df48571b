"""The event loop choice: uvloop when installed, the standard loop when it is not or when
FAILLITE_EVENT_LOOP=asyncio asks for it; an unknown value is ignored with a warning."""

from __future__ import annotations

import asyncio
import sys

import pytest

from faillite import eventloop


def test_uvloop_by_default_when_installed() -> None:
    pytest.importorskip("uvloop")
    name, factory = eventloop.loop_factory("")
    assert name == "uvloop"
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV_VAR, "asyncio")
    name, factory = eventloop.loop_factory()
    assert name == "asyncio" and factory is asyncio.new_event_loop


def test_falls_back_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError
    assert eventloop.loop_factory("uvloop")[0] == "asyncio"
    assert eventloop.run(_answer()) == 42


def test_unknown_choice_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    name, _ = eventloop.loop_factory("trio")
    assert name in ("uvloop", "asyncio")
    assert "neither 'uvloop' nor 'asyncio'" in caplog.text


def test_run_returns_the_coroutine_result() -> None:
    assert eventloop.run(_answer()) == 42


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42
