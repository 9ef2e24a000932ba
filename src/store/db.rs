//! The SQLite side of the store: opening a connection, applying schema.sql,
//! and the per-connection settings every caller relies on.
//!
//! There is no global connection and no pool: each HTTP worker, job worker and
//! CLI invocation opens its own. WAL lets readers run beside the one writer,
//! and writers queue on the busy timeout instead of failing.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// The schema a fresh data directory gets. Migrations from older versions go
/// in `migrate`, one step per version.
const SCHEMA: &str = include_str!("../../schema.sql");
pub const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for another writer before giving up. Writes are
/// short (blobs are written before their transaction starts), so a long wait
/// means something is wrong rather than busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL, not WAL's usual NORMAL: NORMAL can lose the last commits on a
    // power loss, and an acknowledged write must never be lost.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    // Two processes may open a new data directory at once (a server and a
    // CLI command): the immediate transaction makes one of them wait, and the
    // re-check inside it makes the second one a no-op.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// `PRAGMA integrity_check`: an empty list when the database is sound.
pub fn integrity_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let line = row?;
        if line != "ok" {
            problems.push(line);
        }
    }
    Ok(problems)
}
