#!/usr/bin/env bash
# Issue 17, item 1: warm `exec` (the bundle file was verified before and is unchanged), whole
# process, signed bundles, medians over RUNS runs; then where the time goes, from the median of
# each `--verbose` stage (what is left of the whole process is process start and exit).
# Targets: hello.py <= 5 ms, hello.js <= 3 ms. The machine is shared: compare within one run.
#
#   ci/bench/warm_exec.sh [RUNS]      (default 40; installs hyperfine if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-40}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
runner=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule-runner")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
"$capsule" keygen -o "$work/ci.key" >/dev/null
p50() { python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.2f" % (t[len(t)//2]*1000))' "$1"; }

tasks=(examples/hello.py examples/hello.js ci/bench/tasks/trivial.py ci/bench/tasks/trivial.js)
for task in "${tasks[@]}"; do
  "$capsule" build "$task" -o "$work/$(basename "$task" | tr . -).capsule" --sign "$work/ci.key" >/dev/null 2>&1
done
# A file's identity only stands for its bytes once it has been left alone for 2 s.
sleep 2.5

echo "== warm exec, whole process, signed, $runs runs (ms, median) =="
printf '%-28s %12s %16s %8s\n' task "capsule" "capsule-runner" target
for task in "${tasks[@]}"; do
  bundle=$work/$(basename "$task" | tr . -).capsule
  args="exec $bundle --trust $work/ci.key.pub"
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/a.json" "$capsule $args" >/dev/null 2>&1
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/b.json" "$runner $args" >/dev/null 2>&1
  case $task in *.py) target=5 ;; *) target=3 ;; esac
  printf '%-28s %12s %16s %8s\n' "$task" "$(p50 "$work/a.json")" "$(p50 "$work/b.json")" "$target"
done

echo
echo "== capsule exec --verbose stages, $runs runs (ms, median of each) =="
printf '%-28s %8s %8s %8s %12s %8s %8s %10s\n' task engine verify load instantiate run total "whole"
for task in "${tasks[@]}"; do
  bundle=$work/$(basename "$task" | tr . -).capsule
  : > "$work/stages"
  for _ in $(seq "$runs"); do
    start=$(date +%s%N)
    "$capsule" exec "$bundle" --trust "$work/ci.key.pub" -v 2>>"$work/stages" >/dev/null
    echo "capsule: whole $(( ($(date +%s%N) - start) / 1000 ))e-3 ms" >> "$work/stages"
  done
  python3 - "$task" "$work/stages" <<'PY'
import re, statistics, sys
stages = {}
for line in open(sys.argv[2]):
    m = re.match(r"capsule: (\w+)\s+([0-9.e-]+) ms", line)
    if m:
        stages.setdefault(m[1], []).append(float(m[2]))
cols = ["engine", "verify", "load", "instantiate", "run", "total", "whole"]
print("%-28s %8s %8s %8s %12s %8s %8s %10s" % (sys.argv[1], *("%.2f" % statistics.median(stages[c]) if c in stages else "-" for c in cols)))
PY
done
