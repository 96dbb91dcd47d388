"""Finding the `capsule` binary this SDK drives."""

from __future__ import annotations

import os
import shutil
import sysconfig
from pathlib import Path
from typing import Optional

from ._errors import WorkerError

__all__ = ["find_binary"]


def find_binary(explicit: Optional[str] = None) -> str:
    """The `capsule` executable: `explicit`, else `$CAPSULE_BIN`, else the one this package's
    wheel installed beside the interpreter's scripts, else `capsule` on `PATH`."""
    for candidate in (explicit, os.environ.get("CAPSULE_BIN")):
        if candidate:
            path = shutil.which(candidate) or candidate
            if not Path(path).is_file():
                raise WorkerError(f"the capsule binary `{candidate}` does not exist")
            return path
    scripts = sysconfig.get_path("scripts")
    if scripts:
        installed = Path(scripts) / "capsule"
        if installed.is_file():
            return str(installed)
    found = shutil.which("capsule")
    if found:
        return found
    raise WorkerError(
        "cannot find the `capsule` binary: install the capsule wheel, put `capsule` on PATH, "
        "or set CAPSULE_BIN"
    )
