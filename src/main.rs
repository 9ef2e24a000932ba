//! modelreg: a self-hosted model registry. See README.md and ARCHITECTURE.md.

mod api;
mod cli;
mod http;
mod jobs;
mod registry;
mod store;

fn main() {
    std::process::exit(cli::main());
}
