//! Tool arguments checked against the tool's own input schema before anything runs, so a missing
//! or ill-typed field is a JSON-RPC "invalid params" error naming the field (what the MCP spec
//! asks of a call that cannot be routed), never a sandbox run.
//!
//! The schemas are ours and use a small subset of JSON Schema: `type` (one name), `properties`,
//! `required`, `additionalProperties: false`, `enum`, and `items.type` for arrays.

use rmcp::ErrorData;
use rmcp::model::JsonObject;
use serde_json::Value;

/// Checks `arguments` against `schema` (an object schema); the error names the tool and field.
pub fn check(tool: &str, schema: &JsonObject, arguments: &JsonObject) -> Result<(), ErrorData> {
    let invalid = |message: String| ErrorData::invalid_params(format!("`{tool}`: {message}"), None);
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if arguments.get(name).is_none_or(Value::is_null) {
                return Err(invalid(format!("missing required argument `{name}`")));
            }
        }
    }
    for (name, value) in arguments {
        let Some(property) = properties.and_then(|p| p.get(name)) else {
            let known: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(invalid(format!(
                "unknown argument `{name}`; expected {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        };
        if value.is_null() {
            // An explicit null is an absent optional argument (required ones are checked above).
            continue;
        }
        if let Some(expected) = property.get("type").and_then(Value::as_str)
            && !has_type(value, expected)
        {
            return Err(invalid(format!(
                "argument `{name}` must be {}, got {}",
                article(expected),
                type_name(value)
            )));
        }
        if let Some(allowed) = property.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(invalid(format!(
                "argument `{name}` must be one of {}, got {value}",
                allowed.join(", ")
            )));
        }
        if let (Some(items), Some(expected)) = (
            value.as_array(),
            property
                .get("items")
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str),
        ) && let Some((index, item)) = items
            .iter()
            .enumerate()
            .find(|(_, item)| !has_type(item, expected))
        {
            return Err(invalid(format!(
                "argument `{name}[{index}]` must be {}, got {}",
                article(expected),
                type_name(item)
            )));
        }
    }
    Ok(())
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        // Types this subset does not name accept anything.
        _ => true,
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "array" | "object" | "integer" => format!("an {type_name}"),
        other => format!("a {other}"),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::{Value, json};

    fn object(value: Value) -> rmcp::model::JsonObject {
        match value {
            Value::Object(object) => object,
            _ => panic!("not an object"),
        }
    }

    fn schema() -> rmcp::model::JsonObject {
        object(json!({
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "n": {"type": "integer"},
                "language": {"type": "string", "enum": ["python", "javascript"]},
                "hosts": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["code"],
            "additionalProperties": false
        }))
    }

    fn message(arguments: Value) -> String {
        check("t", &schema(), &object(arguments))
            .err()
            .map(|e| e.message.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        assert!(check("t", &schema(), &object(json!({"code": "1"}))).is_ok());
        assert_eq!(message(json!({})), "`t`: missing required argument `code`");
        assert_eq!(
            message(json!({"code": 1})),
            "`t`: argument `code` must be a string, got an integer"
        );
        assert_eq!(
            message(json!({"code": "", "n": 1.5})),
            "`t`: argument `n` must be an integer, got a number"
        );
        assert!(message(json!({"code": "", "extra": 1})).contains("unknown argument `extra`"));
        assert!(message(json!({"code": "", "language": "ruby"})).contains("must be one of"));
        assert_eq!(
            message(json!({"code": "", "hosts": ["a", 2]})),
            "`t`: argument `hosts[1]` must be a string, got an integer"
        );
    }
}
