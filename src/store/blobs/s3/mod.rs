//! `S3Blobs`: the blob store as a bucket of an S3-compatible object store,
//! one object per distinct content at `PREFIX/sha256/ab/cdef…`, the same
//! layout as a data directory's `blobs/`.
//!
//! How it keeps the promises of `BlobStore`:
//! * An upload streams into a multipart upload at `PREFIX/uploads/<uuid>`
//!   while it is hashed, a part (`PART_SIZE`) in memory at a time (two for
//!   the few uploads that send one while they fill the next: `SPARE_PARTS`);
//!   only when it is complete, and its sha256 known, is it copied inside the
//!   store to its address and the upload object deleted. A blob smaller than
//!   one part is sent once, straight to its address, with its sha256 for the
//!   store to check. Either way the object is whole at its address before
//!   `put` returns, and an S3 PUT is durable once answered.
//! * Content already stored is not stored again: the upload object is
//!   dropped and the stored one copied onto itself, which gives it a fresh
//!   modification time so that a gc judging it old and unreferenced a moment
//!   ago leaves it alone (the local store touches its file for the same
//!   reason).
//! * gc on this machine and uploads on this machine exclude each other with
//!   a lock file beside the database; across machines the grace period
//!   does it: gc removes only objects older than it, and an upload's object
//!   is new until its row has committed. Objects and multipart uploads under
//!   `uploads/` older than the grace period are what crashes left; gc
//!   removes and aborts them. The bucket is listed only by gc, `verify` and
//!   `blobs migrate`, never on a request's path.

mod client;

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::cache::BlobCache;
use super::location::{BlobLocation, S3Settings};
use super::stream::copy_hashing;
use super::{
    is_sha256_hex, Blob, BlobStore, Digest, GcLock, GcReport, PresignedPut, Materialise, Materialised, PendingBlobs, PutError, RemoteBlob,
    StoredBlob, UploadGuard, PRIVATE_FILE,
};

/// Bytes of a multipart upload's part, held in memory while it is sent: the
/// only memory an upload takes, whatever its size. 16 MiB parts reach
/// 10,000 parts (S3's limit) at 156 GiB; past `GROW_AFTER_PARTS` parts are
/// 64 MiB, which reaches 500 GiB.
pub const PART_SIZE: usize = 16 << 20;
const LARGE_PART_SIZE: usize = 64 << 20;
const GROW_AFTER_PARTS: usize = 2_000;
/// A redirect is followed at once; S3 checks the expiry only when a
/// request starts, so a long download outlives it.
const REDIRECT_TTL: Duration = Duration::from_secs(15 * 60);

pub struct S3Blobs {
    client: Arc<client::Client>,
    /// `PREFIX/`, or empty.
    prefix: String,
    /// gc's lock for this machine (see the module doc).
    gc_lock: GcLock,
    /// Downloads are sent to the store (`serve --s3-redirect on`).
    redirect_downloads: bool,
    /// Blobs a job needs as a file (see `cache.rs`).
    cache: BlobCache,
}

impl S3Blobs {
    /// The store `s3://bucket/prefix`, reached as `settings` say; `lock_dir`
    /// holds the lock file that orders gc and uploads on this machine.
    pub fn new(settings: &S3Settings, bucket: &str, prefix: &str, lock_dir: &Path) -> Result<S3Blobs, String> {
        let store = BlobLocation::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() }.to_string();
        Ok(S3Blobs {
            client: Arc::new(client::Client::new(settings, bucket, store)?),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            gc_lock: GcLock::at(lock_dir.join("blobs-gc.lock")),
            redirect_downloads: settings.redirect_downloads,
            cache: BlobCache::new(&settings.cache_dir.clone().unwrap_or_else(|| lock_dir.join("cache").join("blobs")), settings.cache_bytes),
        })
    }

    fn key(&self, sha256: &str) -> String {
        format!("{}sha256/{}/{}", self.prefix, &sha256[..2], &sha256[2..])
    }

    fn uploads_prefix(&self) -> String {
        format!("{}uploads/", self.prefix)
    }


    /// Makes the blob `digest` names stored, from the bytes `sink` holds
    /// (sent whole, or completed as a multipart upload).
    fn finish(&self, sink: &mut PartSink, digest: &Digest) -> io::Result<()> {
        let address = self.key(&digest.sha256);
        let Some(upload_id) = sink.upload_id.take() else {
            if self.client.head(&address)?.is_some() {
                return self.client.copy(&address, &address, digest.size);
            }
            return self.client.put(&address, &sink.buf, Some(&digest_bytes(&digest.sha256)));
        };
        sink.finish_parts(&upload_id)?;
        self.client.complete_multipart(&sink.key, &upload_id, &sink.etags)?;
        let stored = if self.client.head(&address)?.is_some() {
            self.client.copy(&address, &address, digest.size)
        } else {
            self.client.copy(&sink.key, &address, digest.size)
        };
        // left behind only if this fails too: gc removes it once it is old
        let _ = self.client.delete(&sink.key);
        stored
    }

    /// Downloads the blob to `dest`, a new file, checking its sha256 on the way.
    fn download(&self, sha256: &str, dest: &Path, how: Materialise) -> io::Result<Materialised> {
        let mut blob = self.open(sha256)?;
        let mut out = OpenOptions::new().write(true).create_new(true).mode(PRIVATE_FILE).open(dest)?;
        let digest = copy_hashing(&mut blob, &mut out, None).map_err(|e| match e {
            PutError::Read(e) | PutError::Write(e) => e,
            PutError::TooLarge { .. } => io::Error::other(e.to_string()),
        });
        let checked = digest.and_then(|d| {
            if d.sha256 != sha256 {
                return Err(io::Error::other(format!("{}: the blob {sha256} reads back as {}", self.client.store(), d.sha256)));
            }
            if how == Materialise::LinkOrDurableCopy {
                out.sync_all()?;
            }
            Ok(())
        });
        if let Err(e) = checked {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        Ok(Materialised::Copied)
    }

    fn is_old(modified: SystemTime, grace: Duration) -> bool {
        SystemTime::now().duration_since(modified).map(|age| age >= grace).unwrap_or(false)
    }
}

impl BlobStore for S3Blobs {
    fn upload_guard(&self) -> io::Result<UploadGuard> {
        self.gc_lock.upload()
    }

    fn backup_guard(&self) -> io::Result<UploadGuard> {
        self.gc_lock.backup()
    }

    fn put(&self, source: &mut dyn Read, limit: Option<u64>) -> Result<Digest, PutError> {
        let key = format!("{}{}", self.uploads_prefix(), uuid::Uuid::new_v4());
        let mut sink = PartSink::new(Arc::clone(&self.client), key);
        let result = copy_hashing(source, &mut sink, limit)
            .and_then(|digest| self.finish(&mut sink, &digest).map(|()| digest).map_err(PutError::Write));
        if result.is_err() {
            let _ = sink.wait_for_sending();
            if let Some(upload_id) = &sink.upload_id {
                // if the store is down this fails too, and gc aborts it later
                let _ = self.client.abort_multipart(&sink.key, upload_id);
            }
        }
        result
    }

    /// Each blob is stored at once: an object store has no cheaper way to
    /// make many objects durable together than making each one durable.
    fn put_pending(&self, source: &mut dyn Read, limit: Option<u64>, _pending: &mut PendingBlobs) -> Result<Digest, PutError> {
        self.put(source, limit)
    }

    fn settle(&self, _pending: &mut PendingBlobs) -> io::Result<()> {
        Ok(())
    }

    fn open(&self, sha256: &str) -> io::Result<Blob> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 digest"));
        }
        let key = self.key(sha256);
        // Asked now, so that a store that is down is a 503 before any byte
        // of the answer is sent. A client sent to the store itself reads
        // nothing here: it is asked only for the size.
        let (body, len, redirect) = if self.redirect_downloads {
            let len = self.client.head(&key)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            (None, len, Some(self.client.presigned_get(&key, None, REDIRECT_TTL)))
        } else {
            let (body, len) = self.client.get(&key, 0)?;
            (Some(body), len, None)
        };
        Ok(Blob::remote(Box::new(ObjectReader { client: Arc::clone(&self.client), key, len, pos: 0, body, redirect })))
    }

    fn stat(&self, sha256: &str) -> io::Result<Option<u64>> {
        if !is_sha256_hex(sha256) {
            return Ok(None);
        }
        self.client.head(&self.key(sha256))
    }

    /// Through the cache on local disk (see `cache.rs`).
    fn materialise(&self, sha256: &str, dest: &Path, how: Materialise) -> io::Result<Materialised> {
        // A backup's copy of every blob would only push the jobs' blobs out.
        if how == Materialise::LinkOrDurableCopy {
            return self.download(sha256, dest, how);
        }
        self.cache.materialise(sha256, dest, how, &|path| self.download(sha256, path, Materialise::Copy).map(drop))
    }

    fn list(&self) -> io::Result<Vec<StoredBlob>> {
        let under = format!("{}sha256/", self.prefix);
        Ok(self
            .client
            .list(&under)?
            .into_iter()
            .filter_map(|object| {
                let sha256: String = object.key.strip_prefix(&under)?.split('/').collect();
                is_sha256_hex(&sha256).then_some(StoredBlob { sha256, size: object.size, modified: object.modified })
            })
            .collect())
    }

    fn gc(&self, release: &mut dyn FnMut(&str) -> io::Result<bool>, grace: Duration, dry_run: bool) -> io::Result<GcReport> {
        let _uploads_wait = self.gc_lock.exclusive()?;
        let mut report = GcReport::default();
        for blob in self.list()? {
            if !Self::is_old(blob.modified, grace) || !release(&blob.sha256)? {
                continue;
            }
            if !dry_run {
                self.client.delete(&self.key(&blob.sha256))?;
            }
            report.removed_blobs.push((blob.sha256, blob.size));
        }
        // what crashed uploads left: completed upload objects never copied
        // to their address, and multipart uploads never completed
        let uploads = self.uploads_prefix();
        for object in self.client.list(&uploads)? {
            if Self::is_old(object.modified, grace) {
                if !dry_run {
                    self.client.delete(&object.key)?;
                }
                report.removed_temp_files.push((object.key, object.size));
            }
        }
        for upload in self.client.list_uploads(&uploads)? {
            if Self::is_old(upload.initiated, grace) {
                if !dry_run {
                    self.client.abort_multipart(&upload.key, &upload.upload_id)?;
                }
                report.removed_temp_files.push((format!("{} (unfinished multipart upload)", upload.key), 0));
            }
        }
        Ok(report)
    }

    /// Nothing: whether an upload in the bucket is still being written
    /// cannot be told from here (it may be another server's), so what
    /// crashes leave is gc's, by age.
    fn sweep_temp(&self) -> io::Result<Vec<(String, u64)>> {
        Ok(Vec::new())
    }

    /// Writes, reads back and deletes a probe object under `uploads/`.
    fn check(&self) -> io::Result<()> {
        self.client.check_bucket()?;
        let key = format!("{}probe-{}", self.uploads_prefix(), uuid::Uuid::new_v4());
        let probe = b"modelreg checks that it may write, read and delete here";
        self.client.put(&key, probe, None)?;
        let mut back = Vec::new();
        self.client.get(&key, 0)?.0.read_to_end(&mut back)?;
        self.client.delete(&key)?;
        if back != probe {
            return Err(io::Error::other(format!("{} gave back other bytes than were written", self.client.store())));
        }
        Ok(())
    }

    fn gc_exclusion(&self) -> io::Result<UploadGuard> {
        self.gc_lock.exclusive()
    }

    fn ping(&self) -> io::Result<()> {
        self.client.check_bucket()
    }

    fn describe(&self) -> String {
        self.client.store().to_string()
    }

    fn presigned_put(&self, sha256: &str, ttl: Duration) -> Option<PresignedPut> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let (url, checksum) = self.client.presigned_put(&self.key(sha256), &digest_bytes(sha256), ttl);
        Some(PresignedPut { url, headers: vec![("x-amz-checksum-sha256".into(), checksum)] })
    }

    fn presigned_get(&self, sha256: &str, filename: Option<&str>, ttl: Duration) -> Option<String> {
        is_sha256_hex(sha256).then(|| self.client.presigned_get(&self.key(sha256), filename, ttl))
    }
}

/// Part buffers beyond each upload's own that may be in use at once, in
/// the whole process. An upload holding one sends a full part on a thread of
/// its own while it fills the next, so the client and the store are kept
/// busy at the same time (one upload alone goes about as fast as the store
/// takes it); eight uploads at once hold at most 8 + SPARE_PARTS parts,
/// which keeps the server within its memory budget (BENCHMARKS.md, S3).
const SPARE_PARTS: usize = 4;
static SPARE_PARTS_FREE: AtomicUsize = AtomicUsize::new(SPARE_PARTS);

/// The `Write` end of an upload: fills a part, sends it when full.
struct PartSink {
    client: Arc<client::Client>,
    /// The upload object's key (`uploads/<uuid>`).
    key: String,
    upload_id: Option<String>,
    etags: Vec<String>,
    buf: Vec<u8>,
    /// The part being sent while `buf` fills, when this upload holds a
    /// spare part: its thread answers its ETag and gives the buffer back.
    sending: Option<std::thread::JoinHandle<io::Result<(String, Vec<u8>)>>>,
    holds_spare: bool,
}

impl PartSink {
    fn new(client: Arc<client::Client>, key: String) -> PartSink {
        PartSink { client, key, upload_id: None, etags: Vec::new(), buf: Vec::new(), sending: None, holds_spare: false }
    }

    fn part_size(&self) -> usize {
        if self.etags.len() < GROW_AFTER_PARTS {
            PART_SIZE
        } else {
            LARGE_PART_SIZE
        }
    }

    fn next_part_number(&self) -> io::Result<u16> {
        let sent = self.etags.len() + usize::from(self.sending.is_some());
        u16::try_from(sent + 1)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| io::Error::other("the upload is larger than S3's 10,000 parts can hold"))
    }

    /// Waits for the part being sent, if any, and gives its buffer back.
    fn wait_for_sending(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(sending) = self.sending.take() else { return Ok(None) };
        let (etag, mut spare) = sending.join().map_err(|_| io::Error::other("sending a part panicked"))??;
        self.etags.push(etag);
        spare.clear();
        Ok(Some(spare))
    }

    /// Sends `buf` as the next part: on a thread of its own when this upload
    /// holds (or can take) a spare part, filling the other buffer meanwhile;
    /// else here.
    fn send_part(&mut self, upload_id: &str, last: bool) -> io::Result<()> {
        let spare = self.wait_for_sending()?;
        let number = self.next_part_number()?;
        if !last && (self.holds_spare || take_spare_part()) {
            self.holds_spare = true;
            let full = std::mem::replace(&mut self.buf, spare.unwrap_or_default());
            let (client, key, upload_id) = (Arc::clone(&self.client), self.key.clone(), upload_id.to_string());
            self.sending = Some(std::thread::spawn(move || {
                let etag = client.upload_part(&key, &upload_id, number, &full)?;
                Ok((etag, full))
            }));
            return Ok(());
        }
        let etag = self.client.upload_part(&self.key, upload_id, number, &self.buf)?;
        self.etags.push(etag);
        self.buf.clear();
        Ok(())
    }

    /// Sends what is left and waits for every part: the ETags are complete.
    fn finish_parts(&mut self, upload_id: &str) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send_part(upload_id, true)?;
        }
        self.wait_for_sending().map(drop)
    }
}

fn take_spare_part() -> bool {
    SPARE_PARTS_FREE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| free.checked_sub(1)).is_ok()
}

impl Drop for PartSink {
    fn drop(&mut self) {
        // a failed upload's part may still be on its way: the spare is not
        // free until its thread has given the buffer back
        if let Some(sending) = self.sending.take() {
            let _ = sending.join();
        }
        if self.holds_spare {
            SPARE_PARTS_FREE.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Write for PartSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let size = self.part_size();
        if self.buf.capacity() < size {
            self.buf.reserve_exact(size - self.buf.len());
        }
        let n = bytes.len().min(size - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == size {
            let upload_id = match self.upload_id.clone() {
                Some(id) => id,
                None => {
                    let id = self.client.start_multipart(&self.key)?;
                    self.upload_id = Some(id.clone());
                    id
                }
            };
            self.send_part(&upload_id, false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stored object read from an offset on: a seek drops the current
/// answer and the next read asks for a range from the new position.
struct ObjectReader {
    client: Arc<client::Client>,
    key: String,
    len: u64,
    pos: u64,
    body: Option<Box<dyn Read + Send>>,
    redirect: Option<String>,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let body = match &mut self.body {
            Some(body) => body,
            None => self.body.insert(self.client.get(&self.key, self.pos)?.0),
        };
        let n = body.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended {} at byte {} of {}", self.client.store(), self.key, self.pos, self.len),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(n) => self.len.checked_add_signed(n),
            SeekFrom::Current(n) => self.pos.checked_add_signed(n),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the blob"))?;
        if pos != self.pos {
            self.body = None;
            self.pos = pos;
        }
        Ok(pos)
    }
}

impl RemoteBlob for ObjectReader {
    fn len(&self) -> u64 {
        self.len
    }

    fn redirect(&self) -> Option<String> {
        self.redirect.clone()
    }
}

fn digest_bytes(sha256: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&sha256[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}
