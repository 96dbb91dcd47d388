"""Capsule's host SDK: run Python/JavaScript tasks and code in WebAssembly sandboxes.

    from capsule import run, task, Capsule, AsyncCapsule

    result = await run(file="./sandbox.py", args=["1 + 1"])      # the envelope, as a dict

    with Capsule() as capsule:                                  # or: async with AsyncCapsule()
        capsule.run_code("sum(range(10))").result                # 45
        with capsule.session("python") as session:
            session.files.write("data.csv", "a,b\\n1,2\\n")
            session.run_code("import csv; rows = list(csv.reader(open('data.csv')))")

Everything runs in one long-lived `capsule worker` (the binary this package installs), restarted
if it dies. `@task` runs the function natively here on the host, so task files can be tested
with pytest; inside the sandbox the guest's own `capsule` module takes its place.
"""

from ._build import BuildError
from ._client import AsyncCapsule
from ._errors import CapsuleError, DeadlineExceeded, OperationError, UnsupportedError, WorkerError
from ._result import ErrorInfo, Result
from ._run import run
from ._session import AsyncFiles, AsyncSession, FileInfo
from ._sync import Capsule, Files, Session
from ._task import Task, TaskError, task

__all__ = [
    "AsyncCapsule",
    "AsyncFiles",
    "AsyncSession",
    "BuildError",
    "Capsule",
    "CapsuleError",
    "DeadlineExceeded",
    "ErrorInfo",
    "FileInfo",
    "Files",
    "OperationError",
    "Result",
    "Session",
    "Task",
    "TaskError",
    "UnsupportedError",
    "WorkerError",
    "run",
    "task",
]
