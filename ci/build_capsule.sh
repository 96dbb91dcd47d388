#!/usr/bin/env bash
# Builds the `capsule` users type, which is two binaries side by side in target/release:
#   capsule       the lean front (runner package): runs `exec`, hands every other command on
#   capsule-full  the whole CLI, with the compiler
# (and `capsule-runner`, the minimal runner). Two cargo invocations, so that cargo's feature
# unification does not link the compiler's code generator into the lean binaries.
#
#   bash ci/build_capsule.sh [--quiet]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --locked "$@" -p capsule-runner
cargo build --release --locked "$@" -p capsule --bin capsule-full
