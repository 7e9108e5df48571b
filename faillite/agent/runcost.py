"""Where a request's ``session.run`` goes: inline on the event loop, or to the inference pool.

Handing a run to a thread costs the request a round trip through the pool's queue and the
loop's self-pipe: about 110-130 µs on the 2-core machine this was measured on, while the digits
MLP runs in ~7 µs. For such models the hop *is* the latency, so the agent runs them inline.
A model that takes longer must not stall the loop (other requests, liveness, the controller
link), so it goes to the pool, where ONNX Runtime runs without the GIL.

The decision is made per replica and per request from the replica's own measured run time:
``RunCost`` keeps the cost per input element of its last runs (so a request with many more rows
than usual is predicted to take longer and goes to the pool) and predicts with their lower
quartile, and ``should_run_inline`` compares the prediction with the inline budget. The lower
quartile, not a mean: on a loaded machine a run is often preempted and *measured* far slower
than it is, and sending a 10 µs model to the pool because of that would add the thread hop
exactly when CPU is scarce; a model that is really slow is slow in most samples. No
measurement yet means the pool: an unknown model is assumed slow. The first run of a session
is not counted (ONNX Runtime's first run allocates and is much slower than the rest).
Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["DEFAULT_INLINE_BUDGET_S", "RunCost", "should_run_inline"]

# The most a run may be predicted to take and still run on the loop: about the cost of the
# thread hop it saves, so the loop is never held much longer than handling one request takes.
DEFAULT_INLINE_BUDGET_S = 150e-6
_WINDOW = 16  # runs remembered per replica


@dataclass
class RunCost:
    """A replica's measured run time, as seconds per input element: the lower quartile of its
    last ``_WINDOW`` runs.

    Mutated on the event loop only (the pool's runs are timed in the worker thread and
    recorded when their result comes back to the loop).
    """

    per_element_s: float | None = None
    runs: int = 0  # runs seen, the first (warm-up) one included
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW), repr=False)

    def record(self, seconds: float, elements: int) -> None:
        self.runs += 1
        if self.runs == 1:
            return  # the session's first run: allocation and warm-up, not its steady cost
        self._recent.append(seconds / max(elements, 1))
        ordered = sorted(self._recent)
        self.per_element_s = ordered[len(ordered) // 4]

    def predict(self, elements: int) -> float | None:
        """Seconds a run with ``elements`` input elements should take; None when unknown."""
        if self.per_element_s is None:
            return None
        return self.per_element_s * max(elements, 1)


def should_run_inline(predicted_s: float | None, budget_s: float) -> bool:
    """Run on the event loop when the run is known to be cheaper than the budget."""
    return predicted_s is not None and predicted_s <= budget_s
