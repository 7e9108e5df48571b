"""The dashboard in a real browser (Debian's headless Chromium, driven by Playwright): a node is
killed and the page, without reloading, shows it down and its apps failing over and recovering."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.controller.cluster import small_config, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
WAIT_MS = 60_000


def test_dashboard_shows_a_node_failure_live(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    expect = sync_api.expect
    # Chromium and the cluster share two cores: a long heartbeat timeout keeps scheduling stalls
    # from passing for failures (a killed agent's connection closes, so n1 is seen dead at once).
    heartbeats = {"heartbeat_interval_ms": 20, "heartbeat_timeout_ms": 3000}
    cluster = start(tmp_path, small_config(controller=heartbeats))
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{cluster.controller_url}/", timeout=WAIT_MS)
                expect(page.locator("#conn")).to_have_text("live", timeout=WAIT_MS)
                node = {n: page.locator(f'[data-node="{n}"]') for n in ("n1", "n2", "n3")}
                app = {
                    a: page.locator(f'tr[data-app="{a}"]') for a in ("warm-a", "warm-b", "cold-a", "cold-b")
                }
                for locator in node.values():
                    expect(locator).to_have_attribute("data-state", "alive", timeout=WAIT_MS)
                for locator in app.values():
                    expect(locator).to_have_attribute("data-state", "primary", timeout=WAIT_MS)
                expect(node["n1"].locator(".seg.primary")).to_have_attribute("style", _nonzero_width())
                page.evaluate("window.__notReloaded = true")

                cluster.kill_node("n1", signal.SIGKILL)

                expect(node["n1"]).to_have_attribute("data-state", "dead", timeout=WAIT_MS)
                expect(node["n1"].locator(".state")).to_have_text("down")
                expect(app["warm-a"]).to_have_attribute("data-state", "failed_over_warm", timeout=WAIT_MS)
                expect(app["warm-b"]).to_have_attribute("data-state", "failed_over_warm", timeout=WAIT_MS)
                expect(app["cold-a"]).to_have_attribute("data-state", "failed_over_cold", timeout=WAIT_MS)
                expect(app["cold-b"]).to_have_attribute("data-state", "primary")
                expect(app["warm-a"].locator(".serving")).not_to_contain_text("on n1")
                timeline = page.locator("#timeline")
                dead = timeline.locator('li[data-kind="node_dead"]')
                expect(dead.filter(has_text="n1 declared dead")).to_have_count(1, timeout=WAIT_MS)
                recovered = timeline.locator('li[data-kind="app_recovered"]')
                expect(recovered).to_have_count(3, timeout=WAIT_MS)
                for name in ("warm-a", "warm-b", "cold-a"):
                    expect(recovered.filter(has_text=f"{name} recovered")).to_contain_text("MTTR")
                expect(timeline.locator('li[data-kind="progressive_step"]').first).to_contain_text("cold-a")
                expect(page.locator("#last-failure")).to_contain_text("3 app(s) recovered, mean MTTR")
                assert page.evaluate("window.__notReloaded === true"), "the page reloaded"
                assert errors == [], f"JavaScript errors: {errors}"
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-failover.png"), full_page=True)
            finally:
                browser.close()
    finally:
        cluster.stop()


def _nonzero_width():
    import re

    return re.compile(r"width:\s*(?!0%)[0-9.]+%")
