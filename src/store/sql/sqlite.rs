//! The SQLite engine of the SQL seam: the one file that names `rusqlite`.
//! Opening a connection with the settings every caller relies on, applying
//! schema.sql and the migrations, binding parameters and reading columns
//! through the seam's `ToSql`/`FromSql`, transactions, the backup API, and
//! rusqlite's errors turned into `sql::Error`.
//!
//! There is no global connection and no pool: each HTTP worker, job worker and
//! CLI invocation opens its own. WAL lets readers run beside the one writer,
//! and writers queue on the busy timeout instead of failing.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef as SqliteValue};
use rusqlite::{ErrorCode, OpenFlags, TransactionBehavior};

use super::{newer_schema, Column, Error, Params, Result, ValueRef};
use crate::store::blobs::PRIVATE_FILE;

// The engine's types, as the seam's enums hold them.
pub(super) use rusqlite::{Connection, Row, Rows, Transaction};

/// Version 1 of the schema. Every later version is one step in `MIGRATIONS`;
/// a fresh data directory gets version 1 and then every step, so each table
/// is defined in exactly one place.
const SCHEMA: &str = include_str!("../../../schema.sql");
/// Step i takes the schema from version i + 1 to i + 2.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0002_compute.sql"),
    include_str!("../../../migrations/0003_conversions.sql"),
    include_str!("../../../migrations/0004_repositories.sql"),
    include_str!("../../../migrations/0005_templates.sql"),
    include_str!("../../../migrations/0006_insights.sql"),
    include_str!("../../../migrations/0007_model_origin.sql"),
    include_str!("../../../migrations/0008_version_lifecycle.sql"),
    include_str!("../../../migrations/0009_format_artifacts.sql"),
    include_str!("../../../migrations/0010_blob_store.sql"),
    include_str!("../../../migrations/0011_job_queue.sql"),
    include_str!("../../../migrations/0012_job_leases.sql"),
    include_str!("../../../migrations/0013_model_aliases.sql"),
    include_str!("../../../migrations/0014_tags_and_lineage.sql"),
    include_str!("../../../migrations/0015_webhooks.sql"),
    include_str!("../../../migrations/0016_model_cards.sql"),
];
pub const SCHEMA_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

/// How long a connection waits for another writer before giving up. Writes are
/// short (blobs are written before their transaction starts), so a long wait
/// means something is wrong rather than busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn open(path: &Path) -> Result<Connection> {
    // SQLite gives its -wal and -shm files the database file's mode, so a
    // database created private keeps all three private.
    let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(path);
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL, not WAL's usual NORMAL: NORMAL can lose the last commits on a
    // power loss, and an acknowledged write must never be lost.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Plans that do not depend on bound values. Without it SQLite peeks at a
    // bound LIMIT (and at LIKE patterns) while planning, and any statement
    // that did so is re-prepared at its next bind: every list page parsed
    // and planned its query again (8% of its CPU), prepare_cached or not.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version > SCHEMA_VERSION {
        return Err(newer_schema(version));
    }
    if version > 0 {
        // A migration rewrites tables in place; if it (or this binary) turns
        // out wrong, the copy is the way back.
        let copy = copy_before_migration(conn, version)?;
        eprintln!(
            "modelreg: upgrading the database from schema version {version} to {SCHEMA_VERSION}; the database as it was is in {}",
            copy.display()
        );
    }
    // Two processes may open a new data directory at once (a server and a
    // CLI command): the immediate transaction makes one of them wait, and the
    // re-check inside it makes the second one a no-op.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(newer_schema(version));
    }
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
        version = 1;
    }
    for step in &MIGRATIONS[(version - 1) as usize..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(tx.commit()?)
}

/// Copies the database, as it is, to `modelreg.db.schema-<version>.<time>`
/// beside it (through SQLite's backup API, so a server writing meanwhile
/// does not tear the copy), and returns where.
fn copy_before_migration(conn: &Connection, version: i64) -> Result<PathBuf> {
    let path = PathBuf::from(conn.path().unwrap_or_default());
    let stamp = crate::store::stamps::now().replace([':', '.'], "");
    let copy = path.with_file_name(format!(
        "{}.schema-{version}.{stamp}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("modelreg.db")
    ));
    snapshot(conn, &copy)?;
    Ok(copy)
}

/// Writes a consistent copy of `conn`'s database to `dest` (a new file,
/// private, fsynced) with SQLite's online backup API. The copy is taken in
/// one step, under one read transaction: writers carry on (WAL), and the
/// copy is the database as of one commit.
pub(super) fn snapshot(conn: &Connection, dest: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Other(e.to_string());
    std::fs::OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(dest).map_err(io)?;
    let mut out = Connection::open(dest)?;
    {
        let backup = rusqlite::backup::Backup::new(conn, &mut out)?;
        // -1: every page in one step, so the copy is one snapshot and never
        // restarts because a writer changed a page already copied.
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                // Another connection holds a lock the copy needs for a moment.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    // The copy keeps the source's WAL mode; fold it into the one file, so
    // that the file alone is the whole database.
    out.pragma_update(None, "journal_mode", "DELETE")?;
    drop(out);
    std::fs::File::open(dest).and_then(|f| f.sync_all()).map_err(io)
}

/// Opens a database file written by `snapshot`, read-only and as it is.
pub(super) fn open_snapshot(path: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?)
}

pub(super) fn open_snapshot_for_edit(path: &Path) -> Result<Connection> {
    Ok(Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?)
}

/// `PRAGMA integrity_check`: an empty list when the database is sound.
pub(super) fn integrity_problems(conn: &Connection) -> Result<Vec<String>> {
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

// Statements, parameters and rows.

/// A statement prepared once, or taken from the connection's cache.
pub(super) enum Stmt<'c> {
    Plain(rusqlite::Statement<'c>),
    Cached(rusqlite::CachedStatement<'c>),
}

impl<'c> Stmt<'c> {
    #[inline]
    fn statement(&mut self) -> &mut rusqlite::Statement<'c> {
        match self {
            Stmt::Plain(stmt) => stmt,
            Stmt::Cached(stmt) => stmt,
        }
    }
}

pub(super) fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<Stmt<'c>> {
    Ok(Stmt::Plain(conn.prepare(sql)?))
}

pub(super) fn prepare_cached<'c>(conn: &'c Connection, sql: &str) -> Result<Stmt<'c>> {
    Ok(Stmt::Cached(conn.prepare_cached(sql)?))
}

pub(super) fn column_names(stmt: &mut Stmt<'_>) -> Vec<String> {
    stmt.statement().column_names().into_iter().map(String::from).collect()
}

/// `BEGIN IMMEDIATE` (`write`) or `BEGIN DEFERRED`, on a shared reference:
/// registry code keeps reading through the connection while it is open.
pub(super) fn begin(conn: &Connection, write: bool) -> Result<Transaction<'_>> {
    let behavior = if write { TransactionBehavior::Immediate } else { TransactionBehavior::Deferred };
    Ok(Transaction::new_unchecked(conn, behavior)?)
}

/// rusqlite's `Statement::execute`, with the parameters bound here.
pub(super) fn execute<P: Params>(stmt: &mut Stmt<'_>, params: P) -> Result<usize> {
    let stmt = stmt.statement();
    bind(stmt, params)?;
    Ok(stmt.raw_execute()?)
}

/// rusqlite's `Statement::query`, with the parameters bound here. The rows
/// reset the statement when dropped.
pub(super) fn query<'s, P: Params>(stmt: &'s mut Stmt<'_>, params: P) -> Result<Rows<'s>> {
    let stmt = stmt.statement();
    bind(stmt, params)?;
    Ok(stmt.raw_query())
}

/// Binds every parameter, as rusqlite's own `bind_parameters` does: in
/// order from index 1, and exactly as many as the statement has.
fn bind<P: Params>(stmt: &mut rusqlite::Statement<'_>, params: P) -> Result<()> {
    let expected = stmt.parameter_count();
    let mut given = 0;
    params.bind_each(&mut |param| {
        given += 1;
        if given <= expected {
            stmt.raw_bind_parameter(given, Bind(param.to_sql()?))?;
        }
        Ok(())
    })?;
    if given != expected {
        return Err(rusqlite::Error::InvalidParameterCount(given, expected).into());
    }
    Ok(())
}

/// A seam value as rusqlite binds it: borrowed, so text and blobs are not
/// copied on the way (SQLite copies them once, as for rusqlite's own types).
struct Bind<'a>(ValueRef<'a>);

impl rusqlite::ToSql for Bind<'_> {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            ValueRef::Null => SqliteValue::Null,
            ValueRef::Integer(n) => SqliteValue::Integer(n),
            ValueRef::Real(x) => SqliteValue::Real(x),
            ValueRef::Text(t) => SqliteValue::Text(t),
            ValueRef::Blob(b) => SqliteValue::Blob(b),
        }))
    }
}

/// A column of `row` as a seam value. Always inlined: see `Row::get`.
#[inline(always)]
pub(super) fn value<'r>(row: &'r Row<'_>, column: Column<'_>) -> Result<ValueRef<'r>> {
    let value = match column {
        Column::At(i) => row.get_ref(i)?,
        Column::Named(name) => row.get_ref(name)?,
    };
    Ok(match value {
        SqliteValue::Null => ValueRef::Null,
        SqliteValue::Integer(n) => ValueRef::Integer(n),
        SqliteValue::Real(x) => ValueRef::Real(x),
        SqliteValue::Text(t) => ValueRef::Text(t),
        SqliteValue::Blob(b) => ValueRef::Blob(b),
    })
}

/// rusqlite's errors in the cases the registry tells apart; the message is
/// rusqlite's own, so what a person reads has not changed.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let message = e.to_string();
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                ErrorCode::DiskFull => Error::DiskFull(message),
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Error::Busy(message),
                ErrorCode::ConstraintViolation => match f.extended_code {
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Error::Unique(message),
                    _ => Error::Constraint(message),
                },
                _ => Error::Other(message),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::ToSqlConversionFailure(_) => Error::Conversion { what: "a value".into(), message },
            _ => Error::Other(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as schema version 1 left it, with one team in it.
    fn version_1_database_with_a_team(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute("INSERT INTO teams (id, name, created_at) VALUES ('t', 'team', 'now')", []).unwrap();
    }

    #[test]
    fn a_version_1_database_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelreg.db");
        version_1_database_with_a_team(&path);
        let conn = open(&path).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let teams: i64 = conn.query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0)).unwrap();
        assert_eq!(teams, 1, "the migration kept the rows");
        conn.prepare("SELECT cancel_requested FROM jobs").expect("jobs gained cancel_requested");
        let tables: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('datasets', 'model_tests', 'dependency_builds', 'conversions')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 4);
        conn.prepare("SELECT token FROM remote_repositories").expect("migration 0004 made remote_repositories");
    }

    /// gc keeps what `blob_references` lists: every column that references
    /// a blob must be in it, however many migrations redefined the view.
    #[test]
    fn every_blob_column_is_in_blob_references() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("modelreg.db")).unwrap();
        let view: String = conn.query_row("SELECT sql FROM sqlite_master WHERE name = 'blob_references'", [], |r| r.get(0)).unwrap();
        let view = view.split_whitespace().collect::<Vec<_>>().join(" ");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut columns = Vec::new();
        for table in tables {
            let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({table})")).unwrap();
            let refs = stmt.query_map([], |r| Ok((r.get::<_, String>(2)?, r.get::<_, String>(3)?))).unwrap();
            for r in refs {
                let (target, from) = r.unwrap();
                if target == "blobs" {
                    columns.push((table.clone(), from));
                }
            }
        }
        assert!(columns.len() >= 6, "{columns:?}");
        for (table, column) in columns {
            assert!(view.contains(&format!("SELECT {column} FROM {table}")), "blob_references misses {table}.{column}: {view}");
        }
    }

    #[test]
    fn a_database_from_a_newer_modelreg_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelreg.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", SCHEMA_VERSION + 5).unwrap();
        let message = open(&path).unwrap_err().to_string();
        assert!(message.contains("newer than this modelreg"), "{message}");
        assert!(message.contains(&format!("schema version {}", SCHEMA_VERSION + 5)), "{message}");
        assert!(message.contains(&format!("schema version {SCHEMA_VERSION}")), "{message}");
    }

    #[test]
    fn a_migration_first_copies_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelreg.db");
        version_1_database_with_a_team(&path);
        open(&path).unwrap();
        let copies: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("modelreg.db.schema-1."))
            .collect();
        assert_eq!(copies.len(), 1, "{copies:?}");
        let copy = Connection::open(dir.path().join(&copies[0])).unwrap();
        let version: i64 = copy.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 1, "the copy is the database before the migration");
        let teams: i64 = copy.query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0)).unwrap();
        assert_eq!(teams, 1);
        // A database already current is not copied again.
        open(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".schema-")).count(), 1);
    }
}
