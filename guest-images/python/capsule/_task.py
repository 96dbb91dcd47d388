"""The `@task` decorator and the registry the host reads at build time."""

import functools
import json

# Every task the user's module defined, by task name, in definition order.
REGISTRY = {}

# Set by the host-facing side when a run starts (never during the build-time snapshot).
_RUNNING = False


class TaskError(Exception):
    """A sub-task failed. `error_type` says how: task_error, timeout, out_of_fuel, memory_limit, disk_limit,
    permission_denied, host_denied, invalid_args or internal."""

    def __init__(self, error_type, message, traceback=""):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.traceback = traceback

# Accepted keyword arguments and their defaults; values are validated by the compiler, which
# names the task and the field in its errors (so nothing is silently defaulted here).
_DEFAULTS = {
    "compute": "MEDIUM",
    "ram": None,
    "timeout": None,
    "max_retries": 0,
    "allowed_files": [],
    "allowed_hosts": [],
    "env_variables": [],
    "disk": None,
}


class Task:
    """A registered task. Calling it runs the function in this instance."""

    def __init__(self, func, name, config):
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name
        self.config = config

    def __call__(self, *args, **kwargs):
        """While a task runs, calling another task runs it as a sub-task: in a fresh instance,
        under the limits the manifest records for it (narrowed by the caller's). Arguments and
        the result travel as JSON. At build time (the module's top level) it is a plain call."""
        if not _RUNNING:
            return self.func(*args, **kwargs)
        import _capsule_host

        ok, payload = _capsule_host.call_task(self.name, json.dumps({"args": list(args), "kwargs": kwargs}))
        if ok:
            return json.loads(payload)
        raise TaskError(*payload)

    def __repr__(self):
        return f"<capsule task {self.name!r}>"


def task(func=None, /, *, name=None, **config):
    """Register a function as a Capsule task.

    Keyword arguments: name, compute ("LOW" | "MEDIUM" | "HIGH" | fuel count), ram ("64MB"),
    timeout ("30s"), max_retries, allowed_files, allowed_hosts, env_variables, disk ("100MB":
    bytes the task may add to its writable directories).
    Usable as `@task` or `@task(...)`.
    """
    unknown = sorted(set(config) - set(_DEFAULTS))
    if unknown:
        raise TypeError(
            f"task() got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"accepted: name, {', '.join(_DEFAULTS)}"
        )
    if name is not None and not isinstance(name, str):
        raise TypeError(f"task(name=...) must be a string, got {type(name).__name__}")

    def register(fn):
        if not callable(fn):
            raise TypeError(f"@task must decorate a function, got {type(fn).__name__}")
        task_name = name if name is not None else fn.__name__
        if task_name in REGISTRY:
            raise ValueError(f"two tasks are named {task_name!r}; task names must be unique")
        registered = Task(fn, task_name, dict(config))
        REGISTRY[task_name] = registered
        return registered

    return register(func) if func is not None else register
