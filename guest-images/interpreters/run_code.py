"""Capsule's Python code interpreter (`capsule run-code`, the worker's `run_code`).

Built by Capsule's own pipeline like any task: its top level runs once, at build time, so the
modules imported here are warm in every call. `main` runs one cell (see `capsule/_cells.py`)
in a fresh instance of the snapshot; `session_cell` runs the cells of a worker session, all in the
session's one live instance. `run-code` and the worker narrow the limits below to their
documented defaults unless told otherwise.
"""
import asyncio  # noqa: F401 - imported once here, warm in every cell
import collections  # noqa: F401
import datetime  # noqa: F401
import functools  # noqa: F401
import itertools  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401

from capsule import task
from capsule._cells import run_cell


import os

# The limits below are the most a call may have; hosts are granted per call or session by the
# worker (none by default).
LIMITS = {"compute": "HIGH", "ram": "2GiB", "timeout": "5m", "allowed_hosts": ["*"]}
WORKSPACE = "/workspace"


@task(name="main", **LIMITS)
def run_code(code: str) -> dict:
    """A stateless cell: a fresh namespace in a fresh instance."""
    return run_cell(code, {})


# A session's namespace: the instance lives as long as the session, and so does this.
_session = {}
_session_cells = 0


@task(name="session_cell", **LIMITS)
def session_cell(code: str) -> dict:
    """A cell of a live session: names from earlier cells are there; `/workspace` is the current
    directory."""
    global _session_cells
    _session_cells += 1
    if _session_cells == 1 and os.path.isdir(WORKSPACE):
        os.chdir(WORKSPACE)
    return run_cell(code, _session, f"<cell {_session_cells}>")
