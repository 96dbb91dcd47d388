//! Link flags for the runner's binaries, the lean `capsule` and `capsule-runner` (the root crate's
//! build.rs sets the RELR flag for `capsule-full`). Each is paid for at every `exec`:
//!
//! - Relative relocations are packed as RELR (`-z pack-relative-relocs`), which needs glibc 2.36
//!   and binutils 2.38 or newer: Debian 12, Ubuntu 22.10 and later. A Rust binary of this size
//!   has tens of thousands of them; read from a RELA table (24 bytes each, faulted in from the
//!   file) and applied at every start, they were a sixth of a warm `exec`.
//! - The unwinder is linked in statically (libgcc_eh) instead of loading `libgcc_s.so.1`: one
//!   shared object fewer to map and relocate, and no `__cpu_indicator_init` constructor, whose
//!   `cpuid` instructions each trap to the hypervisor in a VM. About 0.1 ms of every exec here.
//!   rustc asks for `-lgcc_s` itself, so a linker script of that name, first on the search path,
//!   names the static archive instead; without one (another C toolchain) nothing changes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    match static_unwinder(&out.join("static-unwinder")) {
        Ok(Some(dir)) => println!("cargo:rustc-link-search=native={}", dir.display()),
        Ok(None) => {}
        Err(error) => println!("cargo:warning=linking libgcc_s dynamically: {error}"),
    }
}

/// Writes `dir/libgcc_s.so`, a linker script for the C compiler's `libgcc_eh.a`; `None` when the
/// compiler has no such archive.
fn static_unwinder(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&compiler)
        .arg("-print-file-name=libgcc_eh.a")
        .output()?;
    let archive = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    // A compiler that does not know the file prints its bare name back.
    if !output.status.success() || !archive.is_absolute() || !archive.is_file() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir)?;
    // `-lgcc` as in the toolchain's own libgcc_s.so script: a few helpers live only there.
    std::fs::write(
        dir.join("libgcc_s.so"),
        format!("GROUP ( {} -lgcc )\n", archive.display()),
    )?;
    Ok(Some(dir.to_path_buf()))
}
