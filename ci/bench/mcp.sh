#!/usr/bin/env bash
# `capsule mcp` over stdio, as an MCP client sees it: the round trip of a `run_python("1+1")`
# tool call (client request -> rmcp -> worker protocol -> fresh sandbox -> result), p50/p90 over
# CALLS calls on one connection, after a warm-up. The client is the `mcp` package from PyPI in a
# virtual environment under the cache (created on first use with the system's pip configuration).
#
#   ci/bench/mcp.sh [CALLS]      (default 200)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
calls=${1:-200}
bash ci/build_capsule.sh --quiet
target=${CARGO_TARGET_DIR:-target}
capsule=$(realpath "$target/release/capsule")
venv=${CAPSULE_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule-bench/mcp-venv}
if ! "$venv/bin/python" -c 'import mcp.client.session' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet mcp
fi
# The interpreters are built once per machine: not part of the measurement.
"$capsule" run-code -l python -c '1' >/dev/null
steps=$(python3 -c "import json,sys; n=int(sys.argv[1]); print(json.dumps([{'op':'call','name':'run_python','arguments':{'code':'1+1'}}]*(n+20)))" "$calls")
"$venv/bin/python" tests/fixtures/mcp/client.py "$steps" stdio "$capsule" mcp | python3 -c '
import json, statistics, sys
out = json.load(sys.stdin)
assert all(s["result"]["structuredContent"]["result"]["value"] == 2 for s in out["steps"]), "a call failed"
ms = sorted(1000 * s for s in out["seconds"][20:])
q = statistics.quantiles(ms, n=10)
print(f"capsule mcp (stdio), run_python(\"1+1\"), {len(ms)} calls after 20 warm-up: "
      f"p50 {statistics.median(ms):.2f} ms, p90 {q[8]:.2f} ms, min {ms[0]:.2f} ms")
'
