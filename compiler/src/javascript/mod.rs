//! The JavaScript guest's input: the task's module graph, resolved and transpiled on the host.
//!
//! [`graph::build`] walks every module reachable from the task file ([`resolve`]: Node's
//! resolution; [`transpile`]: TypeScript stripped, CommonJS detected, imports collected); the
//! result is the **module map** the QuickJS guest reads on stdin at build time (format in
//! guest-images/ABI.md). Any change to any module changes the map, hence [`crate::Compiler::input_key`].

pub mod graph;
pub mod resolve;
pub mod transpile;

use crate::{Compiler, Error, Prepared, TaskSource};

/// How many deferred imports a warning lists before summarizing.
const LISTED_DEFERRED: usize = 5;

/// Prepares a JavaScript task: the guest evaluates the module map it reads on stdin.
pub fn prepare(_compiler: &Compiler, source: &TaskSource) -> Result<Prepared, Error> {
    let graph = graph::build(&source.project.root, &source.path, &source.bytes)?;
    let mut warnings = Vec::new();
    if !graph.deferred.is_empty() {
        let mut listed: Vec<&str> = graph
            .deferred
            .iter()
            .take(LISTED_DEFERRED)
            .map(String::as_str)
            .collect();
        let more = graph.deferred.len().saturating_sub(LISTED_DEFERRED);
        let more_text = format!("and {more} more");
        if more > 0 {
            listed.push(&more_text);
        }
        warnings.push(format!(
            "{} import(s) in packages cannot be provided and throw if they run: {}",
            graph.deferred.len(),
            listed.join("; ")
        ));
    }
    let init_input = serde_json::to_vec(&graph)
        .map_err(|e| Error::Unsupported(format!("cannot encode the module map: {e}")))?;
    Ok(Prepared {
        init_input,
        warnings,
        ..Prepared::default()
    })
}
