"""The dashboard ships as package data, plain files with no build step, wired to the API."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from faillite.dashboard import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_references_only_shipped_assets():
    html = (STATIC_DIR / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="/static/([^"]+)"', html)
    assert sorted(refs) == ["app.js", "style.css"]
    assert all((STATIC_DIR / ref).is_file() for ref in refs)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html), "no assets from the network"


def test_the_script_follows_the_events_and_reads_the_status():
    script = (STATIC_DIR / "app.js").read_text()
    assert "/v1/events/watch?since=" in script and "/v1/status" in script
    assert "location.reload" not in script  # refreshes data, never the page


def test_static_files_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["faillite.dashboard"]
    shipped = {p.name for g in globs for p in (STATIC_DIR.parent).glob(g)}
    assert shipped == {p.name for p in STATIC_DIR.iterdir()}
