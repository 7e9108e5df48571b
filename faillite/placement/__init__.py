"""faillite.placement: the pure placement planner (no I/O, no clocks, no globals).

Input: nodes, families of variant profiles and apps (an ``Instance``). Output: a ``PlanResult``
(status, plan, score, bound, reasons). See docs/planner.md for the formulation.
"""

from faillite.placement.api import Method, explain, make_plan
from faillite.placement.document import instance_document, plan_document
from faillite.placement.feasibility import plan_score
from faillite.placement.generate import random_instance
from faillite.placement.model import (
    ACCURACY_SCALE,
    WEIGHT_SCALE,
    App,
    Assignment,
    Backup,
    Family,
    Instance,
    Mode,
    Node,
    Plan,
    PlannerParams,
    PlanningError,
    PlanResult,
    Score,
    SharedFallback,
    Status,
    Variant,
)
from faillite.placement.policies import Policy
from faillite.placement.replan import SHARED_REASON, Action, ActionKind, ReplanResult, replan
from faillite.placement.scenarios import Scenario, failure_scenarios

__all__ = [
    "ACCURACY_SCALE",
    "SHARED_REASON",
    "WEIGHT_SCALE",
    "Action",
    "ActionKind",
    "App",
    "Assignment",
    "Backup",
    "Family",
    "Instance",
    "Method",
    "Mode",
    "Node",
    "Plan",
    "PlanResult",
    "PlannerParams",
    "PlanningError",
    "Policy",
    "ReplanResult",
    "Scenario",
    "Score",
    "SharedFallback",
    "Status",
    "Variant",
    "explain",
    "failure_scenarios",
    "instance_document",
    "make_plan",
    "plan_document",
    "plan_score",
    "random_instance",
    "replan",
]
