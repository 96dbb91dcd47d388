"""The `@task` decorator and the registry the host reads at build time."""

import functools

# Every task the user's module defined, by task name, in definition order.
REGISTRY = {}

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
}


class Task:
    """A registered task. Calling it runs the function in this instance."""

    def __init__(self, func, name, config):
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name
        self.config = config

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def __repr__(self):
        return f"<capsule task {self.name!r}>"


def task(func=None, /, *, name=None, **config):
    """Register a function as a Capsule task.

    Keyword arguments: name, compute ("LOW" | "MEDIUM" | "HIGH" | fuel count), ram ("64MB"),
    timeout ("30s"), max_retries, allowed_files, allowed_hosts, env_variables.
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
