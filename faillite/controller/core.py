"""The controller: a reconcile loop (observe -> decide -> act) over the cluster state.

Failure handling is layered around it: agent connections and heartbeats (``links``), failover
programs (``failover``), and the app API (``apps``) all change desired or observed state and
wake the loop; the loop itself only ever runs ``decide`` and executes what it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp

from faillite.client.oip import OipClient, OipConnectionError, OipError, OipTimeout
from faillite.controller.cluster import ClusterState, Serving
from faillite.controller.config import ControllerConfig
from faillite.controller.decide import (
    Desired,
    Load,
    NodeView,
    Observed,
    Replica,
    SetServing,
    Unload,
    decide,
    unneeded,
)
from faillite.controller.events import EventKind, EventLog
from faillite.controller.liveness import Heartbeats, StallClock
from faillite.controller.planning import build_families
from faillite.controller.shared import fallback_keys
from faillite.controller.states import AppState, NodeState
from faillite.controller.store import StateStore
from faillite.placement import Assignment, Family, Node, PlannerParams
from faillite.profiler.format import load_profiles
from faillite.wire import RouteTable

__all__ = ["Controller"]

log = logging.getLogger("faillite.controller")

_LOAD_RETRY_S = 1.0
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
        self._failback_due = False
        self.sessions: dict[int, str] = {}  # UDP beat session -> node
        self.beat_port: int | None = None
        self.beat_transport: Any = None
        self.params = PlannerParams(detection_ms=self.detector.quiet_timeout_s() * 1000, switch_ms=5.0)
        self.store = StateStore(config.state_path)
        self.events = EventLog(self.store)
        accuracies = {(f.name, v.name): v.accuracy for f in self.families.values() for v in f.variants}
        self.cluster = ClusterState(self.store, accuracies)
        self.heartbeats: dict[str, Heartbeats] = {}
        self.connections: dict[str, Any] = {}  # node -> its agent's WebSocket
        self.loading: dict[str, set[str]] = defaultdict(set)
        self.retry_after: dict[Replica, float] = {}
        self.undesired_since: dict[Replica, float] = {}
        self.programs: dict[str, asyncio.Task[None]] = {}
        self.pinned: dict[str, set[Replica]] = {}
        self.failed_at: dict[str, tuple[float, str]] = {}  # app -> (failure time, node), until recovered
        self.climbing: dict[str, Assignment] = {}  # app -> its assignment before a climb back
        self.climb_blocked: dict[str, float] = {}  # app -> no climb before this time
        self.reprotecting = 0  # failover re-protections in flight (settling waits for them)
        self.settled: dict[str, Replica] = {}  # app -> where app_settled said it settled (until failback)
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
        for node in self.cluster.nodes.values():  # from before a restart: give agents time to return
            if node.state in (NodeState.ALIVE, NodeState.SUSPECT, NodeState.REJOINING):
                self.heartbeats[node.id] = self.detector.new(node.epoch, self.vnow() + grace)
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
        tasks = [*self._tasks, *self.programs.values(), *self._background]
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

    # observe
    def live_nodes(self) -> list[str]:
        return [n.id for n in self.cluster.nodes.values() if n.state in (NodeState.ALIVE, NodeState.SUSPECT)]

    def planning_nodes(self, include_dead: bool = False) -> list[Node]:
        return [
            Node(n.id, n.memory_bytes, cores=n.cores, domain=n.domain)
            for n in self.cluster.nodes.values()
            if include_dead or n.state in (NodeState.ALIVE, NodeState.SUSPECT)
        ]

    def observed(self, now: float) -> Observed:
        views = {}
        for node_id, record in self.cluster.nodes.items():
            hb = self.heartbeats.get(node_id)
            backing_off = {r.variant for r, t in self.retry_after.items() if r.node == node_id and t > now}
            connected = node_id in self.connections
            views[node_id] = NodeView(
                state=record.state,
                loaded=hb.loaded if hb is not None and connected else frozenset(),
                loading=frozenset(self.loading[node_id] | backing_off),
                connected=connected,
            )
        return Observed(views, dict(self.undesired_since))

    def desired(self) -> Desired:
        return Desired(
            plan=self.cluster.plan,
            serving={app: s.replica for app, s in self.cluster.serving.items()},
            states={app: s.state for app, s in self.cluster.serving.items()},
            busy=frozenset(self.programs),
            pinned=frozenset(r for rs in self.pinned.values() for r in rs),
            home={a.app: Replica(a.primary_node, a.primary_variant) for a in self.cluster.home_plan},
        )

    # the reconcile step
    async def reconcile_once(self) -> None:
        now = time.monotonic()
        desired, observed = self.desired(), self.observed(now)
        stale = unneeded(desired, observed)
        self.undesired_since = {r: self.undesired_since.get(r, now) for r in stale}
        observed = Observed(observed.nodes, dict(self.undesired_since))
        for action in decide(desired, observed, now=now, unload_grace_s=self.config.unload_grace_ms / 1000):
            if isinstance(action, Load):
                self.start_load(action.replica, action.app, action.reason)
            elif isinstance(action, Unload):
                self.start_unload(action.replica, action.reason)
            elif isinstance(action, SetServing):
                self.switch(action.app, action.replica, action.state, action.reason)
        for node in list(self.cluster.nodes.values()):
            hb = self.heartbeats.get(node.id)
            if (
                node.state is NodeState.REJOINING
                and hb is not None
                and not hb.loaded
                and not self.loading[node.id]
            ):
                self.cluster.set_node_state(node.id, NodeState.ALIVE)
                self.events.emit(EventKind.NODE_REJOINED, node=node.id, epoch=node.epoch)
                self.publish_routes()
                self._failback_due = True
        if self._failback_due and not self.programs:  # a rejoin during a failover program waits for it
            self._failback_due = False
            self.maybe_failback()

    def _detect_delay(self) -> float:
        """Sleep until the earliest node could be overdue (event-driven), at most 100 ms (so
        the wake-ups also measure the controller's own loop lag)."""
        live = {n: hb for n, hb in self.heartbeats.items() if n in self.cluster.nodes}
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
        from faillite.controller.links import declare_dead  # links imports core: break the cycle

        live = {n: hb for n, hb in self.heartbeats.items() if n in self.cluster.nodes}
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
                    await declare_dead(self, verdict.node, verdict.reason, silent_ms=verdict.silent_ms)

    async def climb_once(self) -> None:
        from faillite.controller.climb import climb_once  # climb imports core: break the cycle

        await climb_once(self)

    def maybe_failback(self) -> None:
        home_nodes = {a.primary_node for a in self.cluster.home_plan} | {
            a.backup.node for a in self.cluster.home_plan if a.backup is not None
        }
        live = set(self.live_nodes())
        if self.cluster.plan == self.cluster.home_plan or not home_nodes <= live or self.programs:
            return
        moved = [a.app for a in self.cluster.home_plan if self.cluster.plan.by_app().get(a.app) != a]
        self.cluster.set_plans(self.cluster.home_plan)
        self.events.emit(EventKind.FAILBACK, apps=moved)
        self.wake()

    # act
    def agent(self, node: str) -> OipClient:
        record = self.cluster.nodes[node]
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

    def start_load(self, replica: Replica, app: str, reason: str) -> None:
        if replica.variant in self.loading[replica.node]:
            return
        self.loading[replica.node].add(replica.variant)
        self.spawn(self.load(replica, app, reason))

    async def load(self, replica: Replica, app: str, reason: str) -> bool:
        """Load ``replica`` (idempotent on the agent); True once it is ready."""
        self.loading[replica.node].add(replica.variant)
        self.events.emit(
            EventKind.LOAD_STARTED, app=app, node=replica.node, variant=replica.variant, reason=reason
        )
        started = time.perf_counter()
        try:
            await self.agent(replica.node).load(replica.variant, timeout=self.config.load_timeout_s)
        except (OipError, OipConnectionError, OipTimeout, KeyError) as exc:
            self.retry_after[replica] = time.monotonic() + _LOAD_RETRY_S
            self.events.emit(
                EventKind.LOAD_FAILED, app=app, node=replica.node, variant=replica.variant, error=str(exc)
            )
            return False
        finally:
            self.loading[replica.node].discard(replica.variant)
            self.wake()
        hb = self.heartbeats.get(replica.node)
        if hb is not None:
            hb.loaded = hb.loaded | {replica.variant}
        self.retry_after.pop(replica, None)
        self.events.emit(
            EventKind.LOAD_FINISHED,
            app=app,
            node=replica.node,
            variant=replica.variant,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return True

    def start_unload(self, replica: Replica, reason: str) -> None:
        self.undesired_since.pop(replica, None)
        self.spawn(self.unload(replica, reason))

    async def unload(self, replica: Replica, reason: str) -> None:
        hb = self.heartbeats.get(replica.node)
        if hb is not None:
            hb.loaded = hb.loaded - {replica.variant}
        try:
            await self.agent(replica.node).unload(replica.variant)
        except (OipError, OipConnectionError, OipTimeout, KeyError) as exc:
            log.warning("unload of %s on %s failed: %s", replica.variant, replica.node, exc)
            return
        self.events.emit(EventKind.UNLOADED, node=replica.node, variant=replica.variant, reason=reason)
        self.wake()

    def switch(self, app: str, replica: Replica, state: AppState, reason: str, stone: bool = False) -> None:
        before = self.cluster.serving.get(app)
        if (
            before is not None
            and before.replica == replica
            and before.state is state
            and before.stone == stone
        ):
            return
        self.cluster.set_serving(app, Serving(state, replica, stone))
        self.events.emit(
            EventKind.ROUTE_CHANGED,
            app=app,
            node=replica.node,
            variant=replica.variant,
            state=state.value,
            reason=reason,
            previous=None if before is None or before.replica is None else before.replica.node,
        )
        failure = self.failed_at.pop(app, None)
        if failure is not None:
            at, node = failure
            self.events.emit(
                EventKind.APP_RECOVERED,
                app=app,
                failed_node=node,
                node=replica.node,
                variant=replica.variant,
                recovery_ms=round((time.monotonic() - at) * 1000, 2),
                state=state.value,
            )
        self.publish_routes()

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
