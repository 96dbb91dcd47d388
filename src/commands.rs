//! One file per subcommand: a clap struct (its doc comment is the help text) and `execute`.

mod build;
mod gc;
mod inspect;
mod interpreters;
mod keygen;
mod mcp;
mod pull;
mod push;
mod run;
mod run_code;
mod verify;

pub use build::BuildCommand;
pub use gc::GcCommand;
pub use inspect::InspectCommand;
pub use interpreters::InterpretersCommand;
pub use keygen::KeygenCommand;
pub use mcp::McpCommand;
pub use pull::PullCommand;
pub use push::PushCommand;
pub use run::RunCommand;
pub use run_code::{RunCodeCommand, interpreters_for_worker};
pub use verify::VerifyCommand;
