//! Streaming `multipart/form-data` reader (RFC 7578 / RFC 2046) for a
//! synchronous server.
//!
//! [`Multipart`] wraps any `Read` (typically the request body) and hands out
//! one [`Part`] at a time. A part's headers are parsed eagerly (they are
//! small and bounded), but its content is only ever exposed through
//! `std::io::Read`, so a multi-GiB file can be copied straight into a blob
//! store that hashes while it writes.
//!
//! Invariants:
//!
//! * **Bounded memory.** All body bytes pass through one fixed buffer of
//!   `BUF_SIZE + delimiter length` bytes, allocated once in [`Multipart::new`]
//!   and never grown, or, for part content when that buffer is empty,
//!   straight into the caller's buffer (`Multipart::read_direct`). Neither a part, the preamble nor the epilogue is ever
//!   accumulated; the only per-part allocations are the header values
//!   (capped at [`MAX_HEADER_BYTES`] per part).
//! * **A part ends only at a real delimiter.** `Part::read` returns `Ok(0)`
//!   only once it has seen `CRLF--boundary` followed by `--`, CRLF or
//!   transport padding. If the body ends first it returns an `io::Error` of
//!   kind `UnexpectedEof` (or `InvalidData` for garbage after the boundary),
//!   so a writer copying from it aborts instead of committing a short file.
//!   The wrapped [`MultipartError`] can be recovered with
//!   `MultipartError::from(io_error)`.
//! * **Linear time.** The delimiter is found with `memchr::memmem` (linear
//!   in the worst case); a delimiter cut by the end of the buffer can only
//!   start at a `\r` in its last `m - 1` bytes (a valid boundary has no `\r`),
//!   and each such comparison stops at the next `\r`; between reads at most
//!   one delimiter's length of bytes is rescanned. Adversarial content
//!   therefore cannot make the scan super-linear.
//! * **Strict delimiters.** `CRLF--boundary` followed by anything other than
//!   `--`, CRLF or padding is `Malformed`, not content (RFC 2046 forbids the
//!   delimiter inside a part), so there is exactly one way to split a body.
//!
//! The parser is written to be fuzzed: any byte sequence and any read
//! chunking yields either parts or an error, never a panic or unbounded
//! growth.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};

/// Size of the streaming window. Reads from the underlying body are at most
/// this large, and a part's content is handed out in pieces of at most this.
const BUF_SIZE: usize = 256 * 1024;

/// Upper bound on one part's header block (all header lines plus the blank
/// line that ends them).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// RFC 2046 caps boundaries at 70 characters; we accept a little more for
/// sloppy clients but keep it small so the delimiter search stays cheap.
const MAX_BOUNDARY_LEN: usize = 200;

/// Before reading, pending bytes are moved to the front of the buffer when
/// there are this few of them (cheap), or when the free tail is smaller than
/// `MIN_FREE` (so that reads from the body stay large).
const COMPACT_SMALL: usize = 512;
const MIN_FREE: usize = 8 * 1024;

#[derive(Debug)]
pub enum MultipartError {
    /// Content-Type is not `multipart/form-data` or carries no boundary.
    MissingBoundary,
    /// The body violates the multipart grammar.
    Malformed(String),
    /// The body ended before the closing boundary.
    Truncated,
    /// A part's header block is larger than [`MAX_HEADER_BYTES`].
    HeadersTooLarge,
    /// The underlying reader failed.
    Io(io::Error),
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::MissingBoundary => {
                f.write_str("expected a multipart/form-data Content-Type with a boundary parameter")
            }
            MultipartError::Malformed(why) => write!(f, "malformed multipart body: {why}"),
            MultipartError::Truncated => {
                f.write_str("multipart body ended before the closing boundary")
            }
            MultipartError::HeadersTooLarge => write!(
                f,
                "multipart part headers are larger than {} KiB",
                MAX_HEADER_BYTES / 1024
            ),
            MultipartError::Io(e) => write!(f, "error reading multipart body: {e}"),
        }
    }
}

impl Error for MultipartError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            MultipartError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for MultipartError {
    /// Recovers a `MultipartError` that `Part::read` smuggled through an
    /// `io::Error` (e.g. after a blob store propagated it); any other I/O
    /// error becomes `Io`.
    fn from(e: io::Error) -> Self {
        let is_ours = e
            .get_ref()
            .is_some_and(|inner| inner.is::<MultipartError>());
        if !is_ours {
            return MultipartError::Io(e);
        }
        match e.into_inner().map(|inner| inner.downcast::<MultipartError>()) {
            Some(Ok(ours)) => *ours,
            // Unreachable given the check above, but never panic on input.
            _ => MultipartError::Malformed("unrecognised wrapped error".into()),
        }
    }
}

impl From<MultipartError> for io::Error {
    fn from(e: MultipartError) -> Self {
        match e {
            // Pass the reader's own error through untouched so callers see
            // the original kind (e.g. TimedOut, ConnectionReset).
            MultipartError::Io(inner) => inner,
            MultipartError::Truncated => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Extract the boundary from a Content-Type header value such as
/// `multipart/form-data; boundary="abc"`; errors with `MissingBoundary` when
/// it is not multipart/form-data or has no boundary.
pub fn boundary_from_content_type(content_type: &str) -> Result<String, MultipartError> {
    let (media_type, params) =
        parse_header_params(content_type).map_err(|_| MultipartError::MissingBoundary)?;
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::MissingBoundary);
    }
    let boundary = params
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or(MultipartError::MissingBoundary)?;
    validate_boundary(&boundary)?;
    Ok(boundary)
}

fn validate_boundary(boundary: &str) -> Result<(), MultipartError> {
    if boundary.is_empty() {
        return Err(MultipartError::MissingBoundary);
    }
    if boundary.len() > MAX_BOUNDARY_LEN {
        return Err(MultipartError::Malformed(format!(
            "boundary is longer than {MAX_BOUNDARY_LEN} bytes"
        )));
    }
    // Control bytes (CR above all) would break the linear-time argument of
    // the delimiter search and can never be sent on a header line anyway.
    if boundary.bytes().any(|b| b.is_ascii_control()) {
        return Err(MultipartError::Malformed(
            "boundary contains control characters".into(),
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Headers of a part were returned; content may be partly unread.
    InPart,
    /// The closing delimiter was consumed; the epilogue is never read.
    Done,
    /// `next_part` failed; the stream position is meaningless now.
    Failed,
}

/// Streaming reader over a `multipart/form-data` body. See the module docs.
pub struct Multipart<R: Read> {
    reader: R,
    /// Fixed-size window; never reallocated.
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// Content mode: `buf[pos..avail_end]` is known to contain no delimiter
    /// start, so it can be handed out. If `found`, a full delimiter starts at
    /// `avail_end`; otherwise `buf[avail_end..scanned_end]` is a possible
    /// delimiter prefix that needs more bytes to decide.
    avail_end: usize,
    scanned_end: usize,
    found: bool,
    /// `found` and the bytes after the delimiter were checked to be `--`,
    /// CRLF or padding, so the part is really over.
    tail_ok: bool,
    /// The underlying reader returned `Ok(0)`.
    eof: bool,
    /// `\r\n--` + boundary.
    delim: Box<[u8]>,
    /// `memmem` searcher for `delim`, built once per body.
    finder: memchr::memmem::Finder<'static>,
    /// Deferred from `new`, which cannot fail.
    bad_boundary: Option<String>,
    state: State,
}

impl<R: Read> Multipart<R> {
    pub fn new(reader: R, boundary: &str) -> Self {
        let bad_boundary = validate_boundary(boundary).err().map(|e| match e {
            MultipartError::Malformed(why) => why,
            _ => "boundary is empty".to_string(),
        });
        let mut delim = Vec::with_capacity(4 + boundary.len());
        delim.extend_from_slice(b"\r\n--");
        delim.extend_from_slice(boundary.as_bytes());
        let mut buf = vec![0u8; BUF_SIZE + delim.len()].into_boxed_slice();
        // The first delimiter may open the body without a preceding CRLF.
        // Pretending the body starts with one lets a single search handle
        // both that and a preamble.
        buf[..2].copy_from_slice(b"\r\n");
        Multipart {
            reader,
            buf,
            pos: 0,
            end: 2,
            avail_end: 0,
            scanned_end: 0,
            found: false,
            tail_ok: false,
            eof: false,
            finder: memchr::memmem::Finder::new(&delim).into_owned(),
            delim: delim.into_boxed_slice(),
            bad_boundary,
            state: State::Preamble,
        }
    }

    /// Advances to the next part, skipping whatever is unread of the current
    /// one. Ok(None) after the closing boundary.
    pub fn next_part(&mut self) -> Result<Option<Part<'_, R>>, MultipartError> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed => {
                return Err(MultipartError::Malformed(
                    "an earlier error left the multipart stream unusable".into(),
                ))
            }
            State::Preamble | State::InPart => {}
        }
        if let Some(why) = &self.bad_boundary {
            let why = why.clone();
            self.state = State::Failed;
            return Err(MultipartError::Malformed(why));
        }
        match self.advance() {
            Ok(Some(headers)) => {
                self.state = State::InPart;
                Ok(Some(Part {
                    mp: self,
                    name: headers.name,
                    filename: headers.filename,
                    content_type: headers.content_type,
                }))
            }
            Ok(None) => {
                self.state = State::Done;
                Ok(None)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    fn advance(&mut self) -> Result<Option<PartHeaders>, MultipartError> {
        let in_preamble = self.state == State::Preamble;
        loop {
            match self.content_available() {
                Ok(0) => break,
                Ok(n) => self.pos += n,
                Err(MultipartError::Truncated) if in_preamble => {
                    return Err(MultipartError::Malformed(
                        "body does not contain the boundary".into(),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        // content_available() returned 0: a full delimiter starts at pos.
        self.pos += self.delim.len();
        self.found = false;
        self.tail_ok = false;

        if !self.ensure(2)? {
            return Err(MultipartError::Truncated);
        }
        if &self.buf[self.pos..self.pos + 2] == b"--" {
            self.pos += 2;
            return Ok(None);
        }
        // RFC 2046 allows linear whitespace ("transport padding") between the
        // boundary and its CRLF.
        loop {
            if !self.ensure(1)? {
                return Err(MultipartError::Truncated);
            }
            match self.buf[self.pos] {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    break;
                }
                b'\r' => {
                    if !self.ensure(2)? {
                        return Err(MultipartError::Truncated);
                    }
                    if self.buf[self.pos + 1] != b'\n' {
                        return Err(garbage_after_boundary());
                    }
                    self.pos += 2;
                    break;
                }
                _ => return Err(garbage_after_boundary()),
            }
        }

        let headers = self.read_headers()?;
        self.avail_end = self.pos;
        self.scanned_end = self.pos;
        Ok(Some(headers))
    }

    /// Parses header lines up to and including the blank line. Each line is
    /// parsed and dropped as soon as it is complete, so only the line being
    /// read occupies the buffer.
    fn read_headers(&mut self) -> Result<PartHeaders, MultipartError> {
        let mut total = 0usize;
        // Bytes of the current line already searched for '\n'; relative to
        // `pos`, so it survives compaction.
        let mut searched = 0usize;
        let mut disposition: Option<String> = None;
        let mut content_type: Option<String> = None;
        loop {
            let hit = memchr::memchr(b'\n', &self.buf[self.pos + searched..self.end]);
            let Some(off) = hit else {
                searched = self.end - self.pos;
                if total + searched > MAX_HEADER_BYTES {
                    return Err(MultipartError::HeadersTooLarge);
                }
                if self.eof {
                    return Err(MultipartError::Truncated);
                }
                self.fill()?;
                continue;
            };
            let nl = self.pos + searched + off;
            total += nl + 1 - self.pos;
            if total > MAX_HEADER_BYTES {
                return Err(MultipartError::HeadersTooLarge);
            }
            let mut line = &self.buf[self.pos..nl];
            if let [rest @ .., b'\r'] = line {
                line = rest; // CRLF is canonical; bare LF is tolerated.
            }
            if line.is_empty() {
                self.pos = nl + 1;
                break;
            }
            let colon = line.iter().position(|&b| b == b':').ok_or_else(|| {
                MultipartError::Malformed("part header line without a colon".into())
            })?;
            let name = trim_ascii(&line[..colon]);
            let value = trim_ascii(&line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-disposition") {
                if disposition.is_some() {
                    // Two dispositions could name different fields; refuse to guess.
                    return Err(MultipartError::Malformed(
                        "part has more than one Content-Disposition header".into(),
                    ));
                }
                disposition = Some(String::from_utf8_lossy(value).into_owned());
            } else if name.eq_ignore_ascii_case(b"content-type") && content_type.is_none() {
                content_type = Some(String::from_utf8_lossy(value).into_owned());
            }
            self.pos = nl + 1;
            searched = 0;
        }
        let disposition = disposition.ok_or_else(|| {
            MultipartError::Malformed("part has no Content-Disposition header".into())
        })?;
        parse_disposition(&disposition, content_type)
    }

    /// Returns how many bytes at `pos` are part content (the current part,
    /// or the preamble), reading and scanning as needed. `Ok(0)` means a
    /// verified delimiter starts at `pos`.
    fn content_available(&mut self) -> Result<usize, MultipartError> {
        loop {
            if self.pos < self.avail_end {
                return Ok(self.avail_end - self.pos);
            }
            if self.found {
                if !self.tail_ok {
                    self.check_delimiter_tail()?;
                }
                return Ok(0);
            }
            if self.scanned_end != self.end {
                self.scan();
                continue;
            }
            if self.eof {
                return Err(MultipartError::Truncated);
            }
            self.fill()?;
        }
    }

    /// Part content with nothing of it buffered: reads from the body straight
    /// into the caller's buffer and scans it there, which saves copying every
    /// byte of a large upload through the window. Whatever cannot be handed
    /// out yet (a delimiter and what follows it, or a possible delimiter
    /// start at the end) goes back into the window, where the usual path
    /// takes it up. None when this path does not apply or handed out nothing.
    fn read_direct(&mut self, out: &mut [u8]) -> Result<Option<usize>, MultipartError> {
        let m = self.delim.len();
        // The held-back bytes must fit in the window, and a read shorter than
        // a delimiter could only be held back whole.
        if self.pos != self.end || self.eof || out.len() <= m {
            return Ok(None);
        }
        debug_assert!(!self.found && self.avail_end == self.end && self.scanned_end == self.end);
        let len = out.len().min(BUF_SIZE);
        let out = &mut out[..len];
        let n = loop {
            match self.reader.read(out) {
                Ok(n) => break n.min(out.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(MultipartError::Io(e)),
            }
        };
        if n == 0 {
            self.eof = true;
            return Ok(None);
        }
        let keep = match self.finder.find(&out[..n]) {
            Some(off) => off,
            None => possible_delimiter_start(&out[..n], &self.delim),
        };
        let held = n - keep;
        self.buf[..held].copy_from_slice(&out[keep..n]);
        self.pos = 0;
        self.end = held;
        self.avail_end = 0;
        self.scanned_end = 0;
        Ok((keep > 0).then_some(keep))
    }

    /// Makes sure the delimiter at `avail_end` is followed by something a
    /// delimiter may be followed by, so `Part::read` never reports a clean
    /// end for a body that was cut off (or corrupted) right after it.
    /// `next_part` re-parses these bytes; this only peeks.
    fn check_delimiter_tail(&mut self) -> Result<(), MultipartError> {
        // Offsets from `pos` (== avail_end here), which fill() may move.
        let m = self.delim.len();
        if !self.ensure(m + 1)? {
            return Err(MultipartError::Truncated);
        }
        let second_must_be = match self.buf[self.pos + m] {
            b'\n' | b' ' | b'\t' => None,
            b'-' => Some(b'-'),
            b'\r' => Some(b'\n'),
            _ => return Err(garbage_after_boundary()),
        };
        if let Some(want) = second_must_be {
            if !self.ensure(m + 2)? {
                return Err(MultipartError::Truncated);
            }
            if self.buf[self.pos + m + 1] != want {
                return Err(garbage_after_boundary());
            }
        }
        self.tail_ok = true;
        Ok(())
    }

    /// Searches `buf[avail_end..end]` for the delimiter. Bytes before the
    /// first position that is (or may become) a delimiter are released as
    /// content.
    ///
    /// The whole delimiter is searched with `memmem` (SIMD, a few bytes per
    /// cycle) rather than stopping at every CR: random bytes and weights have
    /// one CR in 256, so a byte-at-a-time scan with a compare at each CR cost
    /// about an eighth of an upload's CPU. What `memmem` cannot see, a
    /// delimiter cut by the end of the buffer, `possible_delimiter_start` does.
    fn scan(&mut self) {
        let end = self.end;
        let start = self.avail_end;
        if let Some(off) = self.finder.find(&self.buf[start..end]) {
            self.avail_end = start + off;
            self.found = true;
        } else {
            self.avail_end = start + possible_delimiter_start(&self.buf[start..end], &self.delim);
        }
        self.scanned_end = end;
    }

    /// Fills until at least `n` unconsumed bytes are buffered; false on EOF.
    fn ensure(&mut self, n: usize) -> Result<bool, MultipartError> {
        while self.end - self.pos < n {
            if self.eof {
                return Ok(false);
            }
            self.fill()?;
        }
        Ok(true)
    }

    /// One read from the body into the free tail of the buffer, compacting
    /// first when that is cheap or needed. Never grows the buffer.
    fn fill(&mut self) -> Result<(), MultipartError> {
        let pending = self.end - self.pos;
        if self.pos > 0 && (pending <= COMPACT_SMALL || self.buf.len() - self.end < MIN_FREE) {
            let shift = self.pos;
            self.buf.copy_within(self.pos..self.end, 0);
            self.pos = 0;
            self.end = pending;
            self.avail_end = self.avail_end.saturating_sub(shift);
            self.scanned_end = self.scanned_end.saturating_sub(shift);
        }
        // Callers only fill while pending data is at most a header line
        // (16 KiB) or a partial delimiter, so after compaction this holds.
        debug_assert!(self.end < self.buf.len());
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    // Defend against a reader that lies about how much it wrote.
                    self.end = (self.end + n).min(self.buf.len());
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(MultipartError::Io(e)),
            }
        }
    }
}

/// Where in `bytes`, which hold no whole delimiter, one may begin that the
/// next bytes would complete; `bytes.len()` if nowhere. Only the last
/// `delim.len() - 1` bytes can hold its start, and only at a CR, since the
/// boundary has no control bytes: each such candidate is compared with the
/// delimiter's prefix, which stops at the next CR, so this is O(delimiter).
fn possible_delimiter_start(bytes: &[u8], delim: &[u8]) -> usize {
    let end = bytes.len();
    let mut i = end.saturating_sub(delim.len() - 1);
    while let Some(off) = memchr::memchr(b'\r', &bytes[i..]) {
        let c = i + off;
        if bytes[c..] == delim[..end - c] {
            return c;
        }
        i = c + 1;
    }
    end
}

fn garbage_after_boundary() -> MultipartError {
    MultipartError::Malformed("boundary is followed by something other than CRLF or --".into())
}

struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

fn parse_disposition(
    disposition: &str,
    content_type: Option<String>,
) -> Result<PartHeaders, MultipartError> {
    let (kind, params) = parse_header_params(disposition).map_err(MultipartError::Malformed)?;
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::Malformed(format!(
            "part Content-Disposition is {kind:?}, expected form-data"
        )));
    }
    let mut name = None;
    let mut filename = None;
    let mut filename_ext = None;
    for (key, value) in params {
        if key.eq_ignore_ascii_case("name") {
            name.get_or_insert(value);
        } else if key.eq_ignore_ascii_case("filename") {
            filename.get_or_insert(value);
        } else if key.eq_ignore_ascii_case("filename*") {
            // RFC 6266: filename* wins over filename when both are given and
            // it can be decoded.
            if filename_ext.is_none() {
                filename_ext = decode_ext_value(&value);
            }
        }
    }
    let name = name.ok_or_else(|| {
        MultipartError::Malformed("part Content-Disposition has no name parameter".into())
    })?;
    Ok(PartHeaders {
        name,
        filename: filename_ext.or(filename),
        content_type,
    })
}

/// Header parameters in order of appearance; names keep their case.
type Params = Vec<(String, String)>;

/// Splits `value; k1=v1; k2="v 2"` into the leading value and its
/// parameters. Quoted values may escape `"` and `\` with a backslash.
fn parse_header_params(value: &str) -> Result<(&str, Params), String> {
    let (head, mut rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        if rest.is_empty() {
            break;
        }
        let key_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim();
        rest = &rest[key_end..];
        let Some(after_eq) = rest.strip_prefix('=') else {
            continue; // valueless parameter: ignore rather than reject
        };
        let after_eq = after_eq.trim_start_matches([' ', '\t']);
        let value;
        if let Some(quoted) = after_eq.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    // Browsers do not escape backslashes in filenames
                    // (WHATWG percent-encodes `"` instead), so a backslash
                    // only escapes the two characters that need it; in
                    // `C:\dir\f.txt` it stays literal.
                    '\\' if matches!(quoted[i + 1..].chars().next(), Some('"' | '\\')) => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    c => out.push(c),
                }
            }
            let close = close.ok_or_else(|| format!("unterminated quoted value for {key:?}"))?;
            value = out;
            rest = &quoted[close + 1..];
        } else {
            let value_end = after_eq.find(';').unwrap_or(after_eq.len());
            value = after_eq[..value_end].trim().to_string();
            rest = &after_eq[value_end..];
        }
        if !key.is_empty() {
            params.push((key.to_string(), value));
        }
    }
    Ok((head.trim(), params))
}

/// Decodes an RFC 5987 `charset'lang'percent-encoded` value. Returns None
/// for unknown charsets or bad encoding, so the plain `filename` is used.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut pieces = value.splitn(3, '\'');
    let charset = pieces.next()?;
    let _language = pieces.next()?;
    let encoded = pieces.next()?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// One part of the body. Its content is read through `Read`; dropping it
/// unread is fine, `next_part` skips the rest.
pub struct Part<'a, R: Read> {
    mp: &'a mut Multipart<R>,
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl<'a, R: Read> Part<'a, R> {
    /// Form field name from Content-Disposition.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Some for file parts (`filename=` or `filename*=UTF-8''...`). An empty
    /// file input is sent by browsers as `filename=""`, i.e. `Some("")`.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    #[allow(dead_code)] // Part of the parser's API; no front door needs it yet.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Reads the whole part as UTF-8 text, failing with Malformed if it is
    /// longer than `limit` bytes or not UTF-8.
    pub fn text(mut self, limit: usize) -> Result<String, MultipartError> {
        let mut bytes = Vec::new();
        let cap = (limit as u64).saturating_add(1);
        (&mut self).take(cap).read_to_end(&mut bytes)?;
        if bytes.len() > limit {
            return Err(MultipartError::Malformed(format!(
                "field {:?} is longer than {limit} bytes",
                self.name
            )));
        }
        String::from_utf8(bytes).map_err(|_| {
            MultipartError::Malformed(format!("field {:?} is not valid UTF-8", self.name))
        })
    }
}

impl<'a, R: Read> Read for Part<'a, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mp = &mut *self.mp;
        if let Some(n) = mp.read_direct(out)? {
            return Ok(n);
        }
        let n = mp.content_available()?.min(out.len());
        out[..n].copy_from_slice(&mp.buf[mp.pos..mp.pos + n]);
        mp.pos += n;
        Ok(n)
    }
}

impl<'a, R: Read> fmt::Debug for Part<'a, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A malformed or truncated body is the client's fault: a 4xx in every
/// dialect.
impl From<MultipartError> for crate::registry::Error {
    fn from(e: MultipartError) -> crate::registry::Error {
        crate::registry::Error::invalid("body", format!("malformed multipart/form-data: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    // ---- helpers -------------------------------------------------------

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Returns one byte per read.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || out.is_empty() {
                return Ok(0);
            }
            out[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    /// Returns random-sized chunks, occasionally interrupting.
    struct Chunky<'a> {
        data: &'a [u8],
        rng: XorShift,
    }
    impl Read for Chunky<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.rng.below(16) == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let max = match self.rng.below(4) {
                0 => 1,
                1 => 7,
                2 => 100,
                _ => 70_000,
            };
            let n = (1 + self.rng.below(max)).min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Got {
        name: String,
        filename: Option<String>,
        content_type: Option<String>,
        data: Vec<u8>,
    }

    fn got(name: &str, filename: Option<&str>, ct: Option<&str>, data: &[u8]) -> Got {
        Got {
            name: name.into(),
            filename: filename.map(Into::into),
            content_type: ct.map(Into::into),
            data: data.to_vec(),
        }
    }

    fn quote(s: &str) -> String {
        s.replace('\\', "\\\\").replace('"', "\\\"")
    }

    fn build(boundary: &str, parts: &[Got]) -> Vec<u8> {
        let mut body = Vec::new();
        for p in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let mut cd = format!("Content-Disposition: form-data; name=\"{}\"", quote(&p.name));
            if let Some(f) = &p.filename {
                cd += &format!("; filename=\"{}\"", quote(f));
            }
            body.extend_from_slice(cd.as_bytes());
            body.extend_from_slice(b"\r\n");
            if let Some(ct) = &p.content_type {
                body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(&p.data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    fn collect<R: Read>(reader: R, boundary: &str) -> Result<Vec<Got>, MultipartError> {
        let mut mp = Multipart::new(reader, boundary);
        let mut out = Vec::new();
        while let Some(mut part) = mp.next_part()? {
            let mut data = Vec::new();
            part.read_to_end(&mut data)?;
            out.push(Got {
                name: part.name().into(),
                filename: part.filename().map(Into::into),
                content_type: part.content_type().map(Into::into),
                data,
            });
        }
        // Done is sticky.
        assert!(mp.next_part()?.is_none());
        Ok(out)
    }

    /// Like `collect`, but reads each part into a fixed buffer of `size`
    /// bytes, filled as far as it goes, as the blob store does: reads of
    /// every size at every offset, which is what `read_direct` must survive.
    fn collect_in_pieces<R: Read>(reader: R, boundary: &str, size: usize) -> Result<Vec<Got>, MultipartError> {
        let mut mp = Multipart::new(reader, boundary);
        let mut out = Vec::new();
        let mut piece = vec![0u8; size];
        while let Some(mut part) = mp.next_part()? {
            let mut data = Vec::new();
            let mut filled = 0;
            loop {
                let n = part.read(&mut piece[filled..])?;
                data.extend_from_slice(&piece[filled..filled + n]);
                filled = if n == 0 || filled + n == size { 0 } else { filled + n };
                if n == 0 {
                    break;
                }
            }
            out.push(Got {
                name: part.name().into(),
                filename: part.filename().map(Into::into),
                content_type: part.content_type().map(Into::into),
                data,
            });
        }
        Ok(out)
    }

    /// Parses `body` with a plain slice, a 1-byte reader, several random
    /// chunkings and several sizes of the caller's buffer, and checks they all
    /// agree.
    fn parse_all_ways(body: &[u8], boundary: &str) -> Result<Vec<Got>, String> {
        let whole = collect(body, boundary).map_err(|e| e.to_string());
        let one = collect(OneByte(body), boundary).map_err(|e| e.to_string());
        assert_eq!(whole, one, "1-byte reader disagrees");
        for size in [1, 5, 64, 4096, 70_001, 2 * BUF_SIZE] {
            let pieces = collect_in_pieces(body, boundary, size).map_err(|e| e.to_string());
            assert_eq!(whole, pieces, "reads into {size}-byte pieces disagree");
            let chunky = Chunky { data: body, rng: XorShift(size as u64 * 0x9E37_79B9) };
            let pieces = collect_in_pieces(chunky, boundary, size).map_err(|e| e.to_string());
            assert_eq!(whole, pieces, "chunked reads into {size}-byte pieces disagree");
        }
        for seed in 1..4u64 {
            let chunky = Chunky {
                data: body,
                rng: XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            };
            let c = collect(chunky, boundary).map_err(|e| e.to_string());
            assert_eq!(whole, c, "chunked reader (seed {seed}) disagrees");
        }
        whole
    }

    fn err_of(body: &[u8], boundary: &str) -> MultipartError {
        let e = collect(body, boundary).expect_err("expected an error");
        // Same error class regardless of chunking.
        let e1 = collect(OneByte(body), boundary).expect_err("expected an error");
        assert_eq!(
            std::mem::discriminant(&e),
            std::mem::discriminant(&e1),
            "{e} vs {e1}"
        );
        e
    }

    // ---- Content-Type --------------------------------------------------

    #[test]
    fn boundary_from_content_type_cases() {
        let ok = |s: &str| boundary_from_content_type(s).unwrap();
        assert_eq!(ok("multipart/form-data; boundary=abc"), "abc");
        assert_eq!(ok("Multipart/Form-Data;BOUNDARY=\"a b;c\""), "a b;c");
        assert_eq!(ok("multipart/form-data; charset=utf-8; boundary=\"x\\\"y\""), "x\"y");
        assert_eq!(
            ok("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"),
            "----WebKitFormBoundary7MA4YWxkTrZu0gW"
        );
        assert_eq!(ok("  multipart/form-data ;  boundary = q1 ; foo=bar"), "q1");
        for bad in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/mixed; boundary=abc",
            "application/json",
            "",
            "multipart/form-data; boundary=\"abc",
        ] {
            assert!(
                matches!(boundary_from_content_type(bad), Err(MultipartError::MissingBoundary)),
                "{bad:?}"
            );
        }
        let long = format!("multipart/form-data; boundary={}", "x".repeat(300));
        assert!(boundary_from_content_type(&long).is_err());
    }

    // ---- structure -----------------------------------------------------

    #[test]
    fn preamble_fields_files_epilogue() {
        let b = "XyZ";
        // "--XyZ" not preceded by CRLF is not a delimiter.
        let mut body = b"This is the preamble. --XyZ\r\n-\r\n--Xy\r\n".to_vec();
        body.extend(build(
            b,
            &[
                got("title", None, None, b"hello world"),
                got("file1", Some("a.bin"), Some("application/octet-stream"), b"\x00\x01\xff"),
                got("file2", Some("b.txt"), Some("text/plain"), b"line1\r\nline2\r\n"),
                got("note", None, None, "caf\u{e9}".as_bytes()),
            ],
        ));
        body.extend_from_slice(b"epilogue with --XyZ\r\n--XyZ-- and \r\n--XyZ\r\ngarbage");
        let parts = parse_all_ways(&body, b).unwrap();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], got("title", None, None, b"hello world"));
        assert_eq!(
            parts[1],
            got("file1", Some("a.bin"), Some("application/octet-stream"), b"\x00\x01\xff")
        );
        assert_eq!(parts[2].data, b"line1\r\nline2\r\n");
        assert_eq!(parts[3].data, "caf\u{e9}".as_bytes());
    }

    #[test]
    fn zero_byte_file_and_empty_body_parts() {
        let b = "bnd";
        let parts = [
            got("empty", Some(""), Some("application/octet-stream"), b""),
            got("f", Some("zero.bin"), None, b""),
            got("x", None, None, b"1"),
        ];
        assert_eq!(parse_all_ways(&build(b, &parts), b).unwrap(), parts);
        // No parts at all.
        assert_eq!(parse_all_ways(b"--bnd--", b).unwrap(), vec![]);
        assert_eq!(parse_all_ways(b"preamble\r\n--bnd--\r\n", b).unwrap(), vec![]);
    }

    #[test]
    fn boundary_lookalikes_inside_content() {
        let b = "boundary42";
        let nasty: &[&[u8]] = &[
            b"\r\n",
            b"--",
            b"\r\n--",
            b"\r\n--boundary4",
            b"\r\n--boundary4\r\n--boundary",
            b"--boundary42",
            b"x--boundary42--",
            b"\r\r\n\n--\r\n-",
            b"\r",
            b"ends with cr\r",
            b"ends with crlf\r\n",
            b"ends with crlf dash\r\n-",
            b"ends with partial\r\n--boundary",
            b"\r\n--boundary\r\n--boundar\r\n--bounda",
            b"\n--boundary42",
        ];
        let parts: Vec<Got> = nasty
            .iter()
            .enumerate()
            .map(|(i, d)| got(&format!("p{i}"), Some("f"), None, d))
            .collect();
        assert_eq!(parse_all_ways(&build(b, &parts), b).unwrap(), parts);
    }

    /// Parts larger than the window, with delimiter look-alikes and a real
    /// delimiter's prefix at and around every place a read can end.
    #[test]
    fn large_parts_with_lookalikes_at_read_edges() {
        let b = "----b0undary";
        let mut rng = XorShift(7);
        let mut parts = Vec::new();
        for (i, len) in [BUF_SIZE - 1, BUF_SIZE, BUF_SIZE + 13, 3 * BUF_SIZE / 2, 70_000].into_iter().enumerate() {
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for at in [4095usize, 4096, 65_535, 70_000, BUF_SIZE - 20, BUF_SIZE - 3, len - 12] {
                let trap: &[u8] = match at % 3 {
                    0 => b"\r\n--b0undar",
                    1 => b"\r\n--",
                    _ => b"\r",
                };
                if at + trap.len() <= len {
                    data[at..at + trap.len()].copy_from_slice(trap);
                }
            }
            // a part that ends in a delimiter's prefix
            data.extend_from_slice(b"\r\n--b0undar");
            parts.push(got(&format!("p{i}"), Some("w.bin"), None, &data));
        }
        assert_eq!(parse_all_ways(&build(b, &parts), b).unwrap(), parts);
    }

    #[test]
    fn headers_case_insensitive_lf_and_params() {
        let body = b"--b\n\
            content-disposition: FORM-DATA; NAME=plain; FileName=\"we \\\"quote\\\" it; ok.txt\"\n\
            CONTENT-TYPE:   text/plain; charset=utf-8  \n\
            X-Ignored: yes\n\
            \n\
            data\r\n\
            --b   \t\r\n\
            Content-Disposition: form-data; name=\"u\"; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\
            \r\n\
            e\r\n\
            --b\r\n\
            Content-Disposition: form-data;name=win;filename=\"C:\\dir\\f.txt\"\r\n\
            \r\n\
            w\r\n\
            --b\r\n\
            Content-Disposition: form-data; name=\"bad-ext\"; filename*=bogus''x; filename=plain.bin\r\n\
            \r\n\
            \r\n\
            --b--";
        let parts = parse_all_ways(body, "b").unwrap();
        assert_eq!(
            parts[0],
            got(
                "plain",
                Some("we \"quote\" it; ok.txt"),
                Some("text/plain; charset=utf-8"),
                b"data"
            )
        );
        assert_eq!(parts[1].filename.as_deref(), Some("\u{20ac} rates.txt"));
        assert_eq!(parts[2].filename.as_deref(), Some("C:\\dir\\f.txt"));
        assert_eq!(parts[3].filename.as_deref(), Some("plain.bin"));
        assert_eq!(parts[3].data, b"");
    }

    #[test]
    fn skipping_unread_and_partly_read_parts() {
        let b = "S";
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let body = build(
            b,
            &[
                got("a", Some("big"), None, &big),
                got("b", None, None, b"second"),
                got("c", Some("big2"), None, &big),
                got("d", None, None, b"fourth"),
            ],
        );
        let mut mp = Multipart::new(Chunky { data: &body, rng: XorShift(7) }, b);
        {
            let part = mp.next_part().unwrap().unwrap();
            assert_eq!(part.name(), "a"); // dropped unread
        }
        assert_eq!(mp.next_part().unwrap().unwrap().text(100).unwrap(), "second");
        {
            let mut part = mp.next_part().unwrap().unwrap();
            let mut head = [0u8; 1000];
            part.read_exact(&mut head).unwrap();
            assert_eq!(&head[..], &big[..1000]);
        }
        assert_eq!(mp.next_part().unwrap().unwrap().text(6).unwrap(), "fourth");
        assert!(mp.next_part().unwrap().is_none());
        assert!(mp.next_part().unwrap().is_none());
    }

    #[test]
    fn text_limits_and_utf8() {
        let body = build(
            "t",
            &[got("long", None, None, b"0123456789"), got("bin", None, None, b"\xff\xfe")],
        );
        let mut mp = Multipart::new(&body[..], "t");
        let e = mp.next_part().unwrap().unwrap().text(9).unwrap_err();
        assert!(matches!(e, MultipartError::Malformed(ref m) if m.contains("longer")), "{e}");
        let e = mp.next_part().unwrap().unwrap().text(100).unwrap_err();
        assert!(matches!(e, MultipartError::Malformed(ref m) if m.contains("UTF-8")), "{e}");

        let mut mp = Multipart::new(&body[..], "t");
        assert_eq!(mp.next_part().unwrap().unwrap().text(10).unwrap(), "0123456789");
    }

    // ---- errors --------------------------------------------------------

    #[test]
    fn missing_boundary_in_body() {
        for body in [&b""[..], b"no boundary here", b"--other\r\n\r\n--other--", b"\r\n--b"] {
            let e = err_of(body, "bb");
            assert!(matches!(e, MultipartError::Malformed(_)), "{body:?}: {e}");
        }
        let mut mp = Multipart::new(&b"--\r\n"[..], "");
        assert!(matches!(mp.next_part(), Err(MultipartError::Malformed(_))));
    }

    #[test]
    fn truncation_everywhere_is_reported() {
        let b = "trunc";
        let body = build(
            b,
            &[
                got("f", Some("x.bin"), Some("application/octet-stream"), b"some\r\n--content"),
                got("g", None, None, b"v"),
            ],
        );
        // Every proper prefix must fail; which error depends on where it is cut.
        for cut in 0..body.len() - 2 {
            let prefix = &body[..cut];
            let e = err_of(prefix, b);
            let ok = match e {
                MultipartError::Truncated => true,
                // A cut inside the very first delimiter means the body never
                // contained the boundary at all.
                MultipartError::Malformed(ref m) => m.contains("does not contain") && cut < 9,
                _ => false,
            };
            assert!(ok, "cut at {cut}: {e}");
        }
        // Cutting only the final CRLF of the epilogue is fine.
        assert_eq!(parse_all_ways(&body[..body.len() - 2], b).unwrap().len(), 2);
    }

    #[test]
    fn truncated_content_is_an_io_error_mappable_back() {
        let body = b"--q\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nabcdef\r\n--q";
        for reader_kind in 0..2 {
            let reader: Box<dyn Read> = if reader_kind == 0 {
                Box::new(&body[..])
            } else {
                Box::new(OneByte(body))
            };
            let mut mp = Multipart::new(reader, "q");
            let mut part = mp.next_part().unwrap().unwrap();
            let mut sink = Vec::new();
            // Like a blob store: copy until error.
            let err = io::copy(&mut part, &mut sink).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert!(matches!(MultipartError::from(err), MultipartError::Truncated));
            drop(part);
            assert!(matches!(mp.next_part(), Err(MultipartError::Truncated)));
            // Poisoned afterwards.
            assert!(mp.next_part().is_err());
        }
        // Truncated in the middle of content (no delimiter at all).
        let body = b"--q\r\nContent-Disposition: form-data; name=f\r\n\r\nabc";
        let mut mp = Multipart::new(&body[..], "q");
        let mut part = mp.next_part().unwrap().unwrap();
        let err = part.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Garbage after a delimiter → InvalidData, maps to Malformed.
        let body = b"--q\r\nContent-Disposition: form-data; name=f\r\n\r\nabc\r\n--qX";
        let mut mp = Multipart::new(&body[..], "q");
        let mut part = mp.next_part().unwrap().unwrap();
        let err = part.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(MultipartError::from(err), MultipartError::Malformed(_)));
        // Plain I/O errors stay Io.
        let e = MultipartError::from(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert!(matches!(e, MultipartError::Io(ref i) if i.kind() == io::ErrorKind::TimedOut));
    }

    #[test]
    fn reader_errors_propagate() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"))
            }
        }
        let mut mp = Multipart::new(Failing, "x");
        assert!(matches!(mp.next_part(), Err(MultipartError::Io(_))));
    }

    #[test]
    fn malformed_parts() {
        let cases: &[&[u8]] = &[
            // Garbage after the boundary.
            b"--b junk\r\n\r\n--b--",
            b"--bX\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n--b--",
            // No Content-Disposition.
            b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
            // Not form-data / no name / bad quoting / no colon.
            b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; filename=a\r\n\r\nx\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
            b"--b\r\nContent-Disposition form-data; name=a\r\n\r\nx\r\n--b--",
            // Duplicate Content-Disposition.
            b"--b\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\nx\r\n--b--",
        ];
        for body in cases {
            let e = err_of(body, "b");
            assert!(
                matches!(e, MultipartError::Malformed(_)),
                "{:?}: {e}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn headers_too_large() {
        let cd = "Content-Disposition: form-data; name=a\r\n";
        // One huge line.
        let body = format!("--b\r\n{cd}X-Long: {}\r\n\r\nx\r\n--b--", "v".repeat(17 * 1024));
        assert!(matches!(err_of(body.as_bytes(), "b"), MultipartError::HeadersTooLarge));
        // Many small lines.
        let body = format!("--b\r\n{cd}{}\r\nx\r\n--b--", "X-A: 1234567890\r\n".repeat(1100));
        assert!(matches!(err_of(body.as_bytes(), "b"), MultipartError::HeadersTooLarge));
        // A header line that never ends (and body keeps going) must not be buffered forever.
        let body = format!("--b\r\n{cd}X-Long: {}", "v".repeat(1 << 20));
        assert!(matches!(err_of(body.as_bytes(), "b"), MultipartError::HeadersTooLarge));
        // Just under the limit is fine.
        let filler = "v".repeat(MAX_HEADER_BYTES - cd.len() - 2 - "X-L: \r\n".len());
        let body = format!("--b\r\n{cd}X-L: {filler}\r\n\r\nx\r\n--b--");
        assert_eq!(parse_all_ways(body.as_bytes(), "b").unwrap()[0].data, b"x");
    }

    // ---- large & property ----------------------------------------------

    /// Generates `--B` headers, `len` bytes of content and the closing
    /// boundary on the fly. Content is pseudo-random with planted CRLF,
    /// `--` and boundary prefixes, repeating a 1 MiB block.
    struct BigBody {
        header: Vec<u8>,
        block: Vec<u8>,
        trailer: Vec<u8>,
        len: u64,
        pos: u64,
    }

    fn big_block(boundary: &str) -> Vec<u8> {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut block: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
        let trap = format!("\r\n--{}", &boundary[..boundary.len() - 1]);
        for k in 0..200 {
            let at = rng.below(block.len() - 64);
            let t: &[u8] = match k % 3 {
                0 => trap.as_bytes(),
                1 => b"\r\n--",
                _ => b"\r\n",
            };
            block[at..at + t.len()].copy_from_slice(t);
        }
        block
    }

    impl BigBody {
        fn new(boundary: &str, len: u64) -> Self {
            BigBody {
                header: format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"; filename=\"weights.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .into_bytes(),
                block: big_block(boundary),
                trailer: format!("\r\n--{boundary}--\r\n").into_bytes(),
                len,
                pos: 0,
            }
        }
        fn total(&self) -> u64 {
            self.header.len() as u64 + self.len + self.trailer.len() as u64
        }
    }

    impl Read for BigBody {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let h = self.header.len() as u64;
            let (src, off): (&[u8], u64) = if self.pos < h {
                (&self.header, self.pos)
            } else if self.pos < h + self.len {
                let c = self.pos - h;
                let in_block = (c % self.block.len() as u64) as usize;
                let left = (self.len - c).min((self.block.len() - in_block) as u64) as usize;
                (&self.block[in_block..in_block + left], 0)
            } else if self.pos < self.total() {
                (&self.trailer, self.pos - h - self.len)
            } else {
                return Ok(0);
            };
            let src = &src[off as usize..];
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            self.pos += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn large_part_streams_in_bounded_memory() {
        const LEN: u64 = 200 * 1024 * 1024;
        let boundary = "------------------------d74496d66958873e";
        let body = BigBody::new(boundary, LEN);
        let block = body.block.clone();
        let mut mp = Multipart::new(body, boundary);
        let cap = mp.buf.len();
        assert!(cap <= BUF_SIZE + 4 + boundary.len());
        let start = Instant::now();
        let mut part = mp.next_part().unwrap().unwrap();
        assert_eq!(part.filename(), Some("weights.bin"));
        let mut chunk = vec![0u8; 256 * 1024];
        let mut seen: u64 = 0;
        loop {
            let n = part.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            // Verify against the generator without allocating per chunk.
            let mut rest = &chunk[..n];
            while !rest.is_empty() {
                let at = (seen % block.len() as u64) as usize;
                let k = rest.len().min(block.len() - at);
                assert_eq!(&rest[..k], &block[at..at + k], "content differs at {seen}");
                rest = &rest[k..];
                seen += k as u64;
            }
            assert_eq!(part.mp.buf.len(), cap, "buffer must never grow");
        }
        drop(part);
        assert!(mp.next_part().unwrap().is_none());
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(seen, LEN);
        assert_eq!(mp.buf.len(), cap);
        eprintln!(
            "large part: {} MiB in {:.3}s = {:.0} MB/s (incl. generator and verification)",
            LEN >> 20,
            secs,
            LEN as f64 / secs / 1e6
        );
    }

    /// What was the throughput test's assertion: a long part of binary and of
    /// CRLF-heavy text content is read whole. Its speed is measured by
    /// bench/multipart.py now.
    #[test]
    fn text_heavy_and_binary_parts_are_read_whole() {
        for (label, boundary) in [("binary", "----WebKitFormBoundary7MA4YWxkTrZu0gW"), ("text", "x")] {
            const LEN: u64 = 8 * 1024 * 1024;
            let mut body = BigBody::new(boundary, LEN);
            if label == "text" {
                // CRLF-heavy content: a CR every 40 bytes, plus "--" lines.
                body.block = (0..1 << 20)
                    .map(|i| match i % 40 {
                        38 => b'\r',
                        39 => b'\n',
                        0 | 1 if i % 400 == 0 => b'-',
                        _ => b'a' + (i % 26) as u8,
                    })
                    .collect();
            }
            let mut mp = Multipart::new(body, boundary);
            let mut part = mp.next_part().unwrap().unwrap();
            let n = io::copy(&mut part, &mut io::sink()).unwrap();
            assert_eq!(n, LEN, "{label}");
            drop(part);
            assert!(mp.next_part().unwrap().is_none(), "{label}: one part");
        }
    }

    fn random_boundary(rng: &mut XorShift) -> String {
        const BCHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";
        let len = 1 + rng.below(70);
        let mut s: Vec<u8> = (0..len).map(|_| BCHARS[rng.below(BCHARS.len())]).collect();
        if s[len - 1] == b' ' {
            s[len - 1] = b'z'; // bchars-nospace at the end
        }
        String::from_utf8(s).unwrap()
    }

    fn random_bytes(rng: &mut XorShift, boundary: &str, max: usize) -> Vec<u8> {
        let delim = format!("\r\n--{boundary}");
        let len = rng.below(max + 1);
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            match rng.below(10) {
                0 => out.extend_from_slice(b"\r\n"),
                1 => out.extend_from_slice(b"--"),
                2 => out.push(b'\r'),
                3 => out.extend_from_slice(&delim.as_bytes()[..1 + rng.below(delim.len() - 1)]),
                4 => out.extend_from_slice(boundary.as_bytes()),
                _ => out.push(rng.next() as u8),
            }
        }
        out
    }

    /// Breaks every occurrence of `delim` in `data` (RFC 2046 forbids it in
    /// content) by overwriting its CR with NUL, which is not a boundary
    /// character and so cannot create a new occurrence.
    fn sanitize(data: &mut [u8], delim: &[u8]) {
        for i in 0..(data.len() + 1).saturating_sub(delim.len()) {
            if data[i..i + delim.len()] == *delim {
                data[i] = 0;
            }
        }
    }

    #[test]
    fn property_random_bodies_round_trip() {
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        for _ in 0..400 {
            let boundary = random_boundary(&mut rng);
            let delim = format!("\r\n--{boundary}");
            let nparts = rng.below(6);
            let mut parts = Vec::new();
            for i in 0..nparts {
                let max = if rng.below(8) == 0 { 20_000 } else { 300 };
                let mut data = random_bytes(&mut rng, &boundary, max);
                // Content ending in a delimiter prefix cannot combine with the
                // real delimiter into an earlier match: the delimiter's only
                // CR is its first byte.
                sanitize(&mut data, delim.as_bytes());
                let name: String = format!("f{i}{}", ["", "\"q\"", "a\\\"b", " sp"][rng.below(4)]);
                let filename = match rng.below(3) {
                    0 => None,
                    1 => Some("".to_string()),
                    _ => Some(format!("file \"{i}\".bin")),
                };
                let ct = [None, Some("application/octet-stream".to_string())][rng.below(2)].clone();
                parts.push(Got { name, filename, content_type: ct, data });
            }
            let mut body = Vec::new();
            if rng.below(2) == 0 {
                // A leading non-"-" byte keeps the preamble from opening with
                // the boundary itself.
                let mut pre = b"P".to_vec();
                pre.extend(random_bytes(&mut rng, &boundary, 200));
                sanitize(&mut pre, delim.as_bytes());
                body.extend_from_slice(&pre);
                body.extend_from_slice(b"\r\n");
            }
            body.extend(build(&boundary, &parts));
            body.extend(random_bytes(&mut rng, &boundary, 100)); // epilogue
            let parsed = parse_all_ways(&body, &boundary)
                .unwrap_or_else(|e| panic!("boundary {boundary:?}: {e}"));
            assert_eq!(parsed, parts, "boundary {boundary:?}");
        }
    }

    #[test]
    fn fuzz_mutated_bodies_never_panic() {
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        let base = build(
            "fz",
            &[
                got("a", Some("x\"y"), Some("text/plain"), b"hello\r\n--f"),
                got("b", None, None, b""),
            ],
        );
        for _ in 0..3000 {
            let mut body = base.clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 if !body.is_empty() => {
                        let i = rng.below(body.len());
                        body[i] = [b'\r', b'\n', b'-', b'"', b';', b'\\', rng.next() as u8][rng.below(7)];
                    }
                    1 if !body.is_empty() => {
                        let i = rng.below(body.len());
                        body.remove(i);
                    }
                    _ => {
                        let i = rng.below(body.len() + 1);
                        body.insert(i, [b'\r', b'\n', b'-', b'f', b'z'][rng.below(5)]);
                    }
                }
            }
            // Either outcome is fine; it must agree across chunkings and not panic.
            let _ = parse_all_ways(&body, "fz");
        }
    }
}
