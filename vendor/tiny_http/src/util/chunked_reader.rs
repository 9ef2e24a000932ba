use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};

/// Longest chunk-size line (with its extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Most bytes of trailer fields accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Decodes a `Transfer-Encoding: chunked` request body (RFC 9112 section 7.1).
///
/// Replaces `chunked_transfer::Decoder`, which buffers a chunk-size line until it ends: a
/// client sending an endless line could make it allocate without bound. Here every line is
/// bounded, chunk sizes are checked for overflow, and trailer fields are skipped.
pub struct ChunkedReader<R> {
    inner: R,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// The last chunk and the trailers have been read.
    Done,
}

fn invalid(msg: &str) -> IoError {
    IoError::new(
        ErrorKind::InvalidData,
        format!("invalid chunked body: {}", msg),
    )
}

impl<R: Read> ChunkedReader<R> {
    pub fn new(inner: R) -> Self {
        ChunkedReader {
            inner,
            state: State::Size,
        }
    }

    /// Reads a line ending in LF (or CRLF), without the line ending; at most `MAX_LINE` bytes.
    fn read_line(&mut self) -> IoResult<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            if self.inner.read(&mut byte)? == 0 {
                return Err(IoError::new(
                    ErrorKind::UnexpectedEof,
                    "chunked body cut short",
                ));
            }
            if byte[0] == b'\n' {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if line.len() >= MAX_LINE {
                return Err(invalid("line too long"));
            }
            line.push(byte[0]);
        }
    }

    fn read_size(&mut self) -> IoResult<u64> {
        let line = self.read_line()?;
        let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let size = std::str::from_utf8(size)
            .map_err(|_| invalid("bad chunk size"))?
            .trim_matches(|c| c == ' ' || c == '\t');
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("bad chunk size"));
        }
        u64::from_str_radix(size, 16).map_err(|_| invalid("chunk size too large"))
    }

    fn skip_trailers(&mut self) -> IoResult<()> {
        let mut total = 0;
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(());
            }
            total += line.len();
            if total > MAX_TRAILERS {
                return Err(invalid("trailers too long"));
            }
        }
    }
}

impl<R: Read> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Size => match self.read_size()? {
                    0 => {
                        self.skip_trailers()?;
                        self.state = State::Done;
                    }
                    size => self.state = State::Data(size),
                },
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(0);
                    }
                    let want = (buf.len() as u64).min(left) as usize;
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(IoError::new(
                            ErrorKind::UnexpectedEof,
                            "chunked body cut short",
                        ));
                    }
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(n);
                }
                State::DataEnd => {
                    if !self.read_line()?.is_empty() {
                        return Err(invalid("missing CRLF after chunk data"));
                    }
                    self.state = State::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedReader;
    use std::io::{Cursor, Read};

    fn decode(input: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkedReader::new(input).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        assert_eq!(
            decode(b"3\r\nhel\r\nb;name=value\r\nlo world!!!\r\n0\r\n\r\n").unwrap(),
            b"hello world!!!"
        );
        assert_eq!(
            decode(b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n").unwrap(),
            b"hello"
        );
        assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut input = Cursor::new(b"2\r\nab\r\n0\r\n\r\nGET / HTTP/1.1\r\n".to_vec());
        let mut out = Vec::new();
        ChunkedReader::new(&mut input)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"ab");
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "GET / HTTP/1.1\r\n");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(decode(b"zz\r\nab\r\n0\r\n\r\n").is_err());
        assert!(decode(b"\r\n").is_err());
        assert!(decode(b"2\r\nabc\r\n0\r\n\r\n").is_err());
        assert!(decode(b"5\r\nab").is_err());
        assert!(decode(b"fffffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn endless_size_line_is_refused_without_buffering_it() {
        let endless = std::io::repeat(b'f');
        let mut reader = ChunkedReader::new(endless);
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn endless_trailers_are_refused() {
        let input = b"0\r\n".iter().copied();
        let trailers = std::iter::repeat(b"X: y\r\n".iter().copied()).flatten();
        let data: Vec<u8> = input.chain(trailers.take(100_000)).collect();
        assert!(decode(&data).is_err());
    }
}
