//! The languages of the built-in code interpreters (`capsule run-code`, the worker's `run_code`).

use std::fmt;
use std::str::FromStr;

/// An interpreter language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    /// CPython 3.11.
    Python,
    /// QuickJS-ng.
    Javascript,
}

impl Language {
    /// Every language, in the order `hello` lists them.
    pub const ALL: [Language; 2] = [Language::Python, Language::Javascript];

    /// `python` or `javascript`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::Javascript => "javascript",
        }
    }
}

impl FromStr for Language {
    type Err = String;

    /// `python`/`py` or `javascript`/`js`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "python" | "py" => Ok(Language::Python),
            "javascript" | "js" => Ok(Language::Javascript),
            other => Err(format!(
                "unknown language `{other}`; expected python or javascript"
            )),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
