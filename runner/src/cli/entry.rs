//! The process entry of the runner's binaries (`capsule`, `capsule-runner`), in place of std's.
//!
//! They are `no_main`: std's runtime set-up reads `/proc/self/maps` to find the main thread's stack
//! and maps an alternate signal stack, about 0.1 ms of every exec here, for a stack-overflow
//! message these binaries do not need (wasmtime installs its own signal handlers and stacks).
//! [`run`] does what of that set-up matters; [`c_main!`](crate::c_main) defines a binary's C
//! `main` around it. std still reads the arguments (`std::env::args_os`) on its own.

/// Defines the C `main` of a `#![no_main]` runner binary: `body` run through [`run`].
///
/// It also defines the C math library's `pow` with the `libm` crate's: tokio's multi-thread
/// scheduler (linked in, not what exec runs) is these binaries' only caller of the math library,
/// which then is not loaded at all, 0.05-0.1 ms of every exec here. A new caller of another of its
/// functions only brings the library back.
#[macro_export]
macro_rules! c_main {
    ($body:path) => {
        #[cfg(not(test))]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::core::ffi::c_int,
            _argv: *const *const ::core::ffi::c_char,
        ) -> ::core::ffi::c_int {
            $crate::cli::entry::run($body)
        }

        #[cfg(all(not(test), target_os = "linux", target_env = "gnu"))]
        #[unsafe(no_mangle)]
        extern "C" fn pow(x: f64, y: f64) -> f64 {
            $crate::cli::entry::pow(x, y)
        }
    };
}

/// `x` to the power `y` ([`c_main!`](crate::c_main)).
pub fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// Runs `body` as the whole process and exits with its code (101 after a panic, which has printed
/// its message, as under std's own `main`).
pub fn run(body: fn() -> u8) -> ! {
    #[cfg(unix)]
    {
        keep_standard_streams_open();
        // SAFETY: called before any other thread exists; a closed pipe on stdout then fails the
        // write with EPIPE (reported) instead of killing the process, as under std's start-up.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    }
    let code = std::panic::catch_unwind(body).unwrap_or(101);
    // Flushes stdout, as returning from std's `main` would.
    std::process::exit(code.into())
}

/// Opens `/dev/null` on any of descriptors 0-2 the parent left closed (as std's start-up does), so
/// that no file this process opens takes one's place and receives the envelope.
#[cfg(unix)]
fn keep_standard_streams_open() {
    let mut streams = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `streams` is a valid array of 3 pollfds; a zero timeout does not block.
    if unsafe { libc::poll(streams.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for stream in streams {
        if stream.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; the lowest free descriptor is the closed one.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
