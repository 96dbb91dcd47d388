"""Results: the worker's JSON envelope as an object, plus capsule-run's field names."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

__all__ = ["ErrorInfo", "Result", "with_aliases"]


@dataclass(frozen=True)
class ErrorInfo:
    """Why a call failed: `error_type` (`task_error`, `timeout`, `out_of_fuel`, `memory_limit`,
    `cancelled`, `session_lost`, ...), a message, and the guest's traceback when it raised."""

    error_type: str
    message: str
    traceback: Optional[str] = None


@dataclass(frozen=True)
class Result:
    """One call's outcome.

    `result` is the task's return value; for `run_code` it is the cell's final value when it is
    JSON (`format == "json"`), else `None`, with `repr` its printable form and `format` one of
    `json`, `repr`, `none`. `execution` holds the metrics (`duration_ms`, `fuel_consumed`,
    `attempts`, `peak_memory_bytes`, and capsule-run's `retries` and `ram_used`). `envelope` is
    the whole envelope as a dict.
    """

    success: bool
    result: Any
    error: Optional[ErrorInfo]
    stdout: str
    stderr: str
    execution: Dict[str, Any]
    envelope: Dict[str, Any] = field(repr=False)
    format: Optional[str] = None
    repr: Optional[str] = None

    @classmethod
    def from_envelope(cls, envelope: Dict[str, Any], cell: bool = False) -> "Result":
        """Builds a result from an envelope; `cell` unpacks a `run_code` result."""
        envelope = with_aliases(envelope)
        raw_error = envelope.get("error")
        error = None
        if raw_error:
            error = ErrorInfo(
                error_type=str(raw_error.get("error_type", "internal")),
                message=str(raw_error.get("message", "")),
                traceback=raw_error.get("traceback"),
            )
        output = envelope.get("output") or {}
        value = envelope.get("result")
        fmt = text = None
        if cell and isinstance(value, dict):
            fmt, text = value.get("format"), value.get("repr")
            value = value.get("value")
        return cls(
            success=bool(envelope.get("success")),
            result=value,
            error=error,
            stdout=str(output.get("stdout", "")),
            stderr=str(output.get("stderr", "")),
            execution=envelope.get("execution") or {},
            envelope=envelope,
            format=fmt,
            repr=text,
        )

    def to_dict(self) -> Dict[str, Any]:
        """The envelope as a dict (what `capsule exec --json` prints, with the aliases)."""
        return copy.deepcopy(self.envelope)


def with_aliases(envelope: Dict[str, Any]) -> Dict[str, Any]:
    """Adds capsule-run's `execution.retries` (attempts - 1) and `execution.ram_used` (peak
    memory in bytes) to a copy of `envelope`, when their sources are present."""
    out = dict(envelope)
    execution = dict(out.get("execution") or {})
    if "attempts" in execution and "retries" not in execution:
        execution["retries"] = max(0, int(execution["attempts"]) - 1)
    if "peak_memory_bytes" in execution and "ram_used" not in execution:
        execution["ram_used"] = execution["peak_memory_bytes"]
    out["execution"] = execution
    return out
