"""The agent re-executes itself once with glibc's huge-page tunable (faster teardown on a crash)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from faillite.agent.hugepages import TUNABLE, with_huge_pages
from tests.agent.onnx_models import add_model, place
from tests.helpers import start_agent

MADVISE = "always [madvise] never\n"


def test_the_tunable_is_added_once_and_others_are_kept() -> None:
    assert with_huge_pages({"PATH": "/bin"}, MADVISE) == {"PATH": "/bin", "GLIBC_TUNABLES": TUNABLE}
    env = with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, MADVISE)
    assert env is not None and env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{TUNABLE}"
    assert with_huge_pages({"GLIBC_TUNABLES": TUNABLE}, MADVISE) is None  # no second exec
    assert with_huge_pages({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, MADVISE) is None  # chosen
    assert with_huge_pages({}, "always madvise [never]\n") is None  # THP off: nothing to gain
    assert with_huge_pages({}, None) is None  # no THP support


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and glibc tunables")
@pytest.mark.parametrize("flag", [[], ["--no-huge-pages"]])
def test_an_agent_runs_with_huge_pages_unless_told_not_to(tmp_path: Path, flag: list[str]) -> None:
    if "[never]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
        pytest.skip("transparent huge pages are off on this machine")
    repo = tmp_path / "models"
    place(repo, "add", add_model())
    agent = start_agent(repo, tmp_path, extra=["--load", "add", *flag])
    try:
        tunables = _environ(agent.pid).get("GLIBC_TUNABLES", "")
        assert (TUNABLE in tunables) is (not flag)  # same pid: re-executed in place
    finally:
        assert agent.stop() == 0, agent.log_text()
