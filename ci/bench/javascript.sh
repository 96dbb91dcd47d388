#!/usr/bin/env bash
# JavaScript/TypeScript projects vs a single file, whole process, medians (compare ratios within
# one run):
#   - build after a one-line edit of a TypeScript task with 3 npm dependencies vs examples/hello.js;
#   - exec p50 of both bundles;
#   - bundle sizes (two targets);
#   - fuel and in-guest time of crypto.createHash("sha256") over 1 MiB (hashing runs in Rust).
#
#   ci/bench/javascript.sh [RUNS]    (default 30; installs hyperfine if missing; needs the npm registry)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
runs=${1:-30}
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null; }
bash guest-images/build.sh >/dev/null
bash ci/build_capsule.sh --quiet
capsule=$(realpath "${CARGO_TARGET_DIR:-target}/release/capsule")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAPSULE_CACHE_DIR=$work/cache
stat_ms() { python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.1f" % (t[len(t)//2]*1000))' "$1"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
size() { python3 -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1])/1e6))' "$1"; }

mkdir -p "$work/project" "$work/hello"
cp examples/hello.js "$work/hello/hello.js"
( cd "$work/project" && printf '{"name": "bench", "private": true, "type": "module"}\n' > package.json \
  && npm install --silent --no-audit --no-fund lodash dayjs zod >/dev/null )
cat > "$work/project/task.ts" <<'EOF'
import { task } from "capsule";
import _ from "lodash";
import dayjs from "dayjs";
import { z } from "zod";

const Input = z.object({ name: z.string() });

export const main = task({ name: "main", compute: "MEDIUM", ram: "64MB", timeout: "5s" }, (name: string = "world") => {
  const { name: who } = Input.parse({ name });
  return { greeting: `Hello, ${_.capitalize(who)}!`, year: dayjs("2024-05-01").year() };
});
EOF
cat > "$work/project/hash.js" <<'EOF'
import { task } from "capsule";
import { createHash } from "crypto";
const data = Buffer.alloc(1 << 20, 7);
export const main = task({ name: "main", compute: "HIGH" }, () => {
  const started = performance.now();
  const digest = createHash("sha256").update(data).digest("hex");
  return { digest, ms: performance.now() - started };
});
EOF

build() { "$capsule" build "$1" -o "$2" --force >/dev/null 2>&1; }
edit_times() { # edit_times FILE OUT -> median of 5 builds after a one-line edit
  local file=$1 out=$2 times=() original
  original=$(cat "$file")
  for i in 1 2 3 4 5; do
    printf '%s\nexport const edit = %s;\n' "$original" "$i" > "$file"
    local start; start=$(date +%s%N); build "$file" "$out"; times+=("$(ms_since "$start")")
  done
  printf '%s\n' "$original" > "$file"
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}
build "$work/project/task.ts" "$work/project.capsule"
build "$work/hello/hello.js" "$work/hello.capsule"
project_edit=$(edit_times "$work/project/task.ts" "$work/project.capsule")
hello_edit=$(edit_times "$work/hello/hello.js" "$work/hello.capsule")
build "$work/project/task.ts" "$work/project.capsule"
build "$work/hello/hello.js" "$work/hello.capsule"
for b in project hello; do
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/$b.json" "$capsule exec $work/$b.capsule --allow-unsigned" >/dev/null 2>&1
done
project_exec=$(stat_ms "$work/project.json")
hello_exec=$(stat_ms "$work/hello.json")

echo "== TypeScript task with 3 npm dependencies (lodash, dayjs, zod) vs examples/hello.js =="
printf '%-44s %12s %12s %8s\n' "" project hello.js ratio
printf '%-44s %12s %12s %8s\n' "build after a one-line edit (ms)" "$project_edit" "$hello_edit" "$(ratio "$project_edit" "$hello_edit")"
printf '%-44s %12s %12s %8s\n' "exec p50, whole process, $runs runs (ms)" "$project_exec" "$hello_exec" "$(ratio "$project_exec" "$hello_exec")"
printf '%-44s %12s %12s %8s\n' "bundle size, x86_64 + aarch64 (MB)" "$(size "$work/project.capsule")" "$(size "$work/hello.capsule")" "$(ratio "$(size "$work/project.capsule")" "$(size "$work/hello.capsule")")"

build "$work/project/hash.js" "$work/hash.capsule"
echo
echo "== crypto.createHash(\"sha256\") over 1 MiB, in the guest (median of 5) =="
for i in 1 2 3 4 5; do
  "$capsule" exec "$work/hash.capsule" --allow-unsigned --json
done | python3 -c '
import json, sys
runs = [json.loads(line) for line in sys.stdin]
fuel = sorted(r["execution"]["fuel_consumed"] for r in runs)[2]
ms = sorted(r["result"]["ms"] for r in runs)[2]
print(f"fuel (whole call) {fuel:.3g}, hashing {ms:.2f} ms")'
