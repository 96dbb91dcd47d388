//! Issue 6: one `.cwasm` per target, each accepted by wasmtime's own checks for its architecture.

use capsule_compiler::{Compiler, TaskSource};
use capsule_packager::engine::{self, AARCH64, X86_64};
use std::path::Path;
use wasmtime::{Engine, Precompiled, component::Component};

/// ELF `e_machine` values.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

fn elf_machine(code: &[u8]) -> u16 {
    u16::from_le_bytes([code[18], code[19]])
}

#[test]
fn a_bundle_carries_code_for_x86_64_and_aarch64() {
    let cache = tempfile::tempdir().expect("tempdir");
    let source =
        TaskSource::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello.js"))
            .expect("read");
    let bundle = Compiler::new(cache.path().to_path_buf())
        .targets(vec![X86_64, AARCH64])
        .compile(&source)
        .expect("compile");
    assert_eq!(bundle.manifest.targets.len(), 2);
    let native = Engine::new(&engine::config()).expect("engine");
    for (target, machine) in [(X86_64, EM_X86_64), (AARCH64, EM_AARCH64)] {
        let entry = bundle
            .manifest
            .targets
            .iter()
            .find(|t| t.triple == target.triple)
            .expect("target entry");
        assert_eq!(entry.cpu_baseline, target.cpu_baseline);
        assert_eq!(entry.engine_fingerprint, engine::fingerprint(&target));
        let code = &bundle.blobs[&entry.cwasm];
        assert_eq!(
            Engine::detect_precompiled(code),
            Some(Precompiled::Component),
            "{}",
            target.name
        );
        assert_eq!(elf_machine(code), machine, "{}", target.name);
        // SAFETY: bytes produced by this test's own compile.
        let loaded = unsafe { Component::deserialize(&native, code) };
        if std::env::consts::ARCH == target.name {
            loaded.unwrap_or_else(|e| {
                panic!("the {} code does not load on this host: {e:#}", target.name)
            });
        } else {
            // wasmtime reads the code's metadata and names its architecture.
            let error = format!("{:#}", loaded.expect_err("foreign code must not load"));
            assert!(
                error.contains(&format!("compiled for architecture '{}'", target.name)),
                "{error}"
            );
        }
    }
}
