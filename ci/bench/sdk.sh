#!/usr/bin/env bash
# `run_code("1+1")` latency through each host SDK vs the raw worker protocol, and capsule-run's
# adapter side by side, measured in one run (p50/p99 of sequential calls after a warm-up, in
# interleaved rounds; the machine is shared: compare within a run):
#   raw      NDJSON written to `capsule worker` by hand (the floor every SDK adds to)
#   sync     Python `Capsule().run_code`        (from the built wheel, in a fresh virtualenv)
#   async    Python `AsyncCapsule().run_code`
#   node     Node `new Capsule().runCode`       (from the built npm tarball, in a fresh project)
#   adapter  capsule-run-adapter 0.3.5 `run_python` / `run_javascript` (from the package index,
#            its own venv; its first calls, which compile its sandboxes, are the warm-up)
#
#   ci/bench/sdk.sh [CALLS [ROUNDS]]     (default 200 calls per client, language and round; 3 rounds)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
calls=${1:-200}
rounds=${2:-3}
bash sdk/build.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
unset CAPSULE_BIN VIRTUAL_ENV

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$(ls "$root"/target/wheels/capsule-*.whl | head -1)"
mkdir "$work/node" && cp ci/bench/sdk_client.mjs "$work/node/"
(cd "$work/node" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund "$(ls "$root"/target/npm/capsule-*.tgz | head -1)" >/dev/null)
python3 -m venv "$work/adapter"
"$work/adapter/bin/pip" install --quiet 'capsule-run-adapter==0.3.5'

client="ci/bench/sdk_client.py"
results=$work/results.jsonl
# Rounds interleave the clients, so load from other processes hits them alike; each row is the
# median over the rounds of that client's p50 and p99.
for round in $(seq "$rounds"); do
  for language in python javascript; do
    "$work/venv/bin/python" $client raw --language $language --count "$calls" --worker "$work/venv/bin/capsule worker" >>"$results"
    "$work/venv/bin/python" $client sync --language $language --count "$calls" >>"$results"
    "$work/venv/bin/python" $client async --language $language --count "$calls" >>"$results"
    (cd "$work/node" && node sdk_client.mjs $language "$calls") >>"$results"
    # The adapter runs the `capsule` of its own dependency (capsule-run) from PATH.
    (cd "$work" && PATH=$work/adapter/bin:$PATH "$work/adapter/bin/python" "$root/$client" adapter --language $language --count "$calls") >>"$results"
  done
done
python3 - "$results" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"run_code(\"1+1\") latency, sequential calls, median over {sys.argv[2]} round(s)")
print("%-10s %-11s %12s %10s %10s" % ("client", "language", "calls/round", "p50 ms", "p99 ms"))
for language in ("python", "javascript"):
    for name in ("raw", "sync", "async", "node", "adapter"):
        mine = [r for r in rows if r["client"] == name and r["language"] == language]
        print("%-10s %-11s %12d %10.3f %10.3f" % (name, language, mine[0]["calls"],
              statistics.median(r["p50_ms"] for r in mine), statistics.median(r["p99_ms"] for r in mine)))
PY
