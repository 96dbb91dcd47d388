//! Task limits: the raw configuration a task declares, and the typed [`Policy`] built from it.
//!
//! The SDKs pass the user's keyword arguments through unvalidated; [`Policy::from_raw`] is the one
//! place they are judged. A bad value is an error naming the task and the field, never a default.

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Fuel granted by each compute level. Fuel counts wasm instructions, roughly: ci/bench/fuel.sh
/// measured LOW at 0.15 s of a CPython busy loop and 0.08 s of a QuickJS one (2-core x86_64); the
/// other levels scale linearly (MEDIUM 1.5 s / 0.8 s, HIGH 15 s / 7.9 s).
pub const FUEL_LOW: u64 = 1_000_000_000;
/// See [`FUEL_LOW`].
pub const FUEL_MEDIUM: u64 = 10_000_000_000;
/// See [`FUEL_LOW`].
pub const FUEL_HIGH: u64 = 100_000_000_000;

/// Memory cap when a task declares no `ram`: an uncapped guest can take the whole host.
pub const DEFAULT_RAM_BYTES: u64 = 512 << 20;
/// Wall-clock limit when a task declares no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound on `max_retries`, so a typo cannot make a task run a million times.
pub const MAX_RETRIES_LIMIT: u32 = 100;

/// A compute budget as declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Compute {
    /// [`FUEL_LOW`].
    Low,
    /// [`FUEL_MEDIUM`].
    Medium,
    /// [`FUEL_HIGH`].
    High,
    /// An explicit fuel count.
    Fuel(u64),
}

impl Compute {
    /// Fuel units this budget grants.
    pub fn fuel(self) -> u64 {
        match self {
            Compute::Low => FUEL_LOW,
            Compute::Medium => FUEL_MEDIUM,
            Compute::High => FUEL_HIGH,
            Compute::Fuel(n) => n,
        }
    }
}

/// Access mode of a granted directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// Read only.
    Ro,
    /// Read and write.
    Rw,
}

/// A directory the task may use, relative to the project root, visible in the guest at `/<path>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileGrant {
    /// Normalized relative path (no `..`, no leading `/`).
    pub path: String,
    /// Access mode.
    pub mode: FileMode,
}

/// The validated limits of one task, as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Compute budget.
    pub compute: Compute,
    /// Cap on linear memory, in bytes.
    pub ram_bytes: u64,
    /// Wall-clock limit, in milliseconds.
    pub timeout_ms: u64,
    /// Extra attempts after a failure.
    pub max_retries: u32,
    /// Directories the task may use.
    pub allowed_files: Vec<FileGrant>,
    /// Host patterns for outgoing HTTP: `name`, `*.suffix` or `*`.
    pub allowed_hosts: Vec<String>,
    /// Names of environment variables passed through from the runner's environment.
    pub env_variables: Vec<String>,
    /// Cap on the bytes the task may add to its writable directories, all together (`disk`);
    /// `None`: no cap beyond the host's. Absent from manifests that declare none, so bundles
    /// built before the field existed keep their bytes and signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

/// What a running task has left, for the sub-tasks it calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remaining {
    /// Milliseconds until the caller's deadline.
    pub time_ms: u64,
    /// Fuel the caller has not used.
    pub fuel: u64,
    /// Bytes under the caller's memory cap that its own instance does not use.
    pub ram_bytes: u64,
}

/// Whether host pattern `outer` allows every host `inner` allows (`*` covers all, `*.x.com`
/// covers `a.x.com` and `*.a.x.com`; names compare exactly).
pub fn host_pattern_covers(outer: &str, inner: &str) -> bool {
    if outer == "*" || outer == inner {
        return true;
    }
    match outer.strip_prefix("*.") {
        Some(suffix) => {
            let name = inner.strip_prefix("*.").unwrap_or(inner);
            name.ends_with(&format!(".{suffix}"))
        }
        None => false,
    }
}

/// The hosts allowed by both `own` and `caller`: for each pair, the narrower pattern when one
/// covers the other.
pub fn narrow_hosts(own: &[String], caller: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for mine in own {
        for theirs in caller {
            let kept = if host_pattern_covers(theirs, mine) {
                Some(mine)
            } else if host_pattern_covers(mine, theirs) {
                Some(theirs)
            } else {
                None
            };
            if let Some(kept) = kept
                && !hosts.contains(kept)
            {
                hosts.push(kept.clone());
            }
        }
    }
    hosts
}

impl Policy {
    /// Fuel this policy grants.
    pub fn fuel(&self) -> u64 {
        self.compute.fuel()
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The policy a sub-task runs under: its own (as recorded in the manifest), narrowed by what
    /// its caller has left. Every limit is the stricter of the two: time and fuel are capped by
    /// what remains of the caller's, memory by the caller's cap minus what the caller uses;
    /// directories, hosts and environment variables are kept only as far as the caller holds
    /// them (a directory inside one of the caller's, read-only unless both allow writing). The
    /// sub-task's own `max_retries` applies.
    pub fn narrowed_for_subtask(&self, caller: &Policy, left: &Remaining) -> Policy {
        Policy {
            compute: Compute::Fuel(self.fuel().min(left.fuel)),
            ram_bytes: self.ram_bytes.min(left.ram_bytes),
            timeout_ms: self.timeout_ms.min(left.time_ms),
            max_retries: self.max_retries,
            allowed_files: self
                .allowed_files
                .iter()
                .filter_map(|grant| caller.narrow_grant(grant))
                .collect(),
            allowed_hosts: narrow_hosts(&self.allowed_hosts, &caller.allowed_hosts),
            env_variables: self
                .env_variables
                .iter()
                .filter(|name| caller.env_variables.contains(name))
                .cloned()
                .collect(),
            // The runner also charges the sub-task's writes to its caller's budget (what the
            // caller has left is only known while it runs).
            disk_bytes: stricter_cap(self.disk_bytes, caller.disk_bytes),
        }
    }

    /// `grant` as far as this policy's directories cover it: the same directory or one inside
    /// a granted one, writable only if both are.
    pub fn narrow_grant(&self, grant: &FileGrant) -> Option<FileGrant> {
        self.allowed_files
            .iter()
            .filter(|held| {
                grant.path == held.path || grant.path.starts_with(&format!("{}/", held.path))
            })
            .map(|held| FileGrant {
                path: grant.path.clone(),
                mode: if held.mode == FileMode::Rw && grant.mode == FileMode::Rw {
                    FileMode::Rw
                } else {
                    FileMode::Ro
                },
            })
            .max_by_key(|g| g.mode == FileMode::Rw)
    }

    /// Builds the policy of task `task` from the configuration its SDK reported, over `defaults`
    /// (e.g. from `capsule.toml`); the task's own values win.
    pub fn from_raw(
        task: &str,
        raw: &BTreeMap<String, Value>,
        defaults: &BTreeMap<String, Value>,
    ) -> Result<Self, Error> {
        let err = |field: &str, message: String| Error::Policy {
            task: task.to_string(),
            field: field.to_string(),
            message,
        };
        for key in raw.keys().chain(defaults.keys()) {
            if !KNOWN_FIELDS.contains(&key.as_str()) {
                return Err(err(
                    key,
                    format!("unknown option; accepted: {}", KNOWN_FIELDS.join(", ")),
                ));
            }
        }
        let get = |field: &str| {
            raw.get(field)
                .filter(|v| !v.is_null())
                .or_else(|| defaults.get(field).filter(|v| !v.is_null()))
        };
        Ok(Policy {
            compute: match get("compute") {
                None => Compute::Medium,
                Some(v) => parse_compute(v).map_err(|m| err("compute", m))?,
            },
            ram_bytes: match get("ram") {
                None => DEFAULT_RAM_BYTES,
                Some(v) => parse_ram(v).map_err(|m| err("ram", m))?,
            },
            timeout_ms: match get("timeout") {
                None => DEFAULT_TIMEOUT.as_millis() as u64,
                Some(v) => parse_timeout(v).map_err(|m| err("timeout", m))?.as_millis() as u64,
            },
            max_retries: match get("max_retries") {
                None => 0,
                Some(v) => parse_retries(v).map_err(|m| err("max_retries", m))?,
            },
            allowed_files: match get("allowed_files") {
                None => Vec::new(),
                Some(v) => parse_files(v).map_err(|m| err("allowed_files", m))?,
            },
            allowed_hosts: match get("allowed_hosts") {
                None => Vec::new(),
                Some(v) => parse_hosts(v).map_err(|m| err("allowed_hosts", m))?,
            },
            env_variables: match get("env_variables") {
                None => Vec::new(),
                Some(v) => parse_env_names(v).map_err(|m| err("env_variables", m))?,
            },
            disk_bytes: match get("disk") {
                None => None,
                Some(v) => Some(parse_disk(v).map_err(|m| err("disk", m))?),
            },
        })
    }
}

/// Option names a task may declare (Python spelling; the JS SDK converts camelCase).
pub const KNOWN_FIELDS: &[&str] = &[
    "compute",
    "ram",
    "timeout",
    "max_retries",
    "allowed_files",
    "allowed_hosts",
    "env_variables",
    "disk",
];

/// The stricter of two optional caps (`None` is no cap).
pub fn stricter_cap(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Object(map) if map.contains_key("__unsupported__") => {
            format!("`{}`", map["__unsupported__"].as_str().unwrap_or("?"))
        }
        other => format!("`{other}`"),
    }
}

/// `LOW`, `MEDIUM`, `HIGH` (any case) or a positive fuel count (number or digit string).
pub fn parse_compute(v: &Value) -> Result<Compute, String> {
    let expected = "expected `LOW`, `MEDIUM`, `HIGH` or a fuel count such as `2000000000`";
    let fuel = |n: u64| {
        if n == 0 {
            Err(format!("found `0`; {expected}"))
        } else {
            Ok(Compute::Fuel(n))
        }
    };
    match v {
        Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
            "LOW" => Ok(Compute::Low),
            "MEDIUM" => Ok(Compute::Medium),
            "HIGH" => Ok(Compute::High),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => fuel(
                digits
                    .parse()
                    .map_err(|_| format!("`{s}` is too large; {expected}"))?,
            ),
            _ => Err(format!("found {}; {expected}", shown(v))),
        },
        Value::Number(n) => match n.as_u64() {
            Some(n) => fuel(n),
            None => Err(format!("found {}; {expected}", shown(v))),
        },
        _ => Err(format!("found {}; {expected}", shown(v))),
    }
}

/// A size: `64MB`, `1GB`, `512KiB` (decimal and binary units up to T/TiB) or a byte count.
fn parse_size(v: &Value) -> Result<u64, String> {
    let expected = "expected a size such as `64MB`, `1GB`, `512KiB` or a byte count";
    let bytes = match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("found {}; {expected}", shown(v)))?,
        Value::String(s) => {
            let text = s.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let unit = unit.trim();
            let scale: u64 = match unit.to_ascii_uppercase().as_str() {
                "" | "B" => 1,
                "KB" | "K" => 1_000,
                "MB" | "M" => 1_000_000,
                "GB" | "G" => 1_000_000_000,
                "KIB" => 1 << 10,
                "MIB" => 1 << 20,
                "GIB" => 1 << 30,
                "TB" | "T" => 1_000_000_000_000,
                "TIB" => 1 << 40,
                _ => return Err(format!("found `{s}`: unknown unit `{unit}`; {expected}")),
            };
            let value: f64 = number
                .parse()
                .map_err(|_| format!("found `{s}`; {expected}"))?;
            if !value.is_finite() || value < 0.0 {
                return Err(format!("found `{s}`; {expected}"));
            }
            (value * scale as f64) as u64
        }
        _ => return Err(format!("found {}; {expected}", shown(v))),
    };
    Ok(bytes)
}

/// `"64MB"`, `"1GB"`, `"512KiB"`, `"2048"` (bytes) or a number of bytes. KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB powers of 1024.
pub fn parse_ram(v: &Value) -> Result<u64, String> {
    let bytes = parse_size(v)?;
    // Below one wasm page nothing can run; above 4 GiB a wasm32 guest cannot address it.
    if bytes < 1 << 20 {
        return Err(format!("found {}: at least 1MiB is needed", shown(v)));
    }
    if bytes > 4 << 30 {
        return Err(format!(
            "found {}: a wasm32 guest can address at most 4GiB",
            shown(v)
        ));
    }
    Ok(bytes)
}

/// `disk`: a size as [`parse_ram`] takes it, without its bounds (`0` allows no growth at all:
/// existing files may be rewritten in place, not enlarged).
pub fn parse_disk(v: &Value) -> Result<u64, String> {
    parse_size(v)
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`, or a number of seconds.
pub fn parse_timeout(v: &Value) -> Result<Duration, String> {
    let expected = "expected a duration such as `500ms`, `30s`, `5m` or `1h`";
    let duration = match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("found {}; {expected}", shown(v)))?,
        Value::String(s) => {
            let text = s.trim();
            let split = text
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let value: f64 = number
                .parse()
                .map_err(|_| format!("found `{s}`; {expected}"))?;
            let seconds = match unit.trim() {
                "ms" => value / 1000.0,
                "s" | "" => value,
                "m" | "min" => value * 60.0,
                "h" => value * 3600.0,
                other => return Err(format!("found `{s}`: unknown unit `{other}`; {expected}")),
            };
            if !seconds.is_finite() || seconds <= 0.0 {
                return Err(format!("found `{s}`: must be positive; {expected}"));
            }
            Duration::from_secs_f64(seconds)
        }
        _ => return Err(format!("found {}; {expected}", shown(v))),
    };
    if duration < Duration::from_millis(1) || duration > Duration::from_secs(24 * 3600) {
        return Err(format!("found {}: must be between 1ms and 24h", shown(v)));
    }
    Ok(duration)
}

fn parse_retries(v: &Value) -> Result<u32, String> {
    match v.as_u64() {
        Some(n) if n <= MAX_RETRIES_LIMIT as u64 => Ok(n as u32),
        _ => Err(format!(
            "found {}; expected a whole number from 0 to {MAX_RETRIES_LIMIT}",
            shown(v)
        )),
    }
}

fn string_list<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a Value>, String> {
    match v {
        Value::Array(items) => Ok(items.iter().collect()),
        _ => Err(format!("found {}; expected a list of {what}", shown(v))),
    }
}

/// Normalizes a declared directory: relative, no `..`, no empty or `.` parts.
pub fn normalize_grant_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(format!(
            "`{path}` is absolute; give a directory relative to the project root"
        ));
    }
    let mut parts = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "`{path}` leaves the project root (`..` is not allowed)"
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "`{path}` names the project root itself; grant a subdirectory"
        ));
    }
    Ok(parts.join("/"))
}

fn parse_files(v: &Value) -> Result<Vec<FileGrant>, String> {
    let expected = "expected `\"path\"` or `{\"path\": \"...\", \"mode\": \"ro\"|\"rw\"}`";
    string_list(v, "directories")?
        .into_iter()
        .map(|item| {
            let (path, mode) = match item {
                Value::String(p) => (p.as_str(), FileMode::Rw),
                Value::Object(map) => {
                    if let Some(key) = map.keys().find(|k| *k != "path" && *k != "mode") {
                        return Err(format!(
                            "unknown key `{key}` in {}; {expected}",
                            shown(item)
                        ));
                    }
                    let path = map
                        .get("path")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("found {}; {expected}", shown(item)))?;
                    let mode = match map.get("mode").map(|m| m.as_str()) {
                        None | Some(Some("rw")) => FileMode::Rw,
                        Some(Some("ro")) => FileMode::Ro,
                        Some(_) => return Err(format!("bad mode in {}; {expected}", shown(item))),
                    };
                    (path, mode)
                }
                _ => return Err(format!("found {}; {expected}", shown(item))),
            };
            Ok(FileGrant {
                path: normalize_grant_path(path)?,
                mode,
            })
        })
        .collect()
}

/// A list of host patterns (`api.example.com`, `*.example.com`, `*`), lowercased.
pub fn parse_hosts(v: &Value) -> Result<Vec<String>, String> {
    string_list(v, "host names")?
        .into_iter()
        .map(|item| {
            let host = item
                .as_str()
                .ok_or_else(|| format!("found {}; expected a host name string", shown(item)))?;
            let name = host.strip_prefix("*.").unwrap_or(host);
            let valid = host == "*"
                || (!name.is_empty()
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }));
            if valid {
                Ok(host.to_ascii_lowercase())
            } else {
                Err(format!(
                    "found `{host}`; expected `api.example.com`, `*.example.com` or `*`"
                ))
            }
        })
        .collect()
}

fn parse_env_names(v: &Value) -> Result<Vec<String>, String> {
    string_list(v, "variable names")?
        .into_iter()
        .map(|item| {
            let name = item
                .as_str()
                .ok_or_else(|| format!("found {}; expected a variable name", shown(item)))?;
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid {
                Ok(name.to_string())
            } else {
                Err(format!("found `{name}`; expected a name like `API_KEY`"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).expect("test input is an object")
    }

    #[test]
    fn parses_declared_values() {
        let p = Policy::from_raw(
            "main",
            &raw(json!({"compute": "low", "ram": "64MB", "timeout": "1.5s", "max_retries": 2,
                         "allowed_files": ["./data", {"path": "out/", "mode": "ro"}],
                         "allowed_hosts": ["API.example.com", "*.x.org"], "env_variables": ["API_KEY"]})),
            &BTreeMap::new(),
        )
        .expect("valid");
        assert_eq!(p.compute, Compute::Low);
        assert_eq!(p.ram_bytes, 64_000_000);
        assert_eq!(p.timeout_ms, 1500);
        assert_eq!(
            p.allowed_files[0],
            FileGrant {
                path: "data".into(),
                mode: FileMode::Rw
            }
        );
        assert_eq!(p.allowed_files[1].mode, FileMode::Ro);
        assert_eq!(p.allowed_hosts, ["api.example.com", "*.x.org"]);
        assert_eq!(
            parse_ram(&json!("512KiB")),
            Err("found `\"512KiB\"`: at least 1MiB is needed".into())
        );
        assert_eq!(parse_ram(&json!("2MiB")), Ok(2 << 20));
        assert_eq!(parse_compute(&json!("2000")), Ok(Compute::Fuel(2000)));
    }

    #[test]
    fn bad_values_name_task_and_field() {
        for (field, value, needle) in [
            ("ram", json!("12XB"), "unknown unit `XB`"),
            ("compute", json!("FAST"), "expected `LOW`"),
            ("timeout", json!("soon"), "expected a duration"),
            ("timeout", json!("-1s"), "expected a duration"),
            ("max_retries", json!(-1), "whole number"),
            (
                "allowed_files",
                json!(["../etc"]),
                "leaves the project root",
            ),
            ("allowed_files", json!(["/etc"]), "absolute"),
            (
                "allowed_hosts",
                json!(["a b"]),
                "expected `api.example.com`",
            ),
            ("env_variables", json!(["1X"]), "expected a name"),
            ("colour", json!("red"), "unknown option"),
        ] {
            let e = Policy::from_raw("job", &raw(json!({ field: value })), &BTreeMap::new())
                .expect_err(field);
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("task `job`: invalid `{field}`")),
                "{text}"
            );
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn task_values_win_over_defaults() {
        let p = Policy::from_raw(
            "t",
            &raw(json!({"ram": "2MB"})),
            &raw(json!({"ram": "8MB", "timeout": "2s"})),
        )
        .expect("valid");
        assert_eq!((p.ram_bytes, p.timeout_ms), (2_000_000, 2000));
    }

    #[test]
    fn a_subtask_never_gets_more_than_its_caller_has_left() {
        let child = Policy::from_raw(
            "child",
            &raw(json!({"compute": "HIGH", "ram": "1GB", "timeout": "1h",
                        "allowed_files": ["data", {"path": "out", "mode": "rw"}, "secret"],
                        "allowed_hosts": ["*.example.com", "api.other.org"],
                        "env_variables": ["A", "B"]})),
            &BTreeMap::new(),
        )
        .expect("child policy");
        let caller = Policy::from_raw(
            "parent",
            &raw(
                json!({"allowed_files": [{"path": "data", "mode": "ro"}, "out"],
                        "allowed_hosts": ["api.example.com", "*.other.org"],
                        "env_variables": ["B", "C"]}),
            ),
            &BTreeMap::new(),
        )
        .expect("caller policy");
        let left = Remaining {
            time_ms: 1500,
            fuel: 42,
            ram_bytes: 1 << 20,
        };
        let narrowed = child.narrowed_for_subtask(&caller, &left);
        assert_eq!(narrowed.fuel(), 42);
        assert_eq!(narrowed.ram_bytes, 1 << 20);
        assert_eq!(narrowed.timeout_ms, 1500);
        assert_eq!(
            narrowed.allowed_files,
            [
                FileGrant {
                    path: "data".into(),
                    mode: FileMode::Ro
                },
                FileGrant {
                    path: "out".into(),
                    mode: FileMode::Rw
                },
            ]
        );
        assert_eq!(narrowed.allowed_hosts, ["api.example.com", "api.other.org"]);
        assert_eq!(narrowed.env_variables, ["B"]);
        // The child's own, narrower values stay.
        let small = Remaining {
            time_ms: u64::MAX,
            fuel: u64::MAX,
            ram_bytes: u64::MAX,
        };
        let own = child.narrowed_for_subtask(&caller, &small);
        assert_eq!(own.fuel(), FUEL_HIGH);
        assert_eq!(own.timeout_ms, 3_600_000);
    }

    #[test]
    fn disk_is_optional_parsed_as_a_size_and_narrowed_to_the_stricter_cap() {
        let none = BTreeMap::new();
        let open = Policy::from_raw("t", &BTreeMap::new(), &none).expect("no disk");
        assert_eq!(open.disk_bytes, None);
        // Manifests without the field (every bundle built before it) still load, and one
        // without a limit serializes as before.
        let json = serde_json::to_value(&open).expect("serialize");
        assert!(json.get("disk_bytes").is_none(), "{json}");
        let back: Policy = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, open);
        let capped = Policy::from_raw("t", &raw(json!({"disk": "1.5MB"})), &none).expect("disk");
        assert_eq!(capped.disk_bytes, Some(1_500_000));
        let zero = Policy::from_raw("t", &raw(json!({"disk": 0})), &none).expect("disk 0");
        assert_eq!(zero.disk_bytes, Some(0));
        let error = Policy::from_raw("t", &raw(json!({"disk": "lots"})), &none)
            .expect_err("bad disk")
            .to_string();
        assert!(error.contains("disk") && error.contains("lots"), "{error}");
        let left = Remaining {
            time_ms: u64::MAX,
            fuel: u64::MAX,
            ram_bytes: u64::MAX,
        };
        assert_eq!(
            open.narrowed_for_subtask(&capped, &left).disk_bytes,
            Some(1_500_000)
        );
        assert_eq!(
            capped.narrowed_for_subtask(&open, &left).disk_bytes,
            Some(1_500_000)
        );
        assert_eq!(open.narrowed_for_subtask(&open, &left).disk_bytes, None);
        assert_eq!(
            capped.narrowed_for_subtask(&zero, &left).disk_bytes,
            Some(0)
        );
    }

    #[test]
    fn host_patterns_cover_as_documented() {
        assert!(host_pattern_covers("*", "a.b"));
        assert!(host_pattern_covers("*.x.com", "a.x.com"));
        assert!(host_pattern_covers("*.x.com", "*.a.x.com"));
        assert!(!host_pattern_covers("*.x.com", "x.com"));
        assert!(!host_pattern_covers("*.x.com", "ax.com"));
        assert!(!host_pattern_covers("a.x.com", "*.x.com"));
        assert!(narrow_hosts(&["*".into()], &[]).is_empty());
    }
}
