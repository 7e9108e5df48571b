"""The placement policies: faillite and the baselines it is measured against.

- ``none``: no backups; on a failure the primary variant is reloaded wherever it fits.
- ``full-warm`` / ``full-cold``: a replica of the *same* variant, warm / cold, where it fits.
- ``hetero-warm-only``: any variant of the family no larger than the primary, always warm.
- ``faillite``: heterogeneous variants, warm or cold, every app protected; warm wherever a cold
  load would miss the app's tolerated recovery time, and for critical apps.
- ``faillite-shared``: faillite's plan, plus shared warm fallbacks: one small warm model per
  fallback key (same task and signature) answers for the cold-backed apps of other nodes while
  their own backups load (``faillite.placement.shared``).

The baselines are best effort (an app whose replica does not fit stays unprotected); faillite
requires every app to be protected unless asked for best effort.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from faillite.placement.model import Mode

__all__ = ["Policy", "PolicyRules", "rules_for"]


class Policy(StrEnum):
    NONE = "none"
    FULL_WARM = "full-warm"
    FULL_COLD = "full-cold"
    HETERO_WARM_ONLY = "hetero-warm-only"
    FAILLITE = "faillite"
    FAILLITE_SHARED = "faillite-shared"


@dataclass(frozen=True)
class PolicyRules:
    backups: bool  # plan backups at all
    same_variant: bool  # the backup is the primary's variant
    modes: frozenset[Mode]
    require_backup: bool  # every app must be protected, else the plan is infeasible
    honour_recovery: bool  # warm where cold misses max_recovery_ms, and for critical apps
    shared: bool = False  # add shared warm fallbacks after planning the backups


def rules_for(policy: Policy | str, *, best_effort: bool = False) -> PolicyRules:
    p = Policy(policy)
    both = frozenset({Mode.WARM, Mode.COLD})
    if p is Policy.NONE:
        return PolicyRules(False, False, frozenset(), False, False)
    if p is Policy.FULL_WARM:
        return PolicyRules(True, True, frozenset({Mode.WARM}), False, False)
    if p is Policy.FULL_COLD:
        return PolicyRules(True, True, frozenset({Mode.COLD}), False, False)
    if p is Policy.HETERO_WARM_ONLY:
        return PolicyRules(True, False, frozenset({Mode.WARM}), False, True)
    return PolicyRules(True, False, both, not best_effort, True, shared=p is Policy.FAILLITE_SHARED)
