"""Notebook-cell semantics for Capsule's code interpreter (`capsule run-code`).

A cell is a string of Python: its statements run in a namespace, the value of a final expression
statement is the cell's value, `await` works at the top level, and an exception carries a traceback
whose line numbers are the cell's own (`File "<cell>", line 3`). The value comes back as JSON when
it can be, else as its `repr`, and says which.
"""

import ast
import asyncio
import inspect
import json
import linecache
import traceback

CELL_FILE = "<cell>"
_counter = 0


class CellError(Exception):
    """The cell raised: `args[0]` is the one-line message, `traceback` the cell's traceback."""

    def __init__(self, message, cell_traceback):
        super().__init__(message)
        self.traceback = cell_traceback


def _compile(code, filename):
    """The cell as (statements, final expression or None), compiled."""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = ast.parse(code, filename, "exec", type_comments=False)
    final = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        final = ast.Expression(tree.body.pop().value)
    body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
    last = compile(final, filename, "eval", flags=flags, dont_inherit=True) if final else None
    return body, last


def _run(code_object, namespace):
    """Runs compiled cell code; a top-level `await` makes it a coroutine, run to completion."""
    result = eval(code_object, namespace)  # noqa: S307 - running the cell is the point
    if inspect.iscoroutine(result):
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            result = loop.run_until_complete(result)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return result


def _value(value):
    """The cell's value for the envelope: JSON when it can be, else its repr; says which."""
    if value is None:
        return {"format": "none", "value": None, "repr": None}
    try:
        text = json.dumps(value, allow_nan=False)
        return {"format": "json", "value": json.loads(text), "repr": repr(value)}
    except (TypeError, ValueError, RecursionError):
        return {"format": "repr", "value": None, "repr": repr(value)}


def run_cell(code, namespace, filename=CELL_FILE):
    """Runs `code` in `namespace` as a notebook cell named `filename` in tracebacks (`<cell>`, or
    `<cell N>` in a session, where functions of earlier cells keep their own source); returns the
    value document (see `_value`) or raises `CellError`."""
    global _counter
    _counter += 1
    # The cell's source, for tracebacks (it is no file).
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    namespace.setdefault("__name__", "__main__")
    namespace.setdefault("__builtins__", __builtins__)
    try:
        body, last = _compile(code, filename)
        _run(body, namespace)
        value = _run(last, namespace) if last is not None else None
    except BaseException as error:  # noqa: BLE001 - every failure of the cell is reported
        raise CellError(_one_line(error), _cell_traceback(error)) from None
    return _value(value)


def _one_line(error):
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _cell_traceback(error):
    """The traceback from the cell's first frame on (the interpreter's own frames left out)."""
    tb = error.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL_FILE[:-1]):
        tb = tb.tb_next
    if isinstance(error, SyntaxError):
        tb = None  # the location is in the error itself
    return "".join(traceback.format_exception(type(error), error, tb))
