//! Snapshot → component: embed the `capsule:task` world and adapt WASI preview1 to preview2.

use crate::Error;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The WIT world every guest implements (manifests/wit/world.wit).
pub const WORLD_WIT: &str = include_str!("../../manifests/wit/world.wit");

/// Wraps a pre-initialized guest core module into a `capsule:task/task` component.
pub fn componentize(core_module: &[u8]) -> Result<Vec<u8>, Error> {
    let mut resolve = Resolve::default();
    let package = resolve
        .push_str("world.wit", WORLD_WIT)
        .map_err(|e| Error::toolchain("parsing the capsule WIT world", e))?;
    let world = resolve
        .select_world(&[package], Some("task"))
        .map_err(|e| Error::toolchain("selecting the capsule WIT world", e))?;
    let mut module = core_module.to_vec();
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| Error::toolchain("embedding the component type", e))?;
    ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| {
            encoder.adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .map(|encoder| encoder.validate(true))
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| Error::toolchain("componentizing the snapshot", e))
}
