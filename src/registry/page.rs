//! Pagination shared by every list: offset pages (Octomil, DataRobot) and
//! keyset cursors (Paperspace). Both are index-backed: a keyset page seeks to
//! (sort key, id) and reads `limit + 1` rows to know exactly whether more
//! follow.

use super::{Error, Result};
use crate::store::blobs::hex;
use crate::store::sql;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    Offset { offset: u64, limit: u64 },
    /// Rows strictly after `after` in the list's order.
    After { after: Option<Cursor>, limit: u64 },
}

impl PageRequest {
    pub fn limit(&self) -> u64 {
        match self {
            PageRequest::Offset { limit, .. } | PageRequest::After { limit, .. } => *limit,
        }
    }
}

/// The position of the last row of a page: its sort key and its id (the tie
/// breaker). Opaque to clients: `encode` gives a hex string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex(format!("{}\u{0}{}", self.key, self.id).as_bytes())
    }

    /// Decodes a cursor a client sent back; `field` names the query parameter
    /// in the error.
    pub fn decode(field: &str, text: &str) -> Result<Cursor> {
        let malformed = || Error::invalid(field, "is not a cursor this server issued");
        if !text.len().is_multiple_of(2) || text.len() > 4096 {
            return Err(malformed());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(malformed)?, 16).map_err(|_| malformed()))
            .collect::<Result<Vec<u8>>>()?;
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let (key, id) = text.split_once('\u{0}').ok_or_else(malformed)?;
        Ok(Cursor { key: key.to_string(), id: id.to_string() })
    }
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// All matching rows, when the caller asked for a count.
    pub total: Option<u64>,
    pub has_more: bool,
    /// Where the next page starts, when `has_more`.
    pub next: Option<Cursor>,
}

/// The SQL tail of a keyset page over `(column, id)`: the seek past `after`,
/// the order, and `LIMIT limit + 1` (one extra row says whether more follow).
/// It starts with " AND", so the query's WHERE must come first; its
/// arguments are appended to `args`.
pub(super) fn keyset_tail(
    column: &str,
    descending: bool,
    after: Option<&Cursor>,
    limit: u64,
    args: &mut Vec<sql::Value>,
) -> String {
    use sql::Value as Sql;
    let (cmp, dir) = if descending { ("<", "DESC") } else { (">", "ASC") };
    let mut sql = String::new();
    if let Some(cursor) = after {
        sql.push_str(&format!(" AND ({column}, id) {cmp} (?, ?)"));
        args.push(Sql::Text(cursor.key.clone()));
        args.push(Sql::Text(cursor.id.clone()));
    }
    sql.push_str(&format!(" ORDER BY {column} {dir}, id {dir} LIMIT ?"));
    args.push(Sql::Integer(clamp_i64(limit.saturating_add(1))));
    sql
}

/// Cuts the `limit + 1` rows a keyset query read down to a page.
pub(super) fn keyset_page<T>(mut items: Vec<T>, limit: u64, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let has_more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    let next = if has_more { items.last().map(key) } else { None };
    Page { items, total: None, has_more, next }
}

/// The SQL tail of an offset page: `LIMIT limit + 1 OFFSET offset`, both
/// clamped to SQLite's integer range (a client's `offset=2^64-1` is an
/// empty page, not an overflow). Its arguments are appended to `args`.
pub(super) fn offset_tail(offset: u64, limit: u64, args: &mut Vec<sql::Value>) -> String {
    args.push(sql::Value::Integer(clamp_i64(limit.saturating_add(1))));
    args.push(sql::Value::Integer(clamp_i64(offset)));
    " LIMIT ? OFFSET ?".to_string()
}

/// Cuts the `limit + 1` rows an offset query read down to a page.
pub(super) fn offset_page<T>(mut items: Vec<T>, limit: u64, total: i64) -> Page<T> {
    let has_more = items.len() as u64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Page { items, total: Some(total.max(0) as u64), has_more, next: None }
}

pub(super) fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { key: "2026-01-01T00:00:00.000Z".into(), id: "abc".into() };
        assert_eq!(Cursor::decode("after", &c.encode()).unwrap(), c);
        for bad in ["zz", "abc", "6162", ""] {
            assert!(Cursor::decode("after", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offset_tail_clamps_huge_offsets() {
        let mut args = Vec::new();
        offset_tail(u64::MAX, u64::MAX, &mut args);
        assert_eq!(args, vec![sql::Value::Integer(i64::MAX), sql::Value::Integer(i64::MAX)]);
    }
}
