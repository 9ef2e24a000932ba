//! Running custom models for real: DataRobot's DRUM in a warm server per
//! job (`drum`), contained without a container engine (`contain`), checked
//! the way DataRobot's custom model tests check them (`checks`), on CSV
//! datasets read and rewritten as streams (`table`); conversions, a
//! version's Java main program compiled into a runnable JAR (`convert`);
//! and format conversions, Octomil weights into ONNX checked against the
//! original (`formats`).

pub mod contain;
pub mod checks;
pub mod convert;
pub mod drum;
pub mod formats;
pub mod insights;
pub mod jobs;
pub mod requests;
pub mod table;
pub mod webhooks;

/// Whether this server can run models: with an image builder it runs them in
/// their environments' images; otherwise it needs the Python runtime. Err
/// says the one command that makes it possible.
pub fn available(settings: &jobs::Settings) -> Result<(), String> {
    // `serve --no-jobs`: the workers that run the work have runtimes of
    // their own, which this server cannot see; one without fails the job
    // saying so.
    if settings.image_builder.is_some() || !settings.runs_jobs {
        return Ok(());
    }
    crate::runtime::locate(settings.data_dir, settings.python).map(|_| ())
}
