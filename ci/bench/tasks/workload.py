"""The compute workloads of ci/bench/worker.sh; native.py runs the same functions under python3."""

import json
import re
import time

from capsule import task

MODULUS = 1_000_000_007
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


@task(compute=10**12, timeout="5m")
def sumsq(n):
    total = 0
    for i in range(n):
        total = (total + i * i) % MODULUS
    return total


@task(compute=10**12, timeout="5m")
def json_roundtrip(n):
    records = [{"id": i, "name": f"user{i}", "tags": ["a", "b", str(i % 7)], "score": i / 3} for i in range(n)]
    for _ in range(10):
        records = json.loads(json.dumps(records))
    return len(records)


@task(compute=10**12, timeout="5m")
def regex(n):
    text = "\n".join(f"user{i}@example.com visited /page/{i} at {i % 24}:{i % 60}" for i in range(n))
    return len(EMAIL.findall(text))


@task(timeout="1m")
def nap(ms):
    time.sleep(ms / 1000)
    return ms


@task
def main():
    return ["sumsq", "json_roundtrip", "regex", "nap"]
