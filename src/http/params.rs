//! Query parameters, parsed with errors that name the parameter.

use super::Request;
use crate::registry::fields::{parse_bool, parse_true_false};
use crate::registry::{Error, Result};

/// Parses an integer query parameter within `min..=max`.
pub fn query_int(req: &Request, name: &str, default: i64, min: i64, max: i64) -> Result<i64> {
    let Some(text) = req.query(name) else { return Ok(default) };
    match text.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(Error::invalid(name, format!("must be an integer from {min} to {max}, got {text:?}"))),
    }
}

/// Parses a boolean query parameter: true/false in any case, or 1/0.
pub fn query_bool(req: &Request, name: &str) -> Result<Option<bool>> {
    let Some(text) = req.query(name) else { return Ok(None) };
    parse_bool(text).map(Some).ok_or_else(|| Error::invalid(name, format!("must be true or false, got {text:?}")))
}

/// A query parameter parsed by `parse_true_false`.
pub fn query_true_false(req: &Request, name: &str) -> Result<Option<bool>> {
    req.query(name).map(|t| parse_true_false(name, t)).transpose()
}

