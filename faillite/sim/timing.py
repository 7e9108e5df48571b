"""The simulator's timing model: every delay that is not a model's profile, in seconds.

A model's load time, first inference and request latency come from its profile (``load_ms``,
``first_infer_ms``, ``infer_p50_ms``): the planner's, or measured ones given as
``simulate(timing_profiles=...)`` (the planner keeps its own; ``faillite sim validate`` profiles
the real run's models on this machine, ``faillite.sim.validate.measure``); failure detection from
the real detector
(``faillite.controller.liveness.Detector``) fed simulated heartbeats; everything else the
controller, agents and clients spend is one of these constants. Defaults were measured on this
2-core machine (docs/benchmarks.md and docs/bench-runs/2026-12-02/, the failover benchmark at
published sizes, open loop, and the warm benchmark on a quiet box); the ones that were not are
marked *assumed*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SimTiming"]


@dataclass(frozen=True)
class SimTiming:
    # A SIGKILLed agent's sockets reset once the kernel has freed its memory. The controller's
    # agent connection and the clients' kept connections learn of the crash at the same instant.
    # Failure -> node_dead in five `faillite sim validate` runs of the demo (SIGKILL of edge-2,
    # 2026-12-02 17:12-17:18): 8.3, 11.1, 17.0, 11.1, 9.5 ms (load 0.5 to 5.5): median 11.1 ms.
    # (17-21 ms in docs/benchmarks.md, "Detection dominates the warm path": bigger agents.)
    crash_close_s: float = 0.011
    # node_dead -> warm switches published: the decide phase of warm-backed apps, 0.8-1.2 ms
    # (full-warm, hetero-warm-only; failover-paper.json phases_ms.decide).
    decide_s: float = 0.001
    # node_dead -> the first recovery program's first load: the recovery replan (greedy,
    # protect=False) and program start. Same five demo runs (calibrate.measured_timings'
    # recovery_plan): 3.4, 34.1, 23.3, 3.0, 2.0 ms: median 3.4 ms; the 23-34 ms ones ran beside
    # other CPU-bound jobs (load 1.6-2.9). Was 7.9-8.0 ms in the failover benchmark (full-cold).
    recovery_plan_s: float = 0.0034
    # load finished -> the program's switch published: the publish phase, 0.3-1.0 ms.
    publish_s: float = 0.0005
    # route_changed -> the clients hold the new table (a WebSocket push on loopback). *assumed*
    route_push_s: float = 0.001
    # re-protection (the full replan in a worker thread) -> plan_changed. *assumed*: CP-SAT's
    # time on a small instance; the sim does not time its own planner calls (determinism).
    reprotect_s: float = 0.2
    # settle (in a worker thread) -> the climbs adopted. *assumed*
    settle_s: float = 0.01
    # a wake-up -> the reconcile step runs (the controller's event loop). *assumed*
    reconcile_s: float = 0.0005
    # per request, beyond the model's inference: client, HTTP and agent (p50 0.46 ms for 8 tiny
    # apps paced on 4 nodes via the client; docs/benchmarks.md, "warm" row).
    request_overhead_s: float = 0.0005
    # an agent's answer that is not an inference (503, 409, a refused load). *assumed*
    refusal_s: float = 0.0005
    # an answer's time beyond the agent's (scheduling, HTTP, the event loops on a 2-core box), as
    # (quantile, ms) points: without it p99 = p50 and the client hedges at 3 x p50, far earlier
    # than a real client. Measured: the demo's digits-meter probes before the failure on a quiet
    # box (load 0.5; /tmp/v/base-1.json, `faillite sim validate` on faillite/demo/cluster.yaml):
    # p50 0.40 ms, p99 3.72 ms for a model whose inference takes 0.014 ms, so what it shows is the
    # answer path's own spread: p50 at the 0.5 ms overhead (extra 0), p99 3.3 ms beyond it. Only
    # those two quantiles were measured: linear between them (*assumed* shape), none above p99.
    answer_extra_ms: tuple[tuple[float, float], ...] = ((0.0, 0.0), (0.5, 0.0), (0.99, 3.3), (1.0, 3.3))
    # heartbeat inter-arrival jitter (standard deviation) on a quiet box. *assumed*
    beat_jitter_s: float = 0.002
    # controller settings (faillite.controller.config.ControllerConfig defaults)
    climb_interval_s: float = 0.25
    unload_grace_s: float = 1.0
    reconcile_interval_s: float = 0.5
    # the failover benchmark's observation (faillite.bench.failover.inject defaults)
    probe_lead_s: float = 0.2
    settle_timeout_s: float = 20.0
    quiet_s: float = 6.0
    probe_deadline_s: float = 5.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
