//! The two values every row is stamped with: its id and the time it was
//! written, in the one text form every table stores.

/// Now, as the RFC 3339 UTC text every table stores (millisecond precision,
/// so that text order is time order).
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A new row id: a UUID (the form Octomil's clients validate), version 7 so
/// that ids sort by creation time. Lists ordered by a millisecond timestamp
/// break ties by id, which then keeps creation order within the same
/// millisecond (the generator is monotonic within a process).
/// Reads a time `format_time` wrote.
pub fn parse_time(text: &str) -> Option<std::time::SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(Into::into)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Ids are UUIDs; anything else cannot name a row, and the dialects that
/// document UUIDs answer 400 for it.
pub fn is_uuid(text: &str) -> bool {
    uuid::Uuid::try_parse(text).is_ok()
}
