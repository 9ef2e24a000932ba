//! tests/cards.rs again, with every server keeping its records in a fresh
//! database of a real PostgreSQL server (`common::on_postgres`: this
//! binary's name starts with `pg_`). The suite is the same file: what
//! passes on SQLite must pass on PostgreSQL.

#[path = "cards.rs"]
mod suite;
