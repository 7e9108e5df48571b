"""The faillite controller: node registry, failure detection, failover, re-protection and
failback, as a reconcile loop over state persisted in SQLite. Run it with
``faillite controller``; its pure parts (``decide``, ``liveness``, ``states``) are importable
without starting anything."""

__all__: list[str] = []
