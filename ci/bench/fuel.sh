#!/usr/bin/env bash
# What each compute level buys: a busy loop per guest is run until it runs out of fuel at LOW,
# MEDIUM and HIGH, and the time it ran is printed (the `duration_ms` of the envelope; median of 3).
#
#   ci/bench/fuel.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%-8s %14s %16s %16s\n' level fuel "CPython (ms)" "QuickJS (ms)"
for level in LOW MEDIUM HIGH; do
  printf 'from capsule import task\n\n@task(compute="%s", timeout="10m")\ndef main():\n    n = 0\n    while True:\n        n += 1\n' "$level" > "$work/loop.py"
  printf 'import { task } from "capsule";\nexport const main = task({ compute: "%s", timeout: "10m" }, () => { let n = 0; for (;;) n++; });\n' "$level" > "$work/loop.js"
  row=()
  for ext in py js; do
    "$capsule" build "$work/loop.$ext" -o "$work/loop-$ext.capsule" --force --target "$(uname -m)" >/dev/null 2>&1
    times=()
    for _ in 1 2 3; do
      # exec exits 1 (the task fails by running out of fuel): that is the point.
      times+=("$({ "$capsule" exec "$work/loop-$ext.capsule" --allow-unsigned --json 2>/dev/null || true; } \
        | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e["error"]["error_type"]=="out_of_fuel", e; print(e["execution"]["duration_ms"])')")
    done
    row+=("$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)")
  done
  fuel=$(python3 -c "print({'LOW':'1e9','MEDIUM':'1e10','HIGH':'1e11'}['$level'])")
  printf '%-8s %14s %16s %16s\n' "$level" "$fuel" "${row[0]}" "${row[1]}"
done
