//! The data directory as a whole: who may create one, and keeping it
//! private. Only `init` and `serve` create a data directory; every other
//! command refuses one that does not exist, so that a mistyped `--data-dir`
//! (or a forgotten `--server`) does not quietly start an empty registry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::registry::{BlobLocation, Error, Registry, Result};
use crate::store::blobs::{create_private_dir, PRIVATE_DIR, PRIVATE_FILE};

use crate::registry::database::DB_FILE;

/// What `Registry::prepare` did to the data directory.
pub struct Prepared {
    pub registry: Registry,
    /// The directory did not exist (or held no database) and was created.
    pub created: bool,
    /// Files and folders whose modes were tightened (see `make_private`).
    pub fixed: Vec<PathBuf>,
}

impl Registry {
    /// Opens an existing data directory; refuses to create one.
    /// On a PostgreSQL registry (`--database`) the records are the server's,
    /// and this machine's data directory holds only what is local to it.
    pub fn open_existing(data_dir: &Path) -> Result<Registry> {
        if crate::registry::database::is_external() {
            return Registry::open_external(data_dir);
        }
        if !data_dir.join(DB_FILE).is_file() {
            return Err(Error::NotFound(format!(
                "no modelreg data directory at {} (it has no {DB_FILE}); create one with `modelreg init`, \
                 or pass --data-dir, or --server to talk to a running server",
                data_dir.display()
            )));
        }
        Registry::open(data_dir)
    }

    /// `open_existing` on a shared database: refuses one no `init` has set up.
    fn open_external(data_dir: &Path) -> Result<Registry> {
        let registry = Registry::open(data_dir)?;
        if !registry.has_teams()? {
            return Err(Error::NotFound(
                "the database holds no registry yet (no team); create one with `modelreg init --database …`".into(),
            ));
        }
        Ok(registry)
    }

    /// For `init` and `serve`: creates the data directory if needed and
    /// makes everything in it private; with `store`, makes it the registry's
    /// blob store (see `storage::choose`).
    pub fn prepare(data_dir: &Path, store: Option<&BlobLocation>) -> Result<Prepared> {
        let created = match crate::registry::database::is_external() {
            true => !data_dir.is_dir(),
            false => !data_dir.join(DB_FILE).is_file(),
        };
        create_private_dir(data_dir)
            .map_err(|e| Error::Internal(format!("cannot create data directory {}: {e}", data_dir.display())))?;
        let fixed = make_private(data_dir)
            .map_err(|e| Error::Internal(format!("cannot make {} private: {e}", data_dir.display())))?;
        let registry = Registry::open_choosing(data_dir, store)?;
        Ok(Prepared { registry, created, fixed })
    }
}

/// Takes group and other permissions off the data directory, the database
/// (and its -wal/-shm), the first key and everything under `blobs/`:
/// models are often private, and a shared machine's other users must not
/// read them. Files whose mode already is private are left alone. Returns
/// what changed.
pub fn make_private(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    let mut tighten = |path: &Path, mode: u32| -> std::io::Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() || meta.permissions().mode() & 0o077 == 0 {
            return Ok(());
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        changed.push(path.to_path_buf());
        Ok(())
    };
    tighten(data_dir, PRIVATE_DIR)?;
    for name in [DB_FILE, "modelreg.db-wal", "modelreg.db-shm", crate::registry::FIRST_KEY_FILE] {
        tighten(&data_dir.join(name), PRIVATE_FILE)?;
    }
    let blobs = data_dir.join("blobs");
    if blobs.is_dir() {
        for entry in walkdir::WalkDir::new(&blobs) {
            let entry = entry.map_err(std::io::Error::other)?;
            let mode = if entry.file_type().is_dir() { PRIVATE_DIR } else { PRIVATE_FILE };
            tighten(entry.path(), mode)?;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_existing_refuses_and_creates_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let message = Registry::open_existing(&dir).err().unwrap().to_string();
        assert!(message.contains("modelreg init"), "{message}");
        assert!(!dir.exists());
    }

    #[test]
    fn prepare_creates_private_and_fixes_what_is_not() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let prepared = Registry::prepare(&dir, None).unwrap();
        assert!(prepared.created);
        assert!(prepared.fixed.is_empty(), "{:?}", prepared.fixed);
        // larger than what the database keeps, so that it is a file of its own
        let weights = vec![7u8; 100 * 1024];
        let digest = prepared.registry.put_blob(&mut &weights[..], None).unwrap();
        drop(prepared);
        let blob = dir.join("blobs/sha256").join(&digest.sha256[..2]).join(&digest.sha256[2..]);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
        assert_eq!(mode(&blob), 0o600);
        assert_eq!(mode(blob.parent().unwrap()), 0o700);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = Registry::prepare(&dir, None).unwrap();
        assert!(!again.created);
        assert!(again.fixed.contains(&dir.join(DB_FILE)) && again.fixed.contains(&blob), "{:?}", again.fixed);
        assert_eq!((mode(&dir), mode(&dir.join(DB_FILE)), mode(&blob)), (0o700, 0o600, 0o600));
    }
}
