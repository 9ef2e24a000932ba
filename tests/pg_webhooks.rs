//! tests/webhooks.rs again, with every server keeping its records in a
//! fresh database of a real PostgreSQL server (`common::on_postgres`).

#[path = "webhooks.rs"]
mod suite;
