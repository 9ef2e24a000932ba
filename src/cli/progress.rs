//! Progress bars of bytes on stderr for uploads and downloads, shown only
//! when stderr is a terminal (a script's log gets none).

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use crate::registry::Error;

/// `reader`, counting its bytes on a bar when stderr is a terminal.
pub(super) fn progress(reader: Box<dyn Read>, len: Option<u64>) -> Box<dyn Read> {
    match byte_bar(len.unwrap_or(0)) {
        Some(bar) => Box::new(bar.wrap_read(reader)),
        None => reader,
    }
}

/// A progress bar of bytes on stderr, when stderr is a terminal.
pub(super) fn byte_bar(len: u64) -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Opens a file for upload, wrapped in a progress bar when stderr is a
/// terminal.
pub(super) fn open_with_progress(path: &Path) -> Result<(Box<dyn Read>, u64), Error> {
    let file = File::open(path).map_err(|e| Error::invalid("file", format!("cannot open {}: {e}", path.display())))?;
    let len = file.metadata()?.len();
    Ok((progress(Box::new(file), Some(len)), len))
}
