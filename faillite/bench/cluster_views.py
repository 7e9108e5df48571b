"""Reading a running cluster's REST views (``/v1/apps``, ``/v1/nodes``) for the benchmarks.

The controller serves these views as plain JSON (no typed model of them exists), so the keys
are read here, in one place, for every benchmark that waits for a cluster to come back.
"""

from __future__ import annotations

from faillite.launch.cluster import LocalCluster

__all__ = ["restored"]


def restored(cluster: LocalCluster) -> bool:
    """Deployed as planned (every app on its primary, every warm backup loaded), and no node
    still holds a leftover of the last failover (stepping stones, moved apps' replicas): those
    would eat the memory the next failure's cold backups were promised."""
    if not cluster.deployed():
        return False
    wanted: dict[str, set[str]] = {}
    for a in cluster.apps():
        wanted.setdefault(a["node"], set()).add(a["variant"])
        b = a["backup"]
        if b is not None and b["mode"] == "warm":
            wanted.setdefault(b["node"], set()).add(b["variant"])
    return all(
        set(n["loaded"]) <= wanted.get(n["id"], set()) for n in cluster.nodes() if n["state"] == "alive"
    )
