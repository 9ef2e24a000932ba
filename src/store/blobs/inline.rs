//! Small blobs in the metadata database, large ones in the blob store: the
//! split Git LFS and the Hugging Face Hub make. A DataRobot version of a
//! thousand small files is then one database transaction, not a thousand
//! files to fsync or a thousand PUTs to a bucket.
//!
//! `InlineSmall` wraps any `BlobStore` and is itself one, so every reader
//! (downloads, ranges, zips, job folders, verify, gc, backup) sees one store
//! whichever side a blob is on. A blob of at most `INLINE_MAX` bytes goes to
//! `blob_contents`; anything larger streams through to the store behind.
//!
//! The promises of `BlobStore` hold on this side too: a small blob's row in
//! `blob_contents` commits (synchronous=FULL) before `put` or `settle`
//! returns, so before any row naming it; storing content again refreshes
//! its `created_at`, which gc checks in the same statement that deletes, so
//! a gc that judged it old a moment ago cannot remove it under a new
//! reference.

use std::fs::OpenOptions;
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::{hex, Blob, BlobStore, Digest, GcReport, Materialise, Materialised, PendingBlobs, PutError, StoredBlob, UploadGuard, PRIVATE_FILE};
use crate::store::sql::{self, params, Connection, Database, OptionalExtension};

/// The largest blob kept in the database. Below it a blob's own file or
/// object costs more than its bytes (a create, an fsync, a rename and a
/// directory fsync locally; a request to a bucket); 64 KiB is where Git LFS
/// setups and the Hub start sending files to their object stores. Measured
/// in BENCHMARKS.md (the 1,000-file create).
pub const INLINE_MAX: usize = 64 * 1024;

pub struct InlineSmall {
    inner: Arc<dyn BlobStore>,
    db: Pool,
}

/// Connections to the database, one per caller at a time: a download's
/// lookup never waits behind another's, nor behind a writer waiting for
/// SQLite's write lock (which a caller inside a write transaction of its
/// own may hold).
struct Pool {
    database: Database,
    idle: Mutex<Vec<Connection>>,
}

/// Connections kept open between calls; a burst opens more and closes them.
const IDLE_CONNECTIONS: usize = 16;

struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Pool {
    fn get(&self) -> io::Result<Pooled<'_>> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => Connection::connect(&self.database).map_err(db_error)?,
        };
        Ok(Pooled { pool: self, conn: Some(conn) })
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.extend(self.conn.take());
        }
    }
}

/// A database error as the blob store reports it: a database that cannot be
/// reached is `Unavailable`, as a store that cannot be is.
fn db_error(e: sql::Error) -> io::Error {
    match e {
        sql::Error::Unavailable(reason) => super::unavailable("in the database", reason),
        e => io::Error::other(e),
    }
}

impl InlineSmall {
    /// Keeps small blobs in `database`, the rest in `inner`.
    pub fn new(inner: Arc<dyn BlobStore>, database: &Database) -> sql::Result<InlineSmall> {
        // opened once here, so that a database this binary cannot use fails now
        let first = Connection::connect(database)?;
        Ok(InlineSmall { inner, db: Pool { database: database.clone(), idle: Mutex::new(vec![first]) } })
    }

    fn db(&self) -> io::Result<Pooled<'_>> {
        self.db.get()
    }

    fn contents(&self, sha256: &str) -> io::Result<Option<Vec<u8>>> {
        self.db()?
            .query_row("SELECT bytes FROM blob_contents WHERE sha256 = ?1", [sha256], |r| r.get(0))
            .optional()
            .map_err(db_error)
    }

    /// Stores small blobs, each refreshing `created_at` if already there.
    fn insert(&self, blobs: &[(String, Vec<u8>)]) -> io::Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        let now = crate::store::stamps::now();
        let db = self.db()?;
        let tx = db.begin_write().map_err(db_error)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO blob_contents (sha256, bytes, created_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (sha256) DO UPDATE SET created_at = excluded.created_at",
                )
                .map_err(db_error)?;
            for (sha256, bytes) in blobs {
                insert.execute(params![sha256, bytes, now]).map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    /// Reads the start of `source`: the whole blob if it is small, else the
    /// first `INLINE_MAX + 1` bytes, to be sent on ahead of the rest.
    fn read_head(source: &mut dyn Read, limit: Option<u64>) -> Result<(Vec<u8>, bool), PutError> {
        let mut head = Vec::with_capacity(8 * 1024);
        source.take(INLINE_MAX as u64 + 1).read_to_end(&mut head).map_err(PutError::Read)?;
        if let Some(limit) = limit {
            if head.len() as u64 > limit {
                return Err(PutError::TooLarge { limit });
            }
        }
        let small = head.len() <= INLINE_MAX;
        Ok((head, small))
    }

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest { sha256: hex(&Sha256::digest(bytes)), size: bytes.len() as u64 }
    }
}

impl BlobStore for InlineSmall {
    fn put(&self, source: &mut dyn Read, limit: Option<u64>) -> Result<Digest, PutError> {
        let (head, small) = Self::read_head(source, limit)?;
        if !small {
            return self.inner.put(&mut Cursor::new(head).chain(source), limit);
        }
        let digest = Self::digest_of(&head);
        self.insert(&[(digest.sha256.clone(), head)]).map_err(PutError::Write)?;
        Ok(digest)
    }

    fn put_pending(&self, source: &mut dyn Read, limit: Option<u64>, pending: &mut PendingBlobs) -> Result<Digest, PutError> {
        let (head, small) = Self::read_head(source, limit)?;
        if !small {
            return self.inner.put_pending(&mut Cursor::new(head).chain(source), limit, pending);
        }
        let digest = Self::digest_of(&head);
        pending.small.push((digest.sha256.clone(), head));
        Ok(digest)
    }

    fn settle(&self, pending: &mut PendingBlobs) -> io::Result<()> {
        self.inner.settle(pending)?;
        let small = std::mem::take(&mut pending.small);
        self.insert(&small)
    }

    fn upload_guard(&self) -> io::Result<UploadGuard> {
        self.inner.upload_guard()
    }

    fn backup_guard(&self) -> io::Result<UploadGuard> {
        self.inner.backup_guard()
    }

    fn open(&self, sha256: &str) -> io::Result<Blob> {
        match self.contents(sha256)? {
            Some(bytes) => Ok(Blob::memory(bytes)),
            None => self.inner.open(sha256),
        }
    }

    fn stat(&self, sha256: &str) -> io::Result<Option<u64>> {
        let size: Option<i64> = self
            .db()?
            .query_row("SELECT length(bytes) FROM blob_contents WHERE sha256 = ?1", [sha256], |r| r.get(0))
            .optional()
            .map_err(db_error)?;
        match size {
            Some(size) => Ok(Some(size as u64)),
            None => self.inner.stat(sha256),
        }
    }

    fn materialise(&self, sha256: &str, dest: &Path, how: Materialise) -> io::Result<Materialised> {
        let Some(bytes) = self.contents(sha256)? else { return self.inner.materialise(sha256, dest, how) };
        let mut out = OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(dest)?;
        out.write_all(&bytes)?;
        if how == Materialise::LinkOrDurableCopy {
            out.sync_all()?;
        }
        Ok(Materialised::Copied)
    }

    fn list(&self) -> io::Result<Vec<StoredBlob>> {
        let mut blobs = self.inner.list()?;
        let db = self.db()?;
        let mut statement =
            db.prepare("SELECT sha256, length(bytes), created_at FROM blob_contents").map_err(db_error)?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
            .map_err(db_error)?;
        for row in rows {
            let (sha256, size, created_at) = row.map_err(db_error)?;
            let modified = crate::store::stamps::parse_time(&created_at).unwrap_or(SystemTime::now());
            blobs.push(StoredBlob { sha256, size: size as u64, modified });
        }
        Ok(blobs)
    }

    fn gc(&self, release: &mut dyn FnMut(&str) -> io::Result<bool>, grace: Duration, dry_run: bool) -> io::Result<GcReport> {
        let mut report = self.inner.gc(release, grace, dry_run)?;
        let cutoff = crate::store::stamps::format_time(time::OffsetDateTime::now_utc() - grace);
        let old: Vec<(String, i64)> = {
            let db = self.db()?;
            let mut statement = db
                .prepare("SELECT sha256, length(bytes) FROM blob_contents WHERE created_at < ?1")
                .map_err(db_error)?;
            let rows = statement.query_map([&cutoff], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db_error)?;
            rows.collect::<sql::Result<_>>().map_err(db_error)?
        };
        let _gc_excludes_uploads = self.inner.gc_exclusion()?;
        for (sha256, size) in old {
            if !release(&sha256)? {
                continue;
            }
            // `created_at` again: content stored anew since the listing is young
            let removed = dry_run
                || self
                    .db()?
                    .execute("DELETE FROM blob_contents WHERE sha256 = ?1 AND created_at < ?2", [&sha256, &cutoff])
                    .map_err(db_error)?
                    > 0;
            if removed {
                report.removed_blobs.push((sha256, size as u64));
            }
        }
        Ok(report)
    }

    fn sweep_temp(&self) -> io::Result<Vec<(String, u64)>> {
        self.inner.sweep_temp()
    }

    fn gc_exclusion(&self) -> io::Result<UploadGuard> {
        self.inner.gc_exclusion()
    }

    fn check(&self) -> io::Result<()> {
        self.inner.check()
    }

    fn ping(&self) -> io::Result<()> {
        self.inner.ping()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    /// Straight to the store behind, whatever the size: the store checks
    /// the bytes, and reads find them there.
    fn presigned_put(&self, sha256: &str, ttl: Duration) -> Option<super::PresignedPut> {
        self.inner.presigned_put(sha256, ttl)
    }

    fn presigned_get(&self, sha256: &str, filename: Option<&str>, ttl: Duration) -> Option<String> {
        // a small blob has no object of its own to send a client to
        let inline = self.db().and_then(|db| {
            db.query_row("SELECT 1 FROM blob_contents WHERE sha256 = ?1", [sha256], |_| Ok(())).optional().map_err(db_error)
        });
        match inline {
            Ok(None) => self.inner.presigned_get(sha256, filename, ttl),
            _ => None,
        }
    }
}
