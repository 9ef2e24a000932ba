//! `modelreg db migrate --to postgres://…`: copies a registry's SQLite
//! database into an empty PostgreSQL database, then reads both back and
//! compares each table's row count and checksum, so that a team outgrowing
//! one machine takes every record along and knows it did.
//!
//! The copy is one PostgreSQL transaction (all of it, or nothing), read from
//! one SQLite snapshot, with `serve.lock` held exclusively: no server writes
//! to the SQLite file meanwhile, and none starts before the copy is done.
//! The SQLite file is left as it was; switching is passing `--database`.

use std::fs::File;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::blob_migration::serve_lock;
use crate::registry::{Error, Registry, Result};
use crate::store::sql::{self, params_from_iter, Connection, Database, Value};

/// Every table of the schema, parents before children (foreign keys), as
/// the copy inserts them, with the target's triggers off (`set_triggers`):
/// the counts they keep are copied as they are, then compared like every
/// other table. A unit test fails when the schema has a table the list
/// does not name.
const COPIED: &[&str] = &[
    "teams",
    "users",
    "api_keys",
    "blobs",
    "blob_contents",
    "registry_settings",
    "models",
    "model_versions",
    "version_files",
    "model_aliases",
    "model_tags",
    "version_tags",
    "webhooks",
    "webhook_deliveries",
    "webhook_attempts",
    "version_cards",
    "jobs",
    "job_log_chunks",
    "templates",
    "machines",
    "machine_events",
    "environments",
    "environment_versions",
    "access_roles",
    "datasets",
    "model_tests",
    "dependency_builds",
    "conversions",
    "remote_repositories",
    "custom_templates",
    "custom_template_files",
    "version_insights",
    "signed_urls",
    "format_artifacts",
    "team_model_counts",
    "team_dataset_counts",
];

/// What `db migrate` did, table by table.
#[derive(Debug, Serialize)]
pub struct DbMigrationReport {
    /// The target, without its password.
    pub to: String,
    pub tables: Vec<TableReport>,
    /// Where the registry keeps its blobs: a PostgreSQL registry shared by
    /// several machines needs them in a bucket.
    pub blob_store: String,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    /// sha256 over the table's rows (each row's values, hashed, the hashes
    /// sorted), the same on both databases.
    pub checksum: String,
}

impl Registry {
    /// Copies this registry's records into the empty PostgreSQL database at
    /// `url` and verifies them there (see the module doc).
    pub fn migrate_database(&self, url: &str) -> Result<DbMigrationReport> {
        if crate::registry::database::is_external() {
            return Err(Error::invalid(
                "--database",
                "db migrate copies the data directory's SQLite database: run it without --database (give the target to --to)",
            ));
        }
        let _no_server = hold_exclusively(self)?;
        let target_db = Database::postgres(url, 2).map_err(|e| match e {
            sql::Error::Unavailable(m) => Error::Unavailable(m),
            e => Error::invalid("to", e.to_string()),
        })?;
        let target = Connection::connect(&target_db)?;
        let holds: bool = target.query_row("SELECT EXISTS (SELECT 1 FROM teams)", [], |r| r.get(0))?;
        if holds {
            return Err(Error::Conflict(format!(
                "the database {} already holds a registry; db migrate copies into an empty database only",
                target_db.describe()
            )));
        }
        let _snapshot = self.conn.begin_read()?;
        let tx = target.begin_write()?;
        for table in COPIED {
            tx.set_triggers(table, false)?;
            copy_table(&self.conn, &tx, table)?;
            tx.set_triggers(table, true)?;
        }
        let mut tables = Vec::new();
        for table in COPIED {
            let (rows, checksum) = fingerprint(&self.conn, table)?;
            let (target_rows, target_checksum) = fingerprint(&tx, table)?;
            if (rows, &checksum) != (target_rows, &target_checksum) {
                return Err(Error::Internal(format!(
                    "table {table} differs after the copy ({rows} rows here, {target_rows} there; checksums {checksum} and \
                     {target_checksum}); nothing was committed"
                )));
            }
            tables.push(TableReport { table: table.to_string(), rows, checksum });
        }
        tx.commit()?;
        // fresh statistics, so that the first queries are planned on the
        // table sizes they meet rather than an empty database's
        target.execute("ANALYZE", [])?;
        Ok(DbMigrationReport { to: target_db.describe(), tables, blob_store: self.blob_location()?.to_string() })
    }
}

/// `serve.lock`, held exclusively: refused while a server runs on the
/// data directory.
fn hold_exclusively(registry: &Registry) -> Result<File> {
    let lock = serve_lock(registry.data_dir())?;
    if lock.try_lock().is_err() {
        return Err(Error::Conflict(
            "a server is running on this data directory; stop it first, or what it writes after the copy would be lost".into(),
        ));
    }
    Ok(lock)
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    Ok(conn.prepare(&format!("SELECT * FROM {table} LIMIT 0"))?.column_names()?)
}

/// Inserts every row of `table` into `target`, in the source's insertion
/// order (what `rowid` orders on both engines), many rows per statement: a
/// statement is a round trip to the server, and row by row 100,000 models
/// took 52 s, all of it waiting.
fn copy_table(source: &Connection, target: &Connection, table: &str) -> Result<()> {
    let columns = columns(source, table)?;
    let list = columns.join(", ");
    // PostgreSQL takes at most 65,535 parameters in one statement
    let per_statement = (MAX_PARAMETERS / columns.len()).clamp(1, ROWS_PER_STATEMENT);
    let insert_sql = |rows: usize| {
        let tuple = |row: usize| {
            let numbers = (1..=columns.len()).map(|c| format!("?{}", row * columns.len() + c)).collect::<Vec<_>>();
            format!("({})", numbers.join(", "))
        };
        format!("INSERT INTO {table} ({list}) VALUES {}", (0..rows).map(tuple).collect::<Vec<_>>().join(", "))
    };
    let full = insert_sql(per_statement);
    let mut select = source.prepare(&format!("SELECT {list} FROM {table} ORDER BY rowid"))?;
    let mut rows = select.query([])?;
    let mut batch: Vec<Value> = Vec::with_capacity(per_statement * columns.len());
    loop {
        let row = rows.next()?;
        if let Some(row) = &row {
            for i in 0..columns.len() {
                batch.push(row.get::<_, Value>(i)?);
            }
        }
        let count = batch.len() / columns.len();
        if count == per_statement || (row.is_none() && count > 0) {
            let sql = if count == per_statement { full.clone() } else { insert_sql(count) };
            target.prepare(&sql)?.execute(params_from_iter(batch.drain(..)))?;
        }
        if row.is_none() {
            return Ok(());
        }
    }
}

/// Rows one INSERT of `copy_table` carries, and the parameters a statement
/// may have on PostgreSQL.
const ROWS_PER_STATEMENT: usize = 500;
const MAX_PARAMETERS: usize = 65_535;

/// A table's row count and checksum, read the same way on either engine:
/// the source's columns, each row's values hashed with their types, the
/// row hashes sorted (so the order rows come back in does not matter).
fn fingerprint(conn: &Connection, table: &str) -> Result<(u64, String)> {
    let names = columns(conn, table)?;
    // the target has identity columns SQLite keeps implicitly: skip them
    let names: Vec<&String> = names.iter().filter(|c| *c != "rowid").collect();
    let list = names.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
    let mut select = conn.prepare(&format!("SELECT {list} FROM {table}"))?;
    let mut rows = select.query([])?;
    let mut hashes = Vec::new();
    while let Some(row) = rows.next()? {
        let mut hash = Sha256::new();
        for i in 0..names.len() {
            match row.get::<_, Value>(i)? {
                Value::Null => hash.update([0]),
                Value::Integer(n) => {
                    hash.update([1]);
                    hash.update(n.to_be_bytes());
                }
                Value::Real(x) => {
                    hash.update([2]);
                    hash.update(x.to_bits().to_be_bytes());
                }
                Value::Text(t) => {
                    hash.update([3]);
                    hash.update((t.len() as u64).to_be_bytes());
                    hash.update(t.as_bytes());
                }
                Value::Blob(b) => {
                    hash.update([4]);
                    hash.update((b.len() as u64).to_be_bytes());
                    hash.update(&b);
                }
            }
        }
        hashes.push(<[u8; 32]>::from(hash.finalize()));
    }
    hashes.sort_unstable();
    let mut all = Sha256::new();
    for h in &hashes {
        all.update(h);
    }
    Ok((hashes.len() as u64, crate::registry::hex(&all.finalize())))
}

/// The tables a SQLite registry has, for the test below.
#[cfg(test)]
fn sqlite_tables(conn: &Connection) -> Vec<String> {
    let mut names = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").unwrap();
    names.query_map([], |r| r.get(0)).unwrap().collect::<sql::Result<_>>().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let known: std::collections::BTreeSet<&str> = COPIED.iter().copied().collect();
        for table in sqlite_tables(&registry.conn) {
            assert!(known.contains(table.as_str()), "db migrate does not know table {table}: add it to COPIED");
        }
        assert_eq!(known.len(), COPIED.len(), "a table is named twice");
    }
}
