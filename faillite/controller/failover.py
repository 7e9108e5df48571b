"""Running failover programs: the I/O around the failover policy (``policy.failover``,
``policy.programs``).

After ``node_dead`` (the immediate switches), ``recover`` runs the replans: the recovery
program (greedy, well under a millisecond, in the event loop) whose per-app programs start at
once in the planner's order (most critical first, so agents, which serialize loads, take
every stepping stone before any upgrade), then re-protection with the configured method in a
worker thread (the planner is CPU-bound; after a failure the survivors are tight, and greedy
best effort protects far fewer apps there than CP-SAT does within its time limit).
``run_program`` interprets one app's program step by step, awaiting its loads and the
unload grace.
"""

from __future__ import annotations

import asyncio
import logging

from faillite.controller import policy
from faillite.controller.decide import Load, Unload
from faillite.controller.effects import Effect, EndProgram, StartRecovery, Wait, Wake
from faillite.controller.runner import Runner
from faillite.placement import ReplanResult

__all__ = ["recover", "run_program"]

log = logging.getLogger("faillite.controller")


async def recover(runner: Runner, start: StartRecovery) -> None:
    state, dead, cold = runner.state, start.dead, start.cold
    try:
        request = policy.recovery_request(state, dead)
        # First service first: the recovery program alone takes well under a millisecond...
        first = request.first()
    except Exception as exc:  # the planner failed: leave the apps recovering, say why
        log.exception("re-planning after the failure of %s failed", list(dead))
        runner.execute(policy.recovery_failed(state, cold, str(exc)))
        return
    runner.execute(policy.recovery_programs(state, first, cold))
    # ...then new backups, planned in a worker thread while the loads run. The reconcile loop
    # loads new warm backups once each app's program is done, and unloads what moved.
    try:
        full: ReplanResult = await asyncio.to_thread(request.full)
    except Exception:
        log.exception("re-protection after the failure of %s failed; apps stay unprotected", list(dead))
        full = first
    runner.execute(policy.reprotected(state, full, dead))


async def run_program(runner: Runner, app: str, run: int) -> None:
    """Run ``app``'s program (run ``run``) to its end, or until it is cancelled."""
    state = runner.state
    loaded: bool | None = None
    try:
        while (program := state.programs.get(app)) is not None and program.run == run:
            effects = policy.program_step(state, app, runner.now(), loaded=loaded)
            loaded = None
            if not effects:
                return
            for effect in effects:
                if isinstance(effect, Load):
                    runner.record(effect)
                    loaded = await runner.load(effect.replica, effect.app)
                elif isinstance(effect, Wait):
                    await asyncio.sleep(effect.seconds)
                elif isinstance(effect, Unload):
                    runner.record(effect)
                    await runner.unload(effect.replica, effect.reason)
                else:
                    runner.execute([effect])
            if any(isinstance(e, EndProgram) for e in effects):
                return
    finally:
        program = state.programs.get(app)
        ended: list[Effect] = [Wake("program stopped")]
        if program is not None and program.run == run:  # it raised: no longer running
            ended.insert(0, EndProgram(app, run, "program stopped"))
        runner.execute(ended)
