//! modelreg: a self-hosted model registry. See README.md and ARCHITECTURE.md.

mod api;
mod cli;
mod compute;
mod git;
mod http;
mod jobs;
mod metrics;
mod process;
mod registry;
mod runtime;
mod server;
mod store;
mod ui;

fn main() {
    std::process::exit(cli::main());
}
