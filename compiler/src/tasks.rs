//! The task table a guest prints at the end of pre-initialization, and its validation into
//! manifest entries: every task's declared options become a typed [`Policy`], and the entry task is
//! chosen (`main`, else the only task).

use crate::Error;
use capsule_packager::Policy;
use capsule_packager::manifest::TaskEntry;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The name of the entry task when a module has several.
pub const ENTRY_NAME: &str = "main";

/// What the guest's SDK registered while the user's module ran (guest-images/ABI.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTable {
    /// `python` or `javascript`.
    pub language: String,
    /// Registered tasks, in definition order.
    pub tasks: Vec<RawTask>,
    /// Things the guest noticed while the module's top level ran (e.g. randomness consumed at
    /// build time, which every run of the snapshot then shares).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One registered task, its options as the user wrote them (unvalidated).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    /// Task name.
    pub name: String,
    /// Python function / JS export it is bound to.
    pub export: Option<String>,
    /// The options, with Python spelling.
    pub config: BTreeMap<String, Value>,
}

impl TaskTable {
    /// Parses the guest's output; `file` names the task file in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::Tasks(format!(
                "the guest reported an unreadable task table for `{file}`: {e}"
            ))
        })
    }

    /// Validates every task's options over `defaults` and picks the entry task.
    pub fn validate(
        &self,
        file: &str,
        defaults: &BTreeMap<String, Value>,
    ) -> Result<(Vec<TaskEntry>, String), Error> {
        if self.tasks.is_empty() {
            return Err(Error::Tasks(format!(
                "`{file}` defines no tasks: decorate a function with `@task` (Python) or wrap one in \
                 `task(...)` (JavaScript)"
            )));
        }
        let mut entries = Vec::with_capacity(self.tasks.len());
        for task in &self.tasks {
            let policy = Policy::from_raw(&task.name, &task.config, defaults)?;
            entries.push(TaskEntry {
                name: task.name.clone(),
                export: task.export.clone(),
                policy,
            });
        }
        Ok((entries, self.entry(file)?))
    }

    /// `main` by name, else the task exported as `main`, else the only task.
    fn entry(&self, file: &str) -> Result<String, Error> {
        if let Some(task) = self.tasks.iter().find(|t| t.name == ENTRY_NAME) {
            return Ok(task.name.clone());
        }
        if let Some(task) = self
            .tasks
            .iter()
            .find(|t| t.export.as_deref() == Some(ENTRY_NAME))
        {
            return Ok(task.name.clone());
        }
        if let [only] = self.tasks.as_slice() {
            return Ok(only.name.clone());
        }
        let names: Vec<_> = self.tasks.iter().map(|t| format!("`{}`", t.name)).collect();
        Err(Error::Tasks(format!(
            "`{file}` has no `{ENTRY_NAME}` task and several tasks ({}): name the entry task `{ENTRY_NAME}`",
            names.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str) -> TaskTable {
        TaskTable::parse(json.as_bytes(), "t.py").expect("valid table")
    }

    #[test]
    fn entry_is_main_then_the_only_task() {
        let t = table(
            r#"{"language":"python","tasks":[{"name":"a","export":"a","config":{}},{"name":"main","export":"main","config":{}}]}"#,
        );
        assert_eq!(
            t.validate("t.py", &BTreeMap::new()).expect("valid").1,
            "main"
        );
        let t =
            table(r#"{"language":"python","tasks":[{"name":"solo","export":"solo","config":{}}]}"#);
        assert_eq!(
            t.validate("t.py", &BTreeMap::new()).expect("valid").1,
            "solo"
        );
    }

    #[test]
    fn several_tasks_without_main_is_an_error() {
        let t = table(
            r#"{"language":"python","tasks":[{"name":"a","export":"a","config":{}},{"name":"b","export":"b","config":{}}]}"#,
        );
        let error = t
            .validate("t.py", &BTreeMap::new())
            .expect_err("no entry")
            .to_string();
        assert!(error.contains("no `main` task"), "{error}");
    }

    #[test]
    fn a_bad_option_names_task_and_field() {
        let t = table(
            r#"{"language":"python","tasks":[{"name":"main","export":"main","config":{"ram":"12XB"}}]}"#,
        );
        let error = t
            .validate("t.py", &BTreeMap::new())
            .expect_err("bad ram")
            .to_string();
        assert!(
            error.contains("main") && error.contains("ram") && error.contains("12XB"),
            "{error}"
        );
    }
}
