#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing (apt packages, the
# wasm32-wasip1 Rust target, the CPython source), builds the guest images (cached by content under
# ~/.cache/capsule), then runs every crate's tests against the real guests and runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash guest-images/build.sh
# The OCI registry and NATS server the distribution tests start (on loopback, by pid).
bash ci/services.sh

# `capsule` (the lean front), `capsule-runner` and `capsule-full`: the runner package's binaries
# built on their own so that no other crate's wasmtime features leak into them.
bash ci/build_capsule.sh
compilers=$(cargo tree --locked -e normal -p capsule-runner --prefix none \
  | grep -E '^(cranelift-codegen|cranelift-frontend|wasmtime-internal-cranelift|wasmtime-internal-winch|winch-codegen) ' || true)
if [ -n "$compilers" ]; then
  echo "error: capsule-runner depends on a code generator:" >&2
  echo "$compilers" >&2
  exit 1
fi
runner=${CARGO_TARGET_DIR:-target}/release/capsule-runner
echo "capsule-runner: no code generator in its dependency tree; $(stat -c %s "$runner") bytes"
# Every shared object costs each exec its loading (runner/build.rs, runner/src/cli/entry.rs): the
# runner's binaries load the C library and nothing else.
for binary in capsule capsule-runner; do
  extra=$(ldd "${CARGO_TARGET_DIR:-target}/release/$binary" | grep -vE 'linux-vdso|libc\.so|ld-linux' || true)
  if [ -n "$extra" ]; then
    echo "error: $binary loads more than the C library:" >&2
    echo "$extra" >&2
    exit 1
  fi
done

cargo test --release --locked --workspace
# The guests' HTTP client (its own workspace; built for wasm32-wasip1 by build.sh) has host-side tests.
cargo test --locked --quiet --manifest-path guest-images/http-client/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}/http-client"

# The host SDKs, installed from the packages they build into a fresh virtualenv / npm project.
bash ci/sdk.sh
