#!/usr/bin/env python3
"""Drives one client for ci/bench/sdk.sh: sequential `1+1` cells, timed on the caller's side.
Prints one JSON object: {"client", "language", "calls", "p50_ms", "p99_ms"}.

  raw      NDJSON `run_code` requests written to `capsule worker` by hand (the floor)
  sync     capsule.Capsule().run_code            (the installed wheel)
  async    capsule.AsyncCapsule().run_code
  adapter  capsule_adapter.run_python / run_javascript (capsule-run-adapter, for comparison;
           each call is a `capsule exec` process of capsule-run's own binary)
"""

import argparse
import asyncio
import json
import shlex
import subprocess
import time


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(call, count, warmup):
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e3)
    return samples


async def timed_async(call, count, warmup):
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e3)
    return samples


def check(ok, what):
    if not ok:
        raise SystemExit(f"unexpected answer: {what!r}")


def raw(args):
    proc = subprocess.Popen(shlex.split(args.worker), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    ids = iter(range(1, 1 << 30))

    def call():
        request = {"id": next(ids), "op": "run_code", "language": args.language, "code": "1+1"}
        proc.stdin.write((json.dumps(request) + "\n").encode())
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())
        check(answer["envelope"]["result"]["value"] == 2, answer)

    samples = timed(call, args.count, args.warmup)
    proc.stdin.close()
    proc.wait()
    return samples


def sync(args):
    from capsule import Capsule

    with Capsule() as client:
        def call():
            result = client.run_code("1+1", language=args.language)
            check(result.result == 2, result)

        return timed(call, args.count, args.warmup)


def async_(args):
    from capsule import AsyncCapsule

    async def main():
        async with AsyncCapsule() as client:
            async def call():
                result = await client.run_code("1+1", language=args.language)
                check(result.result == 2, result)

            return await timed_async(call, args.count, args.warmup)

    return asyncio.run(main())


def adapter(args):
    import capsule_adapter

    run = capsule_adapter.run_python if args.language == "python" else capsule_adapter.run_javascript

    async def main():
        # Its `load_sandboxes()` fails on the JavaScript sandbox (a comment-only cell); the
        # warm-up calls below pay its first compile instead.
        async def call():
            result = await run("1+1")
            check("2" in str(result), result)

        return await timed_async(call, args.count, args.warmup)

    return asyncio.run(main())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["raw", "sync", "async", "adapter"])
    parser.add_argument("--language", default="python")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--worker", default="capsule worker")
    args = parser.parse_args()
    samples = {"raw": raw, "sync": sync, "async": async_, "adapter": adapter}[args.client](args)
    print(json.dumps({"client": args.client, "language": args.language, "calls": len(samples),
                      "p50_ms": round(percentile(samples, 50), 3), "p99_ms": round(percentile(samples, 99), 3)}))


if __name__ == "__main__":
    main()
