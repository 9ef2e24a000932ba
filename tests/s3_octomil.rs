//! tests/octomil.rs again, with every server keeping its blobs in a fresh bucket
//! of a real Garage node (`common::on_s3`: this binary's name starts with
//! `s3_`). The suite is the same file: what passes on local disk must pass
//! on S3.

#[path = "octomil.rs"]
mod suite;
