//! Copying a stream while hashing it: the pipeline every upload goes
//! through, whatever store it lands in (and the CLI's downloads, which
//! check what they receive).

use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use super::{hex, Digest, PutError};

/// Reads and writes move this much at a time: large enough to keep the disk
/// and the hash busy, small enough that memory stays flat.
pub(super) const CHUNK: usize = 256 * 1024;

/// Buffers in flight per copy: one being filled and written, the rest queued
/// for (or being hashed by) the hashing thread. Memory per upload is
/// `BUFFERS * CHUNK`, whatever its size.
const BUFFERS: usize = 8;

/// Copies `source` to `sink` in fixed-size chunks, hashing on the way, and
/// stops with TooLarge past `limit` bytes. Errors say which side failed.
///
/// A source larger than one chunk goes through a pipeline of three threads:
/// this one receives (socket copy, multipart scan), a second writes each
/// chunk to `sink`, a third hashes it and hands the buffer back. sha256
/// alone costs about as much CPU as everything else together, so on its own
/// thread it sets the pace, and the wall time is near the hash's instead of
/// the sum of all three. (One thread for the write and the hash together was
/// the slower stage, and the client, which the scheduler likes to put on the
/// receiving thread's core, needs the room too.) The chunks go round a fixed
/// set of `BUFFERS` buffers, so memory stays flat and a slow disk or hash
/// slows the reader instead of queueing data. A source that fits in one
/// chunk (most metadata-sized files) is done inline: threads would cost more
/// than they save.
pub fn copy_hashing(source: &mut dyn Read, sink: &mut (dyn Write + Send), limit: Option<u64>) -> Result<Digest, PutError> {
    let check = |size: u64| match limit {
        Some(limit) if size > limit => Err(PutError::TooLarge { limit }),
        _ => Ok(()),
    };
    // The first chunk grows as it is read rather than being zeroed whole: a
    // DataRobot version of 1,000 small files would otherwise clear 256 MiB.
    let mut buf = Vec::new();
    source.take(CHUNK as u64).read_to_end(&mut buf).map_err(PutError::Read)?;
    let (n, eof) = (buf.len(), buf.len() < CHUNK);
    let mut size = n as u64;
    check(size)?;
    if eof {
        sink.write_all(&buf[..n]).map_err(PutError::Write)?;
        return Ok(Digest { sha256: hex(&Sha256::digest(&buf[..n])), size });
    }
    std::thread::scope(|scope| {
        use std::sync::mpsc::sync_channel;
        let (to_writer, written) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
        let (to_hasher, hashed) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
        let (give_back, free) = sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 1..BUFFERS {
            give_back.send(vec![0u8; CHUNK]).expect("the receiver is alive");
        }
        let writer = scope.spawn(move || {
            for (chunk, n) in written {
                // On a failed write the writer returns, dropping both its
                // channels: the hasher ends, the reader's next hand-over fails.
                sink.write_all(&chunk[..n])?;
                if to_hasher.send((chunk, n)).is_err() {
                    break;
                }
            }
            Ok::<_, io::Error>(())
        });
        let hasher = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for (chunk, n) in hashed {
                hasher.update(&chunk[..n]);
                // the reader may have stopped early and dropped `free`: fine
                let _ = give_back.send(chunk);
            }
            hasher.finalize()
        });
        let copied = (|| {
            let (mut chunk, mut n, mut eof) = (buf, n, eof);
            loop {
                if n > 0 {
                    if to_writer.send((chunk, n)).is_err() {
                        // the writer stopped on an error, which its join reports
                        return Ok(());
                    }
                } else {
                    drop(chunk);
                }
                if eof {
                    return Ok(());
                }
                let Ok(next) = free.recv() else { return Ok(()) };
                chunk = next;
                (n, eof) = fill(source, &mut chunk)?;
                size += n as u64;
                check(size)?;
            }
        })();
        // ends the writer's loop, and with it the hasher's, however the copy ended
        drop(to_writer);
        let panicked = |what| PutError::Write(io::Error::other(format!("the {what} thread panicked")));
        let wrote = writer.join().map_err(|_| panicked("writing"))?;
        let hash = hasher.join().map_err(|_| panicked("hashing"))?;
        copied?;
        wrote.map_err(PutError::Write)?;
        Ok(Digest { sha256: hex(&hash), size })
    })
}

/// Reads until `buf` is full or the source ends: whole chunks mean fewer
/// writes and hand-overs than the source's own (often 64 KiB) pieces.
/// Returns the bytes read and whether the source ended.
fn fill(source: &mut dyn Read, buf: &mut [u8]) -> Result<(usize, bool), PutError> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => return Ok((n, true)),
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PutError::Read(e)),
        }
    }
    Ok((n, false))
}

pub fn hash_reader(reader: &mut dyn Read) -> io::Result<Digest> {
    match copy_hashing(reader, &mut io::sink(), None) {
        Ok(digest) => Ok(digest),
        Err(PutError::Read(e)) | Err(PutError::Write(e)) => Err(e),
        Err(PutError::TooLarge { .. }) => unreachable!("no limit was set"),
    }
}
