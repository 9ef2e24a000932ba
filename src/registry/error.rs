//! The one error type of the registry. Each dialect maps it to its own
//! status codes and error body; the CLI prints it.

use std::fmt;

use crate::store::sql;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The thing does not exist, or belongs to another team (the two are
    /// indistinguishable on purpose).
    NotFound(String),
    /// The request is valid but conflicts with the current state.
    Conflict(String),
    /// A field of the request is missing or malformed. `field` names it.
    Invalid { field: String, message: String },
    /// The caller is known but lacks the right for this operation.
    Forbidden(String),
    /// The request body exceeds a limit.
    TooLarge(String),
    /// No credentials, or unknown or revoked ones.
    Unauthorized(String),
    /// The caller's rate limit is exhausted; try again after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// The path exists but not with this method. Raised by the router.
    MethodNotAllowed { allowed: Vec<String> },
    /// No route for this path. Raised by the router.
    NoRoute(String),
    /// The request is well-formed but cannot be processed (DataRobot's 422).
    Unprocessable { message: String, details: serde_json::Value },
    /// The disk (or quota) is full: nothing was stored. Each dialect answers 507.
    InsufficientStorage(String),
    /// A part the request needs (the blob store) cannot be used now; it may
    /// work again without anyone doing anything. Each dialect answers 503.
    Unavailable(String),
    /// Our fault: storage failed, or an invariant broke.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid { field: field.to_string(), message: message.into() }
    }

    /// A 422 with a message and no extra fields.
    pub fn unprocessable(message: impl Into<String>) -> Error {
        Error::Unprocessable { message: message.into(), details: serde_json::Value::Null }
    }

    pub fn out_of_space() -> Error {
        Error::InsufficientStorage("the server is out of storage space; nothing was stored".into())
    }

    pub fn not_found(what: &str, id: &str) -> Error {
        Error::NotFound(format!("{what} {id} not found"))
    }

    /// The message a person should see.
    pub fn message(&self) -> String {
        match self {
            Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Forbidden(m)
            | Error::TooLarge(m)
            | Error::Unauthorized(m)
            | Error::NoRoute(m)
            | Error::InsufficientStorage(m)
            | Error::Unavailable(m)
            | Error::Internal(m) => m.clone(),
            Error::Invalid { field, message } => format!("{field}: {message}"),
            Error::RateLimited { retry_after_secs } => format!("rate limit exceeded; retry after {retry_after_secs} s"),
            Error::MethodNotAllowed { allowed } => format!("method not allowed; this path accepts {}", allowed.join(", ")),
            Error::Unprocessable { message, .. } => message.clone(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}

impl From<sql::Error> for Error {
    fn from(e: sql::Error) -> Error {
        match e {
            // A row read a moment ago was deleted by another request before
            // the next statement reached it: it is gone, not broken.
            sql::Error::NoRows => Error::NotFound("the record no longer exists".into()),
            sql::Error::DiskFull(_) => Error::out_of_space(),
            sql::Error::Unavailable(m) => Error::Unavailable(format!("the database cannot be used now: {m}")),
            e => Error::Internal(format!("database: {e}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if is_out_of_space(&e) {
            return Error::out_of_space();
        }
        if let Some(unavailable) = crate::store::blobs::as_unavailable(&e) {
            return Error::Unavailable(unavailable.to_string());
        }
        Error::Internal(format!("i/o: {e}"))
    }
}

/// ENOSPC, or EDQUOT (a quota is a full disk to the caller too).
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_map_to_what_the_doors_answer() {
        assert_eq!(Error::from(sql::Error::NoRows), Error::NotFound("the record no longer exists".into()));
        assert_eq!(Error::from(sql::Error::DiskFull("database or disk is full".into())), Error::out_of_space());
        assert_eq!(Error::from(sql::Error::Busy("database is locked".into())), Error::Internal("database: database is locked".into()));
    }
}
