//! Which database a registry uses: SQLite in its data directory (the
//! default, nothing to configure), or the PostgreSQL database this process
//! was pointed at (`--database postgres://…`, `MODELREG_DATABASE_URL`),
//! which several servers and workers share. The choice is the process's,
//! made once before any registry opens; the PostgreSQL pool is opened (and
//! its schema brought up to date) by the first registry and shared by every
//! later one.

use std::path::Path;
use std::sync::Mutex;

use crate::registry::{Error, Result};
use crate::store::sql::Database;

/// The SQLite database file of a data directory.
pub const DB_FILE: &str = "modelreg.db";

/// The pool `--db-pool` gives when it is not set: enough for a server's
/// request threads to rarely wait, few enough that ten servers fit in
/// PostgreSQL's default of 100 connections.
pub const DEFAULT_POOL: usize = 16;

struct Choice {
    url: String,
    pool_size: usize,
    opened: Option<Database>,
}

static CHOICE: Mutex<Option<Choice>> = Mutex::new(None);

/// Makes every registry this process opens use the PostgreSQL database at
/// `url`, with at most `pool_size` clients.
pub fn use_postgres(url: &str, pool_size: usize) {
    *CHOICE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Choice { url: url.to_string(), pool_size, opened: None });
}

/// Whether the registry's database is a server's rather than a file in
/// the data directory.
pub fn is_external() -> bool {
    CHOICE.lock().unwrap_or_else(|p| p.into_inner()).is_some()
}

/// The database of the registry in `data_dir`.
pub(crate) fn open(data_dir: &Path) -> Result<Database> {
    let mut choice = CHOICE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(choice) = choice.as_mut() else {
        return Ok(Database::Sqlite(data_dir.join(DB_FILE)));
    };
    if let Some(database) = &choice.opened {
        return Ok(database.clone());
    }
    let database = Database::postgres(&choice.url, choice.pool_size).map_err(|e| match e {
        crate::store::sql::Error::Unavailable(m) => Error::Unavailable(m),
        e => Error::Internal(format!("the database: {e}")),
    })?;
    choice.opened = Some(database.clone());
    Ok(database)
}

/// Where the registry in `data_dir` keeps its records, for people: the
/// SQLite file, or the PostgreSQL URL without its password.
pub fn describe(data_dir: &Path) -> Result<String> {
    Ok(open(data_dir)?.describe())
}

/// The PostgreSQL URL this process was given, if any.
pub(crate) fn postgres_url() -> Option<String> {
    CHOICE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|choice| choice.url.clone())
}
