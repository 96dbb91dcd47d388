#!/usr/bin/env bash
# The main job end to end, from a fresh Debian 12 machine: build the guest images and capsule, make
# a signing key, build the bundled examples into signed bundles, verify and execute them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash guest-images/build.sh
bash ci/build_capsule.sh
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
CAPSULE_BIN=$capsule bash guest-images/build.sh prime
out=target/demo
mkdir -p "$out"
run() { echo "+ $*" >&2; "$@"; }
[ -f "$out/demo.key" ] || run "$capsule" keygen -o "$out/demo.key"
# A Python project (helper package, data file, a PyPI dependency) beside the single files.
for example in examples/hello.py examples/hello.js examples/py-project/task.py; do
  bundle="$out/$(echo "${example#examples/}" | tr ./ --).capsule"
  run "$capsule" build "$example" -o "$bundle" --force --sign "$out/demo.key"
  run "$capsule" verify "$bundle" --trust "$out/demo.key.pub"
  arg=Ada; [ "$example" = examples/py-project/task.py ] && arg=4
  run "$capsule" exec "$bundle" --trust "$out/demo.key.pub" -- "$arg"
  run "$capsule" exec "$bundle" --trust "$out/demo.key.pub" --json -- "$arg"
done
