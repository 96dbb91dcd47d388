# Environment for building the QuickJS guest with Debian's clang-16 + wasi-libc (sourced by build.sh).
# rquickjs-sys would otherwise download a wasi-sdk; and cc passes --target=wasm32-wasip1, which
# clang 16 does not know (it would then pick up glibc's headers), so the later --target wins.
export RQUICKJS_SYS_NO_WASI_SDK=1
export CC_wasm32_wasip1=clang-16
export AR_wasm32_wasip1=llvm-ar-16
export CFLAGS_wasm32_wasip1="--target=wasm32-wasi --sysroot=/usr -DNDEBUG"
