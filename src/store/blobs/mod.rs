//! The blob store: bytes named by their sha256, stored once however often
//! they are referenced. Everything the registry reads or writes of a blob
//! goes through the `BlobStore` trait; `LocalBlobs` (`local.rs`) keeps them
//! in `blobs/sha256/ab/cdef…` under the data directory, and an object store
//! is a second implementation of the same trait.
//!
//! What every implementation promises:
//! * A blob is complete and durable at its address before `put` (or
//!   `settle`) returns. Callers commit the row that references a blob only
//!   after that, so an acknowledged upload survives a crash.
//! * A blob's name is the sha256 of its bytes; the same content is stored
//!   once.
//! * gc removes only a blob that no row references *and* that is older than
//!   the grace period, and never while an `UploadGuard` is alive: writers
//!   hold one from `put` until their row commits, a backup from its database
//!   snapshot until it has copied every blob the snapshot names.
//! * A store that cannot be used now (an object store that is down) fails
//!   with an `Unavailable` inside its `io::Error`, never by hanging.
//! * Reading never needs a local path: `open` gives a `Blob` (`Read + Seek`
//!   with a length); a job that needs a real file asks `materialise` for one.
//!   Where the store keeps the blob on local disk, `Blob::local_file` hands
//!   the transport the open file, which it sends with sendfile(2).

mod cache;
mod inline;
mod local;
pub mod location;
mod s3;
mod stream;

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

pub use local::{copy_private, create_private_dir, LocalBlobs, PendingBlobs, PRIVATE_DIR, PRIVATE_FILE};
pub use location::{BlobLocation, S3Options, S3Settings, UrlStyle};
pub use inline::InlineSmall;
pub use s3::S3Blobs;
pub use stream::{copy_hashing, hash_reader};

/// The store cannot be used now: unreachable, answering errors, or refusing
/// our credentials. Carried inside an `io::Error` so that every store's
/// errors travel one way; the registry turns it into a 503 that names the
/// store, where any other failure would be a 500.
#[derive(Debug)]
pub struct Unavailable {
    pub store: String,
    pub reason: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the blob store {} is unavailable: {}", self.store, self.reason)
    }
}

impl std::error::Error for Unavailable {}

pub fn unavailable(store: &str, reason: impl Into<String>) -> io::Error {
    io::Error::other(Unavailable { store: store.to_string(), reason: reason.into() })
}

/// The `Unavailable` inside `e`, if that is what it is.
pub fn as_unavailable(e: &io::Error) -> Option<&Unavailable> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Unavailable>())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug)]
pub enum PutError {
    /// The source had more bytes than the caller allowed.
    TooLarge { limit: u64 },
    /// Reading the source failed: the client's body was cut short or
    /// malformed. Nothing was stored.
    Read(io::Error),
    /// Writing failed on our side (disk full, permissions). Nothing was stored.
    Write(io::Error),
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::TooLarge { limit } => write!(f, "content is larger than the limit of {limit} bytes"),
            PutError::Read(e) => write!(f, "reading the upload failed: {e}"),
            PutError::Write(e) => write!(f, "writing the blob failed: {e}"),
        }
    }
}

impl std::error::Error for PutError {}

/// Held by a writer from before `put` until the row referencing the blob has
/// committed. While any guard is alive (in any process), gc waits. A backup
/// holds one too, from before its database snapshot until it has copied
/// every blob the snapshot references, so gc cannot remove one in between.
pub struct UploadGuard {
    _lock: Box<dyn std::any::Any + Send>,
    /// An upload's guard (counted in `UPLOADS_IN_FLIGHT`), not a backup's.
    upload: bool,
}

/// Upload guards alive in this process: /metrics' uploads in flight.
pub static UPLOADS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if self.upload {
            UPLOADS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The lock file gc and writers share (see `UploadGuard`): a store on this
/// machine's disk keeps it beside its blobs, an object store beside the
/// database.
#[derive(Clone, Debug)]
pub struct GcLock {
    path: std::path::PathBuf,
}

impl GcLock {
    pub fn at(path: std::path::PathBuf) -> GcLock {
        GcLock { path }
    }

    fn open(&self) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(PRIVATE_FILE).open(&self.path)
    }

    /// An upload's guard: shared, counted in `UPLOADS_IN_FLIGHT`.
    pub fn upload(&self) -> io::Result<UploadGuard> {
        let lock = self.open()?;
        lock.lock_shared()?;
        Ok(UploadGuard::new(Box::new(lock), true))
    }

    /// A backup's guard: shared, so gc waits until it has copied every blob
    /// its snapshot names.
    pub fn backup(&self) -> io::Result<UploadGuard> {
        let lock = self.open()?;
        lock.lock_shared()?;
        Ok(UploadGuard::new(Box::new(lock), false))
    }

    /// gc's side: exclusive, so no upload is between its bytes and its row.
    pub fn exclusive(&self) -> io::Result<UploadGuard> {
        let lock = self.open()?;
        lock.lock()?;
        Ok(UploadGuard::new(Box::new(lock), false))
    }
}

impl UploadGuard {
    /// A guard holding `lock` (whatever the store locks with) until dropped;
    /// an `upload`'s is counted in `UPLOADS_IN_FLIGHT`, a backup's is not.
    pub fn new(lock: Box<dyn std::any::Any + Send>, upload: bool) -> UploadGuard {
        if upload {
            UPLOADS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        }
        UploadGuard { _lock: lock, upload }
    }
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed_blobs: Vec<(String, u64)>,
    /// Leftovers of uploads that never finished (temp files, for `LocalBlobs`).
    pub removed_temp_files: Vec<(String, u64)>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.removed_blobs.iter().map(|(_, n)| n).sum::<u64>()
            + self.removed_temp_files.iter().map(|(_, n)| n).sum::<u64>()
    }
}

/// A blob found by `list`.
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
    pub modified: SystemTime,
}


/// How `BlobStore::materialise` may put a blob at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Materialise {
    /// A file of the caller's own, which it may change (a job's folder).
    Copy,
    /// A hard link to the stored file where the store is a directory on the
    /// same file system, else a copy fsynced before returning (a backup).
    LinkOrDurableCopy,
}

/// What `materialise` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Materialised {
    Linked,
    Copied,
}

/// Where the registry keeps bytes. Object safe: the registry holds an
/// `Arc<dyn BlobStore>`, so that a stream it hands out (a version's zip)
/// can keep the store alive.
pub trait BlobStore: Send + Sync {
    /// Streams `source` in, hashing as it goes, and returns once the blob is
    /// durable at its address. More than `limit` bytes is `TooLarge`; on any
    /// error nothing is stored.
    fn put(&self, source: &mut dyn Read, limit: Option<u64>) -> Result<Digest, PutError>;

    /// `put` for one of many files of one upload: the blob is durable only
    /// once `settle` has returned, which must happen before a row naming it
    /// commits. Dropping `pending` unsettled forgets what it holds.
    fn put_pending(&self, source: &mut dyn Read, limit: Option<u64>, pending: &mut PendingBlobs) -> Result<Digest, PutError>;

    /// Makes every blob in `pending` durable at its address.
    fn settle(&self, pending: &mut PendingBlobs) -> io::Result<()>;

    /// Held by an upload from before its first byte until its row commits:
    /// gc waits for every live guard.
    fn upload_guard(&self) -> io::Result<UploadGuard>;

    /// The same guard for a backup, from its database snapshot until it has
    /// copied every blob the snapshot names.
    fn backup_guard(&self) -> io::Result<UploadGuard>;

    /// Opens a stored blob for reading.
    fn open(&self, sha256: &str) -> io::Result<Blob>;

    /// The blob's size, or None when it is not stored.
    fn stat(&self, sha256: &str) -> io::Result<Option<u64>>;

    /// Puts the blob's bytes at `dest`, a new file on local disk, for a tool
    /// that needs a path (see `Materialise`).
    fn materialise(&self, sha256: &str, dest: &Path, how: Materialise) -> io::Result<Materialised>;

    /// Re-reads a stored blob: true when its bytes still hash to its name.
    fn verify(&self, sha256: &str) -> io::Result<bool> {
        Ok(hash_reader(&mut self.open(sha256)?)?.sha256 == sha256)
    }

    /// Every stored blob, in no particular order.
    fn list(&self) -> io::Result<Vec<StoredBlob>>;

    /// Removes blobs older than `grace` that `release` lets go of, and
    /// leftovers of uploads older than `grace`. `release` is asked with gc
    /// excluding every upload guard, so it can check for references and
    /// forget the blob's row with no upload able to add one in between.
    fn gc(&self, release: &mut dyn FnMut(&str) -> io::Result<bool>, grace: Duration, dry_run: bool) -> io::Result<GcReport>;

    /// Removes the leftovers of uploads that no live upload owns (a process
    /// that died mid-upload), whatever their age. Returns their names and sizes.
    fn sweep_temp(&self) -> io::Result<Vec<(String, u64)>>;

    /// Fails, saying why, when the store cannot be written, read and
    /// deleted from (`serve` asks before it listens).
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// gc's side of the lock uploads hold shared (`upload_guard`): while it
    /// is held, no upload on this machine is between its bytes and its row.
    fn gc_exclusion(&self) -> io::Result<UploadGuard>;

    /// Fails when the store cannot be reached now: one cheap request, for
    /// `/readyz`.
    fn ping(&self) -> io::Result<()> {
        Ok(())
    }

    /// The store as a person would name it (`local`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// A URL that GETs the blob from the store itself, without modelreg's
    /// credentials, where the store has such URLs; `filename` names the
    /// download (Content-Disposition).
    fn presigned_get(&self, _sha256: &str, _filename: Option<&str>, _ttl: std::time::Duration) -> Option<String> {
        None
    }

    /// A URL that stores the blob named `sha256` straight into the store,
    /// which refuses any other bytes, where the store can check them so.
    fn presigned_put(&self, _sha256: &str, _ttl: std::time::Duration) -> Option<PresignedPut> {
        None
    }
}

/// A PUT a client sends straight to the store: the URL, and the headers
/// it must send with it.
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// A blob read from somewhere other than a local file (an object store).
pub trait RemoteBlob: Read + Seek + Send {
    fn len(&self) -> u64;

    /// Where a client should be sent to read the blob itself (an object
    /// store's presigned GET), when the store is set to redirect downloads.
    fn redirect(&self) -> Option<String>;
}

/// A stored blob open for reading: its bytes, its length, and seeking for
/// ranges. Built by a `BlobStore`; readers never learn where it lives.
pub struct Blob {
    source: Source,
}

enum Source {
    /// A file on local disk (`LocalBlobs`).
    File(File),
    Remote(Box<dyn RemoteBlob>),
    /// A small blob kept in the database (`InlineSmall`).
    Memory(io::Cursor<Vec<u8>>),
}

impl Blob {
    pub fn from_file(file: File) -> Blob {
        Blob { source: Source::File(file) }
    }

    pub fn remote(reader: Box<dyn RemoteBlob>) -> Blob {
        Blob { source: Source::Remote(reader) }
    }

    pub fn memory(bytes: Vec<u8>) -> Blob {
        Blob { source: Source::Memory(io::Cursor::new(bytes)) }
    }

    /// Asked of the blob, not kept: most readers know the size from the
    /// row that names the blob, and a zip of 1,000 files should not pay
    /// 1,000 fstat calls for a figure nobody reads.
    pub fn len(&self) -> io::Result<u64> {
        match &self.source {
            Source::File(file) => Ok(file.metadata()?.len()),
            Source::Remote(remote) => Ok(remote.len()),
            Source::Memory(bytes) => Ok(bytes.get_ref().len() as u64),
        }
    }

    /// See `RemoteBlob::redirect`.
    pub fn redirect(&self) -> Option<String> {
        match &self.source {
            Source::File(_) | Source::Memory(_) => None,
            Source::Remote(remote) => remote.redirect(),
        }
    }

    /// The open file behind the blob, where the store keeps it on local disk:
    /// the transport sends it with sendfile(2) instead of copying it through
    /// user space.
    pub fn into_local_file(self) -> Result<File, Blob> {
        match self.source {
            Source::File(file) => Ok(file),
            source @ (Source::Remote(_) | Source::Memory(_)) => Err(Blob { source }),
        }
    }
}

impl Read for Blob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.source {
            Source::File(file) => file.read(buf),
            Source::Remote(remote) => remote.read(buf),
            Source::Memory(bytes) => bytes.read(buf),
        }
    }
}

impl Seek for Blob {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match &mut self.source {
            Source::File(file) => file.seek(pos),
            Source::Remote(remote) => remote.seek(pos),
            Source::Memory(bytes) => bytes.seek(pos),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
