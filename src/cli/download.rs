//! Where a download goes: a file, written beside its name and renamed into
//! place once its sha256 checks, or standard output (`-o -`), streamed as it
//! arrives. Every command that downloads one file (`versions download`,
//! `datasets download`, `custom-models conversions download`, a version's zip
//! with `custom-models versions download -o -`) goes through `save`.

use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use super::progress::progress;
use super::remote::Download;
use super::table::human_size;
use crate::registry::Error;
use crate::registry::{copy_hashing, Digest, PutError};

/// Whether `-o` names standard output.
pub(super) fn is_stdout(output: &Path) -> bool {
    output == Path::new("-")
}

/// Writes the download to `output` (a file, or standard output for `-`),
/// checking its sha256 and length where the source announced them, and
/// prints what was written: on stdout for a file, on stderr when stdout holds
/// the bytes. `force` replaces an existing file, or writes binary to a
/// terminal.
pub(super) fn save(download: Download, output: &Path, force: bool, as_json: bool) -> Result<(), Error> {
    let to_stdout = is_stdout(output);
    let verified = download.verified;
    let Digest { sha256, size } = if to_stdout { stream(download, force)? } else { write_verified(download, output, force)? };
    let mut summary = json!({"path": output, "size": size, "sha256": sha256});
    if let Some(verified) = verified {
        summary["verified"] = json!(verified);
    }
    // A conversion says whether it was checked against its original; the
    // original itself needs no check.
    let check = match verified {
        Some(true) => "; verified against the original",
        Some(false) => "; NOT verified against the original: modelreg cannot run this format to compare it",
        None => "",
    };
    let line = if as_json {
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    } else if to_stdout {
        format!("wrote {} to standard output (sha256 {sha256}){check}", human_size(size))
    } else {
        format!("wrote {} ({}, sha256 {sha256}){check}", output.display(), human_size(size))
    };
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(())
}

/// Writes a download next to `output`, hashing as it goes, and renames it
/// into place only when the hash matches the one the source announced: a
/// corrupt or cut-short download never takes the output's name.
fn write_verified(download: Download, output: &Path, may_replace: bool) -> Result<Digest, Error> {
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::invalid("output", format!("cannot write in {}: {e}", dir.display())))?;
    let mut reader = progress(download.reader, download.len);
    let digest = copy_hashing(&mut reader, temp.as_file_mut(), None).map_err(|e| match e {
        PutError::Read(e) => Error::Internal(format!("the download was interrupted: {e}")),
        other => Error::Internal(format!("cannot write the download: {other}")),
    })?;
    check(&download.sha256, download.len, &digest, "nothing was written")?;
    // A temp file is created 0600; the download should get the mode any new
    // file of the user gets (0644 under the usual umask), not a private one.
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))?;
    temp.as_file().sync_all()?;
    let persisted = if may_replace { temp.persist(output) } else { temp.persist_noclobber(output) };
    persisted.map_err(|e| match e.error.kind() {
        io::ErrorKind::AlreadyExists => {
            Error::Conflict(format!("{} already exists; nothing was written; pass --force to replace it", output.display()))
        }
        _ => Error::Internal(format!("cannot write {}: {}", output.display(), e.error)),
    })?;
    Ok(digest)
}

/// How much of a download is looked at to tell text from binary.
const PEEK: u64 = 8192;

/// Streams a download to standard output through the same hashing copy as
/// a file (fixed buffers: memory stays flat whatever the size). The bytes
/// are out before the hash is known, so a mismatch can only be reported,
/// and the exit status says the output is not to be used.
fn stream(download: Download, force: bool) -> Result<Digest, Error> {
    let stdout = io::stdout();
    let mut reader = download.reader;
    if stdout.is_terminal() {
        if !force {
            // Text may go to a terminal; binary would garble it (as curl does).
            let mut head = Vec::new();
            (&mut reader).take(PEEK).read_to_end(&mut head).map_err(|e| Error::Internal(format!("the download was interrupted: {e}")))?;
            if looks_binary(&head) {
                return Err(Error::invalid(
                    "output",
                    "the download is binary and standard output is a terminal: redirect it (`-o - > FILE`, `-o - | COMMAND`), \
                     or pass --force to print it anyway",
                ));
            }
            reader = Box::new(io::Cursor::new(head).chain(reader));
        }
    } else {
        // A progress bar only where it does not draw over the bytes.
        reader = progress(reader, download.len);
    }
    // Big writes: stdout's own buffer is line-sized.
    let mut out = io::BufWriter::with_capacity(256 * 1024, stdout);
    let digest = copy_hashing(&mut reader, &mut out, None).map_err(|e| match e {
        PutError::Read(e) => Error::Internal(format!("the download was interrupted: {e}; standard output has only part of it")),
        other => Error::Internal(format!("cannot write to standard output: {other}")),
    })?;
    out.flush().map_err(|e| Error::Internal(format!("cannot write to standard output: {e}")))?;
    check(&download.sha256, download.len, &digest, "discard what was written to standard output")?;
    Ok(digest)
}

/// The download's hash and length against what its source announced.
fn check(expected_sha256: &Option<String>, expected_len: Option<u64>, got: &Digest, then: &str) -> Result<(), Error> {
    if let Some(expected) = expected_sha256.as_ref().filter(|e| **e != got.sha256) {
        return Err(Error::Internal(format!("the download is corrupt: sha256 {}, expected {expected}; {then}", got.sha256)));
    }
    if let Some(len) = expected_len.filter(|len| *len != got.size) {
        return Err(Error::Internal(format!("the download was cut short: {} of {len} bytes; {then}", got.size)));
    }
    Ok(())
}

/// Whether the first bytes of a download are something other than text: a
/// NUL, or bytes that are not UTF-8 (a character cut at the end of the peek
/// is still text).
fn looks_binary(head: &[u8]) -> bool {
    head.contains(&0) || std::str::from_utf8(head).is_err_and(|e| e.error_len().is_some())
}

/// The process's umask, read without changing it (umask(2) can only be read
/// by setting it, which would race with other threads creating files).
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| l.strip_prefix("Umask:").and_then(|m| u32::from_str_radix(m.trim(), 8).ok()))
        })
        .unwrap_or(0o022)
}

#[cfg(test)]
mod tests {
    use super::looks_binary;

    #[test]
    fn text_may_go_to_a_terminal_and_binary_may_not() {
        assert!(!looks_binary(b"a,b\n1,2\n"));
        assert!(!looks_binary("caf\u{e9}".as_bytes()));
        // A character cut by the end of the peek is text.
        assert!(!looks_binary(&"caf\u{e9}".as_bytes()[..4]));
        assert!(!looks_binary(b""));
        assert!(looks_binary(b"PK\x03\x04\x14\x00\x08\x00"));
        assert!(looks_binary(b"\x80\x02ctorch"));
    }
}
