"""Settling after a failover: the controller's climb pass, around the pure ``policy.climb``.

Once no failover program runs, failed-over apps climb back toward their home variant as far
as the surviving memory allows with every app still protected (``faillite.placement.settle``,
in a worker thread); see ``faillite.controller.policy.climb`` for the rules.
"""

from __future__ import annotations

import asyncio

from faillite.controller import policy
from faillite.controller.runner import Runner

__all__ = ["climb_once"]


async def climb_once(runner: Runner) -> None:
    state = runner.state
    now = runner.now()
    runner.execute(policy.climb_prelude(state, now))
    request = policy.climb_request(state, now)
    if request is None:
        return
    result = await asyncio.to_thread(request.solve)
    runner.execute(policy.climb_adopt(state, request, result))  # nothing if the world moved meanwhile
