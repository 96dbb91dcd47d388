"""Host-facing side of the SDK: called by the C guest (guest.c), never by user code.

`load_user_module` runs at build time inside Wizer; `run` runs once per exec, in a fresh instance of
the snapshot.
"""

import contextlib
import errno
import gc
import inspect
import json
import linecache
import os
import random
import sys
import traceback
import types

import _capsule_host

from . import _task
from ._task import REGISTRY, Task
from .http import HostDeniedError, install_urllib_opener

install_urllib_opener()

_USER_MODULE = None
_SIGNATURES = {}


def load_user_module(source, filename):
    """Execute the user's module and print the task table on stdout. Returns True on success."""
    global _USER_MODULE
    # Keep the source for tracebacks: the file does not exist at run time.
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    module = types.ModuleType("__capsule_task__")
    module.__file__ = filename
    sys.modules["__capsule_task__"] = module
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
        # What the user's top level prints is not part of the task table.
        with contextlib.redirect_stdout(sys.stderr):
            exec(code, module.__dict__)
    except BaseException as error:  # noqa: BLE001 - reported to the build, which fails
        print(f"error: the task module `{filename}` failed while loading (its top level runs at build time)",
              file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        sys.stderr.flush()
        return False
    _USER_MODULE = module
    # Signatures are computed once, into the snapshot: `inspect.signature` is costly per call.
    for name, registered in REGISTRY.items():
        try:
            _SIGNATURES[name] = inspect.signature(registered.func)
        except (TypeError, ValueError):
            pass  # no introspectable signature (a builtin): the call decides
    # Everything alive now is part of the snapshot: keep the collector from walking (and so
    # writing to, page by page) the whole frozen heap in every run.
    gc.collect()
    gc.freeze()
    exports = {value.name: key for key, value in vars(module).items() if isinstance(value, Task)}
    table = {
        "language": "python",
        "tasks": [
            {"name": t.name, "export": exports.get(t.name), "config": _jsonable(t.config)}
            for t in REGISTRY.values()
        ],
    }
    sys.stdout.write(json.dumps(table))
    sys.stdout.flush()
    sys.stderr.flush()
    return True


def _jsonable(config):
    """Config values as JSON; anything JSON cannot hold is shown as its repr for the compiler to reject."""
    try:
        json.dumps(config)
        return config
    except (TypeError, ValueError):
        return {k: v if _is_json(v) else {"__unsupported__": repr(v)} for k, v in config.items()}


def _is_json(value):
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _refresh_run_state():
    """Undo what the snapshot froze: randomness and the environment."""
    random.seed(os.urandom(32))
    fresh = _capsule_host.environ()
    os.environ._data.clear()
    for key, value in fresh.items():
        os.environ._data[os.environ.encodekey(key)] = os.environ.encodevalue(value)


def run(task_name, args_json):
    """Run one task. Returns (True, result_json) or (False, (error_type, message, traceback))."""
    try:
        _task._RUNNING = True
        _refresh_run_state()
        try:
            request = json.loads(args_json)
            args = request.get("args", [])
            kwargs = request.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise ValueError("`args` must be a list and `kwargs` an object")
        except (ValueError, AttributeError) as error:
            return False, ("invalid_args", f"arguments are not valid: {error}", "")
        registered = REGISTRY.get(task_name)
        if registered is None:
            known = ", ".join(REGISTRY) or "none"
            return False, ("internal", f"no task named `{task_name}` (tasks: {known})", "")
        signature = _SIGNATURES.get(task_name)
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as error:
                return False, ("invalid_args", f"task `{task_name}` cannot take these arguments: {error}", "")
        try:
            result = registered.func(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - every failure becomes an envelope
            if isinstance(error, HostDeniedError):
                kind = "host_denied"
            elif _is_refusal(error):
                kind = "permission_denied"
            else:
                kind = "task_error"
            return False, (kind, _one_line(error), _user_traceback(error))
        try:
            return True, json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as error:
            return False, (
                "task_error",
                f"task `{task_name}` returned a value that is not JSON-serializable: {error}",
                "",
            )
    except BaseException as error:  # noqa: BLE001 - the SDK itself failed
        return False, ("internal", f"capsule SDK failure: {_one_line(error)}", traceback.format_exc())
    finally:
        _flush()


# WASI's "not capable": outside every granted directory, or writing to a read-only one.
_ENOTCAPABLE = 76


def _is_refusal(error):
    """Whether the sandbox refused a file operation (as opposed to any other failure)."""
    return isinstance(error, PermissionError) or (
        isinstance(error, OSError) and error.errno in (errno.EPERM, errno.EACCES, _ENOTCAPABLE)
    )


def _one_line(error):
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _user_traceback(error):
    """The traceback without the SDK's own frame."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
