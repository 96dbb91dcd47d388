"""`@task` on the host: the decorator a task file imports, calling the function natively.

Inside a sandbox the guest's own `capsule` module registers tasks for the build; on the host (a
test, a script importing the task file) the same decorator only checks its options and returns a
callable wrapper, so `pytest` can exercise task functions directly.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Optional, TypeVar, overload

__all__ = ["Task", "TaskError", "task"]

F = TypeVar("F", bound=Callable[..., Any])

# The options a task accepts (the same set the guest SDK and the compiler accept); their values
# are judged by the compiler at build time, which names the task and the field.
OPTIONS = (
    "compute",
    "ram",
    "timeout",
    "max_retries",
    "allowed_files",
    "allowed_hosts",
    "env_variables",
    "disk",
)


class TaskError(Exception):
    """A task failed; `error_type` says how (`task_error`, `timeout`, `out_of_fuel`, ...)."""

    def __init__(self, error_type: str, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.traceback = traceback


class Task:
    """A function declared as a Capsule task. Calling it on the host runs the function natively."""

    def __init__(self, func: Callable[..., Any], name: str, config: Dict[str, Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name
        self.config = config

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<capsule task {self.name!r}>"


@overload
def task(func: F, /) -> Task: ...
@overload
def task(*, name: Optional[str] = None, **config: Any) -> Callable[[F], Task]: ...


def task(func: Optional[Callable[..., Any]] = None, /, *, name: Optional[str] = None, **config: Any) -> Any:
    """Declare a function as a Capsule task: `@task` or `@task(name="main", compute="LOW", ...)`.

    Options: name, compute ("LOW" | "MEDIUM" | "HIGH" | fuel count), ram ("64MB"), timeout
    ("30s"), max_retries, allowed_files, allowed_hosts, env_variables, disk ("100MB"). Unknown options are a
    `TypeError` here as they are at build time.
    """
    unknown = sorted(set(config) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"task() got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"accepted: name, {', '.join(OPTIONS)}"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"task(name=...) must be a string, got {type(name).__name__}")

    def declare(fn: Callable[..., Any]) -> Task:
        if not callable(fn):
            raise TypeError(f"@task must decorate a function, got {type(fn).__name__}")
        return Task(fn, name if name is not None else fn.__name__, dict(config))

    return declare(func) if func is not None else declare
