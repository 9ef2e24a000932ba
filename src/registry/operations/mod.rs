//! The data directory as a whole: creating it private, backups and
//! restores, verify and gc, and the store-wide figures of /metrics.

pub mod backup;
pub mod blob_migration;
pub mod data_dir;
pub mod db_migration;
pub mod maintenance;
pub mod stats;

/// Holds an operation at a point a test must reach with it half done: with
/// `VARIABLE=FILE` in the environment, say so in FILE.reached and go on once
/// FILE exists (or after a minute). Without the variable this does nothing.
/// tests/operations.rs holds a backup between its snapshot and its copying;
/// tests/s3_store.rs kills a blob migration after its first blob.
///
/// Only debug builds read the variable: a release build (`cargo build
/// --release`, `cargo install`) has no such switch, so no environment can
/// stall a production operation. `debug_assertions` is the seam, not a cargo
/// feature, because the integration tests run the binary cargo builds for
/// them (`CARGO_BIN_EXE_modelreg`, the dev profile, which has
/// debug_assertions) and a package's own tests cannot turn on a feature of
/// that package: `cargo test` would need `--features` on every invocation,
/// and without it the gate tests would fail or have to skip.
#[cfg(debug_assertions)]
pub(crate) fn wait_at_test_gate(variable: &str) {
    let Some(gate) = std::env::var_os(variable).map(std::path::PathBuf::from) else { return };
    let _ = std::fs::write(gate.with_extension("reached"), b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gate.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(not(debug_assertions))]
pub(crate) fn wait_at_test_gate(_variable: &str) {}
