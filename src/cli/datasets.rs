//! `modelreg datasets …`: DataRobot datasets, offline on the data directory
//! or against a server with `--server` (the `/api/v2/datasets/` routes).
//! Both paths print the dialect's dataset JSON: offline through the
//! function its routes render with, remotely as the server answers it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::{json, Value};

use super::datarobot::{deleted, ListPage};
use super::progress::{open_with_progress, progress};
use super::remote::{enc, Download, FormPart};
use super::table::{cell, print, size, Columns};
use super::Target;
use crate::api::datarobot::datasets::{dataset_patch, render_dataset};
use crate::registry::compute::datasets::{DatasetQuery, DatasetState, NewDataset};
use crate::registry::{Error, Principal, Registry};

#[derive(Subcommand)]
pub enum DatasetsCommand {
    /// Upload a CSV file as a dataset and wait until it is ingested.
    ///
    /// Offline the ingest runs in this process; with --server the command polls the dataset
    /// until its processingState is COMPLETED or ERROR. Exits 1 if the ingest failed; the
    /// dataset's `error` says why.
    #[command(after_help = "Example:\n  modelreg datasets upload houses.csv --name Houses")]
    Upload {
        file: PathBuf,
        /// The dataset's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List datasets, newest first.
    #[command(after_help = "Example:\n  modelreg datasets list --limit 20 --offset 20")]
    List {
        #[command(flatten)]
        page: ListPage,
    },
    /// Show a dataset.
    #[command(after_help = "Example:\n  modelreg datasets show 0192f3c1-…")]
    Show { id: String },
    /// Write a dataset's original file to OUTPUT, checking its size (and, where known, its sha256).
    ///
    /// An existing file is never replaced (unless --force).
    #[command(after_help = "Examples:\n  \
        modelreg datasets download 0192f3c1-… -o houses.csv\n  \
        modelreg datasets download 0192f3c1-… -o - | head")]
    Download {
        id: String,
        /// The file to write; `-` writes to standard output (and what was written to stderr).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace OUTPUT if it exists; with `-o -`, write binary to a terminal.
        #[arg(long)]
        force: bool,
    },
    /// Delete a dataset (its creator or a team admin).
    #[command(after_help = "Example:\n  modelreg datasets delete 0192f3c1-…")]
    Delete { id: String },
}

fn dataset_path(id: &str) -> String {
    format!("/api/v2/datasets/{}/", enc(id))
}

/// Datasets, newest first: the shape their ingest found, and their file's size.
const DATASETS: Columns = Columns {
    headers: &["NAME", "STATE", "ROWS", "COLUMNS", "SIZE", "CREATED", "ID"],
    cells: |d| {
        vec![
            cell(&d["name"]),
            cell(&d["processingState"]),
            cell(&d["rowCount"]),
            cell(&d["columnCount"]),
            size(&d["datasetSize"]),
            cell(&d["creationDate"]),
            cell(&d["datasetId"]),
        ]
    },
};

/// How often and how long `upload --server` polls an ingest.
const INGEST_POLL: Duration = Duration::from_millis(250);
const INGEST_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn datasets(target: &Target, cmd: DatasetsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        DatasetsCommand::Upload { file, name } => {
            let dataset = match target {
                Target::Local { registry, who } => upload_offline(registry, who, &file, name)?,
                Target::Remote(remote) => {
                    std::fs::metadata(&file).map_err(|e| Error::invalid("file", format!("cannot read {}: {e}", file.display())))?;
                    let parts = [FormPart::file("file", &file)];
                    let created = remote.send_form("POST", "/api/v2/datasets/fromFile/", &parts, |r, len| progress(r, Some(len)))?;
                    let id = created["catalogId"]
                        .as_str()
                        .ok_or_else(|| Error::Internal(format!("the server answered no catalogId: {created}")))?
                        .to_string();
                    // The route names a dataset after its file, as DataRobot's does;
                    // another name is a PATCH, as the client's `modify()` sends it.
                    if let Some(name) = name {
                        remote.patch_json(&dataset_path(&id), Some(&json!({"name": name})))?;
                    }
                    let deadline = Instant::now() + INGEST_TIMEOUT;
                    loop {
                        let dataset = remote.get_json(&dataset_path(&id))?;
                        if dataset["processingState"] != "RUNNING" {
                            break dataset;
                        }
                        if Instant::now() > deadline {
                            return Err(Error::Internal(format!("the ingest of dataset {id} did not end within an hour")));
                        }
                        std::thread::sleep(INGEST_POLL);
                    }
                }
            };
            print(&dataset, as_json, &DATASETS);
            if dataset["processingState"] == "COMPLETED" {
                return Ok(0);
            }
            if !as_json {
                eprintln!("the ingest failed: {}", dataset["error"].as_str().unwrap_or("no reason given"));
            }
            return Ok(1);
        }
        DatasetsCommand::List { page } => {
            let (offset, limit) = page.offset_limit();
            let items = match target {
                Target::Local { registry, who } => {
                    let page = registry.list_datasets(who, &DatasetQuery { offset, limit, ..Default::default() })?;
                    Value::Array(page.items.iter().map(render_dataset).collect())
                }
                Target::Remote(remote) => remote.get_json(&format!("/api/v2/datasets/?offset={offset}&limit={limit}"))?["data"].take(),
            };
            print(&items, as_json, &DATASETS);
        }
        DatasetsCommand::Show { id } => {
            let dataset = match target {
                Target::Local { registry, who } => render_dataset(&registry.get_dataset(who, &id)?),
                Target::Remote(remote) => remote.get_json(&dataset_path(&id))?,
            };
            print(&dataset, as_json, &DATASETS);
        }
        DatasetsCommand::Download { id, output, force } => {
            let download = match target {
                Target::Local { registry, who } => {
                    let dataset = registry.get_dataset(who, &id)?;
                    Download {
                        reader: Box::new(registry.open_blob(&dataset.sha256)?),
                        len: Some(dataset.size),
                        sha256: Some(dataset.sha256),
                        file_name: Some(dataset.file_name),
                        verified: None,
                    }
                }
                Target::Remote(remote) => remote.download(&format!("{}file/", dataset_path(&id)))?,
            };
            super::download::save(download, &output, force, as_json)?;
        }
        DatasetsCommand::Delete { id } => {
            match target {
                Target::Local { registry, who } => registry.delete_dataset(who, &id)?,
                Target::Remote(remote) => {
                    remote.delete(&dataset_path(&id))?;
                }
            }
            deleted("dataset", &id, as_json);
        }
    }
    Ok(0)
}

/// Stores the file, records the dataset and runs its ingest here, as the
/// server's job would.
fn upload_offline(registry: &Registry, who: &Principal, file: &Path, name: Option<String>) -> Result<Value, Error> {
    let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or("data.csv").to_string();
    let name = match name {
        // Checked as the route checks a PATCH's name.
        Some(n) => dataset_patch(&serde_json::Map::from_iter([("name".to_string(), Value::String(n))]))?.name.unwrap_or_default(),
        None => file_name.clone(),
    };
    let (mut reader, _) = open_with_progress(file)?;
    let guard = registry.upload_guard()?;
    let digest = registry.put_blob(&mut reader, None)?;
    let (dataset, _) = registry.create_dataset(who, NewDataset { name, file_name, digest, categories: Vec::new() })?;
    drop(guard);
    // Only this dataset's ingest: another's belongs to whoever queued it.
    crate::jobs::run_jobs_about(registry, &crate::jobs::JobSettings::offline(registry.data_dir(), None), &dataset.id)?;
    // A server on the same data directory may have claimed the job first.
    let deadline = Instant::now() + INGEST_TIMEOUT;
    loop {
        let dataset = registry.get_dataset(who, &dataset.id)?;
        if dataset.state != DatasetState::Running || Instant::now() > deadline {
            return Ok(render_dataset(&dataset));
        }
        std::thread::sleep(INGEST_POLL);
    }
}
