//! The one wasmtime engine configuration shared by the compiler and the runner.
//!
//! A `.cwasm` only loads into the same wasmtime version with equal code-affecting settings (fuel,
//! epoch interruption, memory layout, wasm features, target CPU features). Both sides therefore build
//! their `Config` here, and every `.cwasm` records a [`fingerprint`] of these settings, so a runner can
//! pick a compatible entry before it hands any bytes to wasmtime (which checks again when loading).

use sha2::{Digest as _, Sha256};

/// The wasmtime version every `.cwasm` is built for and loaded with (pinned in Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Bump when [`config`] changes in a way that affects compiled code.
const SETTINGS_REVISION: &str = "capsule-engine/6 fuel=on epoch=off dense-image=256MiB no-symbols-addrmap-unwind component-model=on collector=null no-threads-gc-exceptions-async";

/// A compilation target: a triple and the CPU features the code may assume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Short name used on the command line (`x86_64`, `aarch64`).
    pub name: &'static str,
    /// Target triple.
    pub triple: &'static str,
    /// Name of the CPU baseline.
    pub cpu_baseline: &'static str,
    /// Cranelift ISA flags the baseline enables.
    pub cranelift_flags: &'static [&'static str],
}

/// x86-64-v2: every x86_64 server of the last decade has these.
pub const X86_64: Target = Target {
    name: "x86_64",
    triple: "x86_64-unknown-linux-gnu",
    cpu_baseline: "x86-64-v2",
    cranelift_flags: &[
        "has_sse3",
        "has_ssse3",
        "has_sse41",
        "has_sse42",
        "has_popcnt",
    ],
};

/// ARMv8.0-A with NEON (which the ARMv8 base already includes).
pub const AARCH64: Target = Target {
    name: "aarch64",
    triple: "aarch64-unknown-linux-gnu",
    cpu_baseline: "armv8-a",
    cranelift_flags: &[],
};

/// Every target the compiler knows.
pub const TARGETS: &[Target] = &[X86_64, AARCH64];

impl Target {
    /// The target named `name` (`x86_64`, `aarch64`, or a full triple).
    pub fn by_name(name: &str) -> Option<Target> {
        TARGETS
            .iter()
            .copied()
            .find(|t| t.name == name || t.triple == name)
    }

    /// The target this process runs on, if Capsule has one for it.
    pub fn host() -> Option<Target> {
        Target::by_name(std::env::consts::ARCH)
    }
}

/// The engine settings for running (and, with a target set by the compiler, compiling) tasks.
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    // Fuel enforces `compute`, and its periodic yields enforce `timeout` preemptively, even in a
    // CPU loop (the runner's src/deadline.rs). No epoch interruption: its checks cost compiled
    // code 10-20% on tight loops and would add nothing fuel yields do not already give.
    config.consume_fuel(true);
    // A snapshot's heap is sparse (CPython's allocator leaves freed arenas as zero pages), and
    // past 16 MiB of initialized range wasmtime's default then gives up the copy-on-write image
    // and copies every data segment at each instantiation: 6 ms per exec for hello.py instead of
    // 0.15. Zero pages in the image cost nothing in a bundle (they compress away) or at run time
    // (they are mapped, not copied).
    config.memory_guaranteed_dense_image_size(256 << 20);
    config.wasm_component_model(true);
    // Nothing at run time reads a `.cwasm`'s ELF symbols, its wasm-offset address map or its
    // `.eh_frame` (wasmtime walks guest stacks by frame pointer, and host panics never unwind
    // through guest frames). Without them hello.py's code is 3.2 MB smaller per target, and
    // loading skips registering thousands of unwind entries with the system unwinder.
    config.debug_symbols(false);
    config.generate_address_map(false);
    config.native_unwind_info(false);
    // Stated, not inherited from whichever wasmtime features a binary happens to be built with:
    // the minimal runner and the compiler must agree. Guests allocate no GC objects.
    config.collector(wasmtime::Collector::Null);
    // Proposals whose support depends on wasmtime's cargo features (threads, the GC proposal,
    // exceptions, async components...). No guest uses them, and leaving them to the defaults
    // would make code compiled by `capsule` unloadable by the minimal runner.
    use wasmtime::WasmFeatures as F;
    config.wasm_features(
        F::THREADS
            | F::SHARED_EVERYTHING_THREADS
            | F::EXCEPTIONS
            | F::LEGACY_EXCEPTIONS
            | F::GC
            | F::STACK_SWITCHING
            | F::CM_ASYNC
            | F::CM_ASYNC_STACKFUL
            | F::CM_MORE_ASYNC_BUILTINS
            | F::CM_THREADING
            | F::CM_ERROR_CONTEXT
            | F::CM_GC,
        false,
    );
    config
}

/// Hash of the settings that decide whether a `.cwasm` for `target` loads into a runner's engine.
pub fn fingerprint(target: &Target) -> String {
    let mut hasher = Sha256::new();
    for part in [
        WASMTIME_VERSION,
        SETTINGS_REVISION,
        target.triple,
        target.cpu_baseline,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}
