#!/usr/bin/env bash
# Warm execution, side by side, in one run (medians; the machine is shared: compare within a run):
#   1. trivial-task latency p50/p99: `capsule exec` (whole process) vs `capsule worker` (per call);
#   2. worker throughput on this machine's cores (pipelined trivial calls);
#   3. compute: the same workloads in Capsule (worker, in-guest time) vs native python3 / node;
#   4. what fuel metering and epoch interruption cost (the same component compiled without them);
#   5. memory per in-flight instance (worker RSS with N sleeping calls vs idle).
#
#   ci/bench/worker.sh [RUNS]      (default 1000 worker calls / 30 exec runs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
calls=${1:-1000}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs >/dev/null; }
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
target=${CARGO_TARGET_DIR:-target}
capsule=$(realpath "$target/release/capsule")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
client="python3 ci/bench/worker_client.py"
worker="$capsule worker --allow-unsigned"
field() { python3 -c 'import json,sys; print(("%.3f" if isinstance(v:=json.loads(sys.argv[1])[sys.argv[2]], float) else "%s") % v)' "$1" "$2"; }

for ext in py js; do
  "$capsule" build "ci/bench/tasks/trivial.$ext" -o "$work/trivial-$ext.capsule" --target "$(uname -m)" >/dev/null 2>&1
  "$capsule" build "ci/bench/tasks/workload.$ext" -o "$work/workload-$ext.capsule" --target "$(uname -m)" >/dev/null 2>&1
done

echo "== 1. trivial task latency (ms) =="
printf '%-8s %12s %12s %14s %14s %18s\n' guest "exec p50" "exec p99" "worker p50" "worker p99" "worker in-guest p50"
for ext in py js; do
  bundle=$work/trivial-$ext.capsule
  hyperfine -N --warmup 3 --runs 30 --export-json "$work/h.json" "$capsule exec $bundle --allow-unsigned" >/dev/null 2>&1
  read -r e50 e99 < <(python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.2f %.2f" % (t[len(t)//2]*1e3, t[min(len(t)-1, round(0.99*(len(t)-1)))]*1e3))' "$work/h.json")
  r=$($client latency --bundle "$bundle" --count "$calls" --worker "$worker")
  printf '%-8s %12s %12s %14s %14s %18s\n' "$ext" "$e50" "$e99" "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$(field "$r" in_guest_p50_ms)"
done

echo
echo "== 2. worker throughput on $(nproc) cores, 8 in flight: trivial task, and json_roundtrip(1000) =="
printf '%-8s %-16s %-14s %10s %12s %12s\n' guest task mode requests seconds "per second"
for ext in py js; do
  for spec in "trivial main [] $((calls * 5))" "workload json_roundtrip [1000] 40"; do
    read -r file task args count <<<"$spec"
    for mode in "--threads 1" "--threads $(nproc)" "--processes $(nproc)"; do
      r=$($client throughput --bundle "$work/$file-$ext.capsule" --task "$task" --args "$args" --count "$count" --worker "$worker --max-in-flight 8 $mode")
      printf '%-8s %-16s %-14s %10s %12s %12.1f\n' "$ext" "$task" "${mode#--}" "$(field "$r" requests)" "$(field "$r" seconds)" "$(field "$r" per_second)"
    done
  done
done

echo
echo "== 3. compute vs native (ms, median of 5; Capsule = the envelope's duration_ms via the worker) =="
printf '%-16s %8s %10s %10s %8s %10s %10s %8s\n' workload n "CPython" "python3" ratio "QuickJS" "node" ratio
for spec in "sumsq 1000000" "json_roundtrip 5000" "regex 50000"; do
  read -r name n <<<"$spec"
  row=()
  for ext in py js; do
    capsule_ms=$(for i in 1 2 3 4 5; do echo "{\"id\": $i, \"bundle\": \"$work/workload-$ext.capsule\", \"task\": \"$name\", \"args\": [$n]}"; done \
      | $worker --max-in-flight 1 2>/dev/null \
      | python3 -c 'import json,sys,statistics; print("%.1f" % statistics.median(json.loads(l)["envelope"]["execution"]["duration_ms"] for l in sys.stdin))')
    if [ "$ext" = py ]; then native_ms=$(python3 ci/bench/native.py "$name" "$n" 5); else native_ms=$(node ci/bench/native.mjs "$name" "$n" 5); fi
    row+=("$capsule_ms" "$(printf '%.1f' "$native_ms")" "$(python3 -c "print('%.2fx' % ($capsule_ms / $native_ms))")")
  done
  printf '%-16s %8s %10s %10s %8s %10s %10s %8s\n' "$name" "$n" "${row[@]}"
done

echo
echo "== 4. fuel and epoch overhead (ms, median of 5 fresh instances; same component, 4 compilations) =="
for ext in py js; do
  echo "-- $ext: sumsq(1000000)"
  cargo bench --locked --quiet -p capsule-compiler --bench instrumentation -- "$work/workload-$ext.capsule" sumsq '{"args": [1000000], "kwargs": {}}' 5 2>/dev/null
done

echo
echo "== 5. memory per in-flight instance (worker RSS, KiB) =="
printf '%-8s %10s %10s %10s %16s\n' guest idle busy in-flight "per instance"
for ext in py js; do
  r=$($client memory --bundle "$work/workload-$ext.capsule" --idle-task nap --args '[1500]' --count 16 --settle 1.0 --worker "$worker --max-in-flight 16")
  printf '%-8s %10s %10s %10s %16.0f\n' "$ext" "$(field "$r" idle_kib)" "$(field "$r" busy_kib)" "$(field "$r" in_flight)" "$(field "$r" per_instance_kib)"
done
