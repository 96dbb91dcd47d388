"""Host-facing side of the SDK: called by the C guest (guest.c), never by user code.

`load_user_module` runs at build time inside Wizer; `run` runs once per exec, in a fresh instance of
the snapshot.
"""

import contextlib
import errno
import gc
import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import linecache
import os
import random
import sys
import traceback
import types

import _capsule_host

from . import _adapters, _task
from ._task import REGISTRY, Task
from .http import HostDeniedError, install_urllib_opener

install_urllib_opener()
_adapters.install()
from ._cells import CellError  # noqa: E402 - after the patches: it imports asyncio
try:
    import ssl  # noqa: F401 - only to learn whether the real module works
except ImportError:
    # No OpenSSL in the guest: TLS is the host's job; clients still import and configure `ssl`.
    from . import _ssl

    sys.modules["ssl"] = _ssl
try:
    import ctypes  # noqa: F401
except ImportError:
    # No libffi for wasm32-wasi: C types and sizes only; calling native code fails clearly.
    from . import _ctypes

    sys.modules["ctypes"] = _ctypes

_USER_MODULE = None
_SIGNATURES = {}
# Where the compiler mounted the project's files (the app layer); tracebacks show paths below it
# relative to the project root.
_APP_DIR = None
# What the build says when it ends because a package needs a compiled extension.
_UNUSABLE = "capsule: unusable package: "


class _UnusablePackage(ModuleNotFoundError):
    """A module whose compiled extension the build left out (it cannot load in the sandbox)."""


class _MissingExtensionFinder(importlib.abc.MetaPathFinder):
    """First on `sys.meta_path`: a compiled extension module the build dropped (it cannot load in
    the sandbox) is reported as such, naming its package, instead of as a missing module or as a
    directory of type stubs taken for a namespace package. A package with a pure-Python fallback
    module of the same name keeps it."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, fullname, path=None, target=None):
        message = self.modules.get(fullname)
        if message is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.origin not in (None, "namespace"):
            return None  # a real module: the normal finders will load it
        raise _UnusablePackage(message, name=fullname)


def _setup_project():
    """Put the project (app layer) and its packages (site-packages layer) on `sys.path`, as
    `python task.py` would: the task file's directory first, then the project root. Returns an
    error message when a package cannot work in the sandbox."""
    global _APP_DIR
    app = os.environ.get("CAPSULE_APP_DIR")
    if app:
        _APP_DIR = app
        entry_dir = os.environ.get("CAPSULE_ENTRY_DIR", "")
        roots = [os.path.join(app, entry_dir) if entry_dir else app, app]
        for root in reversed(list(dict.fromkeys(roots))):
            sys.path.insert(0, root)
    site_dir = os.environ.get("CAPSULE_SITE_PACKAGES")
    if site_dir:
        import site
        site.addsitedir(site_dir)
    native = json.loads(os.environ.get("CAPSULE_NATIVE_MODULES") or "{}")
    if native:
        sys.meta_path.insert(0, _MissingExtensionFinder(native))
        # A package whose extension was dropped must show now, at build time, whether its pure
        # code stands on its own.
        for top in sorted({name.split(".")[0] for name in native}):
            try:
                importlib.import_module(top)
            except ImportError as error:
                unusable = _unusable_reason(error)
                if unusable:
                    return unusable
            except Exception:  # noqa: BLE001 - anything else is for the task's own import to show
                pass
    return None


def _unusable_reason(error):
    """The dropped-extension message somewhere in `error`'s chain (packages often re-raise an
    ImportError of their own from it), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _UnusablePackage):
            return error.msg
        error = error.__cause__ or error.__context__
    return None


def _search_path_text():
    """`sys.path`, as the user knows its parts."""
    names = []
    for entry in sys.path:
        if _APP_DIR and (entry == _APP_DIR or entry.startswith(_APP_DIR + "/")):
            names.append(f"the project ({entry[len(_APP_DIR):].lstrip('/') or 'its root'}; files left out by the build are not there)")
        elif entry == os.environ.get("CAPSULE_SITE_PACKAGES"):
            names.append("the project's packages (site-packages)")
        elif entry.startswith("/usr/local/lib/python"):
            if "the standard library" not in names:
                names.append("the standard library")
        else:
            names.append(entry)
    return "; ".join(dict.fromkeys(names))


def _project_relative(text):
    """A traceback with the app layer's mount point taken off its paths."""
    if _APP_DIR:
        text = text.replace(f'File "{_APP_DIR}/', 'File "')
    return text


def load_user_module(source, filename):
    """Execute the user's module and print the task table on stdout. Returns True on success."""
    global _USER_MODULE
    unusable = _setup_project()
    if unusable:
        print(f"{_UNUSABLE}{unusable}", file=sys.stderr)
        sys.stderr.flush()
        return False
    path = os.path.join(_APP_DIR, filename) if _APP_DIR else filename
    # Keep the source for tracebacks (without an app layer the file does not exist at run time).
    lines = source.splitlines(True)
    linecache.cache[path] = (len(source), None, lines, path)
    module = types.ModuleType("__capsule_task__")
    module.__file__ = path
    sys.modules["__capsule_task__"] = module
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        # What the user's top level prints is not part of the task table.
        with contextlib.redirect_stdout(sys.stderr):
            exec(code, module.__dict__)
    except BaseException as error:  # noqa: BLE001 - reported to the build, which fails
        unusable = _unusable_reason(error)
        if unusable:
            print(f"{_UNUSABLE}{unusable}", file=sys.stderr)
            sys.stderr.flush()
            return False
        print(_project_relative("".join(traceback.format_exception(error))), file=sys.stderr, end="")
        if isinstance(error, ModuleNotFoundError) and error.name:
            print(f"note: `{error.name}` was looked for in: {_search_path_text()}", file=sys.stderr)
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
            if isinstance(error, CellError):
                # The code interpreter's cell failed: its own message and cell traceback.
                kind = "host_denied" if _in_chain(error.__context__, HostDeniedError) else "task_error"
                return False, (kind, error.args[0], error.traceback)
            if _in_chain(error, HostDeniedError):
                # Also when an HTTP client (requests) wrapped the refusal in its own exception.
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


def _in_chain(error, kind):
    """Whether `error`, or an exception it was raised from or while handling, is a `kind`."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _one_line(error):
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _user_traceback(error):
    """The traceback without the SDK's own frame."""
    tb = error.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return _project_relative("".join(traceback.format_exception(type(error), error, tb)))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
