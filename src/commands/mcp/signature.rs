//! A Python task's parameters, read from its `def` in the source the bundle carries, so that a
//! `--bundle` tool can ask for them by name (with JSON types where they are annotated).
//!
//! The manifest does not record signatures, so this reads the signed source file: found in the
//! bundle's app layer by its digest (the manifest's `source.digest`), which the signature covers.
//! Only the `def` line of the task's function is parsed: names, `*args`, `**kwargs`, `/` and
//! `*` markers, annotations and whether there is a default. Anything it cannot follow gives no
//! parameters, and the tool falls back to `args` / `kwargs`.

use capsule_packager::Digest;
use capsule_packager::archive::Bundle;
use capsule_packager::manifest::Language;
use rmcp::model::JsonObject;
use serde_json::{Map, Value};
use std::io::Read;

/// Where a Python bundle's project files are mounted (its app layer).
const APP_LAYER_MOUNT: &str = "/capsule/app";
/// Most bytes read from an app layer entry: a task file is far smaller.
const MAX_SOURCE_BYTES: u64 = 4 << 20;

/// How a parameter is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Before `/`: by position only.
    PositionalOnly,
    /// By position or by name.
    Normal,
    /// After `*` or `*args`: by name only.
    KeywordOnly,
    /// `*args`.
    VarPositional,
    /// `**kwargs`.
    VarKeyword,
}

/// One parameter of the task's function.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    /// The annotation as written.
    pub annotation: Option<String>,
    /// The JSON Schema type the annotation maps to, when it maps to one.
    pub json_type: Option<String>,
}

/// The task file's text, when the bundle is Python and its app layer holds it.
pub fn task_source(bundle: &Bundle) -> Option<String> {
    let manifest = &bundle.manifest;
    if !matches!(manifest.language, Language::Python) {
        return None;
    }
    let layer = manifest
        .layers
        .iter()
        .find(|layer| layer.mount == APP_LAYER_MOUNT)?;
    let blob = bundle.blob(&layer.digest)?;
    let decoder = zstd::stream::Decoder::new(blob).ok()?;
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().ok()? {
        let entry = entry.ok()?;
        if entry.size() > MAX_SOURCE_BYTES {
            continue;
        }
        let mut bytes = Vec::new();
        entry.take(MAX_SOURCE_BYTES).read_to_end(&mut bytes).ok()?;
        if Digest::of(&bytes) == manifest.source.digest {
            return String::from_utf8(bytes).ok();
        }
    }
    None
}

/// The parameters of top-level function `function` in `source`, if its `def` can be read.
pub fn python_params(source: &str, function: &str) -> Option<Vec<Param>> {
    let header = def_parameters(source, function)?;
    let mut params = Vec::new();
    let mut kind = Kind::Normal;
    for part in split_top_level(&header, ',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if part == "/" {
            params
                .iter_mut()
                .for_each(|p: &mut Param| p.kind = Kind::PositionalOnly);
            continue;
        }
        if part == "*" {
            kind = Kind::KeywordOnly;
            continue;
        }
        let (this_kind, rest) = if let Some(rest) = part.strip_prefix("**") {
            (Kind::VarKeyword, rest)
        } else if let Some(rest) = part.strip_prefix('*') {
            kind = Kind::KeywordOnly;
            (Kind::VarPositional, rest)
        } else {
            (kind, part)
        };
        let (declaration, default) = match split_top_level(rest, '=').as_slice() {
            [declaration] => (declaration.clone(), false),
            [declaration, ..] => (declaration.clone(), true),
            [] => return None,
        };
        let (name, annotation) = match declaration.split_once(':') {
            Some((name, annotation)) => (name.trim(), Some(annotation.trim().to_string())),
            None => (declaration.trim(), None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        params.push(Param {
            name: name.to_string(),
            kind: this_kind,
            required: !default
                && matches!(
                    this_kind,
                    Kind::Normal | Kind::KeywordOnly | Kind::PositionalOnly
                ),
            json_type: annotation.as_deref().and_then(json_type),
            annotation,
        });
    }
    Some(params)
}

/// `{"args": [...], "kwargs": {...}}` for a call with these (schema-checked) arguments:
/// positional-only parameters and `*args` by position, everything else by name.
pub fn call_arguments(params: &[Param], arguments: &JsonObject) -> (Value, Value) {
    let mut args = Vec::new();
    let mut kwargs = Map::new();
    for param in params {
        let value = arguments.get(&param.name).filter(|v| !v.is_null());
        match (param.kind, value) {
            (Kind::PositionalOnly, Some(value)) => args.push(value.clone()),
            (Kind::VarPositional, Some(Value::Array(items))) => args.extend(items.iter().cloned()),
            (Kind::Normal | Kind::KeywordOnly, Some(value)) => {
                kwargs.insert(param.name.clone(), value.clone());
            }
            _ => {}
        }
    }
    let named: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    if params.iter().any(|p| p.kind == Kind::VarKeyword) {
        for (key, value) in arguments {
            if !named.contains(&key.as_str()) && key != "timeout" {
                kwargs.insert(key.clone(), value.clone());
            }
        }
    }
    (Value::Array(args), Value::Object(kwargs))
}

/// The text between the parentheses of `def function(...)` (or `async def`) at the top level.
fn def_parameters(source: &str, function: &str) -> Option<String> {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(rest) = line
            .strip_prefix("async def ")
            .or_else(|| line.strip_prefix("def "))
        else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(function) else {
            continue;
        };
        if !rest.trim_start().starts_with('(') {
            continue;
        }
        let open = start + (line.len() - rest.len()) + rest.find('(')?;
        return matching_parenthesis(&source[open + 1..]);
    }
    None
}

/// The text up to the `)` that closes an already opened `(`, skipping nested brackets and
/// string literals.
fn matching_parenthesis(text: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '#' => return None,
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => return Some(text[..index].to_string()),
            ')' | ']' | '}' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// `text` split at `separator` where it is not inside brackets or quotes.
fn split_top_level(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, c) if c == separator && depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts
}

/// The JSON Schema type of a plain annotation (`int`, `list[str]`, `dict`...); none for unions,
/// `Optional`, `Any` and names it does not know.
fn json_type(annotation: &str) -> Option<String> {
    let annotation = annotation.trim().trim_matches(['"', '\'']);
    if annotation.contains('|') {
        return None;
    }
    let base = annotation.split('[').next().unwrap_or_default().trim();
    let base = base.rsplit('.').next().unwrap_or(base);
    let json = match base {
        "int" => "integer",
        "float" => "number",
        "str" => "string",
        "bool" => "boolean",
        "list" | "List" | "tuple" | "Tuple" | "Sequence" => "array",
        "dict" | "Dict" | "Mapping" => "object",
        _ => return None,
    };
    Some(json.to_string())
}

/// For tests: the parameter list as compact text.
#[cfg(test)]
fn describe(params: &[Param]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|p| serde_json::json!([p.name, format!("{:?}", p.kind), p.required, p.json_type]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::{call_arguments, describe, python_params};
    use serde_json::json;

    const SOURCE: &str = "from capsule import task\n\n\
@task(name=\"greet\", compute=\"LOW\")\n\
def greet(name: str, times: int = 1, *, loud: bool = False, tags: list[str] = (\"a\", \"b\")) -> str:\n    return name\n\n\
@task\nasync def many(a, /, b: \"float\", *rest, **extra):\n    pass\n\n\
def multi(\n    x: dict,\n    y: int | None = None,\n):\n    pass\n";

    #[test]
    fn reads_names_kinds_defaults_and_types() {
        let greet = python_params(SOURCE, "greet").unwrap_or_default();
        assert_eq!(
            describe(&greet),
            json!([
                ["name", "Normal", true, "string"],
                ["times", "Normal", false, "integer"],
                ["loud", "KeywordOnly", false, "boolean"],
                ["tags", "KeywordOnly", false, "array"]
            ])
        );
        let many = python_params(SOURCE, "many").unwrap_or_default();
        assert_eq!(
            describe(&many),
            json!([
                ["a", "PositionalOnly", true, null],
                ["b", "Normal", true, "number"],
                ["rest", "VarPositional", false, null],
                ["extra", "VarKeyword", false, null]
            ])
        );
        let multi = python_params(SOURCE, "multi").unwrap_or_default();
        assert_eq!(
            describe(&multi),
            json!([
                ["x", "Normal", true, "object"],
                ["y", "Normal", false, null]
            ])
        );
        assert!(python_params(SOURCE, "missing").is_none());
    }

    #[test]
    fn builds_the_call() {
        let many = python_params(SOURCE, "many").unwrap_or_default();
        let arguments = json!({"a": 1, "b": 2.5, "rest": [3, 4], "other": "x"});
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        assert_eq!(
            call_arguments(&many, &arguments),
            (json!([1, 3, 4]), json!({"b": 2.5, "other": "x"}))
        );
    }
}
