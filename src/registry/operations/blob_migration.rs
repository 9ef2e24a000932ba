//! `modelreg blobs migrate --to STORE`: moves a registry's blobs to another
//! store (a bucket, or back to the data directory) and only then switches
//! the registry to it.
//!
//! Every blob the database knows is copied and read back at the
//! destination, its sha256 checked; one already there with the right size
//! is left as it is, so an interrupted migration is simply run again. The
//! switch happens only when every blob is there, and never under a running
//! server, which would go on writing to the old store: `serve` holds
//! `serve.lock` shared for its lifetime, and the switch needs it exclusive.
//! The old store is left as it was, for the operator to remove.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::registry::{storage, BlobLocation, Error, Registry, Result};
use crate::store::blobs::{BlobStore, PRIVATE_FILE};
use crate::store::sql;

const SERVE_LOCK: &str = "serve.lock";

#[derive(Debug, Default, serde::Serialize)]
pub struct MigrationReport {
    pub from: String,
    pub to: String,
    pub blobs: u64,
    pub bytes: u64,
    /// Copied (and read back) by this run.
    pub copied: u64,
    /// Found at the destination with the right size, from an earlier run.
    pub already_there: u64,
    /// The registry now uses `to`. False when a server was running.
    pub switched: bool,
}

/// Held shared by `serve` for as long as it runs (see the module doc).
pub fn hold_serve_lock(data_dir: &Path) -> std::io::Result<File> {
    let lock = serve_lock(data_dir)?;
    lock.lock_shared()?;
    Ok(lock)
}

pub(super) fn serve_lock(data_dir: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).mode(PRIVATE_FILE).open(data_dir.join(SERVE_LOCK))
}

impl Registry {
    /// Copies every blob to `to`, checking each there, and switches the
    /// registry to it when all are. `progress` hears the bytes done and the
    /// bytes in all after each blob.
    pub fn migrate_blobs(&mut self, to: &BlobLocation, progress: &mut dyn FnMut(u64, u64)) -> Result<MigrationReport> {
        let from = self.blob_location()?;
        if &from == to {
            return Err(Error::Conflict(format!("this registry's blobs are already in {to}")));
        }
        let target = storage::open(&self.data_dir, &crate::registry::database::open(&self.data_dir)?, to)?;
        target.check()?;
        let mut report = MigrationReport { from: from.to_string(), to: to.to_string(), ..Default::default() };
        let mut done = BTreeMap::new();
        self.copy_missing(target.as_ref(), &mut done, &mut report, progress)?;

        let lock = serve_lock(&self.data_dir)?;
        if lock.try_lock().is_err() {
            return Ok(report);
        }
        // Blobs that uploads committed while the first pass ran.
        self.copy_missing(target.as_ref(), &mut done, &mut report, progress)?;
        storage::record(&self.conn, to)?;
        self.blobs = target;
        report.switched = true;
        Ok(report)
    }

    /// One pass over the blobs the database knows, skipping those in `done`.
    fn copy_missing(
        &self,
        target: &dyn BlobStore,
        done: &mut BTreeMap<String, u64>,
        report: &mut MigrationReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        // Every referenced blob has a row (it is inserted before the reference).
        let known: Vec<(String, i64, bool)> = self
            .conn
            .prepare("SELECT sha256, size, sha256 IN (SELECT sha256 FROM blob_references) FROM blobs")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<sql::Result<_>>()?;
        let todo: Vec<(String, u64, bool)> = known
            .into_iter()
            .filter(|(sha, _, _)| !done.contains_key(sha))
            .map(|(sha, size, referenced)| (sha, size as u64, referenced))
            .collect();
        let total = report.bytes + todo.iter().map(|(_, size, _)| size).sum::<u64>();
        for (sha, size, referenced) in todo {
            if target.stat(&sha)? == Some(size) {
                report.already_there += 1;
            } else {
                let _gc_waits = target.upload_guard()?;
                let mut source = match self.blobs.open(&sha) {
                    Ok(source) => source,
                    // a row nothing references and no bytes: a crash's leftover, which gc forgets
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !referenced => {
                        done.insert(sha, 0);
                        continue;
                    }
                    Err(e) => {
                        return Err(Error::Internal(format!(
                            "blob {sha} cannot be read from {} ({e}); `modelreg verify` says more; nothing was switched",
                            report.from
                        )))
                    }
                };
                let stored = target.put(&mut source, None).map_err(|e| Error::Internal(format!("copying blob {sha}: {e}")))?;
                if stored.sha256 != sha || !target.verify(&sha)? {
                    return Err(Error::Internal(format!(
                        "blob {sha} does not read back from {} with its sha256; nothing was switched",
                        report.to
                    )));
                }
                report.copied += 1;
            }
            report.blobs += 1;
            report.bytes += size;
            done.insert(sha, size);
            progress(report.bytes, total);
            if report.copied == 1 {
                super::wait_at_test_gate("MODELREG_TEST_MIGRATE_GATE");
            }
        }
        Ok(())
    }
}
