//! Storage: the registry's database behind the SQL seam (`sql`) and a
//! content-addressed directory for bytes (`blobs`). Only `registry` uses
//! this module.

pub mod blobs;
pub mod sql;
pub mod stamps;
