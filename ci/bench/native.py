#!/usr/bin/env python3
"""Native baseline for ci/bench/worker.sh: runs a workload task of tasks/workload.py under plain
python3 (the `capsule` import resolved to a pass-through decorator) and prints the median
milliseconds of RUNS calls.   native.py TASK N RUNS"""

import os
import statistics
import sys
import time
import types

capsule = types.ModuleType("capsule")
capsule.task = lambda func=None, **_: func if func is not None else (lambda f: f)
sys.modules["capsule"] = capsule
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks"))
import workload  # noqa: E402

name, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
func = getattr(workload, name)
times = []
for _ in range(runs):
    started = time.perf_counter()
    func(n)
    times.append((time.perf_counter() - started) * 1e3)
print(f"{statistics.median(times):.3f}")
