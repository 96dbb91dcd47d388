#!/usr/bin/env bash
# The work queue (issue 18), on this machine over loopback: a private nats-server -js and
# docker-registry (ci/services.sh installs them), the trivial Python task pushed once.
#   1. throughput: N jobs queued first, then two fresh workers (--concurrency 4 each) drain them;
#      jobs/s counts from the workers' start (connect, fetch and verify the bundle included) to
#      the last final result;
#   2. latency: `capsule submit --wait` of one job to the two warm, idle workers, whole process
#      (start, connect, publish, result), p50 and p90 of RUNS.
#
#   ci/bench/queue.sh [JOBS] [RUNS]      (default 1000 jobs, 50 latency runs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
jobs=${1:-1000}
runs=${2:-50}
bash ci/services.sh
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
target=${CARGO_TARGET_DIR:-target}
capsule=$(realpath "$target/release/capsule")
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export CAPSULE_CACHE_DIR=$work/cache
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
now_ms() { date +%s%3N; }

nats_port=$(free_port)
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/js" >"$work/nats.log" 2>&1 & pids+=($!)
registry_port=$(free_port)
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work/registry" "$registry_port" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & pids+=($!)
wait_port "$nats_port"; wait_port "$registry_port"
nats=nats://127.0.0.1:$nats_port

"$capsule" keygen -o "$work/bench.key" >/dev/null 2>&1
"$capsule" build ci/bench/tasks/trivial.py -o "$work/trivial.capsule" --sign "$work/bench.key" >/dev/null 2>&1
digest=$("$capsule" push "$work/trivial.capsule" "oci://127.0.0.1:$registry_port/bench/trivial:1" 2>/dev/null)
ref="oci://127.0.0.1:$registry_port/bench/trivial@$digest"

echo "== 1. throughput: $jobs queued jobs, 2 workers x 4 slots, trivial Python task =="
seq "$jobs" | xargs -P 4 -I{} "$capsule" submit --nats "$nats" --queue bench "$ref" --id "job-{}" >/dev/null
start=$(now_ms)
for w in 1 2; do
  "$capsule" worker --nats "$nats" --queue bench --trust "$work/bench.key.pub" --concurrency 4 --name "w$w" 2>>"$work/workers.log" & pids+=($!)
done
while :; do
  done_count=$("$capsule" jobs --nats "$nats" --queue bench --json | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["done"]+c["failed"]+c["lost"])')
  [ "$done_count" -ge "$jobs" ] && break
  sleep 0.1
done
end=$(now_ms)
"$capsule" jobs --nats "$nats" --queue bench
python3 -c 'import sys; n,ms=int(sys.argv[1]),int(sys.argv[2]); print("%d jobs in %.2f s: %.0f jobs/s" % (n, ms/1e3, n/(ms/1e3)))' "$jobs" "$((end - start))"

echo
echo "== 2. submit --wait latency, whole process, $runs runs (ms) =="
times=()
for i in $(seq "$runs"); do
  t0=$(now_ms)
  "$capsule" submit --nats "$nats" --queue bench "$ref" --id "lat-$i" --wait >/dev/null
  times+=($(( $(now_ms) - t0 )))
done
printf '%s\n' "${times[@]}" | python3 -c 'import sys; t=sorted(int(x) for x in sys.stdin); print("p50 %d ms, p90 %d ms, min %d ms" % (t[len(t)//2], t[int(0.9*(len(t)-1))], t[0]))'
