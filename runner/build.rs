//! Link flags for the `capsule-runner` binary (the root crate's build.rs sets the same for
//! `capsule`).
//!
//! Relative relocations are packed as RELR (`-z pack-relative-relocs`), which needs glibc 2.36
//! and binutils 2.38 or newer: Debian 12, Ubuntu 22.10 and later. A Rust binary of this size has
//! tens of thousands of them; read from a RELA table (24 bytes each, faulted in from the file) and
//! applied at every start, they were a sixth of a warm `exec`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
