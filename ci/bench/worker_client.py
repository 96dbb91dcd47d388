#!/usr/bin/env python3
"""Drives `capsule worker` for ci/bench/worker.sh: latency of sequential calls, throughput of
pipelined calls, and RSS of the worker process. Prints one JSON object per measurement."""

import argparse
import json
import shlex
import subprocess
import sys
import threading
import time


def start(worker_cmd):
    return subprocess.Popen(worker_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)


def call(proc, request):
    proc.stdin.write((json.dumps(request) + "\n").encode())
    line = proc.stdout.readline()
    if not line:
        sys.exit("the worker closed its output")
    return json.loads(line)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def latency(args):
    proc = start(args.worker)
    request = {"id": 0, "bundle": args.bundle, "args": json.loads(args.args)}
    for i in range(args.warmup):
        request["id"] = i
        answer = call(proc, request)
        if not answer["envelope"]["success"]:
            sys.exit(f"task failed: {answer}")
    samples, in_guest = [], []
    for i in range(args.count):
        request["id"] = i
        started = time.perf_counter()
        answer = call(proc, request)
        samples.append((time.perf_counter() - started) * 1e3)
        in_guest.append(answer["envelope"]["execution"]["duration_ms"])
    proc.stdin.close()
    proc.wait()
    print(json.dumps({"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99),
                      "in_guest_p50_ms": percentile(in_guest, 50)}))


def throughput(args):
    proc = start(args.worker)
    args_value = json.loads(args.args)

    def request(i):
        return {"id": i, "bundle": args.bundle, "task": args.task, "args": args_value}

    def feed():
        for i in range(args.count):
            proc.stdin.write((json.dumps(request(i)) + "\n").encode())
        proc.stdin.close()

    call(proc, request(-1))  # load the bundle first
    started = time.perf_counter()
    feeder = threading.Thread(target=feed)
    feeder.start()
    ok = sum(1 for line in proc.stdout if json.loads(line)["envelope"]["success"])
    elapsed = time.perf_counter() - started
    feeder.join()
    proc.wait()
    print(json.dumps({"requests": args.count, "ok": ok, "seconds": elapsed,
                      "per_second": args.count / elapsed}))


def memory(args):
    """RSS with `count` requests in flight at once (each sleeping in the guest) minus idle RSS."""
    proc = start(args.worker)
    args_value = json.loads(args.args)
    call(proc, {"id": -1, "bundle": args.bundle, "task": args.idle_task, "args": [1]})
    idle = rss_kib(proc.pid)
    for i in range(args.count):
        proc.stdin.write((json.dumps({"id": i, "bundle": args.bundle, "task": args.idle_task,
                                      "args": args_value}) + "\n").encode())
    time.sleep(args.settle)
    busy = rss_kib(proc.pid)
    proc.stdin.close()
    for _ in proc.stdout:
        pass
    proc.wait()
    print(json.dumps({"idle_kib": idle, "busy_kib": busy, "in_flight": args.count,
                      "per_instance_kib": (busy - idle) / args.count}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["latency", "throughput", "memory"])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--args", default="[]")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--idle-task", default="main")
    parser.add_argument("--task", default="main")
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--worker", required=True, help="the worker command line")
    args = parser.parse_args()
    args.worker = shlex.split(args.worker)
    {"latency": latency, "throughput": throughput, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
