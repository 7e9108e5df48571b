"""The controller's Prometheus metrics, scraped from a real cluster before and after a failure."""

from __future__ import annotations

import http.client
import signal
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from faillite.controller.metrics import APP_MODES
from tests.controller.cluster import start
from tests.helpers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(controller_url: str) -> Samples:
    parts = urlsplit(controller_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200
        assert response.getheader("Content-Type", "").startswith("text/plain")
    finally:
        conn.close()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def scrape_until(url: str, ok: Callable[[Samples], bool], what: str) -> Samples:
    def attempt() -> Samples | None:
        samples = scrape(url)
        return samples if ok(samples) else None

    return wait_for(attempt, 60, what)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_follow_a_node_failure(tmp_path):
    cluster = start(tmp_path)
    try:
        url = cluster.controller_url
        before = scrape(url)
        assert value(before, "faillite_nodes", state="alive") == 3
        assert value(before, "faillite_nodes", state="dead") == 0
        assert value(before, "faillite_node_up", node="n1") == 1
        assert value(before, "faillite_apps", state="primary") == 4
        assert {m for (n, labels), _ in before.items() if n == "faillite_apps" for _, m in labels} == set(
            APP_MODES
        )
        assert value(before, "faillite_apps_unprotected") == 0
        assert value(before, "faillite_controller_step_seconds_count", step="reconcile") > 0
        assert value(before, "faillite_controller_step_seconds_count", step="detect") > 0
        assert total(before, "faillite_controller_step_errors_total") == 0
        assert total(before, "faillite_failovers_total") == 0
        assert total(before, "faillite_recovery_seconds_count") == 0
        assert value(before, "faillite_node_failures_total") == 0
        assert value(before, "faillite_node_planned_bytes", node="n1", kind="primary") > 0
        assert (
            sum(value(before, "faillite_node_planned_bytes", node=n, kind="warm") for n in ("n2", "n3")) > 0
        )
        for app in ("warm-a", "warm-b", "cold-a", "cold-b"):
            assert value(before, "faillite_app_accuracy_drop_ratio", app=app) == 0

        cluster.kill_node("n1", signal.SIGKILL)
        # warm-a, warm-b (warm backups) and cold-a (cold, progressive) were served by n1.
        after = scrape_until(url, lambda s: total(s, "faillite_failovers_total") >= 3, "three failovers")
        assert value(after, "faillite_nodes", state="dead") == 1
        assert value(after, "faillite_nodes", state="alive") == 2
        assert value(after, "faillite_node_up", node="n1") == 0
        assert value(after, "faillite_node_failures_total") == 1
        assert value(after, "faillite_failovers_total", kind="warm") == 2
        assert (
            value(after, "faillite_failovers_total", kind="progressive")
            + value(after, "faillite_failovers_total", kind="cold")
            == 1
        )
        assert total(after, "faillite_recovery_seconds_count") == 3
        assert value(after, "faillite_recovery_seconds_count", kind="warm") == 2
        assert total(after, "faillite_recovery_seconds_sum") > 0
        assert value(after, "faillite_recovery_seconds_bucket", kind="warm", le="+Inf") == 2
        assert value(after, "faillite_events_total", kind="node_dead") == 1
        assert value(after, "faillite_apps", state="failed_over_warm") == 2
        assert value(after, "faillite_apps", state="primary") >= 1  # cold-b never moved
        for app in ("warm-a", "warm-b", "cold-a", "cold-b"):
            assert 0 <= value(after, "faillite_app_accuracy_drop_ratio", app=app) <= 1

        # The re-plan takes n1 out of the plan: nothing planned on it any more.
        replanned = scrape_until(
            url,
            lambda s: value(s, "faillite_node_planned_bytes", node="n1", kind="primary") == 0,
            "the plan to leave n1",
        )
        assert value(replanned, "faillite_node_planned_bytes", node="n1", kind="cold") == 0
        assert value(replanned, "faillite_apps", state="failed_over_cold") == 1
    finally:
        cluster.stop()
