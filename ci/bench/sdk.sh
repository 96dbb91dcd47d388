#!/usr/bin/env bash
# `run_code("1+1")` latency through each host SDK vs the raw worker protocol, and capsule-run's
# adapter side by side, measured in one run (p50/p99 of sequential calls after a warm-up; the
# machine is shared: compare within a run):
#   raw      NDJSON written to `capsule worker` by hand (the floor every SDK adds to)
#   sync     Python `Capsule().run_code`        (from the built wheel, in a fresh virtualenv)
#   async    Python `AsyncCapsule().run_code`
#   node     Node `new Capsule().runCode`       (from the built npm tarball, in a fresh project)
#   adapter  capsule-run-adapter 0.3.5 `run_python` / `run_javascript` (from the package index,
#            its own venv; its first calls, which compile its sandboxes, are the warm-up)
#
#   ci/bench/sdk.sh [CALLS]      (default 200 per client and language)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
calls=${1:-200}
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
printf '%-10s %-11s %8s %10s %10s\n' client language calls "p50 ms" "p99 ms"
row() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%-10s %-11s %8d %10.3f %10.3f" % (r["client"], r["language"], r["calls"], r["p50_ms"], r["p99_ms"]))' "$1"; }
for language in python javascript; do
  row "$("$work/venv/bin/python" $client raw --language $language --count "$calls" --worker "$work/venv/bin/capsule worker")"
  row "$("$work/venv/bin/python" $client sync --language $language --count "$calls")"
  row "$("$work/venv/bin/python" $client async --language $language --count "$calls")"
  row "$(cd "$work/node" && node sdk_client.mjs $language "$calls")"
  # The adapter runs the `capsule` of its own dependency (capsule-run) from PATH.
  row "$(cd "$work" && PATH=$work/adapter/bin:$PATH "$work/adapter/bin/python" "$root/$client" adapter --language $language --count "$calls")"
done
