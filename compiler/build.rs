//! Embeds the guest images that `guest-images/build.sh` produced, so `capsule build` works anywhere.
//! When an image has not been built, an empty stub is embedded (and a warning printed): the crate
//! still compiles for `cargo check`/clippy, and using that guest fails with a clear message.

use std::path::{Path, PathBuf};

const FILES: &[&str] = &["guest.wasm", "info.json", "stdlib.tar.zst"];

fn images_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAPSULE_GUEST_IMAGES") {
        return dir.into();
    }
    let cache = std::env::var_os("CAPSULE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            base.join("capsule")
        });
    cache.join("guest-images")
}

fn main() {
    println!("cargo:rerun-if-env-changed=CAPSULE_GUEST_IMAGES");
    println!("cargo:rerun-if-env-changed=CAPSULE_CACHE_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let images = images_dir();
    // The directory too: `build.sh` repoints `<guest>.current` with `ln -sfn`, possibly at an
    // older image whose info.json predates the last build (its mtime alone would not rerun us);
    // replacing the link updates the directory's mtime.
    if images.is_dir() {
        println!("cargo:rerun-if-changed={}", images.display());
    }
    for guest in ["python", "quickjs"] {
        let current = images.join(format!("{guest}.current"));
        println!(
            "cargo:rerun-if-changed={}",
            current.join("info.json").display()
        );
        let built = current.join("info.json").is_file();
        if !built {
            println!(
                "cargo:warning=guest image '{guest}' not built; run guest-images/build.sh (looked in {})",
                images.display()
            );
        }
        for file in FILES {
            let dest = out.join(format!("{guest}-{file}"));
            let src = current.join(file);
            if built && src.is_file() {
                std::fs::copy(&src, &dest).expect("copy guest image into OUT_DIR");
            } else {
                std::fs::write(&dest, b"").expect("write guest image stub");
            }
        }
    }
}
