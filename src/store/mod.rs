//! Storage: SQLite for metadata (`db`) and a content-addressed directory
//! for bytes (`blobs`). Only `registry` uses this module.

pub mod blobs;
pub mod db;
pub mod stamps;
