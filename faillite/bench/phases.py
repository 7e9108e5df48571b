"""Where a failed app's recovery time goes: the MTTR taken apart into phases. Pure.

Inputs, all on one clock:
- the failure: ``Failure(node, kind, at)``, ``at`` = ``time.monotonic()`` when it was injected;
- the controller's events as ``GET /v1/events`` returns them (dicts with ``kind`` and ``mono``);
- the clients' ``RequestRecord``s (``start``/``end`` = ``time.monotonic()``), e.g. a probe stream.

Clocks: ``mono`` is ``time.monotonic()`` in the controller process. CLOCK_MONOTONIC is one clock
for every process on a machine (Linux), and the benchmark runs every process on one machine, so
event ``mono`` stamps and request stamps are compared directly, with no offset. (``ts``, wall
time, is not used.) Events without ``mono`` (an older controller) are ignored.

Marks, per failed app (absolute ``mono`` seconds, ``None`` when it did not happen in the window):
- failed: the injection;
- detected: the earliest of: the client noticing (the end of its first failed request, or of its
  first request answered by another node), the controller's ``failure_suspected`` and its
  ``node_dead`` for that node. A record has no finer stamp: a request answered elsewhere may
  have been sent to the failed node first and retried or hedged, so only its end is a bound.
  ``detected_by`` says which: ``client_error``, ``client_rerouted``, ``failure_suspected`` or
  ``node_dead``;
- decided: the controller's first action for the app: its first ``route_changed`` (a warm app's
  switch at detection), ``load_started`` (a cold app's program), ``app_lost``, or a
  ``plan_changed`` naming it;
- loaded: the last ``load_finished`` of the replica (node, variant) that gave the first answer,
  for this app, before that answer;
- published: the last ``route_changed`` of the app to that replica before the first answer;
- first answer: the end of the app's first successful request answered by another node;
- settled: the end of its first successful answer from the variant of its last ``app_settled``
  event (or from ``final_variant`` when the controller emits none), at or after the first answer.

The controller publishes a cold app's route only once its replica is loaded, so the marks come in
the order failed <= detected <= decided <= loaded <= published <= first answer <= settled, and
the phases are the differences of consecutive marks:

    detect  = detected - failed          decide = decided - detected
    load    = loaded - decided           publish = published - loaded
    answer  = first answer - published   settle = settled - first answer

They add up: detect + decide + load + publish + answer = first answer - failed (``recovery_ms``),
and with settle, settled - failed (``settled_ms``). Out-of-order marks are handled so that no
phase is negative and the sum holds:
- a mark later than the first answer is off the answer's path (e.g. a client that hedged or
  retried to a warm fallback before the controller decided): its phase is 0, and the time goes to
  the next mark that is on the path (at the latest, to ``answer``);
- a mark earlier than the previous one (e.g. a load finished before the controller's detection,
  when a replica was already loading) is clamped to the previous mark: its phase is 0;
- a mark that is missing is ``None`` and the next phase takes its time; except ``load``, which is
  0 when the answering replica needed no load (a warm backup; a replica already loaded), and
  ``None`` only when its ``load_started`` is there without a ``load_finished``.
An app with no answer from another node in the window is unrecovered: only ``detect`` and
``decide`` are set (from the marks that exist), every other phase is ``None``.

``recovery_ms`` starts at the failure. The benchmark's MTTR (``faillite.bench.probe``) starts at
the failure too whenever a probe request was in flight at it, which a probe stream ensures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from faillite.bench.record import Record

__all__ = [
    "PHASES",
    "AppPhases",
    "Failure",
    "Marks",
    "Step",
    "app_phases",
    "failure_phases",
]

#: The phases in time order (their sum is ``settled_ms``; without ``settle``, ``recovery_ms``).
PHASES = ("detect", "decide", "load", "publish", "answer", "settle")

_STEP_KINDS = ("load_started", "load_finished", "load_failed", "route_changed")


@dataclass(frozen=True)
class Failure:
    node: str
    kind: str  # how it was injected, e.g. SIGKILL, SIGSTOP (carried for reports)
    at: float  # time.monotonic() at the injection


@dataclass(frozen=True)
class Marks:
    """Absolute ``time.monotonic()`` seconds; ``None``: did not happen in the window."""

    failed: float
    detected: float | None
    client_detected: float | None
    suspected: float | None  # the controller's first failure_suspected for the node
    declared_dead: float | None  # its node_dead
    decided: float | None
    loaded: float | None
    published: float | None
    first_answer: float | None
    settled_event: float | None  # the app_settled event itself
    settled: float | None  # the first answer from the settled variant


@dataclass(frozen=True)
class Step:
    """One replica the app went through after the failure (a progressive step, a climb, a warm
    backup): when its load started and finished, when the route moved to it, when it first
    answered. Absolute ``mono`` seconds, ``None`` when not seen."""

    node: str
    variant: str
    load_started: float | None
    load_finished: float | None
    load_failed: bool
    routed: float | None
    answered: float | None


@dataclass(frozen=True)
class AppPhases:
    app: str
    mode: str  # warm / cold / none: as given, else inferred (``_mode``)
    failure: Failure
    detected_by: str | None  # client_error / client_rerouted / failure_suspected / node_dead
    # No route_changed to the answering replica by the first answer: the client found it itself
    # (a retry or hedge to a warm fallback of its route table), before the controller's switch.
    client_first: bool
    first_node: str | None
    first_variant: str | None
    settled_node: str | None
    settled_variant: str | None
    detect_ms: float | None
    decide_ms: float | None
    load_ms: float | None
    publish_ms: float | None
    answer_ms: float | None
    settle_ms: float | None
    recovery_ms: float | None  # failure -> first answer (= detect + ... + answer)
    settled_ms: float | None  # failure -> settled answer (= recovery_ms + settle)
    marks: Marks
    steps: tuple[Step, ...]

    @property
    def recovered(self) -> bool:
        return self.recovery_ms is not None

    def phases(self) -> dict[str, float | None]:
        """Phase name -> milliseconds, in ``PHASES`` order."""
        return {name: getattr(self, f"{name}_ms") for name in PHASES}

    def timeline(self) -> dict[str, Any]:
        """The marks and steps as milliseconds after the failure (JSON-ready, ``None`` kept)."""

        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - self.failure.at) * 1000, 3)

        marks = {f.name: ms(getattr(self.marks, f.name)) for f in fields(self.marks) if f.name != "failed"}
        steps = [
            {
                "node": s.node,
                "variant": s.variant,
                "load_started_ms": ms(s.load_started),
                "load_finished_ms": ms(s.load_finished),
                "load_failed": s.load_failed,
                "routed_ms": ms(s.routed),
                "answered_ms": ms(s.answered),
            }
            for s in self.steps
        ]
        return {"marks": marks, "steps": steps}


def failure_phases(
    apps: Iterable[str],
    failure: Failure,
    events: Iterable[Mapping[str, Any]],
    records: Iterable[Record],
    *,
    until: float | None = None,
    modes: Mapping[str, str] | None = None,
    final_variants: Mapping[str, str] | None = None,
) -> list[AppPhases]:
    """``app_phases`` for every app the failure hit (``modes``: app -> warm/cold/none, the
    backup the plan had; ``final_variants``: app -> variant, used when no ``app_settled``)."""
    events, records = list(events), list(records)
    return [
        app_phases(
            app,
            failure,
            events,
            records,
            until=until,
            mode=(modes or {}).get(app),
            final_variant=(final_variants or {}).get(app),
        )
        for app in apps
    ]


def app_phases(
    app: str,
    failure: Failure,
    events: Iterable[Mapping[str, Any]],
    records: Iterable[Record],
    *,
    until: float | None = None,
    mode: str | None = None,
    final_variant: str | None = None,
) -> AppPhases:
    """One app's marks and phases (module docstring). Only events and records in
    [``failure.at``, ``until``] are read; ``until`` None: everything after the failure."""
    end = math.inf if until is None else until
    if end < failure.at:
        raise ValueError(f"{app}: the window ends ({until}) before the failure ({failure.at})")
    evs = _events(events, failure.at, end)
    mine = sorted((r for r in records if r.app == app and failure.at <= r.end <= end), key=lambda r: r.end)
    # An answer from the failed node itself left before it died: no recovery, no detection.
    answers = [r for r in mine if r.ok and r.node is not None and r.node != failure.node]
    first = answers[0] if answers else None

    client, client_src = _client_detection(mine, failure)
    suspected = _first(evs, lambda e: e["kind"] == "failure_suspected" and e.get("node") == failure.node)
    dead = _first(evs, lambda e: e["kind"] == "node_dead" and e.get("node") == failure.node)
    candidates = [
        (t, src)
        for t, src in ((client, client_src), (suspected, "failure_suspected"), (dead, "node_dead"))
        if t is not None
    ]
    detected, detected_by = min(candidates, key=lambda c: c[0]) if candidates else (None, None)

    decided = _first(evs, lambda e: _is_decision(e, app))
    loaded = published = None
    load_missing_ms: float | None = 0.0  # the answering replica needed no load
    if first is not None:
        replica = (first.node, first.variant)
        loads = [e for e in evs if e.get("app") == app and _replica(e) == replica]
        finished = [e["mono"] for e in loads if e["kind"] == "load_finished"]
        loaded = _last_before_else_first(finished, first.end)
        if loaded is None and any(e["kind"] == "load_started" and e["mono"] <= first.end for e in loads):
            load_missing_ms = None  # a load was started and its end is not in the log
        routes = [
            e["mono"]
            for e in evs
            if e["kind"] == "route_changed" and e.get("app") == app and _replica(e) == replica
        ]
        published = _last_before_else_first(routes, first.end)

    settled_event = next(
        (e for e in reversed(evs) if e["kind"] == "app_settled" and e.get("app") == app), None
    )
    settled_node = settled_event.get("node") if settled_event else None
    settled_variant = settled_event.get("variant") if settled_event else final_variant
    settled = None
    if first is not None and settled_variant is not None:
        settled = next(
            (
                r.end
                for r in answers
                if r.end >= first.end
                and r.variant == settled_variant
                and (settled_node is None or r.node == settled_node)
            ),
            None,
        )

    marks = Marks(
        failed=failure.at,
        detected=detected,
        client_detected=client,
        suspected=suspected,
        declared_dead=dead,
        decided=decided,
        loaded=loaded,
        published=published,
        first_answer=None if first is None else first.end,
        settled_event=None if settled_event is None else settled_event["mono"],
        settled=settled,
    )
    if first is None:
        detect, decide = _chain(failure.at, [(detected, None), (decided, None)], math.inf)[:2]
        load = publish = answer = settle = None
    else:
        chain = [(detected, None), (decided, None), (loaded, load_missing_ms), (published, None)]
        detect, decide, load, publish, answer = _chain(failure.at, chain, first.end)
        settle = None if settled is None else (settled - first.end) * 1000
    if mode is None:  # a re-protection load after the answer (a new warm backup) does not count
        mode = _mode(app, evs, first)
    return AppPhases(
        app=app,
        mode=mode,
        failure=failure,
        detected_by=detected_by,
        client_first=first is not None and (published is None or published > first.end),
        first_node=None if first is None else first.node,
        first_variant=None if first is None else first.variant,
        settled_node=settled_node,
        settled_variant=settled_variant,
        detect_ms=detect,
        decide_ms=decide,
        load_ms=load,
        publish_ms=publish,
        answer_ms=answer,
        settle_ms=settle,
        recovery_ms=None if first is None else (first.end - failure.at) * 1000,
        settled_ms=None if settled is None else (settled - failure.at) * 1000,
        marks=marks,
        steps=_steps(app, evs, answers),
    )


# helpers


def _events(events: Iterable[Mapping[str, Any]], start: float, end: float) -> list[Mapping[str, Any]]:
    """The events stamped in [start, end], in time order (the log's id breaks ties)."""
    kept = []
    for i, e in enumerate(events):
        if not isinstance(e, Mapping):
            raise ValueError(f"event #{i} is not an object (as GET /v1/events returns): {e!r:.80}")
        mono = e.get("mono")
        if isinstance(mono, int | float) and isinstance(e.get("kind"), str) and start <= mono <= end:
            kept.append(e)
    return sorted(kept, key=lambda e: (e["mono"], e.get("id") or 0))


def _first(events: Sequence[Mapping[str, Any]], match: Any) -> float | None:
    return next((e["mono"] for e in events if match(e)), None)


def _is_decision(event: Mapping[str, Any], app: str) -> bool:
    kind = event["kind"]
    if kind in ("route_changed", "load_started", "app_lost"):
        return event.get("app") == app
    if kind == "plan_changed":
        return (
            event.get("app") == app or app in (event.get("lost") or ()) or app in (event.get("moved") or ())
        )
    return False


def _mode(app: str, events: Sequence[Mapping[str, Any]], first: Record | None) -> str:
    """cold: the answering replica was loaded for the app after the failure (or, unrecovered,
    some load was started for it); warm: it answered from a replica that needed no load;
    none: neither."""
    if first is not None:
        loaded = any(
            e["kind"] == "load_started" and e.get("app") == app and _replica(e) == (first.node, first.variant)
            and e["mono"] <= first.end
            for e in events
        )  # fmt: skip
        return "cold" if loaded else "warm"
    return "cold" if any(e["kind"] == "load_started" and e.get("app") == app for e in events) else "none"


def _replica(event: Mapping[str, Any]) -> tuple[Any, Any]:
    return event.get("node"), event.get("variant")


def _last_before_else_first(times: Sequence[float], limit: float) -> float | None:
    """The last of ``times`` at or before ``limit``; else the first after it; else None."""
    before = [t for t in times if t <= limit]
    if before:
        return max(before)
    return min(times) if times else None


def _client_detection(records: Sequence[Record], failure: Failure) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    for r in records:
        if not r.ok:
            at, source = r.end, "client_error"
        elif r.node is not None and r.node != failure.node:
            at, source = r.end, "client_rerouted"  # retried or hedged within the request, at the latest
        else:
            continue
        if best[0] is None or at < best[0]:
            best = (at, source)
    return best


def _chain(
    start: float, marks: Sequence[tuple[float | None, float | None]], end: float
) -> list[float | None]:
    """Milliseconds between consecutive marks that lie on the path to ``end``, then to ``end``.

    Each mark is (time, phase when it is missing). A mark after ``end`` is off the path (phase
    0); one before the previous mark is clamped to it (phase 0); a missing one gives its
    "missing" phase. The time skipped goes to the next mark on the path, so the phases sum to
    ``end - start``. Without an end (math.inf) the last element is math.inf: callers drop it."""
    prev = start
    out: list[float | None] = []
    for mark, missing in marks:
        if mark is None:
            out.append(missing)
        elif mark > end:
            out.append(0.0)
        else:
            at = max(mark, prev)
            out.append((at - prev) * 1000)
            prev = at
    out.append((end - prev) * 1000)
    return out


def _steps(app: str, events: Sequence[Mapping[str, Any]], answers: Sequence[Record]) -> tuple[Step, ...]:
    order: list[tuple[Any, Any]] = []
    seen: dict[tuple[Any, Any], dict[str, Any]] = {}

    def entry(replica: tuple[Any, Any], at: float) -> dict[str, Any]:
        if replica not in seen:
            order.append(replica)
            seen[replica] = {"first": at}
        return seen[replica]

    for e in events:
        if e.get("app") != app or e["kind"] not in _STEP_KINDS:
            continue
        if e.get("node") is None or e.get("variant") is None:
            continue
        key = "routed" if e["kind"] == "route_changed" else e["kind"]
        entry(_replica(e), e["mono"]).setdefault(key, e["mono"])
    for r in answers:
        if r.node is not None and r.variant is not None:
            entry((r.node, r.variant), r.end).setdefault("answered", r.end)
    ordered = sorted(order, key=lambda k: seen[k]["first"])
    return tuple(
        Step(
            node=str(node),
            variant=str(variant),
            load_started=seen[(node, variant)].get("load_started"),
            load_finished=seen[(node, variant)].get("load_finished"),
            load_failed="load_failed" in seen[(node, variant)],
            routed=seen[(node, variant)].get("routed"),
            answered=seen[(node, variant)].get("answered"),
        )
        for node, variant in ordered
    )
