"""Adding and removing apps: the API's runner around the pure ``policy.apps``.

A spec the cluster cannot run is refused with the reason (unknown family, SLO no variant
meets, no room anywhere) and nothing changes: planning runs first (in a worker thread), and
the new plan is committed (persisted) only when it is feasible.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faillite.controller import policy
from faillite.controller.core import Controller
from faillite.controller.planning import AppSpec
from faillite.controller.policy import AppConflict, PlanRefused

__all__ = ["AppConflict", "PlanRefused", "add_apps", "remove_app"]


async def add_apps(controller: Controller, specs: list[AppSpec]) -> dict[str, Any]:
    request = policy.add_request(controller.state, specs)  # raises AppConflict, SpecError
    result = await asyncio.to_thread(request.solve)
    controller.execute(policy.app_added(controller.state, request, result))  # raises PlanRefused
    assert result.plan is not None
    return {"apps": [s.name for s in specs], "status": result.status.value, "objective": result.objective}


def remove_app(controller: Controller, name: str) -> bool:
    effects = policy.app_removed(controller.state, name)
    controller.execute(effects)
    return bool(effects)
