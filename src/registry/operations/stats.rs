//! Store-wide figures for /metrics, read from the database at scrape time
//! so that they include what every process (the offline CLI too) did.

use crate::registry::{Registry, Result};
use crate::store::sql;

pub struct StoreStats {
    pub blobs: u64,
    pub blob_bytes: u64,
    /// (kind, state, count) of jobs queued or running.
    pub jobs: Vec<(String, String, u64)>,
}

impl Registry {
    pub fn store_stats(&self) -> Result<StoreStats> {
        let (blobs, blob_bytes): (i64, i64) =
            self.conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        // `jobs_pending` (state, run_after) confines this to unfinished jobs.
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') GROUP BY kind, state ORDER BY kind, state",
        )?;
        let jobs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<sql::Result<_>>()?;
        Ok(StoreStats { blobs: blobs as u64, blob_bytes: blob_bytes as u64, jobs })
    }
}
