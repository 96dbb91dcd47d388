#!/usr/bin/env bash
# Builds Capsule's guest images from source into a content-addressed cache, installing what a fresh
# Debian 12 machine lacks (apt packages, the wasm32-wasip1 Rust target, the CPython source).
#
#   guest-images/build.sh            build (or reuse) both guests
#   guest-images/build.sh python     just one of: python quickjs
#   guest-images/build.sh prime      after `cargo build --release`: warm the compiler's caches
#
# Outputs: $CAPSULE_CACHE_DIR/guest-images/<name>-<key>/ (default cache dir: ~/.cache/capsule), where
# <key> hashes every input of the recipe (these scripts, guest sources, the lock file, toolchain
# versions). `<name>.current` points at the newest build; the compiler's build.rs embeds it.
# Inputs fetched from upstream are checked against guest-images.lock: drift is an error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CAPSULE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/capsule}
OUT=$CACHE/guest-images
LOCK=$HERE/guest-images.lock
mkdir -p "$OUT" "$CACHE/sources"

log() { printf '[guest-images] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
lock_value() { awk -v k="$1" '$1 == k { print $2 }' "$LOCK"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(clang-16 lld-16 llvm-16 clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32 zstd curl)

ensure_toolchain() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    log "adding the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1 >/dev/null
  fi
  if ! command -v python3.11 >/dev/null; then
    log "installing python3.11 (the build python for CPython's cross build)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 >/dev/null
  fi
  BUILD_PYTHON=$(command -v python3.11 || true)
  [ -n "$BUILD_PYTHON" ] || die "python3.11 is needed on the build machine (to build and byte-compile CPython 3.11)"
}

# A line per toolchain component, hashed into every key so a compiler upgrade rebuilds.
toolchain_fingerprint() {
  clang-16 --version | head -1
  clang-19 --version | head -1
  dpkg-query -W -f='${Version}\n' wasi-libc
  rustc --version
  "$BUILD_PYTHON" --version
  zstd --version
}

hash_inputs() { # hash_inputs FILE... -> sha256 over names and contents, plus the toolchain
  { for f in "$@"; do printf '%s\n' "${f#"$HERE"/}"; cat "$f"; done; toolchain_fingerprint; } | sha256sum | cut -c1-16
}

# Downloads (once) and verifies an upstream input against the lock file.
fetch_locked() { # fetch_locked LOCK_KEY URL FILE
  local want path=$CACHE/sources/$3
  want=$(lock_value "$1")
  [ -n "$want" ] || die "guest-images.lock has no entry '$1'"
  if [ ! -f "$path" ]; then
    log "downloading $2"
    curl -sSfL --retry 3 -o "$path.part" "$2" || die "could not download $2"
    mv "$path.part" "$path"
  fi
  local got
  got=$(sha256sum "$path" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$3 has sha256 $got but guest-images.lock pins $want: an upstream input changed; refusing to build"
  printf '%s\n' "$path"
}

# The Debian mirror apt is configured with (deb822 sources or sources.list): upstream sources
# come from its pool, so this script names no download host of its own.
debian_mirror() {
  local uri
  uri=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { print $2 }';
           cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'; } \
         | grep -v -- '-security' | head -1)
  [ -n "$uri" ] || die "no Debian mirror in apt's configuration (/etc/apt/sources.list*)"
  printf '%s\n' "${uri%/}"
}

deterministic_tar_zst() { # deterministic_tar_zst DIR OUTPUT
  # From a file, not a pipe: zstd then records the size and fits the window to it, so the long
  # window (4% smaller for the stdlib) asks a reader for no more memory than the archive's size.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode='u+rw,go+r,go-w' \
      --format=gnu -C "$1" -cf "$2.tar" .
  zstd -q -19 --long=27 -T1 "$2.tar" -o "$2" -f
  rm -f "$2.tar"
}

write_info() { # write_info DIR NAME KEY
  local dir=$1
  {
    printf '{\n  "name": "%s",\n  "key": "%s",\n' "$2" "$3"
    printf '  "guest_sha256": "%s",\n' "$(sha256sum "$dir/guest.wasm" | cut -d' ' -f1)"
    if [ -f "$dir/stdlib.tar.zst" ]; then
      printf '  "stdlib_sha256": "%s",\n' "$(sha256sum "$dir/stdlib.tar.zst" | cut -d' ' -f1)"
    fi
    printf '  "toolchain": [%s]\n}\n' "$(toolchain_fingerprint | sed 's/"/\\"/g; s/.*/"&"/' | paste -sd, -)"
  } > "$dir/info.json"
}

# ---- python -----------------------------------------------------------------------------------

# zlib for wasm32-wasi (gzip, zipfile deflate, and urllib3/requests import it unconditionally).
build_zlib() { # build_zlib DIR SYSROOT -> DIR/include/{zlib,zconf}.h and DIR/lib/libz.a
  local dir=$1 tarball src
  tarball=$(fetch_locked zlib_1.2.13.dfsg.orig.tar.bz2 \
    "$(debian_mirror)/pool/main/z/zlib/zlib_1.2.13.dfsg.orig.tar.bz2" zlib_1.2.13.dfsg.orig.tar.bz2)
  mkdir -p "$dir/include" "$dir/lib" "$dir/src"
  tar xjf "$tarball" -C "$dir/src"
  src=$dir/src/zlib-1.2.13.dfsg
  local objs=()
  for c in adler32 compress crc32 deflate gzclose gzlib gzread gzwrite infback inffast inflate inftrees trees uncompr zutil; do
    clang-19 --target=wasm32-wasi --sysroot="$2" -O2 -w -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -c "$src/$c.c" -o "$dir/src/$c.o"
    objs+=("$dir/src/$c.o")
  done
  llvm-ar-19 rcs "$dir/lib/libz.a" "${objs[@]}"
  cp "$src/zlib.h" "$src/zconf.h" "$dir/include/"
}

# libbz2 for wasm32-wasi (the bz2 module; networkx and others import it unconditionally).
build_bzip2() { # build_bzip2 DIR SYSROOT -> DIR/include/bzlib.h and DIR/lib/libbz2.a
  local dir=$1 tarball src
  tarball=$(fetch_locked bzip2_1.0.8.orig.tar.gz \
    "$(debian_mirror)/pool/main/b/bzip2/bzip2_1.0.8.orig.tar.gz" bzip2_1.0.8.orig.tar.gz)
  mkdir -p "$dir/include" "$dir/lib" "$dir/src"
  tar xzf "$tarball" -C "$dir/src"
  src=$dir/src/bzip2-1.0.8
  local objs=()
  for c in blocksort huffman crctable randtable compress decompress bzlib; do
    clang-19 --target=wasm32-wasi --sysroot="$2" -O2 -w -D_FILE_OFFSET_BITS=64 -c "$src/$c.c" -o "$dir/src/$c.o"
    objs+=("$dir/src/$c.o")
  done
  llvm-ar-19 rcs "$dir/lib/libbz2.a" "${objs[@]}"
  cp "$src/bzlib.h" "$dir/include/"
}

# --with-pymalloc: CPython's configure turns its small-object allocator off for WASI, sending every
# int and frame to dlmalloc; with it on, sum-of-squares style loops run ~25% faster.
build_libpython() { # -> sets CPY to the configured build tree of CPython with libpython3.11.a (and ZLIB)
  local tarball key
  tarball=$(fetch_locked python3.11_3.11.2.orig.tar.gz \
    "$(debian_mirror)/pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz" \
    python3.11_3.11.2.orig.tar.gz)
  key=$( { lock_value python3.11_3.11.2.orig.tar.gz; lock_value zlib_1.2.13.dfsg.orig.tar.bz2; lock_value bzip2_1.0.8.orig.tar.gz;
           sed -n '/^build_zlib()/,/^}/p;/^build_bzip2()/,/^}/p;/^build_libpython()/,/^}/p' "$HERE/build.sh"; toolchain_fingerprint; } | sha256sum | cut -c1-16)
  CPY=$CACHE/cpython/3.11.2-$key
  ZLIB=$CPY/zlib BZIP2=$CPY/bzip2
  if [ -f "$CPY/.complete" ]; then return; fi
  log "building CPython 3.11.2 for wasm32-wasi (about 2 minutes on 2 cores)"
  rm -rf "$CPY" && mkdir -p "$CPY"
  # A sysroot of symlinks: --sysroot=/usr would let clang see glibc's headers.
  mkdir -p "$CPY/sysroot/include" "$CPY/sysroot/lib"
  ln -s /usr/include/wasm32-wasi "$CPY/sysroot/include/wasm32-wasi"
  ln -s /usr/lib/wasm32-wasi "$CPY/sysroot/lib/wasm32-wasi"
  tar xzf "$tarball" -C "$CPY"
  local src=$CPY/Python-3.11.2 sysroot=$CPY/sysroot
  build_zlib "$ZLIB" "$sysroot"
  build_bzip2 "$BZIP2" "$sysroot"
  mkdir -p "$src/builddir/wasi"
  (
    cd "$src/builddir/wasi"
    CONFIG_SITE=../../Tools/wasm/config.site-wasm32-wasi ../../configure -C -q \
      --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu --with-build-python="$BUILD_PYTHON" \
      --with-pymalloc \
      CC="clang-19 --target=wasm32-wasi --sysroot=$sysroot" CPP="clang-19 --target=wasm32-wasi --sysroot=$sysroot -E" \
      AR=llvm-ar-19 RANLIB=llvm-ranlib-19 READELF=true PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$sysroot/lib/pkgconfig" \
      CPPFLAGS="-I$ZLIB/include -I$BZIP2/include" LDFLAGS="-L$ZLIB/lib -L$BZIP2/lib" \
      >"$CPY/configure.log" 2>&1 || { tail -30 "$CPY/configure.log"; die "CPython configure failed (log: $CPY/configure.log)"; }
    # wasi-libc's clockid_t is a pointer, which clang 19 rejects as an int conversion in timemodule.c.
    make -j"$(nproc)" EXTRA_CFLAGS="-Wno-int-conversion" libpython3.11.a Modules/_decimal/libmpdec/libmpdec.a \
      Modules/expat/libexpat.a pybuilddir.txt >"$CPY/make.log" 2>&1 \
      || { tail -30 "$CPY/make.log"; die "CPython make failed (log: $CPY/make.log)"; }
  )
  touch "$CPY/.complete"
}

# Debian's headers, but Rust's newer wasi-libc (it has __wasilibc_reset_preopens) and crt files.
guest_sysroot() { # guest_sysroot DIR
  local dir=$1 rust_libc
  rust_libc=$(rustc --print sysroot)/lib/rustlib/wasm32-wasip1/lib/self-contained
  mkdir -p "$dir/include" "$dir/lib/wasm32-wasi"
  ln -sfn /usr/include/wasm32-wasi "$dir/include/wasm32-wasi"
  for f in /usr/lib/wasm32-wasi/*; do ln -sf "$f" "$dir/lib/wasm32-wasi/"; done
  for f in libc.a crt1-command.o crt1-reactor.o; do ln -sf "$rust_libc/$f" "$dir/lib/wasm32-wasi/$f"; done
}

# ---- the in-guest HTTP client (wasi:http), shared by both guests ----------------------------------

HTTP_CLIENT=$HERE/http-client

http_client_inputs() {
  echo "$HTTP_CLIENT/Cargo.toml" "$HTTP_CLIENT/Cargo.lock" $(find "$HTTP_CLIENT/src" -type f | sort)
}

build_http_client() { # -> sets HTTP_LIB to the static library the CPython guest links
  log "http-client: building (wasm32-wasip1 static library)"
  cargo build --release --locked --quiet --target wasm32-wasip1 \
    --manifest-path "$HTTP_CLIENT/Cargo.toml" --target-dir "$CACHE/http-client-target" \
    || die "building the guest HTTP client failed"
  HTTP_LIB=$CACHE/http-client-target/wasm32-wasip1/release/libcapsule_guest_http.a
}

build_python() {
  local key dest
  key=$(hash_inputs "$HERE/build.sh" "$LOCK" "$HERE/python/guest.c" "$HERE/python/wasi-compat.c" \
        "$HERE/python/pack_stdlib.py" "$HERE"/python/capsule/*.py $(http_client_inputs))
  dest=$OUT/python-$key
  if [ -f "$dest/info.json" ]; then
    log "python: cache hit ($dest)"
    ln -sfn "python-$key" "$OUT/python.current"
    return
  fi
  build_libpython
  build_http_client
  local work src=$CPY/Python-3.11.2 b=$CPY/Python-3.11.2/builddir/wasi
  work=$(mktemp -d)
  guest_sysroot "$work/sysroot"
  log "python: linking the guest"
  clang-19 --target=wasm32-wasi --sysroot="$work/sysroot" -O2 -I"$src/Include" -I"$b" \
    -c "$HERE/python/guest.c" -o "$work/guest.o"
  clang-19 --target=wasm32-wasi --sysroot="$work/sysroot" -O2 -c "$HERE/python/wasi-compat.c" -o "$work/wasi-compat.o"
  clang-19 --target=wasm32-wasi --sysroot="$work/sysroot" -mexec-model=reactor -fuse-ld=lld \
    "$work/guest.o" "$work/wasi-compat.o" "$b/libpython3.11.a" "$b/Modules/_decimal/libmpdec/libmpdec.a" "$b/Modules/expat/libexpat.a" \
    "$ZLIB/lib/libz.a" "$BZIP2/lib/libbz2.a" \
    "$HTTP_LIB" \
    -lwasi-emulated-signal -lwasi-emulated-getpid -lwasi-emulated-process-clocks -lm \
    -Wl,--wrap=__wasi_fd_filestat_get -Wl,--wrap=__wasi_path_filestat_get -Wl,--wrap=__wasi_fd_readdir \
    -Wl,-z,stack-size=8388608 -Wl,--strip-debug -o "$work/guest.wasm"

  log "python: assembling the stdlib layer"
  local lib=$work/stdlib
  mkdir -p "$lib"
  # Left out: tests, tools and docs, and what cannot work here: msilib, curses and ctypes need C
  # modules this build has no way to have (the SDK puts a sandbox `ctypes` in the real one's
  # place), and _pydecimal is only decimal's fallback when _decimal is missing, which it is not.
  (cd "$src/Lib" && tar cf - --exclude='test' --exclude='tests' --exclude='idle_test' --exclude='__pycache__' \
     --exclude='idlelib' --exclude='tkinter' --exclude='turtledemo' --exclude='ensurepip' --exclude='lib2to3' \
     --exclude='pydoc_data' --exclude='venv' --exclude='turtle.py' --exclude='distutils' \
     --exclude='msilib' --exclude='curses' --exclude='ctypes' --exclude='_pydecimal.py' .) | tar xf - -C "$lib"
  cp "$b/$(cat "$b/pybuilddir.txt")"/_sysconfigdata_*.py "$lib/"
  cp -r "$HERE/python/capsule" "$lib/capsule"
  rm -rf "$lib/capsule/__pycache__"
  # The layer holds one file, stdlib.zip (guest.c puts it on sys.path; see pack_stdlib.py).
  mkdir -p "$work/stdlib-layer"
  "$BUILD_PYTHON" "$HERE/python/pack_stdlib.py" "$lib" "$work/stdlib-layer/stdlib.zip" \
    /usr/local/lib/python3.11/stdlib.zip || die "packing the stdlib failed"
  deterministic_tar_zst "$work/stdlib-layer" "$work/stdlib.tar.zst"

  mkdir -p "$dest.tmp"
  mv "$work/guest.wasm" "$work/stdlib.tar.zst" "$dest.tmp/"
  write_info "$dest.tmp" python "$key"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  rm -rf "$work"
  ln -sfn "python-$key" "$OUT/python.current"
  log "python: built $dest ($(du -h "$dest/guest.wasm" | cut -f1) guest, $(du -h "$dest/stdlib.tar.zst" | cut -f1) stdlib layer)"
}

# ---- quickjs ----------------------------------------------------------------------------------

build_quickjs() {
  local crate=$HERE/quickjs key dest
  key=$(hash_inputs "$HERE/build.sh" "$LOCK" "$crate/Cargo.toml" "$crate/Cargo.lock" "$crate/build-env.sh" \
        $(find "$crate/src" -type f | sort) $(http_client_inputs))
  dest=$OUT/quickjs-$key
  if [ -f "$dest/info.json" ]; then
    log "quickjs: cache hit ($dest)"
    ln -sfn "quickjs-$key" "$OUT/quickjs.current"
    return
  fi
  local want_rquickjs
  want_rquickjs=$(lock_value rquickjs)
  grep -A1 '^name = "rquickjs"$' "$crate/Cargo.lock" | grep -q "version = \"$want_rquickjs\"" \
    || die "quickjs/Cargo.lock does not pin rquickjs $want_rquickjs as guest-images.lock says"
  log "quickjs: building the rquickjs guest"
  (
    # shellcheck source=quickjs/build-env.sh
    source "$crate/build-env.sh"
    cd "$crate"
    CARGO_TARGET_DIR=$CACHE/quickjs-target cargo build --quiet --locked --release --target wasm32-wasip1
  )
  mkdir -p "$dest.tmp"
  cp "$CACHE/quickjs-target/wasm32-wasip1/release/capsule_guest_quickjs.wasm" "$dest.tmp/guest.wasm"
  write_info "$dest.tmp" quickjs "$key"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
  ln -sfn "quickjs-$key" "$OUT/quickjs.current"
  log "quickjs: built $dest ($(du -h "$dest/guest.wasm" | cut -f1))"
}

# Fills the compiler's caches (wasmtime's module cache for the Wizer step, Cranelift's
# incremental cache for precompiling) by building a trivial task per guest for every target, so
# that a user's first build compiles only what differs from the guest. Needs a built `capsule`.
prime() {
  local capsule=${CAPSULE_BIN:-$HERE/../target/release/capsule} work
  [ -x "$capsule" ] || die "prime needs a built capsule (bash ci/build_capsule.sh), or CAPSULE_BIN"
  work=$(mktemp -d)
  for task in "$HERE"/../ci/bench/tasks/trivial.py "$HERE"/../ci/bench/tasks/trivial.js; do
    "$capsule" build "$task" -o "$work/primed.capsule" --force >/dev/null 2>&1 || { rm -rf "$work"; die "priming with $task failed"; }
  done
  rm -rf "$work"
  # The code interpreters are bundles too: build them now, so a first `run-code` is fast.
  for language in python javascript; do
    "$capsule" run-code -l "$language" -c 1 >/dev/null 2>&1 || die "building the $language interpreter failed"
  done
  log "primed the compiler caches and the interpreters under ${CAPSULE_CACHE_DIR:-$CACHE}"
}

main() {
  local which=${1:-all}
  if [ "$which" = prime ]; then prime; return; fi
  case $which in all|python|quickjs) ;; *) die "unknown guest '$which' (expected python, quickjs, prime or nothing)";; esac
  ensure_toolchain
  if [ "$which" = all ] || [ "$which" = python ]; then build_python; fi
  if [ "$which" = all ] || [ "$which" = quickjs ]; then build_quickjs; fi
  printf '%s\n' "$OUT"
}

main "$@"
