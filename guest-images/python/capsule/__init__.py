"""Capsule's in-guest SDK for Python tasks.

    from capsule import task

    @task(name="main", compute="LOW", ram="64MB", timeout="5s")
    def main(n: int) -> int:
        return sum(i * i for i in range(n))

Your module's top level runs once, at build time, inside the snapshot: define things there and do the
work inside tasks. `main` is the entry task (or the only task, when there is exactly one).
"""

from ._task import Task, TaskError, task

__all__ = ["Task", "TaskError", "task"]
