//! A read-through cache of an object store's blobs on local disk, for the
//! jobs that need a real file (a model server's folder, a converter's
//! input). A blob is fetched once, its sha256 checked as it arrives, and
//! renamed into the cache whole; jobs get copies of their own. The least
//! recently used blobs leave when the cache outgrows its size.
//!
//! Safe under concurrent jobs, in this process or another: a fetch writes a
//! temp file of its own and renames it, so a reader sees a blob whole or not
//! at all; an eviction unlinks, which a copy already reading the file does
//! not notice.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::local::{copy_private, create_private_dir};
use super::{is_sha256_hex, Materialise, Materialised};

pub struct BlobCache {
    dir: PathBuf,
    max_bytes: u64,
    /// One eviction at a time in this process: two would remove twice.
    evicting: Mutex<()>,
}

impl BlobCache {
    pub fn new(dir: &Path, max_bytes: u64) -> BlobCache {
        BlobCache { dir: dir.to_path_buf(), max_bytes, evicting: Mutex::new(()) }
    }

    /// Puts blob `sha256` at `dest` from the cache, calling `fetch` to fill
    /// the cache first when it lacks the blob. `fetch` writes the blob to the
    /// path it is given and fails unless the bytes hash to `sha256`. A blob
    /// larger than the whole cache goes to `dest` and is not kept.
    pub fn materialise(
        &self,
        sha256: &str,
        dest: &Path,
        how: Materialise,
        fetch: &dyn Fn(&Path) -> io::Result<()>,
    ) -> io::Result<Materialised> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 digest"));
        }
        create_private_dir(&self.dir)?;
        let cached = self.dir.join(sha256);
        match fs::File::options().write(true).open(&cached) {
            // the modification time is the cache's "last used"
            Ok(file) => file.set_modified(SystemTime::now())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let temp = self.dir.join(format!("{}.part", uuid::Uuid::new_v4()));
                if let Err(e) = fetch(&temp) {
                    let _ = fs::remove_file(&temp);
                    return Err(e);
                }
                if fs::metadata(&temp)?.len() > self.max_bytes {
                    let moved = fs::rename(&temp, dest).or_else(|_| copy_private(&temp, dest, how == Materialise::LinkOrDurableCopy));
                    let _ = fs::remove_file(&temp);
                    return moved.map(|()| Materialised::Copied);
                }
                fs::rename(&temp, &cached)?;
                self.evict(sha256)?;
            }
            Err(e) => return Err(e),
        }
        copy_private(&cached, dest, how == Materialise::LinkOrDurableCopy)?;
        Ok(Materialised::Copied)
    }

    /// Removes the least recently used blobs (never `keep`, just fetched)
    /// until the cache is within its size.
    fn evict(&self, keep: &str) -> io::Result<()> {
        let _one = self.evicting.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = Vec::new();
        let mut total = 0u64;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !is_sha256_hex(&name) || !meta.is_file() {
                continue;
            }
            total += meta.len();
            entries.push((meta.modified()?, name, meta.len()));
        }
        entries.sort();
        for (_, name, len) in entries {
            if total <= self.max_bytes {
                break;
            }
            if name != keep && fs::remove_file(self.dir.join(&name)).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    fn sha(n: u8) -> String {
        format!("{:02x}", n).repeat(32)
    }

    #[test]
    fn a_blob_is_fetched_once_and_the_least_recently_used_leave_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(&dir.path().join("cache"), 250);
        let fetches = Cell::new(0);
        let fetch = |path: &Path| {
            fetches.set(fetches.get() + 1);
            fs::write(path, [7u8; 100])
        };
        let get = |n: u8, to: &str| cache.materialise(&sha(n), &dir.path().join(to), Materialise::Copy, &fetch).unwrap();
        get(1, "a");
        get(1, "b");
        assert_eq!(fetches.get(), 1);
        assert_eq!(fs::read(dir.path().join("b")).unwrap(), [7u8; 100]);
        get(2, "c");
        // 1 is used again, so 2 is the least recently used when 3 arrives
        let older = SystemTime::now() - Duration::from_secs(60);
        fs::File::options().write(true).open(dir.path().join("cache").join(sha(2))).unwrap().set_modified(older).unwrap();
        get(1, "d");
        get(3, "e");
        assert!(dir.path().join("cache").join(sha(1)).exists());
        assert!(!dir.path().join("cache").join(sha(2)).exists());
        assert!(dir.path().join("cache").join(sha(3)).exists());
        assert_eq!(fetches.get(), 3);
    }

    #[test]
    fn a_failed_fetch_leaves_nothing_and_a_blob_larger_than_the_cache_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(&dir.path().join("cache"), 50);
        let failing = |path: &Path| -> io::Result<()> {
            fs::write(path, b"half")?;
            Err(io::Error::other("the sha256 did not match"))
        };
        assert!(cache.materialise(&sha(1), &dir.path().join("x"), Materialise::Copy, &failing).is_err());
        assert_eq!(fs::read_dir(dir.path().join("cache")).unwrap().count(), 0);
        let big = |path: &Path| fs::write(path, [1u8; 100]);
        cache.materialise(&sha(2), &dir.path().join("y"), Materialise::Copy, &big).unwrap();
        assert_eq!(fs::read(dir.path().join("y")).unwrap().len(), 100);
        assert_eq!(fs::read_dir(dir.path().join("cache")).unwrap().count(), 0);
    }
}
