#!/usr/bin/env bash
# The host SDK tests: builds the wheel and the npm tarball (sdk/build.sh), installs them into a
# fresh virtualenv and a fresh npm project in a temporary directory, with a fresh Capsule cache
# (the interpreters must come from the packages), and runs the Python tests (pytest) and the Node
# tests (node --test, plus tsc on a file using the types) against the real binary they ship.
#
#   bash tests/sdk/run.sh [PYTEST ARGS...]     e.g. -k session
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
bash sdk/build.sh >/dev/null
wheel=$(ls "$root"/target/wheels/capsule-*.whl | head -1)
tarball=$(ls "$root"/target/npm/capsule-*.tgz | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
unset CAPSULE_BIN VIRTUAL_ENV
# No other `capsule` may be found on PATH: the packages must use the binary they ship.
export PATH=$(printf '%s' "$PATH" | tr ':' '\n' | while read -r dir; do [ -x "$dir/capsule" ] || printf '%s:' "$dir"; done)

echo "== Python SDK (fresh virtualenv, $(basename "$wheel")) =="
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel" pytest
(cd "$work" && "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/sdk/python" "$@")

echo "== Node SDK (fresh npm project, $(basename "$tarball")) =="
mkdir "$work/node-project"
cp "$root"/tests/sdk/node/* "$work/node-project/"
(cd "$work/node-project" \
  && npm init -y >/dev/null \
  && npm install --silent --no-audit --no-fund "$tarball" typescript@5 @types/node@20 >/dev/null \
  && npx --no-install tsc --noEmit --strict --skipLibCheck --target es2022 --module nodenext --moduleResolution nodenext types-check.mts)
(cd "$work/node-project" && FIXTURES="$root/tests/sdk/fixtures" node --test ./*.test.mjs ./*.test.cjs)
