#!/usr/bin/env bash
# The host SDK tests (tests/sdk/run.sh): builds the Python wheel and the npm tarball
# (sdk/build.sh), installs each into a fresh virtualenv / fresh npm project with a fresh Capsule
# cache, and drives the real `capsule worker` they ship: a few minutes on a warm target dir.
# Installs what is missing: python3-venv, nodejs, npm (apt); maturin and pytest (Python package
# index); typescript and @types/node (npm registry).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
need=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash tests/sdk/run.sh
