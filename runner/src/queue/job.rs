//! The job document (version 1): what to run, with what, under which narrower limits, by when.

use crate::Narrowing;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The job schema version this runner writes and reads.
pub const JOB_VERSION: u32 = 1;
/// Longest job id: it is a subject token.
const MAX_JOB_ID: usize = 128;

/// One job, as published on `capsule.<queue>.jobs.<job_id>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Schema version, [`JOB_VERSION`].
    pub v: u32,
    /// Unique id: letters, digits, `-` and `_`; also the last token of the job's subject.
    pub job_id: String,
    /// The bundle: `oci://HOST[:PORT]/REPO[:TAG]@sha256:HEX`.
    pub bundle: String,
    /// The task; the bundle's entry task when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Positional arguments (an array).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Keyword arguments (an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Map<String, Value>>,
    /// Limits that narrow the task's declared ones (never widen them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Unix time in milliseconds after which the job is not started (it is `expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

/// `limits`: each as in a task's options, and each at most what the task declares.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `"500ms"`, `"30s"`, `"5m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Value>,
    /// `"64MB"`, `"512MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Value>,
    /// `LOW`, `MEDIUM`, `HIGH` or a fuel count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<Value>,
    /// `"100MB"`: bytes the task may add to its writable directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Value>,
}

impl Limits {
    /// The narrowing these limits ask for; an error names the field.
    pub fn narrowing(&self) -> Result<Narrowing, String> {
        use capsule_packager::policy::{parse_compute, parse_disk, parse_ram, parse_timeout};
        let field = |name: &str, e: String| format!("invalid `limits.{name}`: {e}");
        Ok(Narrowing {
            timeout: self
                .timeout
                .as_ref()
                .map(|v| parse_timeout(v).map_err(|e| field("timeout", e)))
                .transpose()?,
            ram_bytes: self
                .ram
                .as_ref()
                .map(|v| parse_ram(v).map_err(|e| field("ram", e)))
                .transpose()?,
            disk_bytes: self
                .disk
                .as_ref()
                .map(|v| parse_disk(v).map_err(|e| field("disk", e)))
                .transpose()?,
            fuel: self
                .compute
                .as_ref()
                .map(|v| {
                    parse_compute(v)
                        .map(|c| c.fuel())
                        .map_err(|e| field("compute", e))
                })
                .transpose()?,
        })
    }
}

impl Job {
    /// Parses and validates a job document; an error names the field.
    pub fn parse(bytes: &[u8]) -> Result<Job, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("the job is not valid JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("the job must be a JSON object".into());
        };
        const FIELDS: [&str; 8] = [
            "v", "job_id", "bundle", "task", "args", "kwargs", "limits", "deadline",
        ];
        if let Some(key) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "unknown job field `{}` (fields: {})",
                key.escape_debug(),
                FIELDS.join(", ")
            ));
        }
        // Field by field, so that an error names the field.
        fn field<T: serde::de::DeserializeOwned>(
            map: &Map<String, Value>,
            name: &str,
        ) -> Result<Option<T>, String> {
            map.get(name)
                .filter(|v| !v.is_null())
                .map(|v| {
                    serde_json::from_value(v.clone()).map_err(|e| format!("invalid `{name}`: {e}"))
                })
                .transpose()
        }
        let required = |name: &str| format!("the job has no `{name}`");
        let job = Job {
            v: field(&map, "v")?.ok_or_else(|| required("v"))?,
            job_id: field(&map, "job_id")?.ok_or_else(|| required("job_id"))?,
            bundle: field(&map, "bundle")?.ok_or_else(|| required("bundle"))?,
            task: field(&map, "task")?,
            args: field(&map, "args")?,
            kwargs: field(&map, "kwargs")?,
            limits: field(&map, "limits")?,
            deadline: field(&map, "deadline")?,
        };
        job.validate()?;
        Ok(job)
    }

    /// Checks every field; an error names it.
    pub fn validate(&self) -> Result<(), String> {
        if self.v != JOB_VERSION {
            return Err(format!(
                "unsupported job `v` {}: this runner reads version {JOB_VERSION}",
                self.v
            ));
        }
        check_job_id(&self.job_id).map_err(|e| format!("invalid `job_id`: {e}"))?;
        if !self.bundle.starts_with("oci://") {
            return Err(format!(
                "invalid `bundle` `{}`: expected `oci://HOST/REPO[:TAG]@sha256:HEX`",
                self.bundle.escape_debug()
            ));
        }
        if let Some(task) = &self.task
            && task.is_empty()
        {
            return Err("invalid `task`: empty".into());
        }
        match &self.args {
            None | Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(format!(
                    "invalid `args`: expected an array, found `{other}`"
                ));
            }
        }
        if let Some(limits) = &self.limits {
            limits.narrowing()?;
        }
        Ok(())
    }

    /// The `{"args": [...], "kwargs": {...}}` document the task receives.
    pub fn args_json(&self) -> Result<String, String> {
        crate::cli::args::args_document(self.args.as_ref(), self.kwargs.as_ref(), "`args`")
    }

    /// Whether the deadline has passed at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.deadline
            .is_some_and(|deadline| unix_ms(now) > deadline)
    }
}

/// A job id is a subject token: 1 to 128 letters, digits, `-` or `_`.
pub fn check_job_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_JOB_ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "`{}`: expected 1 to {MAX_JOB_ID} letters, digits, `-` or `_`",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// A fresh job id: the submit time and 64 random bits, so ids sort roughly by submission.
pub fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per instance: 64 random bits without a dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!(
        "{:011x}-{:016x}",
        unix_ms(SystemTime::now()),
        hasher.finish()
    )
}

/// `--deadline`: a duration from now (`30s`, `5m`) or a unix time in milliseconds.
pub fn parse_deadline(text: &str, now: SystemTime) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("invalid `--deadline` `{text}`: too large"));
    }
    let after = capsule_packager::policy::parse_timeout(&Value::String(text.to_string()))
        .map_err(|e| {
            format!(
                "invalid `--deadline`: {e}; or give a unix time in milliseconds such as `1767225600000`"
            )
        })?;
    Ok(unix_ms(now + after))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> Result<Job, String> {
        Job::parse(text.as_bytes())
    }

    #[test]
    fn valid_jobs_parse() {
        let parsed = job(
            r#"{"v":1,"job_id":"a-1","bundle":"oci://127.0.0.1:5000/t@sha256:00","args":[1],"kwargs":{"k":2},"limits":{"timeout":"1s","ram":"64MB","compute":"LOW"},"deadline":5}"#,
        )
        .expect("valid");
        assert_eq!(
            parsed.args_json().expect("args"),
            r#"{"args":[1],"kwargs":{"k":2}}"#
        );
        assert_eq!(
            parsed
                .limits
                .expect("limits")
                .narrowing()
                .expect("limits")
                .fuel,
            Some(1_000_000_000)
        );
        assert!(parsed.deadline.is_some());
    }

    #[test]
    fn invalid_jobs_name_the_field() {
        for (text, field) in [
            (r#"{"v":2,"job_id":"a","bundle":"oci://h/r"}"#, "`v`"),
            (r#"{"v":1,"job_id":"a.b","bundle":"oci://h/r"}"#, "`job_id`"),
            (
                r#"{"v":1,"job_id":"a","bundle":"/tmp/x.capsule"}"#,
                "`bundle`",
            ),
            (
                r#"{"v":1,"job_id":"a","bundle":"oci://h/r","args":{}}"#,
                "`args`",
            ),
            (
                r#"{"v":1,"job_id":"a","bundle":"oci://h/r","limits":{"ram":"lots"}}"#,
                "`limits.ram`",
            ),
            (
                r#"{"v":1,"job_id":"a","bundle":"oci://h/r","colour":1}"#,
                "`colour`",
            ),
            (
                r#"{"v":1,"job_id":"a","bundle":"oci://h/r","deadline":"soon"}"#,
                "deadline",
            ),
        ] {
            let error = job(text).expect_err(text);
            assert!(error.contains(field), "{text}: {error}");
        }
    }

    #[test]
    fn deadlines_are_relative_or_unix_ms() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(parse_deadline("30s", now), Ok(1_030_000));
        assert_eq!(parse_deadline("1767225600000", now), Ok(1_767_225_600_000));
        assert!(
            parse_deadline("tomorrow", now)
                .expect_err("bad")
                .contains("`--deadline`")
        );
        let mut past = job(r#"{"v":1,"job_id":"a","bundle":"oci://h/r"}"#).expect("valid");
        assert!(!past.expired_at(now));
        past.deadline = Some(999_999);
        assert!(past.expired_at(now));
    }

    #[test]
    fn job_ids_are_fresh_subject_tokens() {
        let (a, b) = (new_job_id(), new_job_id());
        assert_ne!(a, b);
        check_job_id(&a).expect("valid id");
    }
}
