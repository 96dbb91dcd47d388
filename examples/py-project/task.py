"""A Capsule project: a helper package with a data file and a PyPI dependency (requirements.txt).

    capsule build examples/py-project/task.py --export && capsule exec examples/py-project/task.capsule -- 4
"""
from capsule import task

from report import render


@task(name="main")
def main(n: int = 3) -> dict:
    rows = [(i, i * i) for i in range(1, n + 1)]
    return {"table": render(rows), "total": sum(square for _, square in rows)}
