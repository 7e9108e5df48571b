"""``faillite sim validate``: the same failure on a real local cluster and in the simulator, compared.

``validate(config_path)`` runs the real side first (``faillite.sim.real.run_real``), then the
simulator with the real run's planner inputs: the profiles the controller planned with (as
``faillite up`` writes them: estimated, not profiled), the node budgets as the agents registered
them, the controller's policy, method and progressive setting, the same failure (the node the real
run failed, resolved before the simulator runs) and the same seed. Then ``compare`` lists every
difference in what must match exactly -- which apps recovered, the node and variant of each
affected app's first answer and of its settled replica, the final plan (primary and backup
node/variant/mode per app, shared fallbacks) -- and the MTTR ratio (sim mean / real mean, over
the apps each side recovered; within 25 % is the target, noted in the verdict, not part of
``match``: timings on a shared 2-core box are noisy).

Both sides' per-app records come from the failover benchmark's own ``injection_apps`` (the real
run's probes and events, the simulator's simulated ones) and are reduced to one shape (``Side``:
per-app ``Outcome`` + plan) before comparison, so the comparison is pure and tested on hand-made
outcomes. Modules: ``compare`` (the shape, the differences, the report), ``render`` (the table),
``run`` (validate, against), ``calibrate`` (the real run's measured delays, as ``SimTiming``
constants), ``measure`` (the real run's models profiled here: the simulated agents' load and
inference times; the planner keeps the estimated profiles the controller planned with).
"""

from faillite.sim.validate.calibrate import measured_constants, measured_timing, real_timings
from faillite.sim.validate.compare import (
    MTTR_TOLERANCE,
    Outcome,
    Side,
    ValidationReport,
    compare,
    mttr_ratio,
    outcome,
    phase_means,
)
from faillite.sim.validate.measure import measure_profiles, run_variants
from faillite.sim.validate.render import render
from faillite.sim.validate.run import against, failure_nodes, planner_config, real_side, sim_side, validate

__all__ = [
    "MTTR_TOLERANCE",
    "Outcome",
    "Side",
    "ValidationReport",
    "against",
    "compare",
    "failure_nodes",
    "measure_profiles",
    "measured_constants",
    "measured_timing",
    "mttr_ratio",
    "outcome",
    "phase_means",
    "planner_config",
    "real_side",
    "real_timings",
    "render",
    "run_variants",
    "sim_side",
    "validate",
]
