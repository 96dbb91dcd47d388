#!/usr/bin/env bash
# The code interpreter over the raw worker protocol: first call after worker start, stateless
# `run_code` p50/p99, session cell p50/p99, memory per live session; per language. Medians; the
# machine is shared, so compare within one run.
#
#   ci/bench/interpreter.sh [CALLS]      (default 500 calls per measurement)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
calls=${1:-500}
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
target=${CARGO_TARGET_DIR:-target}
capsule=$(realpath "$target/release/capsule")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
# The interpreters are built once per machine (guest-images/build.sh prime does it in CI): not
# part of any measurement.
CAPSULE_BIN=$capsule bash guest-images/build.sh prime >/dev/null
python3 ci/bench/interpreter.py --capsule "$capsule" --calls "$calls"
