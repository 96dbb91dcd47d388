/*
 * libpython is compiled against Debian's 2022 wasi-libc headers but linked against the newer
 * wasi-libc that Rust ships (it has __wasilibc_reset_preopens, which snapshot hygiene needs).
 * The newer libc dropped the CPU-time clock objects that CPython's timemodule references; these
 * definitions restore them with the layout and WASI clock ids the 2022 libc used. Under a
 * component runtime those clocks report ENOTSUP, which time.process_time() surfaces as OSError.
 */
#include <wasi/api.h>

struct __clockid {
    __wasi_clockid_t id;
};

const struct __clockid _CLOCK_PROCESS_CPUTIME_ID = {__WASI_CLOCKID_PROCESS_CPUTIME_ID};
const struct __clockid _CLOCK_THREAD_CPUTIME_ID = {__WASI_CLOCKID_THREAD_CPUTIME_ID};
