"""Transparent huge pages for the agent's heap, so a crashed agent's connections close fast.

When a process dies, the kernel tears its address space down *before* it closes its sockets:
clients and the controller only see a killed agent's connections close once every page is
freed. ONNX Runtime keeps weights in ordinary ``malloc`` memory, 4 KiB pages: measured here,
1 GB of them took 105-115 ms to tear down after SIGKILL, the same gigabyte in transparent huge
pages 8 ms. That teardown is the crash-detection time of every app on the node.

glibc (2.35+) backs large ``malloc`` chunks with huge pages when ``glibc.malloc.hugetlb=1`` is in
``GLIBC_TUNABLES`` (``madvise(MADV_HUGEPAGE)``, honoured with the kernel's THP setting
``madvise`` or ``always``). A tunable is read at process start, so the agent re-executes itself
once with it set. ``--no-huge-pages`` (or a tunable already naming ``hugetlb``) leaves it be.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["TUNABLE", "reexec_with_huge_pages", "with_huge_pages"]

TUNABLE = "glibc.malloc.hugetlb=1"
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def with_huge_pages(env: Mapping[str, str], thp_setting: str | None) -> dict[str, str] | None:
    """The environment to re-execute with, or None when there is nothing to change: the tunable
    is already set (or ``hugetlb`` is set to something else on purpose), or THP is off."""
    if thp_setting is None or "[never]" in thp_setting:
        return None
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return None
    out = dict(env)
    out["GLIBC_TUNABLES"] = f"{tunables}:{TUNABLE}" if tunables else TUNABLE
    return out


def _thp_setting() -> str | None:
    try:
        with open(_THP) as f:
            return f.read()
    except OSError:  # not Linux, or no THP support
        return None


def reexec_with_huge_pages() -> None:
    """Replace this process (same pid, same arguments) by one with the tunable set; returns
    only when nothing needs to change."""
    if not sys.platform.startswith("linux"):
        return
    env = with_huge_pages(os.environ, _thp_setting())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
