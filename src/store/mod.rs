//! Storage: the two seams under the registry, the database (`sql`) and the
//! content-addressed blob store (`blobs`). Only `registry` uses this module.

pub mod blobs;
pub mod sql;
pub mod stamps;
