//! `LocalBlobs`: the blob store as a directory, `blobs/sha256/ab/cdef…`
//! under the data directory, one file per distinct content.
//!
//! How it keeps the promises of `BlobStore`:
//! * A blob is written to `blobs/tmp/`, fsynced, renamed into place, and
//!   the directory fsynced (a large batch: all written, one syncfs, all
//!   renamed, a second syncfs); a name at its address is only ever given to
//!   bytes already on disk.
//! * The gc lock is `blobs/gc.lock`: writers and backups take it shared
//!   (`UploadGuard`), gc exclusively, so gc never sweeps a blob between its
//!   write and its row, even when the writer is another process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::stream::copy_hashing;
use super::{is_sha256_hex, Blob, BlobStore, Digest, GcLock, GcReport, Materialise, Materialised, PutError, StoredBlob, UploadGuard};

/// Blob files and their folders are the owner's alone: models are often
/// private, and the data directory may sit on a shared machine.
pub const PRIVATE_FILE: u32 = 0o600;
pub const PRIVATE_DIR: u32 = 0o700;

/// Copies `from` to `to`, a new private file, fsynced when `durable`. File
/// to file, the kernel copies the bytes (copy_file_range): no buffer here.
pub fn copy_private(from: &Path, to: &Path, durable: bool) -> io::Result<()> {
    let mut source = File::open(from)?;
    let mut out = OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(to)?;
    io::copy(&mut source, &mut out)?;
    if durable {
        out.sync_all()?;
    }
    Ok(())
}

/// `create_dir_all` with every folder it creates private.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR).create(dir)
}

/// The blob store as a directory (`<data>/blobs`).
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// Opens (creating if needed) the store rooted at `root` (`<data>/blobs`).
    pub fn create(root: &Path) -> io::Result<LocalBlobs> {
        create_private_dir(&root.join("sha256"))?;
        create_private_dir(&root.join("tmp"))?;
        Ok(LocalBlobs { root: root.to_path_buf() })
    }

    /// A store to read from that is not created if missing (a backup's).
    pub fn at(root: &Path) -> LocalBlobs {
        LocalBlobs { root: root.to_path_buf() }
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let (prefix, rest) = sha256.split_at(2.min(sha256.len()));
        self.root.join("sha256").join(prefix).join(rest)
    }

    fn gc_lock(&self) -> GcLock {
        GcLock::at(self.root.join("gc.lock"))
    }

    /// Writes the temp file under an exclusive `flock` of its own, which the caller holds
    /// until the file is renamed: `sweep_temp` removes only temp files nobody holds.
    /// Not fsynced: `settle` does that.
    fn write_temp(&self, source: &mut dyn Read, limit: Option<u64>, temp_path: &Path) -> Result<(Digest, File), PutError> {
        let file =
            OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(temp_path).map_err(PutError::Write)?;
        file.lock().map_err(PutError::Write)?;
        let digest = std::thread::scope(|scope| {
            let mut sink = EarlyWriteback { file: &file, written: 0, flushed: 0, flusher: None, scope };
            copy_hashing(source, &mut sink, limit)
        })?;
        Ok((digest, file))
    }

    /// Moves a complete, durable temp file to its content address, adding to
    /// `dirs` the directories whose entries changed: the caller makes them
    /// durable before acknowledging.
    fn install(&self, temp_path: &Path, sha256: &str, dirs: &mut std::collections::BTreeSet<PathBuf>) -> io::Result<()> {
        let final_path = self.path_of(sha256);
        let dir = final_path.parent().expect("blob paths have a parent");
        // Should another upload have stored the same content since `settle`
        // looked, the rename replaces it with identical bytes and a fresh
        // mtime, which a gc about to judge it old must see anyway.
        // The shard directory is made on first use: asking first would cost
        // every blob a lookup that only the first of its shard needs.
        match fs::rename(temp_path, &final_path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && temp_path.exists() => {
                create_private_dir(dir)?;
                dirs.insert(dir.parent().expect("shard dirs have a parent").to_path_buf());
                fs::rename(temp_path, &final_path)?;
            }
            other => other?,
        }
        dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Where a blob's file is; None for a name that is not a digest.
    pub fn file_of(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.path_of(sha256))
    }
}

impl BlobStore for LocalBlobs {
    fn upload_guard(&self) -> io::Result<UploadGuard> {
        self.gc_lock().upload()
    }

    fn backup_guard(&self) -> io::Result<UploadGuard> {
        self.gc_lock().backup()
    }

    /// Streams `source` into the store, hashing as it writes. At most `limit`
    /// bytes are accepted. On any error the temp file is removed and nothing
    /// is stored.
    fn put(&self, source: &mut dyn Read, limit: Option<u64>) -> Result<Digest, PutError> {
        let mut one = PendingBlobs::default();
        let digest = self.put_pending(source, limit, &mut one)?;
        self.settle(&mut one).map_err(PutError::Write)?;
        Ok(digest)
    }

    /// Writes `source` to a temp file as `put` does but leaves it in `pending`,
    /// not yet fsynced nor at its address: `settle` finishes it. The caller
    /// must settle before committing a row that references the digest.
    ///
    /// One upload of many small files (a DataRobot version of 1,000 files)
    /// used to pay a full journal commit per file: fsync, rename, directory
    /// fsync, a thousand times in series. Settled together, a batch of
    /// `SYNCFS_BATCH` or more is made durable by two syncfs calls; a smaller
    /// one has the writeback of every file started first, then each file
    /// fsynced before its rename and each directory after. At most
    /// `MAX_PENDING` files wait at once (each holds a descriptor).
    fn put_pending(&self, source: &mut dyn Read, limit: Option<u64>, pending: &mut PendingBlobs) -> Result<Digest, PutError> {
        if pending.files.len() >= MAX_PENDING {
            self.settle(pending).map_err(PutError::Write)?;
        }
        let temp_path = self.root.join("tmp").join(format!("{}.part", uuid::Uuid::new_v4()));
        match self.write_temp(source, limit, &temp_path) {
            Ok((digest, file)) => {
                pending.files.push(Pending { temp_path, file, sha256: digest.sha256.clone() });
                Ok(digest)
            }
            Err(e) => {
                let _ = fs::remove_file(&temp_path);
                Err(e)
            }
        }
    }

    /// Makes every blob in `pending` durable at its address (see
    /// `put_pending`); on error the ones not yet installed are removed.
    fn settle(&self, pending: &mut PendingBlobs) -> io::Result<()> {
        let files = std::mem::take(&mut pending.files);
        let mut left = files.into_iter().collect::<std::collections::VecDeque<_>>();
        let result = (|| {
            // Content already stored was fsynced when it was installed: these
            // temp files are dropped unsynced.
            let mut fresh = Vec::with_capacity(left.len());
            while let Some(p) = left.pop_front() {
                let final_path = self.path_of(&p.sha256);
                if final_path.exists() {
                    // A gc that saw it as old and unreferenced a moment ago
                    // now sees it as new.
                    fs::remove_file(&p.temp_path)?;
                    File::options().write(true).open(&final_path)?.set_modified(SystemTime::now())?;
                } else {
                    fresh.push(p);
                }
            }
            left.extend(fresh);
            // A large batch is made durable by the filesystem at once (see
            // `SYNCFS_BATCH`); a small one file by file, so that it never waits
            // for anyone else's dirty pages.
            let whole_filesystem = left.len() >= SYNCFS_BATCH && syncfs_reports_errors();
            if whole_filesystem {
                syncfs(&self.root)?;
            } else {
                if left.len() > 1 {
                    for p in &left {
                        start_writeback(&p.file, 0, 0);
                    }
                }
                let files: Vec<&File> = left.iter().map(|p| &p.file).collect();
                in_parallel(&files, |f| f.sync_all())?;
            }
            // Only now, with every byte durable, do the names appear: a blob at
            // its address is always whole, even after a crash right here.
            let mut dirs = std::collections::BTreeSet::new();
            while let Some(p) = left.front() {
                self.install(&p.temp_path, &p.sha256, &mut dirs)?;
                // the temp file's lock goes only now that it has been renamed (see `sweep_temp`)
                left.pop_front();
            }
            if whole_filesystem {
                if !dirs.is_empty() {
                    syncfs(&self.root)?;
                }
            } else {
                let dirs: Vec<PathBuf> = dirs.into_iter().collect();
                in_parallel(&dirs, |d| sync_dir(d))?;
            }
            Ok(())
        })();
        for p in left {
            let _ = fs::remove_file(&p.temp_path);
        }
        result
    }

    fn open(&self, sha256: &str) -> io::Result<Blob> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 digest"));
        }
        Ok(Blob::from_file(File::open(self.path_of(sha256))?))
    }

    fn stat(&self, sha256: &str) -> io::Result<Option<u64>> {
        let Some(path) = self.file_of(sha256) else { return Ok(None) };
        match fs::metadata(path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn materialise(&self, sha256: &str, dest: &Path, how: Materialise) -> io::Result<Materialised> {
        let source = self.file_of(sha256).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 digest"))?;
        // Blobs are never changed in place, so a link is a copy at no cost;
        // a job gets a file of its own, since it may change its mode.
        if how == Materialise::LinkOrDurableCopy && fs::hard_link(&source, dest).is_ok() {
            return Ok(Materialised::Linked);
        }
        copy_private(&source, dest, how == Materialise::LinkOrDurableCopy)?;
        Ok(Materialised::Copied)
    }

    /// Every blob file on disk, in no particular order.
    fn list(&self) -> io::Result<Vec<StoredBlob>> {
        let mut blobs = Vec::new();
        for entry in walkdir::WalkDir::new(self.root.join("sha256")).min_depth(2).max_depth(2) {
            let entry = entry.map_err(io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let shard = entry.path().parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("");
            let rest = entry.file_name().to_str().unwrap_or("");
            let meta = entry.metadata().map_err(io::Error::other)?;
            blobs.push(StoredBlob {
                sha256: format!("{shard}{rest}"),
                size: meta.len(),
                modified: meta.modified()?,
            });
        }
        Ok(blobs)
    }

    /// Removes blobs older than `grace` that `release` lets go of, and temp
    /// files older than `grace` (left by a crash or a cancelled upload).
    /// `release` is asked under the gc lock, held exclusively throughout, so
    /// it can check for references and forget the blob's row with no upload
    /// able to add a reference in between.
    fn gc(&self, release: &mut dyn FnMut(&str) -> io::Result<bool>, grace: Duration, dry_run: bool) -> io::Result<GcReport> {
        let _uploads_wait = self.gc_lock().exclusive()?;
        let now = SystemTime::now();
        let is_old = |t: SystemTime| now.duration_since(t).map(|age| age >= grace).unwrap_or(false);
        let mut report = GcReport::default();
        for blob in self.list()? {
            if !is_old(blob.modified) || !release(&blob.sha256)? {
                continue;
            }
            if !dry_run {
                fs::remove_file(self.path_of(&blob.sha256))?;
            }
            report.removed_blobs.push((blob.sha256, blob.size));
        }
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && is_old(meta.modified()?) {
                if !dry_run {
                    fs::remove_file(entry.path())?;
                }
                report.removed_temp_files.push((entry.path().display().to_string(), meta.len()));
            }
        }
        Ok(report)
    }

    fn describe(&self) -> String {
        "local".to_string()
    }

    fn gc_exclusion(&self) -> io::Result<UploadGuard> {
        self.gc_lock().exclusive()
    }

    /// Removes the `.part` files in `tmp/` that no live upload owns: those whose `flock`
    /// can be taken. A process that died (kill -9, power loss) holds no lock, so its temp
    /// files go at once, whatever their age; an upload in progress, in this process or
    /// another (the offline CLI), keeps its file. Returns what was removed.
    fn sweep_temp(&self) -> io::Result<Vec<(String, u64)>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("part") {
                continue;
            }
            // gone meanwhile (renamed or removed by its upload): nothing to do
            let Ok(file) = File::open(&path) else { continue };
            match file.try_lock() {
                Ok(()) => {
                    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    // removed while locked, so no upload can be between its checks and its
                    // rename (the names are fresh UUIDs, never reused)
                    if fs::remove_file(&path).is_ok() {
                        removed.push((path.display().to_string(), size));
                    }
                }
                Err(fs::TryLockError::WouldBlock) => (),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(removed)
    }
}

/// Temp files one `PendingBlobs` holds open before it settles them.
const MAX_PENDING: usize = 256;

/// Blobs written by `put_pending` and not yet settled. Dropping it unsettled
/// removes their temp files (an upload that failed halfway).
#[derive(Default)]
pub struct PendingBlobs {
    files: Vec<Pending>,
    /// Small blobs held in memory until `settle` writes them to the
    /// database (see `inline.rs`).
    pub(super) small: Vec<(String, Vec<u8>)>,
}

struct Pending {
    temp_path: PathBuf,
    /// Open, so its flock keeps `sweep_temp` away until the rename.
    file: File,
    sha256: String,
}

impl Drop for PendingBlobs {
    fn drop(&mut self) {
        for p in self.files.drain(..) {
            let _ = fs::remove_file(&p.temp_path);
        }
    }
}

/// From this many new files on, `settle` makes a batch durable with two
/// syncfs(2) calls (one for the bytes before the renames, one for the
/// renames) instead of an fsync per file and per directory: for 1,000 files
/// of 4 KiB that is about 10 ms instead of 200-600 ms. The price is that
/// syncfs also writes out every other dirty page on the filesystem, so a
/// small batch, which would gain little, keeps to its own fsyncs.
const SYNCFS_BATCH: usize = 16;

/// syncfs(2) reports writeback errors only since Linux 5.8; before that it
/// returns 0 whatever happened, which is no basis for acknowledging an
/// upload, so older kernels keep to fsync.
fn syncfs_reports_errors() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        // SAFETY: uname fills the zeroed struct it is given and nothing else.
        let release = unsafe {
            let mut name: libc::utsname = std::mem::zeroed();
            if libc::uname(&mut name) != 0 {
                return false;
            }
            std::ffi::CStr::from_ptr(name.release.as_ptr()).to_string_lossy().into_owned()
        };
        kernel_at_least(&release, (5, 8))
    })
}

/// Whether a kernel release string ("6.18.44-fc-v669") is at least `wanted`.
fn kernel_at_least(release: &str, wanted: (u32, u32)) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}

/// Flushes every dirty page and inode of the filesystem holding `path`.
fn syncfs(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    // SAFETY: the descriptor is open for the whole call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Fsyncs waiting at the same time share a journal commit (ext4 and xfs
/// batch them), so many small files are synced from a few threads at once.
const SYNC_THREADS: usize = 4;

/// Runs `op` on every item, from up to `SYNC_THREADS` threads; the first
/// error wins. A single item runs on this thread.
fn in_parallel<T: Sync>(items: &[T], op: impl Fn(&T) -> io::Result<()> + Sync) -> io::Result<()> {
    if items.len() < 2 {
        return items.iter().try_for_each(&op);
    }
    let per_thread = items.len().div_ceil(SYNC_THREADS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items.chunks(per_thread).map(|chunk| scope.spawn(|| chunk.iter().try_for_each(&op))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(io::Error::other("a sync thread panicked")))).collect()
    })
}

/// Starts writeback of `len` bytes at `offset` (0 = to the end) without
/// waiting (SYNC_FILE_RANGE_WRITE): the fsync that follows, which alone
/// decides durability, finds the I/O under way.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(file);
    // SAFETY: fd is an open file for as long as `file` is borrowed; the call only schedules I/O.
    unsafe {
        libc::sync_file_range(fd, offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Past this many unflushed bytes, a large blob's writeback is started.
const WRITEBACK_STEP: u64 = 16 << 20;

/// A temp file's writer that starts the disk writing a large blob while it
/// is still arriving, so the fsync at the end finds most of it on disk
/// instead of writing the whole blob then. The writeback is started from a
/// thread of its own (sync_file_range does the block allocation and waits
/// for room in the device's queue), spawned only once a blob passes the
/// first step: small blobs never pay for it.
struct EarlyWriteback<'f, 'scope, 'env> {
    file: &'f File,
    written: u64,
    flushed: u64,
    flusher: Option<std::sync::mpsc::SyncSender<(u64, u64)>>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
}

impl<'f: 'scope, 'scope, 'env> Write for EarlyWriteback<'f, 'scope, 'env> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.written += n as u64;
        if self.written - self.flushed >= WRITEBACK_STEP {
            let file = self.file;
            let flusher = self.flusher.get_or_insert_with(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, u64)>(4);
                self.scope.spawn(move || {
                    for (offset, len) in rx {
                        start_writeback(file, offset, len);
                    }
                });
                tx
            });
            // a flusher that fell behind skips a step; the fsync catches up
            if flusher.try_send((self.flushed, self.written - self.flushed)).is_ok() {
                self.flushed = self.written;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::blobs::hex;
    use sha2::{Digest as _, Sha256};
    use crate::store::blobs::stream::CHUNK;

    fn store() -> (tempfile::TempDir, LocalBlobs) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::create(&dir.path().join("blobs")).unwrap();
        (dir, store)
    }

    #[test]
    fn put_is_content_addressed_and_deduplicated() {
        let (_dir, store) = store();
        let a = store.put(&mut &b"hello"[..], None).unwrap();
        let b = store.put(&mut &b"hello"[..], None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(store.verify(&a.sha256).unwrap());
    }

    #[test]
    fn empty_content_round_trips() {
        let (_dir, store) = store();
        let d = store.put(&mut io::empty(), None).unwrap();
        assert_eq!(d.size, 0);
        let mut back = Vec::new();
        store.open(&d.sha256).unwrap().read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn over_limit_and_failed_reads_leave_nothing_behind() {
        let (dir, store) = store();
        let err = store.put(&mut &[7u8; 100][..], Some(99)).unwrap_err();
        assert!(matches!(err, PutError::TooLarge { limit: 99 }));
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"));
                }
                self.0 -= 1;
                buf[0] = 1;
                Ok(1)
            }
        }
        assert!(matches!(store.put(&mut Failing(10), None), Err(PutError::Read(_))));
        assert!(store.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
    }

    /// Hands out a source in uneven pieces, as a socket or a multipart part does.
    struct Uneven<'a>(&'a [u8], usize);
    impl Read for Uneven<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 = (self.1 * 7919 + 13) % 100_003 + 1;
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn hashing_on_a_second_thread_matches_hashing_inline() {
        let data: Vec<u8> = (0..(5 * CHUNK + 1234)).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, data.len()] {
            let mut copy = Vec::new();
            let d = copy_hashing(&mut Uneven(&data[..len], 1), &mut copy, None).unwrap();
            assert_eq!(d.size, len as u64);
            assert_eq!(d.sha256, hex(&Sha256::digest(&data[..len])));
            assert_eq!(copy, &data[..len]);
        }
        let err = copy_hashing(&mut Uneven(&data, 1), &mut io::sink(), Some(3 * CHUNK as u64)).unwrap_err();
        assert!(matches!(err, PutError::TooLarge { .. }));
    }

    #[test]
    fn a_failed_write_stops_the_copy_with_the_write_error() {
        struct FullAfter(usize);
        impl Write for FullAfter {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = vec![3u8; 40 * CHUNK];
        let err = copy_hashing(&mut Uneven(&data, 1), &mut FullAfter(5 * CHUNK), None).unwrap_err();
        assert!(matches!(&err, PutError::Write(e) if e.raw_os_error() == Some(libc::ENOSPC)), "{err}");
    }

    #[test]
    fn a_blob_larger_than_a_writeback_step_round_trips() {
        let (_dir, store) = store();
        let data: Vec<u8> = (0..(WRITEBACK_STEP as usize * 5 / 2)).map(|i| (i % 253) as u8).collect();
        let d = store.put(&mut Uneven(&data, 1), None).unwrap();
        assert_eq!(d.sha256, hex(&Sha256::digest(&data)));
        assert_eq!(fs::read(store.path_of(&d.sha256)).unwrap(), data);
    }

    #[test]
    fn a_batch_past_the_syncfs_size_is_settled_whole() {
        let (dir, store) = store();
        let mut pending = PendingBlobs::default();
        let digests: Vec<Digest> = (0..SYNCFS_BATCH * 2)
            .map(|i| store.put_pending(&mut format!("file {i}").as_bytes(), None, &mut pending).unwrap())
            .collect();
        assert!(digests.iter().all(|d| !store.stat(&d.sha256).unwrap().is_some()));
        store.settle(&mut pending).unwrap();
        assert!(digests.iter().all(|d| store.verify(&d.sha256).unwrap()));
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(kernel_at_least("6.18.44-fc-v669", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }

    #[test]
    fn pending_blobs_are_stored_only_when_settled() {
        let (dir, store) = store();
        let kept = store.put(&mut &b"already here"[..], None).unwrap();
        let mut pending = PendingBlobs::default();
        let a = store.put_pending(&mut &b"a"[..], None, &mut pending).unwrap();
        let again = store.put_pending(&mut &b"already here"[..], None, &mut pending).unwrap();
        let twice = store.put_pending(&mut &b"a"[..], None, &mut pending).unwrap();
        assert_eq!((&again, &twice), (&kept, &a));
        assert!(!store.stat(&a.sha256).unwrap().is_some());
        store.settle(&mut pending).unwrap();
        assert!(store.stat(&a.sha256).unwrap().is_some() && store.verify(&a.sha256).unwrap());
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);

        // an upload that fails before settling leaves nothing behind
        let mut abandoned = PendingBlobs::default();
        let b = store.put_pending(&mut &b"b"[..], None, &mut abandoned).unwrap();
        drop(abandoned);
        assert!(!store.stat(&b.sha256).unwrap().is_some());
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn gc_respects_references_and_grace() {
        let (_dir, store) = store();
        let kept = store.put(&mut &b"kept"[..], None).unwrap();
        let swept = store.put(&mut &b"swept"[..], None).unwrap();
        let young = store.put(&mut &b"young"[..], None).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for d in [&kept, &swept] {
            File::options().write(true).open(store.path_of(&d.sha256)).unwrap().set_modified(old).unwrap();
        }
        let report = store
            .gc(&mut |sha| Ok(sha != kept.sha256), Duration::from_secs(600), false)
            .unwrap();
        assert_eq!(report.removed_blobs, vec![(swept.sha256.clone(), 5)]);
        assert!(store.stat(&kept.sha256).unwrap().is_some());
        assert!(store.stat(&young.sha256).unwrap().is_some());
        assert!(!store.stat(&swept.sha256).unwrap().is_some());
    }
}
