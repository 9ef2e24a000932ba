//! `modelreg backup` and `modelreg restore`.
//!
//! A backup is itself a data directory: `modelreg.db`, `blobs/sha256/…` and
//! `admin.key`. It is taken online, in an order that makes it consistent
//! without stopping the server:
//!
//! 1. take the gc lock shared (as an upload does), so gc cannot remove a
//!    blob until the backup has copied it;
//! 2. snapshot the database with SQLite's backup API (one read transaction:
//!    writers carry on);
//! 3. copy every blob the snapshot knows, as hard links where the
//!    destination is on the same file system. A blob is complete before any
//!    row names it (see `store::blobs`), so each one the snapshot names is
//!    there to copy;
//! 4. release the lock, and only then give the snapshot its final name:
//!    a destination with `modelreg.db` in it is a finished backup.
//!
//! Uploads that commit after the snapshot are not in it; their blobs may or
//! may not be copied, and an unreferenced copy is what gc sweeps anyway.
//!
//! A registry on PostgreSQL (`--database`) is backed up the same way, by
//! PostgreSQL's own tool: inside one REPEATABLE READ transaction, pg_dump
//! writes `modelreg.pgdump` from that transaction's exported snapshot and
//! the blobs to copy are listed from it, so both are of one moment. Restore
//! loads the archive into an empty database with pg_restore (`restore
//! --database URL`) and copies the blobs into the new data directory.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::registry::database::DB_FILE;
use crate::registry::{database, storage, BlobLocation, Error, Registry, Result, FIRST_KEY_FILE};
use crate::store::blobs::{copy_private, create_private_dir, BlobStore, LocalBlobs, Materialise, Materialised};
use crate::store::sql::{self, Connection};

#[derive(Debug, Default, serde::Serialize)]
pub struct BackupReport {
    pub destination: PathBuf,
    pub database_bytes: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Blobs linked rather than copied (the destination shares the file system).
    pub linked: u64,
    /// Referenced blobs that were missing from the source: the backup lacks
    /// them, as the source does (`modelreg verify` on the source says more).
    pub missing: Vec<String>,
    /// Where the copy's blobs are: `local` (in it), or the object store it
    /// still reads them from.
    pub blob_store: String,
}

impl Registry {
    /// Backs the registry up into `dest`, which must not exist or be empty.
    /// The blobs of a registry on an object store stay there (the store has
    /// its own durability, and a copy of terabytes is rarely what a nightly
    /// backup wants) unless `with_blobs`, which copies them too and makes
    /// the backup a local registry of its own.
    pub fn backup(&self, dest: &Path, with_blobs: bool) -> Result<BackupReport> {
        if database::is_external() {
            return self.backup_postgres(dest, with_blobs);
        }
        prepare_destination(dest)?;
        let part = dest.join(format!("{DB_FILE}.part"));
        let location = self.blob_location()?;
        let copy = location == BlobLocation::Local || with_blobs;
        let mut report = {
            let _gc_waits = self.blobs.backup_guard()?;
            self.conn.snapshot(&part)?;
            // tests/operations.rs holds a backup here to show that gc cannot
            // remove a blob the snapshot names before it is copied
            super::wait_at_test_gate("MODELREG_TEST_BACKUP_GATE");
            let snapshot = Connection::open_snapshot(&part)?;
            if copy {
                let report = copy_blobs(&snapshot, self.blobs.as_ref(), dest)?;
                if location != BlobLocation::Local {
                    // the backup holds the blobs now: it is a local registry of its own
                    storage::record(&Connection::open_snapshot_for_edit(&part)?, &BlobLocation::Local)?;
                }
                report
            } else {
                BackupReport { destination: dest.to_path_buf(), blob_store: location.to_string(), ..Default::default() }
            }
        };
        finish(&part, self.data_dir(), dest, DB_FILE, &mut report)?;
        Ok(report)
    }

    fn backup_postgres(&self, dest: &Path, with_blobs: bool) -> Result<BackupReport> {
        let location = self.blob_location()?;
        if with_blobs && location != BlobLocation::Local {
            return Err(Error::invalid(
                "with-blobs",
                format!(
                    "a PostgreSQL registry's backup cannot take its blobs out of {location}: the archive would still name \
                     the bucket; copy the bucket with the store's own tools, or back up without --with-blobs"
                ),
            ));
        }
        prepare_destination(dest)?;
        let part = dest.join(format!("{PG_DUMP_FILE}.part"));
        let mut report = {
            let _gc_waits = self.blobs.backup_guard()?;
            let _snapshot = self.conn.begin_read()?;
            self.conn.snapshot(&part)?;
            super::wait_at_test_gate("MODELREG_TEST_BACKUP_GATE");
            match location {
                BlobLocation::Local => copy_blobs(&self.conn, self.blobs.as_ref(), dest)?,
                remote => BackupReport { destination: dest.to_path_buf(), blob_store: remote.to_string(), ..Default::default() },
            }
        };
        finish(&part, self.data_dir(), dest, PG_DUMP_FILE, &mut report)?;
        Ok(report)
    }
}

/// A PostgreSQL registry's records in a backup: pg_dump's custom format.
pub const PG_DUMP_FILE: &str = "modelreg.pgdump";

/// Restores the backup in `backup` as the data directory `data_dir`, which
/// must not exist or be empty: a restore never mixes with a live registry.
/// The restored database is migrated when the backup is older than this
/// binary (the backup itself is left as it was).
pub fn restore(backup: &Path, data_dir: &Path) -> Result<BackupReport> {
    if backup.join(PG_DUMP_FILE).is_file() {
        return restore_postgres(backup, data_dir);
    }
    if database::is_external() {
        return Err(Error::invalid(
            "backup",
            format!(
                "{} is a backup of a SQLite registry (it has {DB_FILE}); restore it without --database, then move it with \
                 `modelreg db migrate --to …`",
                backup.display()
            ),
        ));
    }
    if !backup.join(DB_FILE).is_file() {
        return Err(Error::invalid(
            "backup",
            format!("{} is not a finished backup (it has no {DB_FILE})", backup.display()),
        ));
    }
    prepare_destination(data_dir)?;
    let part = data_dir.join(format!("{DB_FILE}.part"));
    let source = Connection::open_snapshot(&backup.join(DB_FILE))?;
    source.snapshot(&part)?;
    let snapshot = Connection::open_snapshot(&part)?;
    // A backup of a registry on an object store, taken without its blobs,
    // reads them from that store again.
    let mut report = match storage::recorded(&snapshot)? {
        BlobLocation::Local => copy_blobs(&snapshot, &LocalBlobs::at(&backup.join("blobs")), data_dir)?,
        remote => BackupReport { destination: data_dir.to_path_buf(), blob_store: remote.to_string(), ..Default::default() },
    };
    drop(snapshot);
    finish(&part, backup, data_dir, DB_FILE, &mut report)?;
    // Opening applies any migration this binary has and the backup lacks.
    Registry::open(data_dir)?;
    Ok(report)
}

/// A PostgreSQL backup into the empty database of `--database` and the
/// new data directory `data_dir`.
fn restore_postgres(backup: &Path, data_dir: &Path) -> Result<BackupReport> {
    let Some(url) = database::postgres_url() else {
        return Err(Error::invalid(
            "backup",
            format!(
                "{} is a backup of a PostgreSQL registry: give the empty database to restore it into with --database",
                backup.display()
            ),
        ));
    };
    prepare_destination(data_dir)?;
    sql::restore_postgres(&url, &backup.join(PG_DUMP_FILE)).map_err(|e| Error::invalid("database", e.to_string()))?;
    // Opening applies any migration this binary has and the backup lacks.
    let registry = Registry::open(data_dir)?;
    let mut report = match storage::recorded(&registry.conn)? {
        BlobLocation::Local => copy_blobs(&registry.conn, &LocalBlobs::at(&backup.join("blobs")), data_dir)?,
        remote => BackupReport { destination: data_dir.to_path_buf(), blob_store: remote.to_string(), ..Default::default() },
    };
    let key = backup.join(FIRST_KEY_FILE);
    if key.is_file() {
        copy_private(&key, &data_dir.join(FIRST_KEY_FILE), true)?;
    }
    sync_dir(data_dir)?;
    report.database_bytes = fs::metadata(backup.join(PG_DUMP_FILE))?.len();
    Ok(report)
}

fn prepare_destination(dest: &Path) -> Result<()> {
    let unusable = |why: String| Error::invalid("destination", format!("{}: {why}", dest.display()));
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(unusable("already exists and is not empty; give a new or empty directory".into()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(unusable(e.to_string())),
    }
    create_private_dir(dest).map_err(|e| unusable(e.to_string()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).map_err(|e| unusable(e.to_string()))
}

/// Copies every blob `snapshot` has a row for or references from `source`
/// to `dest/blobs`, linking where it can.
fn copy_blobs(snapshot: &Connection, source: &dyn BlobStore, dest: &Path) -> Result<BackupReport> {
    let mut report = BackupReport { destination: dest.to_path_buf(), blob_store: "local".into(), ..Default::default() };
    let referenced: BTreeSet<String> = snapshot
        .prepare("SELECT sha256 FROM blob_references")?
        .query_map([], |r| r.get(0))?
        .collect::<sql::Result<_>>()?;
    let known: BTreeSet<String> =
        snapshot.prepare("SELECT sha256 FROM blobs")?.query_map([], |r| r.get(0))?.collect::<sql::Result<_>>()?;
    let target = LocalBlobs::create(&dest.join("blobs"))?;
    let mut touched_dirs = BTreeSet::new();
    for sha in referenced.union(&known) {
        let Some(to) = target.file_of(sha) else { continue };
        let size = match source.stat(sha) {
            Ok(Some(size)) => size,
            Ok(None) => {
                // A row with no reference and no file is a crash leftover
                // gc forgets; a referenced one is damage to report.
                if referenced.contains(sha) {
                    report.missing.push(sha.clone());
                }
                continue;
            }
            Err(e) => return Err(Error::Internal(format!("cannot read blob {sha}: {e}"))),
        };
        let dir = to.parent().expect("blob paths have a parent").to_path_buf();
        create_private_dir(&dir)?;
        let copied = source.materialise(sha, &to, Materialise::LinkOrDurableCopy);
        match copied.map_err(|e| Error::Internal(format!("cannot copy blob {sha}: {e}")))? {
            Materialised::Linked => report.linked += 1,
            Materialised::Copied => {}
        }
        touched_dirs.insert(dir);
        report.blobs += 1;
        report.blob_bytes += size;
    }
    for dir in &touched_dirs {
        sync_dir(dir)?;
    }
    if let Some(shards) = touched_dirs.iter().next().and_then(|d| d.parent()) {
        sync_dir(shards)?;
    }
    Ok(report)
}

/// Moves the snapshot into place as `name`, copies the first key, and
/// makes the destination durable.
fn finish(part: &Path, source_dir: &Path, dest: &Path, name: &str, report: &mut BackupReport) -> Result<()> {
    let key = source_dir.join(FIRST_KEY_FILE);
    if key.is_file() {
        copy_private(&key, &dest.join(FIRST_KEY_FILE), true)?;
    }
    let db = dest.join(name);
    fs::rename(part, &db)?;
    sync_dir(dest)?;
    report.database_bytes = fs::metadata(&db)?.len();
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
