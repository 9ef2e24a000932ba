//! tests/conversions.rs again, with every server keeping its blobs in a fresh bucket
//! of a real Garage node (`common::on_s3`): jobs read their files through
//! the S3 store's read-through cache, and must work as on local disk.

#[path = "conversions.rs"]
mod suite;
