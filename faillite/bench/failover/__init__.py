"""``faillite bench failover``: failure injection against a real local cluster, per policy.

``scenarios`` (what is deployed), ``run`` (one policy's cluster through every failure),
``report`` (figures and the JSON document), ``plots`` (PNG), ``cli`` (the command).
"""

from faillite.bench.failover.cli import register, run_benchmark

__all__ = ["register", "run_benchmark"]
