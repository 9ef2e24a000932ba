//! The registry: every operation modelreg offers, typed in and typed out.
//!
//! Both the HTTP dialects and the CLI call these functions; nothing here knows
//! about HTTP. A `Registry` owns one connection to its database (a SQLite
//! file, or a handle on the process's PostgreSQL pool: `database`) and a
//! handle on the blob store, so each thread that needs one opens its own
//! (`Registry::open` is cheap: the schema is applied once per database).

pub mod access;
pub mod catalogue;
pub mod compute;
pub mod database;
mod error;
pub mod fields;
pub mod operations;
mod page;
pub mod storage;
pub mod webhooks;

use std::path::{Path, PathBuf};

use crate::store::blobs::{as_unavailable, BlobStore, Materialise};
pub use crate::store::blobs::{BlobLocation, S3Options, UrlStyle};
pub use crate::store::blobs::{copy_hashing, hex, is_sha256_hex, Blob, Digest, PendingBlobs, PutError, UploadGuard, UPLOADS_IN_FLIGHT};
use crate::store::sql::{self, Connection, Transaction};
pub use crate::store::sql::SCHEMA_VERSION;
pub use crate::store::stamps::{format_time, is_uuid, new_id, now};

pub use access::auth::{ApiKey, NewUser, Principal, FIRST_KEY_FILE};
pub use operations::backup::{restore, BackupReport};
pub use operations::data_dir::Prepared;
pub use error::{Error, Result};
pub use compute::jobs::{Job, JobState};
pub use compute::machines::{
    machine_type, Assignee, Machine, MachineAction, MachineEvent, MachineOrder, MachinePatch, NewMachine,
    NewTemplate, Template, TemplateSource, MACHINE_JOB, REGIONS,
};
pub use catalogue::models::{
    validate_file_path, Model, ModelOrder, ModelPatch, ModelQuery, ModelsPage, NewFile, NewModel, NewVersion, Origin,
    Version, VersionRef, VersionStatus,
};
pub use catalogue::overview::VersionSummary;
pub use page::{Cursor, Page, PageRequest};

pub struct Registry {
    conn: Connection,
    /// Shared so that a stream handed out (a version's zip) can read blobs
    /// after the call that made it returns.
    blobs: std::sync::Arc<dyn BlobStore>,
    data_dir: PathBuf,
}

impl Registry {
    /// Opens the registry in `data_dir`, creating the directory, the database
    /// and the blob store on first use (all private). Commands other than
    /// `init` and `serve` use `open_existing`, which creates nothing.
    pub fn open(data_dir: &Path) -> Result<Registry> {
        Registry::open_choosing(data_dir, None)
    }

    /// `open`, first making `store` the registry's blob store when it is
    /// given (see `storage::choose`).
    fn open_choosing(data_dir: &Path, store: Option<&BlobLocation>) -> Result<Registry> {
        crate::store::blobs::create_private_dir(data_dir)
            .map_err(|e| Error::Internal(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let database = database::open(data_dir)?;
        let conn = Connection::connect(&database)?;
        if let Some(store) = store {
            storage::choose(&conn, store)?;
        }
        let blobs = storage::open(data_dir, &database, &storage::recorded(&conn)?)?;
        Ok(Registry { conn, blobs, data_dir: data_dir.to_path_buf() })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A write transaction that takes the database's write lock up front, so
    /// that read-then-write sequences (next version number, state
    /// transitions) cannot interleave with another writer.
    ///
    /// Writers of this process first queue on `WRITER_TURN`: SQLite's busy
    /// handler polls with sleeps of 1, 2, 5, 10… ms, so eight threads
    /// contending for a lock held for a fraction of a millisecond spent most
    /// of their time asleep with the lock free. A mutex wakes the next writer
    /// as soon as the last one commits; the busy timeout is left for writers
    /// in other processes (the CLI).
    fn write(&self) -> Result<WriteTx<'_>> {
        let turn = WRITER_TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(WriteTx { tx: self.conn.begin_write()?, _turn: turn })
    }

    /// Held by an upload from before its first blob is written until the row
    /// that references the blobs commits: gc waits for it.
    pub fn upload_guard(&self) -> Result<UploadGuard> {
        Ok(self.blobs.upload_guard()?)
    }

    /// Streams `source` into the blob store. The caller must hold an
    /// `upload_guard` until the referencing row commits.
    pub fn put_blob(&self, source: &mut dyn std::io::Read, limit: Option<u64>) -> Result<Digest> {
        self.blobs.put(source, limit).map_err(put_error)
    }

    /// `put_blob` for one of many files of one upload: the blob is durable
    /// only once `settle_blobs` has returned (see `BlobStore::put_pending`),
    /// which must happen before a row referencing it commits.
    pub fn put_blob_pending(&self, source: &mut dyn std::io::Read, limit: Option<u64>, pending: &mut PendingBlobs) -> Result<Digest> {
        self.blobs.put_pending(source, limit, pending).map_err(put_error)
    }

    /// Makes the blobs of `put_blob_pending` durable at their addresses.
    pub fn settle_blobs(&self, pending: &mut PendingBlobs) -> Result<()> {
        self.blobs.settle(pending).map_err(|e| put_error(PutError::Write(e)))
    }
}

/// One writer of this process at a time: see `Registry::write`.
static WRITER_TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A write transaction holding this process's writer turn until it commits or
/// is dropped (rolled back).
pub(crate) struct WriteTx<'a> {
    // declared first: dropped (rolled back) before the turn is handed on
    tx: Transaction<'a>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl<'a> WriteTx<'a> {
    pub(crate) fn commit(self) -> sql::Result<()> {
        self.tx.commit()
    }
}

impl<'a> std::ops::Deref for WriteTx<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

fn put_error(e: PutError) -> Error {
    {
        match e {
            PutError::TooLarge { limit } => Error::TooLarge(format!("the upload is larger than the limit of {limit} bytes")),
            // a socket read timeout (`serve --io-timeout-ms`) is WouldBlock on Unix
            PutError::Read(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Error::Invalid {
                    field: "body".into(),
                    message: "the client stopped sending the upload for longer than the server's io timeout; nothing was stored".into(),
                }
            }
            PutError::Read(e) => Error::Invalid { field: "body".into(), message: format!("the upload could not be read: {e}") },
            PutError::Write(e) if error::is_out_of_space(&e) => Error::out_of_space(),
            PutError::Write(e) if as_unavailable(&e).is_some() => store_error(e),
            PutError::Write(e) => Error::Internal(format!("storing the upload failed: {e}")),
        }
    }
}

impl Registry {

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, sha256: &str) -> Result<Blob> {
        self.blobs.open(sha256).map_err(|e| referenced_blob_error(sha256, e))
    }

    /// A URL that reads the blob straight from the store, without a key,
    /// where the store has such URLs (an object store's presigned GET).
    pub fn presigned_blob_url(&self, sha256: &str, filename: &str, ttl: std::time::Duration) -> Option<String> {
        self.blobs.presigned_get(sha256, Some(filename), ttl)
    }

    /// A URL that stores the blob named `sha256` straight into the store,
    /// which checks the bytes against the name, where the store can.
    pub fn presigned_blob_put(&self, sha256: &str, ttl: std::time::Duration) -> Option<crate::store::blobs::PresignedPut> {
        self.blobs.presigned_put(sha256, ttl)
    }

    /// Writes a copy of a stored blob to `dest`, a new file of the caller's
    /// own, for a job whose tool needs a path (a model server's code folder,
    /// a converter's input).
    pub fn materialise_blob(&self, sha256: &str, dest: &Path) -> std::io::Result<()> {
        self.blobs.materialise(sha256, dest, Materialise::Copy).map(|_| ())
    }
}

/// An error of the blob store as the registry reports it: a store that
/// cannot be used now is `Unavailable` (503, naming the store), anything
/// else is ours.
pub(crate) fn store_error(e: std::io::Error) -> Error {
    match as_unavailable(&e) {
        Some(unavailable) => Error::Unavailable(unavailable.to_string()),
        None => Error::Internal(format!("the blob store failed: {e}")),
    }
}

/// A blob a row names could not be read: the store is down (503), or the
/// registry is damaged (ours).
pub(crate) fn referenced_blob_error(sha256: &str, e: std::io::Error) -> Error {
    match as_unavailable(&e) {
        Some(_) => store_error(e),
        None => Error::Internal(format!("blob {sha256} is referenced but cannot be opened: {e}")),
    }
}

/// Parses a JSON object column; a corrupt value is an internal error rather
/// than a panic.
fn parse_attrs(text: &str) -> sql::Result<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|e| sql::Error::conversion(0, e))
}
