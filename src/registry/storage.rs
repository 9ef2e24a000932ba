//! Which blob store a registry uses. The registry records it
//! (`registry_settings.blob_store`); `init` and `serve` may choose it
//! (`--blob-store`), every other command uses what is recorded. A registry
//! that holds blobs is never switched silently: that is `blobs migrate`'s
//! job, which copies them first.
//!
//! Stores are opened once per process and shared by every `Registry` of it:
//! an object store's client keeps its connections for the next request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::registry::{Error, Registry, Result};
use crate::store::blobs::{BlobLocation, BlobStore, InlineSmall, LocalBlobs, S3Blobs, S3Options, S3Settings};
use crate::store::sql::{Connection, Database, OptionalExtension};

const SETTING: &str = "blob_store";

/// The S3 choices of this process (`serve --s3-…`), set before any
/// registry opens an S3 store.
static S3_OPTIONS: RwLock<Option<S3Options>> = RwLock::new(None);

type OpenStores = HashMap<(PathBuf, BlobLocation), Arc<dyn BlobStore>>;
static OPEN: Mutex<Option<OpenStores>> = Mutex::new(None);

/// Sets how this process reaches S3 (the rest comes from the environment).
pub fn configure_s3(options: S3Options) {
    *S3_OPTIONS.write().unwrap_or_else(|p| p.into_inner()) = Some(options);
}

/// The store recorded in the registry's database; `local` when none is.
pub(crate) fn recorded(conn: &Connection) -> Result<BlobLocation> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM registry_settings WHERE name = ?1", [SETTING], |r| r.get(0))
        .optional()?;
    match value {
        None => Ok(BlobLocation::Local),
        Some(text) => BlobLocation::parse(&text).map_err(|e| Error::Internal(format!("the recorded blob store is unreadable: {e}"))),
    }
}

/// Makes `location` the registry's store: at once when it already is, or
/// when the registry holds no blobs yet; refused otherwise, naming both.
pub(super) fn choose(conn: &Connection, location: &BlobLocation) -> Result<()> {
    let current = recorded(conn)?;
    if &current == location {
        return Ok(());
    }
    let holds_blobs: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM blobs)", [], |r| r.get(0))?;
    if holds_blobs {
        return Err(Error::Conflict(format!(
            "this registry keeps its blobs in {current}, not {location}; open it without --blob-store (or with \
             --blob-store {current}), or move its blobs with `modelreg blobs migrate --to {location}`"
        )));
    }
    record(conn, location)
}

pub(crate) fn record(conn: &Connection, location: &BlobLocation) -> Result<()> {
    conn.execute(
        "INSERT INTO registry_settings (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [SETTING, &location.to_string()],
    )?;
    Ok(())
}

/// The store at `location` for the registry in `data_dir`, opened once per
/// process.
pub(super) fn open(data_dir: &Path, database: &Database, location: &BlobLocation) -> Result<Arc<dyn BlobStore>> {
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    let key = (data_dir.to_path_buf(), location.clone());
    if let Some(store) = open.get_or_insert_with(HashMap::new).get(&key) {
        return Ok(Arc::clone(store));
    }
    let behind: Arc<dyn BlobStore> = match location {
        BlobLocation::Local => Arc::new(LocalBlobs::create(&data_dir.join("blobs"))?),
        BlobLocation::S3 { bucket, prefix } => {
            let options = S3_OPTIONS.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            let settings = S3Settings::from_env(&options).map_err(|e| Error::Unavailable(format!("the blob store {location}: {e}")))?;
            let store = S3Blobs::new(&settings, bucket, prefix, data_dir)
                .map_err(|e| Error::Unavailable(format!("the blob store {location}: {e}")))?;
            Arc::new(store)
        }
    };
    let store: Arc<dyn BlobStore> = Arc::new(InlineSmall::new(behind, database)?);
    open.get_or_insert_with(HashMap::new).insert(key, Arc::clone(&store));
    Ok(store)
}

impl Registry {
    /// The store this registry keeps its bytes in.
    pub fn blob_location(&self) -> Result<BlobLocation> {
        recorded(&self.conn)
    }

    /// Fails, as `Unavailable`, when the blob store cannot be reached now.
    pub fn ping_blob_store(&self) -> Result<String> {
        self.blobs.ping().map_err(|e| self.unusable_store("cannot be reached", e))?;
        Ok(self.blobs.describe())
    }

    /// Fails, saying why, when the blob store cannot be written, read and
    /// deleted from: `serve` asks before it listens.
    pub fn check_blob_store(&self) -> Result<()> {
        self.blobs.check().map_err(|e| self.unusable_store("cannot be used", e))
    }

    /// A failed check of the store: `Unavailable`, in the store's own words
    /// when it gave them.
    fn unusable_store(&self, what: &str, e: std::io::Error) -> Error {
        match crate::store::blobs::as_unavailable(&e) {
            Some(unavailable) => Error::Unavailable(unavailable.to_string()),
            None => Error::Unavailable(format!("the blob store {} {what}: {e}", self.blobs.describe())),
        }
    }
}
