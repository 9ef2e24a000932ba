//! The data directory as a whole: creating it private, backups and
//! restores, verify and gc, and the store-wide figures of /metrics.

pub mod backup;
pub mod blob_migration;
pub mod data_dir;
pub mod maintenance;
pub mod stats;
