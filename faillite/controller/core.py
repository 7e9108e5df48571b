"""The controller: a runner that feeds events to the pure policy and carries its effects out.

It owns the one ``ControlState`` (``faillite.controller.model``), persisted through
``ClusterState`` (``cluster``). Events come from its loops (reconcile, failure detection,
climbing), from agent connections (``links``) and from the app API (``apps``); each asks a
policy function (``faillite.controller.policy``) what to do, and ``execute`` applies the
returned effects in order (``reduce.apply``: the only code that changes the state), persists
them, and does their I/O: agent loads and unloads over HTTP, the event log, route pushes
over WebSockets, the replans of a failover (``failover``, the planner in a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from faillite.client.oip import OipClient, OipConnectionError, OipError, OipTimeout
from faillite.controller import policy
from faillite.controller.climb import climb_once
from faillite.controller.cluster import ClusterState, load_state
from faillite.controller.config import ControllerConfig
from faillite.controller.decide import Load, Replica, Unload
from faillite.controller.effects import (
    CancelProgram,
    Effect,
    Emit,
    EndProgram,
    LoadDone,
    PublishRoutes,
    SetAgent,
    StartProgram,
    StartRecovery,
    Wake,
)
from faillite.controller.events import EventLog
from faillite.controller.failover import recover, run_program
from faillite.controller.liveness import Heartbeats, StallClock
from faillite.controller.model import AgentView, PolicyConfig, live_nodes
from faillite.controller.planning import build_families
from faillite.controller.shared import fallback_keys
from faillite.controller.states import NodeState
from faillite.controller.store import StateStore
from faillite.placement import Family, PlannerParams
from faillite.profiler.format import load_profiles
from faillite.wire import RouteTable

__all__ = ["Controller"]

log = logging.getLogger("faillite.controller")

_DETECT_MAX_SLEEP_S = 0.1  # the detector wakes at the next deadline, and at least this often


class Controller:
    def __init__(self, config: ControllerConfig, *, strict: bool = False) -> None:
        self.config = config
        self.strict = strict  # tests: a bug in a loop step re-raises instead of being logged
        profiles = [p for path in config.profiles for p in load_profiles(path).variants]
        keys = fallback_keys(config.manifests, {p.family for p in profiles})
        self.families: dict[str, Family] = build_families(profiles, keys)
        self.detector = config.detector()
        self.clock = StallClock()  # the controller's own loop stalls do not count as silence
        self._detect_due: float | None = None
        self.sessions: dict[int, str] = {}  # UDP beat session -> node
        self.beat_port: int | None = None
        self.beat_transport: Any = None
        self.params = PlannerParams(detection_ms=self.detector.quiet_timeout_s() * 1000, switch_ms=5.0)
        self.store = StateStore(config.state_path)
        self.events = EventLog(self.store)
        rules = PolicyConfig(
            policy=config.policy,
            method=config.method,
            progressive=config.progressive,
            plan_time_limit_s=config.plan_time_limit_s,
            unload_grace_s=config.unload_grace_ms / 1000,
        )
        self.state = load_state(self.store, self.families, self.params, rules)  # the one state
        accuracies = {(f.name, v.name): v.accuracy for f in self.families.values() for v in f.variants}
        self.cluster = ClusterState(self.store, accuracies, self.state)
        self.heartbeats: dict[str, Heartbeats] = {}  # the detector's, per node with a session
        self.connections: dict[str, Any] = {}  # node -> its agent's WebSocket
        self.program_tasks: dict[str, asyncio.Task[None]] = {}  # app -> the task running its program
        self.watchers: set[Any] = set()
        self.step_observers: list[Callable[[str, float, bool], None]] = []  # (step, seconds, failed): metrics
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.task_errors = 0  # background tasks that raised (logged; metric faillite_controller_task_errors)
        self._session: aiohttp.ClientSession | None = None
        self._agents: dict[str, OipClient] = {}
        self.started = time.monotonic()
        self.stopping = False

    # lifecycle
    async def start(self) -> None:
        """Start the loops (whoever wires the controller opens its UDP beat socket first)."""
        self._session = aiohttp.ClientSession()
        grace = self.config.adopt_grace_ms / 1000 - self.detector.quiet_timeout_s()
        for node in list(self.state.nodes.values()):  # from before a restart: agents may return
            if node.state in (NodeState.ALIVE, NodeState.SUSPECT, NodeState.REJOINING):
                self.heartbeats[node.id] = self.detector.new(node.epoch, self.vnow() + grace)
                self.record(SetAgent(node.id, AgentView(connected=False), "awaited after a restart"))
        self.cluster.route_table()
        self._tasks = [
            asyncio.create_task(
                self._loop(self.reconcile_once, self.config.reconcile_interval_ms, wake=True)
            ),
            asyncio.create_task(
                self._loop(self.detect_once, _DETECT_MAX_SLEEP_S * 1000, next_in=self._detect_delay)
            ),
            asyncio.create_task(self._loop(self.climb_once, self.config.climb_interval_ms)),
        ]

    async def stop(self) -> None:
        self.stopping = True  # connections we close now are not failures
        tasks = [*self._tasks, *self.program_tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in [*self.connections.values(), *self.watchers]:
            await ws.close()
        if self._session is not None:
            await self._session.close()
        if self.beat_transport is not None:
            self.beat_transport.close()
        self.store.close()

    def wake(self) -> None:
        self._wake.set()

    def now(self) -> float:
        """The policy's clock: monotonic seconds (event ``mono`` fields share it)."""
        return time.monotonic()

    def vnow(self) -> float:
        """The detector's clock: monotonic time less the controller's own measured stalls."""
        return self.clock.now(time.monotonic())

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A background task ended: log and count its exception (re-raise it in strict mode)."""
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self.task_errors += 1
        log.error("controller task %s failed", task.get_name(), exc_info=exc)
        if self.strict:
            raise exc

    async def _loop(
        self, step: Any, interval_ms: float, wake: bool = False, next_in: Callable[[], float] | None = None
    ) -> None:
        while True:
            started = time.perf_counter()
            failed = False
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.strict:
                    raise
                failed = True
                log.exception("controller step %s failed; continuing", step.__name__)
            spent = time.perf_counter() - started
            for observe in self.step_observers:
                observe(step.__name__, spent, failed)
            if spent > 0.1:
                log.warning("controller step %s took %.0f ms", step.__name__, spent * 1000)
            if wake:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval_ms / 1000)
                self._wake.clear()
            elif next_in is not None:
                await asyncio.sleep(next_in())
            else:
                await asyncio.sleep(interval_ms / 1000)

    # views
    def live_nodes(self) -> list[str]:
        return live_nodes(self.state)

    # the effects: recorded (state + store), then carried out
    def record(self, effect: Effect) -> None:
        self.cluster.record(effect)

    def execute(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            self.record(effect)
            match effect:
                case Load(replica=replica, app=app):
                    self.spawn(self.load(replica, app))
                case Unload(replica=replica, reason=reason):
                    self.spawn(self.unload(replica, reason))
                case Emit(kind=kind, fields=fields):
                    self.events.emit(kind, **fields)
                case PublishRoutes():
                    self.publish_routes()
                case Wake():
                    self.wake()
                case StartRecovery():
                    task = self.spawn(recover(self, effect))
                    for app in effect.cold:
                        self.program_tasks[app] = task
                case StartProgram(app=app):
                    self.program_tasks[app] = self.spawn(run_program(self, app, self.state.programs[app].run))
                case CancelProgram(app=app):
                    task = self.program_tasks.pop(app, None)
                    if task is not None:
                        task.cancel()
                case EndProgram(app=app) if app not in self.state.programs:
                    self.program_tasks.pop(app, None)  # e.g. the recovery task: not to be cancelled now
                case _:
                    pass  # state only

    # the loops' steps
    async def reconcile_once(self) -> None:
        now = time.monotonic()
        self.execute(policy.reconcile(self.state, now))
        self.execute(policy.rejoined(self.state))
        self.execute(policy.failback(self.state))

    async def climb_once(self) -> None:
        await climb_once(self)

    def _detect_delay(self) -> float:
        """Sleep until the earliest node could be overdue (event-driven), at most 100 ms (so
        the wake-ups also measure the controller's own loop lag)."""
        live = {n: hb for n, hb in self.heartbeats.items() if n in self.state.nodes}
        delay = min(max(self.detector.next_deadline(live) - self.vnow(), 0.0) + 0.002, _DETECT_MAX_SLEEP_S)
        self._detect_due = time.monotonic() + delay
        return delay

    async def detect_once(self) -> None:
        """Judge silences: at each node's deadline, and also measure the controller's own lag."""
        if self._detect_due is not None:
            self.clock.tick(self._detect_due, time.monotonic())
            self._detect_due = None
        await self.judge()

    async def judge(self) -> None:
        live = {n: hb for n, hb in self.heartbeats.items() if n in self.state.nodes}
        candidates = self.detector.check(live, self.vnow())
        if candidates:
            # Read what is pending before judging: beats may sit unread in the sockets (a
            # starved controller wakes to its timer and its sockets at once).
            for _ in range(3):
                await asyncio.sleep(0)
            for candidate in candidates:
                hb = self.heartbeats.get(candidate.node)
                verdict = None if hb is None else self.detector.judge(candidate.node, hb, self.vnow())
                if verdict is not None:
                    await self.declare_dead(verdict.node, verdict.reason, silent_ms=verdict.silent_ms)

    async def declare_dead(self, node: str, reason: str, *, silent_ms: float) -> None:
        """The node is gone: close its session, and let the failover policy act."""
        record = self.state.nodes.get(node)
        if record is None or record.state is NodeState.DEAD or self.stopping:
            return
        now = time.monotonic()
        self.heartbeats.pop(node, None)
        ws = self.connections.pop(node, None)
        effects = policy.node_dead(
            self.state, node, now - silent_ms / 1000, now=now, reason=reason, silent_ms=silent_ms
        )
        if ws is not None and not ws.closed:
            self.spawn(ws.close(code=4410, message=b"declared dead"))
        self.execute(effects)
        await asyncio.sleep(0)

    # agents
    def agent(self, node: str) -> OipClient:
        record = self.state.nodes[node]
        client = self._agents.get(node)
        if client is None or client.base_url != record.url.rstrip("/"):
            client = OipClient(
                record.url,
                session=self._session,
                timeout=self.config.agent_timeout_s,
                token=self.config.token,
            )
            self._agents[node] = client
        return client

    async def load(self, replica: Replica, app: str) -> bool:
        """Load ``replica`` on its agent (idempotent there; the ``Load`` is recorded); True once
        it is ready. The outcome goes to the policy (``load_finished``)."""
        started = time.perf_counter()
        try:
            await self.agent(replica.node).load(replica.variant, timeout=self.config.load_timeout_s)
        except (OipError, OipConnectionError, OipTimeout, KeyError) as exc:
            self.execute(
                policy.load_finished(self.state, replica, app, False, time.monotonic(), error=str(exc))
            )
            return False
        except BaseException:  # cancelled: no longer loading, nothing learnt
            self.execute([LoadDone(replica, False, reason="load interrupted"), Wake("load interrupted")])
            raise
        ms = round((time.perf_counter() - started) * 1000, 2)
        self.execute(policy.load_finished(self.state, replica, app, True, time.monotonic(), ms=ms))
        return True

    async def unload(self, replica: Replica, reason: str) -> None:
        """Unload ``replica`` on its agent (the ``Unload`` is recorded already)."""
        try:
            await self.agent(replica.node).unload(replica.variant)
        except (OipError, OipConnectionError, OipTimeout, KeyError) as exc:
            log.warning("unload of %s on %s failed: %s", replica.variant, replica.node, exc)
            return
        self.execute(policy.unloaded(replica, reason))

    # routes
    def publish_routes(self) -> RouteTable:
        previous = self.cluster.route_version
        table = self.cluster.route_table()
        if table.version != previous or not self.watchers:
            message = table.model_dump_json()
            for ws in list(self.watchers):
                if ws.closed:
                    self.watchers.discard(ws)
                    continue
                self.spawn(_send(ws, message))
        return table


async def _send(ws: Any, message: str) -> None:
    try:
        await asyncio.wait_for(ws.send_str(message), 1.0)
    except (ConnectionError, TimeoutError, RuntimeError):
        await ws.close()
