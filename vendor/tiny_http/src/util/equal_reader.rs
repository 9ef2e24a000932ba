use std::io::Read;
use std::io::Result as IoResult;

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. Bytes left unread when it is dropped stay in
/// the sub-reader: it does not drain them (the declared size is client-controlled, so
/// draining here could mean reading, or allocating, an arbitrary amount). The request's
/// connection decides whether to discard them or to close (see `request::Body`).
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: u64,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: u64) -> EqualReader<R> {
        EqualReader { reader, size }
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if (buf.len() as u64) < self.size {
            buf
        } else {
            &mut buf[..self.size as usize]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len as u64;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        // dropping does not drain the rest of the body: that is up to the connection
        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, "ello world");
    }

    #[test]
    fn test_huge_size_reads_only_what_is_there() {
        let data = b"abc".to_vec();
        let mut equal_reader = EqualReader::new(&data[..], 100_000_000_000_000);
        let mut out = Vec::new();
        equal_reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }
}
