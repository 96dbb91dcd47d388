"""Capsule's Python code interpreter (`capsule run-code`, the worker's `run_code`).

Built by Capsule's own pipeline like any task: its top level runs once, at build time, so the
modules imported here are warm in every call. Each call runs one cell (see `capsule/_cells.py`)
in a fresh instance of the snapshot. The limits below are the most a call may have; `run-code`
narrows them to its documented defaults unless told otherwise.
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


@task(name="run_code", compute="HIGH", ram="2GiB", timeout="5m")
def run_code(code: str) -> dict:
    return run_cell(code, {})
