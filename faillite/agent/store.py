"""The model store: the one wrapper around ONNX Runtime sessions, and the memory budget.

Contracts (the controller relies on them):

- ``load`` of a READY model is a no-op success (``LoadOutcome.already_loaded``), so a timed-out
  load can be retried safely. Loads and unloads are serialized (one at a time), which keeps
  the RSS measurement around a load attributable to that load.
- A load is admitted only if its estimate fits the free budget: ``memory_bytes`` from the
  model's ``faillite.json`` (its profiled footprint) when present, else the size of the files
  in its version directory (model + external data). After loading, the footprint charged is
  ``max(estimate, measured RSS growth)``; if that no longer fits, the session is dropped again.
  Either refusal is ``BudgetExceeded`` (409) and leaves every other replica as it was.
- ``unload`` of a model that exists but is not loaded succeeds and reports ``False`` (as
  Triton does); an unknown name is ``ModelNotFound``. Unloading drains: requests already
  running finish, new ones get 503.
- Inference runs in a thread pool (ONNX Runtime releases the GIL), except for runs measured to
  be cheaper than the thread hop, which run inline on the event loop (``faillite.agent.runcost``);
  loads run in a separate single thread so a slow load never delays requests to other models.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from faillite.agent.codec import TensorInfo
from faillite.agent.errors import (
    AgentError,
    BudgetExceeded,
    InferenceFailed,
    InvalidRequest,
    ModelLoadFailed,
    ModelNotFound,
    ModelNotReady,
)
from faillite.agent.plans import ReplicaCodec
from faillite.agent.runcost import DEFAULT_INLINE_BUDGET_S, RunCost, should_run_inline
from faillite.agent.state import ReplicaState, check_transition
from faillite.units import format_bytes
from faillite.zoo.repository import RepositoryError, model_versions, read_meta

__all__ = ["IndexEntry", "LoadOutcome", "ModelStore", "Replica"]

log = logging.getLogger("faillite.agent")

_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
_DRAIN_TIMEOUT_S = 30.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# A 75-byte Identity model: creating one session at startup initialises ONNX Runtime's
# environment (about 6 MiB and a few ms), so the first real load is neither slowed down nor
# charged for it.
_WARMUP_MODEL = base64.b64decode(
    "CAgSCGZhaWxsaXRlOjcKEAoBeBIBeSIISWRlbnRpdHkSAXdaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAR"
)


@dataclass
class Replica:
    """One model served by this agent. Mutated only on the event loop."""

    name: str
    state: ReplicaState = ReplicaState.UNLOADED
    version: int | None = None
    session: ort.InferenceSession | None = None
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    footprint: int = 0  # bytes charged to the budget (the reservation while LOADING)
    reason: str = ""
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    cost: RunCost = field(default_factory=RunCost)  # measured run time: inline or pool
    codec: ReplicaCodec = field(default_factory=lambda: ReplicaCodec((), ()))  # for its signature


@dataclass(frozen=True)
class LoadOutcome:
    name: str
    version: int
    already_loaded: bool
    footprint: int
    seconds: float


@dataclass(frozen=True)
class IndexEntry:
    name: str
    version: int | None
    state: ReplicaState
    reason: str


@dataclass(frozen=True)
class _LoadPlan:
    version: int
    path: Path
    estimate: int
    source: str  # where the estimate comes from, for messages


@dataclass(frozen=True)
class _Opened:
    session: ort.InferenceSession
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    measured: int
    seconds: float


class ModelStore:
    def __init__(
        self,
        repository: Path,
        budget_bytes: int,
        *,
        intra_op_threads: int = 1,
        infer_threads: int = 4,
        mem_arena: bool = False,
        inline_budget_s: float = DEFAULT_INLINE_BUDGET_S,
    ) -> None:
        self.repository = repository
        self.budget_bytes = budget_bytes
        self.inline_budget_s = inline_budget_s  # 0: every run goes to the pool
        self._intra_op_threads = intra_op_threads
        self._mem_arena = mem_arena
        self._replicas: dict[str, Replica] = {}
        self._control = asyncio.Lock()
        self._infer_pool = ThreadPoolExecutor(infer_threads, thread_name_prefix="infer")
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="load")

    # -- budget ---------------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        return sum(r.footprint for r in self._replicas.values())

    @property
    def free_bytes(self) -> int:
        return self.budget_bytes - self.used_bytes

    def ready_count(self) -> int:
        return sum(1 for r in self._replicas.values() if r.state is ReplicaState.READY)

    def ready_names(self) -> list[str]:
        return sorted(name for name, r in self._replicas.items() if r.state is ReplicaState.READY)

    # -- repository -----------------------------------------------------------------------

    def _model_dir(self, name: str) -> Path:
        """The model's directory, or ModelNotFound for a name that is not a repository model."""
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            raise ModelNotFound(f"unknown model {name!r}")
        model_dir = self.repository / name
        if not model_versions(model_dir):
            raise ModelNotFound(f"unknown model {name!r}: no {name}/<version>/model.onnx in the repository")
        return model_dir

    def knows(self, name: str) -> bool:
        if name in self._replicas:
            return True
        try:
            self._model_dir(name)
        except ModelNotFound:
            return False
        return True

    def index(self) -> list[IndexEntry]:
        names = {p.name for p in self.repository.iterdir() if p.is_dir() and model_versions(p)}
        entries = []
        for name in sorted(names | self._replicas.keys()):
            replica = self._replicas.get(name)
            if replica is None:
                entries.append(
                    IndexEntry(name, model_versions(self.repository / name)[-1], ReplicaState.UNLOADED, "")
                )
            else:
                version = replica.version if replica.version is not None else _latest(self.repository / name)
                entries.append(IndexEntry(name, version, replica.state, replica.reason))
        return entries

    def replica(self, name: str) -> Replica:
        """The READY replica serving ``name`` (for metadata), else ModelNotFound/ModelNotReady."""
        replica = self._replicas.get(name)
        if replica is None or replica.state is not ReplicaState.READY:
            if replica is None:
                self._model_dir(name)  # an unknown name is 404, not 503
            state = replica.state.value if replica else ReplicaState.UNLOADED.value
            raise ModelNotReady(f"model {name!r} is not loaded on this agent (state {state})")
        return replica

    # -- load / unload --------------------------------------------------------------------

    async def load(self, name: str) -> LoadOutcome:
        model_dir = self._model_dir(name)
        loop = asyncio.get_running_loop()
        async with self._control:
            replica = self._replicas.setdefault(name, Replica(name))
            if replica.state is ReplicaState.READY:
                return LoadOutcome(name, replica.version or 0, True, replica.footprint, 0.0)
            self._set_state(replica, ReplicaState.LOADING, "")
            try:
                plan = await loop.run_in_executor(self._load_pool, _plan_load, model_dir)
                free = self.free_bytes
                if plan.estimate > free:
                    raise BudgetExceeded(
                        f"model {name!r} needs {plan.estimate} bytes ({format_bytes(plan.estimate)}, "
                        f"{plan.source}) but only {free} bytes ({format_bytes(free)}) of the "
                        f"{self.budget_bytes}-byte budget are free",
                        needed=plan.estimate,
                        free=free,
                    )
                replica.footprint = plan.estimate
                opened = await loop.run_in_executor(self._load_pool, self._open, plan)
                footprint = max(plan.estimate, opened.measured)
                free = self.free_bytes + replica.footprint
                if footprint > free:
                    del opened  # drop the session before reporting
                    raise BudgetExceeded(
                        f"model {name!r} measured {footprint} bytes ({format_bytes(footprint)}) after "
                        f"loading but only {free} bytes ({format_bytes(free)}) of the "
                        f"{self.budget_bytes}-byte budget are free; unloaded it again",
                        needed=footprint,
                        free=free,
                    )
            except BaseException as exc:
                replica.footprint = 0
                failed = isinstance(exc, ModelLoadFailed)
                reason = exc.message if isinstance(exc, AgentError) else f"load interrupted: {exc!r}"
                self._set_state(replica, ReplicaState.FAILED if failed else ReplicaState.UNLOADED, reason)
                raise
            replica.version = plan.version
            replica.session, replica.inputs, replica.outputs = opened.session, opened.inputs, opened.outputs
            replica.cost = RunCost()  # a new session: its cost is measured afresh
            replica.codec = ReplicaCodec(opened.inputs, opened.outputs)
            replica.footprint = footprint
            self._set_state(replica, ReplicaState.READY, "")
            log.info(
                "loaded %s v%d in %.1f ms, footprint %s (estimate %s, measured %s), %s free",
                name,
                plan.version,
                opened.seconds * 1e3,
                format_bytes(footprint),
                format_bytes(plan.estimate),
                format_bytes(opened.measured),
                format_bytes(self.free_bytes),
            )
            return LoadOutcome(name, plan.version, False, footprint, opened.seconds)

    async def unload(self, name: str) -> bool:
        """Unload ``name``; ``False`` when it was not loaded (still a success)."""
        if name not in self._replicas:
            self._model_dir(name)
        async with self._control:
            replica = self._replicas.get(name)
            if replica is None or replica.state is ReplicaState.UNLOADED:
                return False
            if replica.state is ReplicaState.FAILED:
                self._set_state(replica, ReplicaState.UNLOADED, "")
                return False
            self._set_state(replica, ReplicaState.DRAINING, "")
            if replica.inflight:
                try:
                    await asyncio.wait_for(replica.idle.wait(), _DRAIN_TIMEOUT_S)
                except TimeoutError:
                    log.warning(
                        "unload %s: %d requests still running after %.0f s; dropping the session",
                        name,
                        replica.inflight,
                        _DRAIN_TIMEOUT_S,
                    )
            replica.session, replica.footprint = None, 0
            self._set_state(replica, ReplicaState.UNLOADED, "")
            log.info("unloaded %s, %s free", name, format_bytes(self.free_bytes))
            return True

    async def warm_up(self) -> None:
        """Initialise ONNX Runtime before serving (see ``_WARMUP_MODEL``)."""
        await asyncio.get_running_loop().run_in_executor(self._load_pool, self._warm_up)

    def _warm_up(self) -> None:
        session = ort.InferenceSession(_WARMUP_MODEL, self._options(), providers=["CPUExecutionProvider"])
        session.run(None, {"x": np.zeros(1, np.float32)})

    def _options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = self._mem_arena  # off: freed memory returns, accounting holds
        options.log_severity_level = 3
        return options

    def _set_state(self, replica: Replica, target: ReplicaState, reason: str) -> None:
        replica.state = check_transition(replica.state, target)
        replica.reason = reason

    def _open(self, plan: _LoadPlan) -> _Opened:
        """Runs in the load thread: create the session and measure the RSS it added."""
        options = self._options()
        before = _rss()
        started = time.perf_counter()
        try:
            session = ort.InferenceSession(
                str(plan.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own pybind types (InvalidProtobuf, Fail, ...)
            raise ModelLoadFailed(f"ONNX Runtime could not load {plan.path.name}: {exc}") from exc
        seconds = time.perf_counter() - started
        _trim()  # the parse buffers ORT freed go back to the OS, so the RSS growth is the model's
        measured = max(0, _rss() - before)
        try:
            inputs = tuple(_tensor_info(v) for v in session.get_inputs())
            outputs = tuple(_tensor_info(v) for v in session.get_outputs())
        except ValueError as exc:
            raise ModelLoadFailed(f"{plan.path.name}: {exc}") from exc
        return _Opened(session, inputs, outputs, measured, seconds)

    # -- inference ------------------------------------------------------------------------

    def acquire(self, name: str, version: str | None = None) -> Replica:
        """Pin the READY replica of ``name`` for one request; pair with ``release``."""
        replica = self._replicas.get(name)
        if replica is None or replica.state is not ReplicaState.READY:
            self.replica(name)  # raises the precise error
        assert replica is not None
        if version is not None and version != str(replica.version):
            raise ModelNotFound(
                f"model {name!r} has no version {version} loaded (serving version {replica.version})"
            )
        replica.inflight += 1
        replica.idle.clear()
        return replica

    def release(self, replica: Replica) -> None:
        replica.inflight -= 1
        if replica.inflight == 0:
            replica.idle.set()

    async def run(
        self, replica: Replica, feeds: dict[str, np.ndarray], outputs: Sequence[str]
    ) -> list[np.ndarray]:
        session = replica.session
        assert session is not None, "acquire() guarantees a session"
        names = list(outputs)
        elements = sum(array.size for array in feeds.values())
        cost = replica.cost
        try:
            if should_run_inline(cost.predict(elements), self.inline_budget_s):
                # Measured cheaper than the hop to a thread (see runcost): run it right here.
                started = time.perf_counter()
                arrays = _session_run(session, names, feeds)
                seconds = time.perf_counter() - started
            else:
                arrays, seconds = await asyncio.get_running_loop().run_in_executor(
                    self._infer_pool, _timed_run, session, names, feeds
                )
        except (ort_errors.InvalidArgument, ort_errors.InvalidGraph) as exc:
            raise InvalidRequest(f"model {replica.name!r} rejected the input: {exc}") from exc
        except ort_errors.Fail as exc:
            raise InferenceFailed(f"model {replica.name!r} failed: {exc}") from exc
        except RuntimeError as exc:  # other ORT runtime errors
            raise InferenceFailed(f"model {replica.name!r} failed: {exc}") from exc
        cost.record(seconds, elements)
        return arrays

    def close(self) -> None:
        self._infer_pool.shutdown(wait=False, cancel_futures=True)
        self._load_pool.shutdown(wait=False, cancel_futures=True)
        for replica in self._replicas.values():
            replica.session = None


def _timed_run(
    session: ort.InferenceSession, outputs: list[str], feeds: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], float]:
    """Runs in an inference thread: the outputs and the time the run itself took."""
    started = time.perf_counter()
    arrays = _session_run(session, outputs, feeds)
    return arrays, time.perf_counter() - started


_RUN_OPTIONS = ort.RunOptions()  # read-only, shared: saves building a default one per run


def _session_run(
    session: ort.InferenceSession, outputs: list[str], feeds: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """``session.run`` without the wrapper's per-call checks where they cannot fail: the codec
    has already matched the feeds to the model's inputs (numpy arrays, no OrtValues), only the
    CPU provider runs (no fallback to retry with) and no graph is captured. About 1.5 µs of ~7
    on the digits MLP. Anything unusual (no outputs named, a future ORT without ``_sess``) takes
    the public call."""
    inner = getattr(session, "_sess", None)
    if inner is None or not outputs:
        return session.run(outputs, feeds)
    return inner.run(outputs, feeds, _RUN_OPTIONS)


def _latest(model_dir: Path) -> int | None:
    versions = model_versions(model_dir)
    return versions[-1] if versions else None


def _plan_load(model_dir: Path) -> _LoadPlan:
    """Runs in the load thread (file I/O): pick the version and estimate its footprint."""
    versions = model_versions(model_dir)
    if not versions:
        raise ModelNotFound(f"unknown model {model_dir.name!r}: its model files are gone")
    try:
        meta = read_meta(model_dir)
    except RepositoryError as exc:
        raise ModelLoadFailed(str(exc)) from exc
    version_dir = model_dir / str(versions[-1])
    if meta.memory_bytes is not None:
        estimate, source = meta.memory_bytes, "memory_bytes from faillite.json"
    else:
        estimate = sum(p.stat().st_size for p in version_dir.iterdir() if p.is_file())
        source = "estimated from the model file size"
    return _LoadPlan(versions[-1], version_dir / "model.onnx", estimate, source)


def _tensor_info(value: ort.NodeArg) -> TensorInfo:
    datatype = _ORT_TYPES.get(value.type)
    if datatype is None:
        raise ValueError(f"tensor {value.name!r} has type {value.type}, which the agent cannot serve")
    shape = value.shape
    dims = None if shape is None else tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)
    return TensorInfo(value.name, datatype, dims)


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def _trim() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise: loading a 47 MB model
    left 69 MB of RSS growth, 48 MB after a trim; the agent charges the measured growth)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _rss() -> int:
    """Resident set size of this process: /proc on Linux (no import, ~10 us), psutil elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)
