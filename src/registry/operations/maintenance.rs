//! `verify` and `gc`: the checks and the sweep that keep the database and
//! the blob directory in agreement.

use std::time::Duration;

use crate::registry::{Registry, Result};
use crate::store::blobs::GcReport;
use crate::store::sql::{self, OptionalExtension};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub blobs_checked: usize,
    pub bytes_checked: u64,
    /// Human-readable problems; empty when everything is sound.
    pub problems: Vec<String>,
}

impl Registry {
    /// Re-hashes every blob, checks that every referenced blob exists, and
    /// runs SQLite's integrity check.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for line in self.conn.integrity_problems()? {
            report.problems.push(format!("database: {line}"));
        }
        for blob in self.blobs.list()? {
            report.blobs_checked += 1;
            report.bytes_checked += blob.size;
            if !self.blobs.verify(&blob.sha256)? {
                report.problems.push(format!("blob {} is corrupt: its content no longer hashes to its name", blob.sha256));
            }
        }
        let mut stmt = self.conn.prepare("SELECT DISTINCT sha256 FROM blob_references")?;
        let referenced = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for sha in referenced {
            let sha = sha?;
            if self.blobs.stat(&sha)?.is_none() {
                report.problems.push(format!("blob {sha} is referenced but missing from the blob store"));
            }
        }
        Ok(report)
    }

    /// Removes unreferenced blobs older than `grace` and stale temp files.
    /// A blob's row goes before its file, under the gc lock: if removing the
    /// file then fails, the next gc finds an unreferenced file and retries.
    pub fn gc(&self, grace: Duration, dry_run: bool) -> Result<GcReport> {
        if !dry_run {
            // An expired, unconfirmed upload holds its blob no longer.
            self.sweep_signed_urls()?;
        }
        let mut referenced = self.conn.prepare("SELECT 1 FROM blob_references WHERE sha256 = ?1 LIMIT 1")?;
        let mut forget = self.conn.prepare("DELETE FROM blobs WHERE sha256 = ?1")?;
        let mut release = |sha: &str| -> sql::Result<bool> {
            if referenced.query_row([sha], |_| Ok(())).optional()?.is_some() {
                return Ok(false);
            }
            if !dry_run {
                forget.execute([sha])?;
            }
            Ok(true)
        };
        Ok(self.blobs.gc(&mut |sha| release(sha).map_err(std::io::Error::other), grace, dry_run)?)
    }

    /// Removes upload temp files no live upload owns (see `BlobStore::sweep_temp`).
    pub fn sweep_temp(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.blobs.sweep_temp()?)
    }
}
