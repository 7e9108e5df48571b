"""Errors shared across faillite's command line."""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["CliError", "describe_validation"]


class CliError(Exception):
    """A user-facing failure of a command: printed as one line, exit status ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe_validation(exc: ValidationError, *, first_only: bool = False) -> str:
    """pydantic's errors as one line: ``field.path: message (got value)``, joined by ``; ``."""
    parts = []
    for err in exc.errors()[:1] if first_only else exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(document)"
        got = "" if err["type"] == "missing" or "input" not in err else f" (got {err['input']!r})"
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)
