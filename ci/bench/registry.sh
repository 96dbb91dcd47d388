#!/usr/bin/env bash
# Issue 18: bundles through an OCI registry (Debian's docker-registry on loopback), whole process,
# medians: push (first, and again when the registry has every blob), `exec oci://` on a host that
# never saw the bundle (empty runner store: fetch this host's code and layers, verify, run), warm
# `exec oci://...@sha256` (everything in the store: no network) and, for scale, warm `exec FILE`.
#
#   ci/bench/registry.sh [RUNS]      (default 20; installs hyperfine and the registry if missing)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-20}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash ci/services.sh
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$work/storage" "$port" > "$work/registry.yml"
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
registry=$!
trap 'kill "$registry" 2>/dev/null; rm -rf "$work"' EXIT
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.05; done
export CAPSULE_CACHE_DIR=$work/cache
"$capsule" keygen -o "$work/ci.key" >/dev/null
p50() { python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.1f" % (t[len(t)//2]*1000))' "$1"; }

printf '%-10s %10s %12s %14s %16s %18s %14s\n' task "bundle MB" "push (ms)" "push again" "exec oci, cold" "exec oci@digest" "exec file"
for task in examples/hello.py examples/hello.js; do
  name=$(basename "$task" | tr . -)
  bundle=$work/$name.capsule
  "$capsule" build "$task" -o "$bundle" --sign "$work/ci.key" >/dev/null 2>&1
  ref=oci://127.0.0.1:$port/bench/$name
  start=$(date +%s%N)
  digest=$("$capsule" push "$bundle" "$ref:v1" 2>/dev/null)
  push_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  hyperfine -N --runs 5 --export-json "$work/again.json" "$capsule push $bundle $ref:v1" >/dev/null 2>&1
  # Cold: a fresh runner store per run (the prepare step empties it).
  hyperfine -N --runs 5 --prepare "rm -rf $work/cold" --export-json "$work/cold.json" \
    "env CAPSULE_CACHE_DIR=$work/cold $capsule exec $ref@$digest --trust $work/ci.key.pub" >/dev/null 2>&1
  "$capsule" exec "$ref@$digest" --trust "$work/ci.key.pub" >/dev/null
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/warm.json" \
    "$capsule exec $ref@$digest --trust $work/ci.key.pub" >/dev/null 2>&1
  sleep 2.5  # a file's identity stands for its bytes once left alone for 2 s
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/file.json" \
    "$capsule exec $bundle --trust $work/ci.key.pub" >/dev/null 2>&1
  printf '%-10s %10.1f %12s %14s %16s %18s %14s\n' "$name" "$(echo "$(stat -c %s "$bundle") / 1000000" | bc -l)" \
    "$push_ms" "$(p50 "$work/again.json")" "$(p50 "$work/cold.json")" "$(p50 "$work/warm.json")" "$(p50 "$work/file.json")"
done
