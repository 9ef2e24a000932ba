//! Reading the fields of a JSON object (a request body, multipart text
//! fields gathered into one, a job's input): absent or null is `None`, a
//! value of the wrong shape is `Error::Invalid` naming the field. Every
//! door and the rules below them read fields the same way.

use serde_json::{json, Map, Value};

use super::{Error, Result};

/// true/false in any case, or 1/0 (Octomil and Paperspace query and body
/// text).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// An optional string field of a JSON object: absent or null is None,
/// anything but a string is a 400 naming the field.
pub fn opt_string(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

/// An optional boolean field of a JSON object.
pub fn opt_bool(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// true or false in any case, nothing else (DataRobot's enum `false, False,
/// true, True`); anything else is an error naming `field`.
pub fn parse_true_false(field: &str, text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(field, format!("must be true or false, got {text:?}"))),
    }
}

/// An optional boolean field that may also come as the text "true" or
/// "false" (multipart fields, clients that stringify).
pub fn opt_bool_or_text(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_true_false(field, s).map(Some),
        Some(_) => Err(Error::invalid(field, "must be true or false")),
    }
}

/// An optional integer field within `min..=max`, given as a number or as
/// its decimal text.
pub fn opt_int_or_text(body: &serde_json::Map<String, Value>, field: &str, min: i64, max: i64) -> Result<Option<i64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid(field, format!("must be an integer from {min} to {max}"))),
        },
    }
}

/// An optional number field of a JSON object.
pub fn opt_number(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<f64>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(Error::invalid(field, "must be a number")),
    }
}

/// An optional string with a length cap; null and absent are None.
pub fn opt_str(body: &Map<String, Value>, field: &str, max: usize) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(Error::invalid(field, format!("must be at most {max} characters"))),
        Some(_) => Err(Error::invalid(field, "must be a string")),
    }
}

pub fn opt_string_list(body: &Map<String, Value>, field: &str, max_items: usize) -> Result<Option<Vec<String>>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= max_items => items
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(Error::invalid(field, "must be a list of non-empty strings")),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(Error::invalid(field, format!("must be a list of at most {max_items} strings"))),
    }
}

/// `[{fieldName, displayName}]` or `[{fieldName, value}]`: the client's
/// strict dicts, so exactly these two string keys are kept.
pub fn pairs_list(field: &str, value: &Value, second: &str, max_value: usize) -> Result<Value> {
    let Value::Array(items) = value else { return Err(Error::invalid(field, "must be a list")) };
    if items.len() > 100 {
        return Err(Error::invalid(field, "must have at most 100 items"));
    }
    let mut out = Vec::new();
    for item in items {
        let name = item.get("fieldName").and_then(Value::as_str).filter(|s| !s.is_empty());
        let other = item.get(second).and_then(Value::as_str).filter(|s| s.chars().count() <= max_value);
        match (name, other) {
            (Some(n), Some(o)) => out.push(json!({"fieldName": n, second: o})),
            _ => return Err(Error::invalid(field, format!("every item needs a fieldName and a {second} (at most {max_value} characters)"))),
        }
    }
    Ok(Value::Array(out))
}

/// A JSON-text multipart field (or a JSON value, from a JSON body).
pub fn json_field(fields: &Map<String, Value>, name: &str) -> Result<Option<Value>> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Null) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(Error::invalid(name, format!("is not valid JSON: {e}"))),
        },
        Some(v) => Ok(Some(v.clone())),
    }
}

/// Sets `key` to `value` when there is one; `None` leaves `attrs` as it was.
pub fn insert_some(attrs: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        attrs.insert(key.into(), v);
    }
}
