#!/usr/bin/env bash
# Whole-process benchmarks of building and executing, printed as tables (medians; compare ratios
# within one run, the machine is shared):
#   - `capsule build` for two targets: from a cold compiler cache, and after a one-line edit;
#   - `capsule exec` and the minimal `capsule-runner exec`, median and min over RUNS runs;
#   - bundle and binary sizes.
#
#   ci/bench/build_exec.sh [RUNS]      (default 30; installs hyperfine if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-30}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
cp "${CARGO_TARGET_DIR:-target}/release/capsule-runner" "${CARGO_TARGET_DIR:-target}/release/capsule-runner.minimal"
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
runner=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule-runner.minimal")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
stat_ms() { python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.1f %.1f" % (t[len(t)//2]*1000, t[0]*1000))' "$1"; }

echo "== build --export, x86_64 + aarch64 (ms) =="
printf '%-26s %12s %16s %12s\n' task cold "after an edit" "bundle MB"
for task in examples/hello.py examples/hello.js; do
  ext=${task##*.}
  cp "$task" "$work/task.$ext"
  rm -rf "$CAPSULE_CACHE_DIR/compiler"
  start=$(date +%s%N)
  "$capsule" build "$work/task.$ext" -o "$work/task.capsule" --force >/dev/null 2>&1
  cold=$(( ($(date +%s%N) - start) / 1000000 ))
  edits=()
  for i in 1 2 3 4 5; do
    # A one-line edit: a new constant at the end of the module.
    cp "$task" "$work/task.$ext"
    if [ "$ext" = py ]; then echo "EDIT = $i" >> "$work/task.$ext"; else echo "export const edit = $i;" >> "$work/task.$ext"; fi
    start=$(date +%s%N)
    "$capsule" build "$work/task.$ext" -o "$work/task.capsule" --force >/dev/null 2>&1
    edits+=($(( ($(date +%s%N) - start) / 1000000 )))
  done
  edit=$(printf '%s\n' "${edits[@]}" | sort -n | sed -n 3p)
  size=$(python3 -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1])/1e6))' "$work/task.capsule")
  printf '%-26s %12s %16s %12s\n' "$task" "$cold" "$edit" "$size"
done

echo
echo "== exec, whole process, $runs runs (ms) =="
printf '%-26s %14s %14s %18s %18s\n' task "capsule p50" "capsule min" "capsule-runner p50" "capsule-runner min"
for task in examples/hello.py examples/hello.js ci/bench/tasks/trivial.py ci/bench/tasks/trivial.js; do
  bundle=$work/$(basename "$task" | tr . -).capsule
  "$capsule" build "$task" -o "$bundle" --force >/dev/null 2>&1
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/a.json" "$capsule exec $bundle --allow-unsigned" >/dev/null 2>&1
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/b.json" "$runner exec $bundle --allow-unsigned" >/dev/null 2>&1
  read -r a50 amin < <(stat_ms "$work/a.json")
  read -r b50 bmin < <(stat_ms "$work/b.json")
  printf '%-26s %14s %14s %18s %18s\n' "$task" "$a50" "$amin" "$b50" "$bmin"
done

echo
echo "== binaries =="
printf '%-40s %10.1f MB\n' "capsule (compiler + runner)" "$(python3 -c "import os; print(os.path.getsize('$capsule')/1e6)")"
printf '%-40s %10.1f MB\n' "capsule-runner (no Cranelift)" "$(python3 -c "import os; print(os.path.getsize('$runner')/1e6)")"
