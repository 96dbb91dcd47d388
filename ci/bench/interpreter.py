"""Code interpreter numbers over the raw worker protocol (manifests/worker-protocol.md).

Prints one JSON object per measurement:
  first call after worker start (worker spawned -> first run_code answered), per language;
  stateless run_code p50/p99, per language;
  session cell p50/p99, per language;
  memory per live session: worker RSS growth per idle open session (after one cell each).

    python3 ci/bench/interpreter.py --capsule target/release/capsule [--calls 500] [--sessions 16]
"""

import argparse
import json
import statistics
import subprocess
import time


class Worker:
    def __init__(self, capsule, *extra):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [capsule, "worker", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.next_id = 0

    def ask(self, request):
        self.next_id += 1
        request = {"id": self.next_id, **request}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        while True:
            answer = json.loads(self.proc.stdout.readline())
            if "event" not in answer:
                return answer

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def ok(answer):
    envelope = answer.get("envelope")
    if not envelope or not envelope["success"]:
        raise SystemExit(f"call failed: {answer}")
    return envelope


def percentiles(samples):
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1e3, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1e3, 3),
    }


CODE = {"python": "1 + 1", "javascript": "1 + 1"}


def timed(worker, request, calls):
    """p50/p99 of `calls` round trips of `request`, after 20 warm-up calls."""
    for _ in range(20):
        ok(worker.ask(request))
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        ok(worker.ask(request))
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--capsule", required=True)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=16)
    args = parser.parse_args()

    for language in ("python", "javascript"):
        firsts = []
        for _ in range(5):
            worker = Worker(args.capsule)
            ok(worker.ask({"op": "run_code", "language": language, "code": CODE[language]}))
            firsts.append(time.perf_counter() - worker.started)
            worker.close()
        print(json.dumps({"measure": "first call after worker start", "language": language,
                          "median_ms": round(statistics.median(firsts) * 1e3, 1)}))

    worker = Worker(args.capsule, "--max-sessions", str(args.sessions + 2))
    for language in ("python", "javascript"):
        stateless = {"op": "run_code", "language": language, "code": CODE[language]}
        print(json.dumps({"measure": "stateless run_code", "language": language,
                          "calls": args.calls, **timed(worker, stateless, args.calls)}))
        session = worker.ask({"op": "session.open", "language": language})["session"]
        in_session = {"op": "run_code", "session": session, "code": CODE[language]}
        print(json.dumps({"measure": "session cell", "language": language,
                          "calls": args.calls, **timed(worker, in_session, args.calls)}))
        worker.ask({"op": "session.close", "session": session})

    for language in ("python", "javascript"):
        before = worker.rss_kib()
        sessions = []
        for _ in range(args.sessions):
            session = worker.ask({"op": "session.open", "language": language})["session"]
            ok(worker.ask({"op": "run_code", "session": session, "code": "x = 1"}))
            sessions.append(session)
        after = worker.rss_kib()
        for session in sessions:
            worker.ask({"op": "session.close", "session": session})
        print(json.dumps({"measure": "memory per live session", "language": language,
                          "sessions": args.sessions,
                          "rss_kib_per_session": round((after - before) / args.sessions)}))
    worker.close()


if __name__ == "__main__":
    main()
