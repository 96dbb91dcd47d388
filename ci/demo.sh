#!/usr/bin/env bash
# The main job end to end, from a fresh Debian 12 machine: build the guest images and capsule, then
# build the bundled examples into signed-off bundles and execute them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash guest-images/build.sh
cargo build --release --locked
capsule=./target/release/capsule
out=target/demo
mkdir -p "$out"
for example in examples/hello.py examples/hello.js; do
  bundle="$out/$(basename "$example" | tr . -).capsule"
  echo "+ capsule build $example -o $bundle" >&2
  "$capsule" build "$example" -o "$bundle" --force
  echo "+ capsule exec $bundle -- Ada" >&2
  "$capsule" exec "$bundle" -- Ada
  echo "+ capsule exec $bundle --json -- Ada" >&2
  "$capsule" exec "$bundle" --json -- Ada
done
