//! The JavaScript guest's input: the task module's source, read by the QuickJS guest on stdin.

use crate::{Compiler, Error, Prepared, TaskSource};

/// Prepares a JavaScript task: the guest evaluates the module it reads on stdin.
pub fn prepare(_compiler: &Compiler, source: &TaskSource) -> Result<Prepared, Error> {
    Ok(Prepared {
        init_input: source.bytes.clone(),
        ..Prepared::default()
    })
}
