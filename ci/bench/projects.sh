#!/usr/bin/env bash
# Python projects vs a single file, whole process, medians (compare ratios within one run):
#   - first build of a project with 5 PyPI dependencies from a cold dependency cache;
#   - build after a one-line edit (caches warm), project vs examples/hello.py;
#   - exec p50 of both bundles (layers are unpacked once per digest, not per exec);
#   - bundle sizes (two targets).
#
#   ci/bench/projects.sh [RUNS]      (default 30; installs hyperfine if missing; needs the package index)
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
unset VIRTUAL_ENV
stat_ms() { python3 -c 'import json,sys; t=sorted(json.load(open(sys.argv[1]))["results"][0]["times"]); print("%.1f" % (t[len(t)//2]*1000))' "$1"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# The project: a helper package, a data file, five dependencies imported at the top level.
mkdir -p "$work/project/report"
printf 'requests\njinja2\npyyaml\ntabulate\npython-dateutil\n' > "$work/project/requirements.txt"
printf 'Hello {{ name }}, {{ when }}\n' > "$work/project/report/template.txt"
cat > "$work/project/report/__init__.py" <<'EOF'
from pathlib import Path
import jinja2
TEMPLATE = jinja2.Template((Path(__file__).parent / "template.txt").read_text())
EOF
cat > "$work/project/task.py" <<'EOF'
import requests, yaml, tabulate
from dateutil import parser
from capsule import task
from report import TEMPLATE

@task(name="main", compute="MEDIUM", ram="64MB", timeout="5s")
def main(name: str = "world") -> dict:
    return {"greeting": TEMPLATE.render(name=name, when=parser.parse("2024-01-01").year)}
EOF
mkdir -p "$work/hello" && cp examples/hello.py "$work/hello/hello.py"

build() { "$capsule" build "$1" -o "$2" --force >/dev/null 2>&1; }

start=$(date +%s%N); build "$work/project/task.py" "$work/project.capsule"; cold=$(ms_since "$start")
build "$work/hello/hello.py" "$work/hello.capsule"
edit_times() { # edit_times FILE OUT -> median of 5 builds after a one-line edit
  local file=$1 out=$2 times=() original
  original=$(cat "$file")
  for i in 1 2 3 4 5; do
    printf '%s\nEDIT = %s\n' "$original" "$i" > "$file"
    local start; start=$(date +%s%N); build "$file" "$out"; times+=("$(ms_since "$start")")
  done
  printf '%s\n' "$original" > "$file"
  printf '%s\n' "${times[@]}" | sort -n | sed -n 3p
}
project_edit=$(edit_times "$work/project/task.py" "$work/project.capsule")
hello_edit=$(edit_times "$work/hello/hello.py" "$work/hello.capsule")
build "$work/project/task.py" "$work/project.capsule"
build "$work/hello/hello.py" "$work/hello.capsule"

for b in project hello; do
  hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/$b.json" "$capsule exec $work/$b.capsule --allow-unsigned" >/dev/null 2>&1
done
project_exec=$(stat_ms "$work/project.json")
hello_exec=$(stat_ms "$work/hello.json")
size() { python3 -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1])/1e6))' "$1"; }

echo "== Python project (5 dependencies) vs examples/hello.py =="
printf '%-44s %12s %12s %8s\n' "" project hello.py ratio
printf '%-44s %12s %12s %8s\n' "first build, cold dependency cache (ms)" "$cold" "-" "-"
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
printf '%-44s %12s %12s %8s\n' "build after a one-line edit (ms)" "$project_edit" "$hello_edit" "$(ratio "$project_edit" "$hello_edit")"
printf '%-44s %12s %12s %8s\n' "exec p50, whole process, $runs runs (ms)" "$project_exec" "$hello_exec" "$(ratio "$project_exec" "$hello_exec")"
printf '%-44s %12s %12s %8s\n' "bundle size, x86_64 + aarch64 (MB)" "$(size "$work/project.capsule")" "$(size "$work/hello.capsule")" "$(ratio "$(size "$work/project.capsule")" "$(size "$work/hello.capsule")")"
