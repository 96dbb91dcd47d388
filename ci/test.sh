#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing (apt packages, the
# wasm32-wasip1 Rust target, the CPython source), builds the guest images (cached by content under
# ~/.cache/capsule), then runs every crate's tests against the real guests and runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash guest-images/build.sh
cargo test --release --locked --workspace
