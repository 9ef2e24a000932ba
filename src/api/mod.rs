//! The front doors. Each dialect module parses its service's requests, calls
//! the registry, and renders its service's JSON and error bodies. Adapters
//! never touch SQL or the blob directory: everything goes through
//! `crate::registry`.

pub mod admin;
pub mod datarobot;
pub mod modelreg_cards;
pub mod modelreg_models;
pub mod octomil;
pub mod paperspace;
pub mod webhooks;
