//! Whole-model operations DataRobot needs beyond the shared core: copying a
//! model with all its versions (sharing blobs, copying no bytes), and
//! writing a version's files out as a zip.

use std::sync::Arc;

use crate::registry::access::roles::EntityKind;
use crate::registry::catalogue::cards::copy_card;
use crate::registry::catalogue::models::{insert_version, Model, NewFile, NewModel, NewVersion, Version};
use crate::registry::{Blob, Digest, Error, Principal, Registry, Result};
use crate::store::blobs::BlobStore;

impl Registry {
    /// Copies a model of the caller's team with all its versions. Version
    /// rows and file rows are new (new ids); the files point at the same
    /// blobs, so the copy holds an upload guard (gc must not sweep a blob
    /// between the read and the commit) and reads its source inside the
    /// write transaction (a version added or the model deleted meanwhile is
    /// seen or refused, never half-copied). A card set through the API is
    /// copied with its version: it describes the same files. The caller
    /// owns the copy.
    pub fn copy_model(&self, who: &Principal, source_id: &str) -> Result<Model> {
        let _guard = self.upload_guard()?;
        let tx = self.write()?;
        let source = self.get_model(who, source_id)?;
        let versions = self.list_versions(who, source_id)?;
        let copy = self.insert_model(
            &tx,
            who,
            NewModel { name: source.name, description: source.description, attrs: source.attrs, origin: source.origin },
        )?;
        for v in versions {
            let files = v
                .files
                .into_iter()
                .map(|f| NewFile { path: f.path, digest: Digest { sha256: f.sha256, size: f.size } })
                .collect();
            let new = NewVersion { description: v.description, attrs: v.attrs, files, label: v.label };
            let copied = insert_version(&tx, who, &copy.id, v.number, new)?;
            copy_card(&tx, &v.id, &copied.id)?;
        }
        Registry::grant_owner_in(&tx, EntityKind::Model, &copy.id, &who.user_id)?;
        tx.commit()?;
        self.get_model(who, &copy.id)
    }

    /// The version's files, at their paths, as a zip produced while it is read: no temp
    /// file, memory flat whatever the sizes. Every entry is stored (not deflated), so the
    /// zip's length is known before its first byte and the download has a Content-Length;
    /// each file's CRC-32 is computed as it streams and written in a data descriptor after
    /// it. Blobs are checked before the first byte (a missing one is an error, not a cut
    /// download) and opened one at a time.
    pub fn version_zip(&self, version: &Version) -> Result<(ZipStream, u64)> {
        let mut files: Vec<_> = version.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut entries = Vec::with_capacity(files.len());
        for f in files {
            let stored = self
                .blobs
                .stat(&f.sha256)
                .map_err(|e| crate::registry::referenced_blob_error(&f.sha256, e))?
                .ok_or_else(|| Error::Internal(format!("blob {} is referenced but missing", f.sha256)))?;
            if stored != f.size {
                return Err(Error::Internal(format!("blob {} has {stored} bytes, its row says {}", f.sha256, f.size)));
            }
            entries.push(ZipEntry { name: f.path.clone(), sha256: f.sha256.clone(), size: f.size, offset: 0, crc: 0 });
        }
        Ok(ZipStream::new(Arc::clone(&self.blobs), entries))
    }
}

/// One file of a `ZipStream`.
struct ZipEntry {
    name: String,
    sha256: String,
    size: u64,
    /// Where its local header starts in the zip.
    offset: u64,
    /// Known once its data has streamed.
    crc: u32,
}

impl ZipEntry {
    /// Zip64 fields are used only where a size or offset needs them, so that small zips
    /// stay readable by every unzip.
    fn zip64(&self) -> bool {
        self.size >= 0xFFFF_FFFF || self.offset >= 0xFFFF_FFFF
    }

    fn local_header_len(&self) -> u64 {
        30 + self.name.len() as u64 + if self.zip64() { 20 } else { 0 }
    }

    fn descriptor_len(&self) -> u64 {
        if self.zip64() { 24 } else { 16 }
    }

    fn central_len(&self) -> u64 {
        46 + self.name.len() as u64 + if self.zip64() { 28 } else { 0 }
    }
}

/// What `ZipStream` is producing.
enum Phase {
    Local(usize),
    Data(usize),
    Descriptor(usize),
    Central,
    Done,
}

/// A stored-only zip as a `Read` (see `Registry::version_zip`).
pub struct ZipStream {
    blobs: Arc<dyn BlobStore>,
    entries: Vec<ZipEntry>,
    phase: Phase,
    /// Bytes produced and not yet read out (headers; file data goes straight through).
    pending: Vec<u8>,
    at: usize,
    file: Option<(Blob, u64, crc32fast::Hasher)>,
    central_offset: u64,
    central_len: u64,
}

// DOS time of every entry: 1980-01-01 00:00, so the same version always gives the same bytes.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
// data descriptor follows the data; names are UTF-8
const FLAGS: u16 = 0x0008 | 0x0800;

impl ZipStream {
    fn new(blobs: Arc<dyn BlobStore>, mut entries: Vec<ZipEntry>) -> (ZipStream, u64) {
        let mut offset = 0u64;
        for e in &mut entries {
            e.offset = offset;
            offset += e.local_header_len() + e.size + e.descriptor_len();
        }
        let central_offset = offset;
        let central_len: u64 = entries.iter().map(ZipEntry::central_len).sum();
        let mut total = central_offset + central_len + 22;
        if Self::needs_zip64_end(entries.len(), central_offset, central_len) {
            total += 56 + 20;
        }
        let stream = ZipStream {
            blobs,
            entries,
            phase: Phase::Local(0),
            pending: Vec::new(),
            at: 0,
            file: None,
            central_offset,
            central_len,
        };
        (stream, total)
    }

    fn needs_zip64_end(count: usize, central_offset: u64, central_len: u64) -> bool {
        count >= 0xFFFF || central_offset >= 0xFFFF_FFFF || central_len >= 0xFFFF_FFFF
    }

    /// Produces the next piece into `pending`, or opens the next file.
    fn advance(&mut self) -> std::io::Result<()> {
        self.pending.clear();
        self.at = 0;
        match self.phase {
            Phase::Local(i) if i >= self.entries.len() => self.phase = Phase::Central,
            Phase::Local(i) => {
                let e = &self.entries[i];
                let p = &mut self.pending;
                let zip64 = e.zip64();
                put32(p, 0x0403_4b50);
                put16(p, if zip64 { 45 } else { 20 });
                put16(p, FLAGS);
                put16(p, 0); // stored
                put16(p, DOS_TIME);
                put16(p, DOS_DATE);
                put32(p, 0); // CRC-32: in the descriptor
                put32(p, if zip64 { 0xFFFF_FFFF } else { e.size as u32 });
                put32(p, if zip64 { 0xFFFF_FFFF } else { e.size as u32 });
                put16(p, e.name.len() as u16);
                put16(p, if zip64 { 20 } else { 0 });
                p.extend_from_slice(e.name.as_bytes());
                if zip64 {
                    put16(p, 0x0001);
                    put16(p, 16);
                    put64(p, e.size);
                    put64(p, e.size);
                }
                self.file = Some((self.blobs.open(&e.sha256)?, e.size, crc32fast::Hasher::new()));
                self.phase = Phase::Data(i);
            }
            Phase::Data(i) => self.phase = Phase::Descriptor(i),
            Phase::Descriptor(i) => {
                let e = &self.entries[i];
                let p = &mut self.pending;
                put32(p, 0x0807_4b50);
                put32(p, e.crc);
                if e.zip64() {
                    put64(p, e.size);
                    put64(p, e.size);
                } else {
                    put32(p, e.size as u32);
                    put32(p, e.size as u32);
                }
                self.phase = Phase::Local(i + 1);
            }
            Phase::Central => {
                let p = &mut self.pending;
                for e in &self.entries {
                    let zip64 = e.zip64();
                    put32(p, 0x0201_4b50);
                    put16(p, (3 << 8) | if zip64 { 45 } else { 20 }); // made by: unix
                    put16(p, if zip64 { 45 } else { 20 });
                    put16(p, FLAGS);
                    put16(p, 0);
                    put16(p, DOS_TIME);
                    put16(p, DOS_DATE);
                    put32(p, e.crc);
                    put32(p, if zip64 { 0xFFFF_FFFF } else { e.size as u32 });
                    put32(p, if zip64 { 0xFFFF_FFFF } else { e.size as u32 });
                    put16(p, e.name.len() as u16);
                    put16(p, if zip64 { 28 } else { 0 });
                    put16(p, 0); // comment
                    put16(p, 0); // disk
                    put16(p, 0); // internal attributes
                    put32(p, 0o100644 << 16); // a regular file, rw-r--r--
                    put32(p, if zip64 { 0xFFFF_FFFF } else { e.offset as u32 });
                    p.extend_from_slice(e.name.as_bytes());
                    if zip64 {
                        put16(p, 0x0001);
                        put16(p, 24);
                        put64(p, e.size);
                        put64(p, e.size);
                        put64(p, e.offset);
                    }
                }
                let count = self.entries.len();
                let end_offset = self.central_offset + self.central_len;
                let zip64 = Self::needs_zip64_end(count, self.central_offset, self.central_len);
                if zip64 {
                    put32(p, 0x0606_4b50);
                    put64(p, 44);
                    put16(p, (3 << 8) | 45);
                    put16(p, 45);
                    put32(p, 0);
                    put32(p, 0);
                    put64(p, count as u64);
                    put64(p, count as u64);
                    put64(p, self.central_len);
                    put64(p, self.central_offset);
                    put32(p, 0x0706_4b50);
                    put32(p, 0);
                    put64(p, end_offset);
                    put32(p, 1);
                }
                put32(p, 0x0605_4b50);
                put16(p, 0);
                put16(p, 0);
                put16(p, if zip64 { 0xFFFF } else { count as u16 });
                put16(p, if zip64 { 0xFFFF } else { count as u16 });
                put32(p, if zip64 { 0xFFFF_FFFF } else { self.central_len as u32 });
                put32(p, if zip64 { 0xFFFF_FFFF } else { self.central_offset as u32 });
                put16(p, 0);
                self.phase = Phase::Done;
            }
            Phase::Done => (),
        }
        Ok(())
    }
}

impl std::io::Read for ZipStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if let (Phase::Data(i), Some((file, left, crc))) = (&self.phase, &mut self.file) {
                if *left > 0 {
                    let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        // the blob shrank under us: the download must fail, not lie
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a blob ended early"));
                    }
                    crc.update(&buf[..n]);
                    *left -= n as u64;
                    return Ok(n);
                }
                let i = *i;
                let (_, _, crc) = self.file.take().expect("matched above");
                self.entries[i].crc = crc.finalize();
            }
            if matches!(self.phase, Phase::Done) {
                return Ok(0);
            }
            self.advance()?;
        }
    }
}

fn put16(p: &mut Vec<u8>, v: u16) {
    p.extend_from_slice(&v.to_le_bytes());
}

fn put32(p: &mut Vec<u8>, v: u32) {
    p.extend_from_slice(&v.to_le_bytes());
}

fn put64(p: &mut Vec<u8>, v: u64) {
    p.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_streamed_zip_has_its_announced_length_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Arc::new(crate::store::blobs::LocalBlobs::create(dir.path()).unwrap());
        let mut entries = Vec::new();
        for (name, bytes) in [("a.txt", b"hello".to_vec()), ("dir/b.bin", vec![7u8; 300_000]), ("empty", Vec::new())] {
            let digest = blobs.put(&mut &bytes[..], None).unwrap();
            entries.push(ZipEntry { name: name.into(), sha256: digest.sha256, size: bytes.len() as u64, offset: 0, crc: 0 });
        }
        let (mut stream, len) = ZipStream::new(blobs, entries);
        let mut out = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.len() as u64, len);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
        assert_eq!(archive.len(), 3);
        let mut text = String::new();
        archive.by_name("a.txt").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        let mut big = Vec::new();
        archive.by_name("dir/b.bin").unwrap().read_to_end(&mut big).unwrap();
        assert_eq!(big, vec![7u8; 300_000]);
    }
}


