#!/usr/bin/env bash
# Builds the host packages, each holding the `capsule` binaries (the lean front and `capsule-full`
# beside it, see ci/build_capsule.sh) and the prebuilt interpreters:
#   target/wheels/capsule-VERSION-py3-none-PLATFORM.whl   (maturin, bindings = "bin")
#   target/npm/capsule-VERSION.tgz                         (npm pack)
# Installs what it needs: maturin from the Python package index into target/sdk/tools.
#
#   bash sdk/build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
stage=$root/target/sdk
interpreters=$stage/wheel-data/data/share/capsule/interpreters
rm -rf "$stage/wheel-data" "$stage/npm"
mkdir -p "$interpreters" "$stage/wheel-data/scripts" "$root/target/wheels" "$root/target/npm"
"$capsule" interpreters export "$interpreters" >/dev/null

# Python: maturin builds the root package's binary, `capsule-full`; the wheel's data dir installs the
# lean `capsule` beside it (scripts/) and share/capsule/interpreters.
cp "$capsule" "$stage/wheel-data/scripts/capsule"
if [ ! -x "$stage/tools/bin/maturin" ]; then
  python3 -m venv "$stage/tools"
  "$stage/tools/bin/pip" install --quiet 'maturin>=1.5,<2'
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
rm -f "$root"/target/wheels/capsule-"$version"-*.whl
(cd sdk/python && "$stage/tools/bin/maturin" build --release --quiet -o "$root/target/wheels" >/dev/null)

# Node: the package with bin/capsule, bin/capsule-full and share/capsule/interpreters beside them.
cp -r sdk/node "$stage/npm"
mkdir -p "$stage/npm/bin" "$stage/npm/share/capsule"
cp "$capsule" "$stage/npm/bin/capsule"
cp "$(dirname "$capsule")/capsule-full" "$stage/npm/bin/capsule-full"
cp -r "$interpreters" "$stage/npm/share/capsule/interpreters"
node -e 'const p=require(process.argv[1]); p.version=process.argv[2]; require("fs").writeFileSync(process.argv[1], JSON.stringify(p, null, 2)+"\n")' \
  "$stage/npm/package.json" "$version"
rm -f "$root/target/npm/capsule-$version.tgz"
(cd "$stage/npm" && npm pack --silent --pack-destination "$root/target/npm" >/dev/null)
ls "$root"/target/wheels/capsule-"$version"-*.whl "$root/target/npm/capsule-$version.tgz"
