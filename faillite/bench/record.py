"""What the pure benchmark computations read of a client request record (structurally:
``faillite.bench.load.RequestRecord`` or anything shaped like it). Pure."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Record"]


class Record(Protocol):
    @property
    def app(self) -> str: ...
    @property
    def end(self) -> float: ...
    @property
    def ok(self) -> bool: ...
    @property
    def node(self) -> str | None: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def accuracy(self) -> float | None: ...
