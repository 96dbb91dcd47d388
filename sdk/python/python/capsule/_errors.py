"""Exceptions of the host SDK.

Everything the sandbox reports (a task that raised, hit a limit, was cancelled) comes back as a
`Result`; exceptions are for the cases where no such answer exists: the worker could not be
started, died, or did not answer by the client-side deadline, and for refused operations that
return no envelope (a `files.read` of a missing file, an unknown session).
"""

from __future__ import annotations

__all__ = [
    "CapsuleError",
    "WorkerError",
    "DeadlineExceeded",
    "OperationError",
    "UnsupportedError",
]


class CapsuleError(Exception):
    """Base class of the SDK's exceptions."""


class WorkerError(CapsuleError):
    """The `capsule worker` process could not be started, died, or broke the protocol.

    The client starts a fresh worker on the next call."""


class DeadlineExceeded(WorkerError, TimeoutError):
    """No answer arrived by the client-side deadline (the call's timeout plus a grace period)."""


class OperationError(CapsuleError):
    """The worker refused an operation that answers without an envelope (`session.open`,
    `files.*`, `session.reset`): `error_type` is `invalid_args`, `session_lost` or `internal`."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class UnsupportedError(CapsuleError):
    """The running worker does not know this operation (it speaks an older protocol)."""
