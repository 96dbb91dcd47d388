//! One file per subcommand: a clap struct (its doc comment is the help text) and `execute`.

mod build;
mod gc;
mod inspect;
mod interpreters;
mod jobs;
mod keygen;
mod mcp;
mod pull;
mod push;
mod results;
mod run;
mod run_code;
mod submit;
mod verify;

pub use build::BuildCommand;
pub use gc::GcCommand;
pub use inspect::InspectCommand;
pub use interpreters::InterpretersCommand;
pub use jobs::JobsCommand;
pub use keygen::KeygenCommand;
pub use mcp::McpCommand;
pub use pull::PullCommand;
pub use push::PushCommand;
pub use results::ResultsCommand;
pub use run::RunCommand;
pub use run_code::{RunCodeCommand, interpreters_for_worker};
pub use submit::SubmitCommand;
pub use verify::VerifyCommand;
