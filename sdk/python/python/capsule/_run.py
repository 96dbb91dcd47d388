"""capsule-run's module-level `run()`: `await run(file=..., args=[...])` returns the envelope.

Calls share one client per (binary, cwd) for the life of the process, on the sync client's
private loop, so `run` works from any event loop (each `asyncio.run` makes a new one)."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._sync import Capsule

__all__ = ["run"]

_clients: Dict[Tuple[Optional[str], str], Capsule] = {}
_lock = threading.Lock()


def _client(capsule_path: Optional[str], cwd: str) -> Capsule:
    with _lock:
        client = _clients.get((capsule_path, cwd))
        if client is None:
            client = Capsule(binary=capsule_path, cwd=cwd)
            _clients[(capsule_path, cwd)] = client
        return client


@atexit.register
def _close_all() -> None:
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        try:
            client.close()
        except Exception:
            pass


async def run(
    *,
    file: str,
    args: Optional[Sequence[Any]] = None,
    mounts: Optional[List[str]] = None,
    cwd: Optional[str] = None,
    capsule_path: Optional[str] = None,
    task: Optional[str] = None,
    kwargs: Optional[Dict[str, Any]] = None,
    timeout: Optional[str] = None,
) -> Dict[str, Any]:
    """Runs the `main` task (or `task`) of `file`, a task source (`.py`, `.js`, `.ts`: built and
    cached) or a `.capsule` bundle, with `args`; returns the envelope as a dict (with
    capsule-run's `execution.retries` and `execution.ram_used`). `cwd` is where `file` and the
    task's directories are resolved (default: the current directory)."""
    if mounts:
        raise ValueError("`mounts` are not supported by the worker; declare the directories in the task's `allowed_files`")
    directory = os.path.abspath(cwd or os.getcwd())
    client = _client(capsule_path, directory)
    future = client._thread.submit(
        client.aio.run(file, task=task, args=list(args or ()), kwargs=kwargs, timeout=timeout))
    result = await asyncio.wrap_future(future)
    return result.to_dict()
