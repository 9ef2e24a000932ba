//! Reading the head of an untrusted file: every read is checked against the
//! file's length and a cap before it is made, so a length field that lies
//! is reported in words rather than followed (no allocation, skip or loop
//! is sized by the file's own claims beyond what the file can hold).

use std::io::{self, BufReader, Read};

/// Why a file's facts could not be read.
#[derive(Debug)]
pub enum Unreadable {
    /// The file is not what it claims to be; the text says why, in words
    /// that complete "the file …" or stand alone.
    Malformed(String),
    /// The blob store failed while reading: not the file's fault.
    Store(io::Error),
}

pub type Parsed<T> = Result<T, Unreadable>;

pub fn malformed(why: impl Into<String>) -> Unreadable {
    Unreadable::Malformed(why.into())
}

/// A reader over the first `limit` bytes of a file of `file_len` bytes,
/// counting where it is.
pub struct Head<R: Read> {
    reader: BufReader<R>,
    at: u64,
    file_len: u64,
    limit: u64,
    /// What is being read, for messages: "GGUF header", "safetensors header".
    what: &'static str,
}

impl<R: Read> Head<R> {
    pub fn new(reader: R, file_len: u64, limit: u64, what: &'static str) -> Self {
        Head { reader: BufReader::with_capacity(64 * 1024, reader), at: 0, file_len, limit, what }
    }

    /// Bytes read so far.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// Fails, saying why, unless `n` more bytes are both in the file and
    /// within the cap.
    pub fn need(&self, n: u64) -> Parsed<()> {
        let end = self.at.checked_add(n);
        if end.is_none_or(|end| end > self.file_len) {
            return Err(malformed(format!(
                "its {} needs {n} more bytes at byte {}, past the end of the file ({} bytes)",
                self.what, self.at, self.file_len
            )));
        }
        if end.is_none_or(|end| end > self.limit) {
            return Err(malformed(format!(
                "its {} runs past the first {} modelreg reads (it needs {n} more bytes at byte {})",
                self.what,
                mebibytes(self.limit),
                self.at
            )));
        }
        Ok(())
    }

    pub fn bytes(&mut self, n: u64) -> Parsed<Vec<u8>> {
        self.need(n)?;
        // `need` bounded n by the cap, so this allocation is bounded too.
        let mut buffer = vec![0; n as usize];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    pub fn array<const N: usize>(&mut self) -> Parsed<[u8; N]> {
        self.need(N as u64)?;
        let mut buffer = [0; N];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    pub fn u32(&mut self) -> Parsed<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Parsed<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads past `n` bytes without keeping them.
    pub fn skip(&mut self, n: u64) -> Parsed<()> {
        self.need(n)?;
        let copied = io::copy(&mut (&mut self.reader).take(n), &mut io::sink()).map_err(Unreadable::Store)?;
        self.at += copied;
        if copied < n {
            return Err(short_read(self.at, self.file_len));
        }
        Ok(())
    }

    fn fill(&mut self, buffer: &mut [u8]) -> Parsed<()> {
        self.reader.read_exact(buffer).map_err(|e| match e.kind() {
            // `need` saw the bytes in the file's length: the store gave fewer.
            io::ErrorKind::UnexpectedEof => short_read(self.at, self.file_len),
            _ => Unreadable::Store(e),
        })?;
        self.at += buffer.len() as u64;
        Ok(())
    }
}

fn short_read(at: u64, file_len: u64) -> Unreadable {
    Unreadable::Store(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the stored blob ended near byte {at}, before its recorded {file_len} bytes"),
    ))
}

/// "16 MiB": the caps are whole mebibytes.
pub fn mebibytes(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// Why a parser refused a file; panics when it did not.
#[cfg(test)]
pub fn refusal(parsed: Parsed<impl std::fmt::Debug>) -> String {
    match parsed {
        Err(Unreadable::Malformed(why)) => why,
        other => panic!("expected a malformed file, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_counts_its_place() {
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9];
        let mut head = Head::new(&bytes[..], bytes.len() as u64, 1024, "header");
        assert_eq!(head.u32().unwrap(), 1);
        assert_eq!(head.u64().unwrap(), 2);
        assert_eq!(head.at(), 12);
        assert_eq!(head.bytes(1).unwrap(), [9]);
    }

    #[test]
    fn a_length_past_the_file_or_the_cap_is_refused_before_it_is_read() {
        let bytes = [0u8; 16];
        let mut head = Head::new(&bytes[..], 16, 8, "header");
        let why = refusal(head.bytes(u64::MAX));
        assert!(why.contains("past the end of the file (16 bytes)"), "{why}");
        let why = refusal(head.skip(12));
        assert!(why.contains("runs past the first 0 MiB"), "{why}");
        assert_eq!(head.at(), 0, "nothing was read");
    }

    #[test]
    fn a_store_that_gives_fewer_bytes_than_recorded_is_not_the_files_fault() {
        let bytes = [0u8; 4];
        let mut head = Head::new(&bytes[..], 100, 100, "header");
        assert!(matches!(head.u64(), Err(Unreadable::Store(_))));
        let mut head = Head::new(&bytes[..], 100, 100, "header");
        assert!(matches!(head.skip(10), Err(Unreadable::Store(_))));
    }
}
