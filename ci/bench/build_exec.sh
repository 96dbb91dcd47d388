#!/usr/bin/env bash
# Whole-process benchmark of the build/exec slice: `capsule build` wall time (warm guest images and
# compilation cache), `capsule exec` median over many runs, and bundle sizes. Prints a table.
#
#   ci/bench/build_exec.sh [RUNS]      (default 30 exec runs per bundle; needs hyperfine)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-30}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash guest-images/build.sh >/dev/null
cargo build --release --locked --quiet
capsule=$PWD/target/release/capsule
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=${CAPSULE_CACHE_DIR:-$HOME/.cache/capsule}

median() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (sorted(d["times"])[len(d["times"])//2]*1000))' "$1"; }

printf '%-22s %14s %14s %14s %12s\n' task "build (ms)" "exec p50 (ms)" "exec min (ms)" "bundle (MB)"
for task in examples/hello.py examples/hello.js ci/bench/tasks/trivial.py ci/bench/tasks/trivial.js; do
  name=$(basename "$task" | tr . -)
  bundle=$work/$name.capsule
  # Warm-up build (fills the incremental compilation cache), then timed builds.
  "$capsule" build "$task" -o "$bundle" --force >/dev/null 2>&1
  hyperfine -N --runs 3 --export-json "$work/build.json" "$capsule build $task -o $bundle --force" >/dev/null 2>&1
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/exec.json" "$capsule exec $bundle --allow-unsigned" >/dev/null 2>&1
  min=$(python3 -c 'import json,sys; print("%.1f" % (min(json.load(open(sys.argv[1]))["results"][0]["times"])*1000))' "$work/exec.json")
  size=$(python3 -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1])/1e6))' "$bundle")
  printf '%-22s %14s %14s %14s %12s\n' "$task" "$(median "$work/build.json")" "$(median "$work/exec.json")" "$min" "$size"
done
