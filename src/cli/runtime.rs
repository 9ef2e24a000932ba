//! `modelreg runtime …`: the Python runtime that runs models (DRUM). It
//! lives in the data directory of this machine, so these commands never
//! talk to a server.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::table::Table;
use crate::registry::Error;
use crate::runtime;

#[derive(Subcommand)]
pub enum RuntimeCommand {
    /// Install the runtime: a virtual environment with datarobot-drum 1.18.1 under the data
    /// directory (about 500 MB and a minute or two). Installing again replaces it; a running
    /// server picks up the new one at its next job.
    #[command(after_help = "Examples:\n  \
        modelreg runtime install --with converters\n  \
        modelreg runtime install --with scikit-learn --base-python python3.11")]
    Install {
        /// Extra packages for models that need them without a requirements.txt
        /// (e.g. --with scikit-learn). Repeatable. Three names stand for sets:
        /// `converters` (skl2onnx, onnxmltools, onnxruntime, scikit-learn, xgboost: ONNX
        /// conversions of Octomil uploads), `tensorflow` (tensorflow-cpu, tf2onnx) and
        /// `torch` (CPU-only PyTorch).
        #[arg(long = "with", value_name = "PACKAGE")]
        with: Vec<String>,
        /// The Python that creates the environment (3.8 to 3.14).
        #[arg(long, default_value = "python3")]
        base_python: String,
    },
    /// Show the runtime jobs would use, every installed one, and the dependency environments.
    #[command(after_help = "Examples:\n  modelreg runtime show\n  modelreg runtime show --python /opt/venv/bin/python")]
    Show {
        /// Describe this interpreter instead of the managed runtime (as `serve --python`).
        #[arg(long, env = "MODELREG_PYTHON")]
        python: Option<PathBuf>,
    },
}

pub fn runtime(data_dir: &Path, server: Option<&str>, cmd: RuntimeCommand, as_json: bool) -> Result<i32, Error> {
    if server.is_some() {
        return Err(Error::invalid(
            "server",
            "the runtime lives in the data directory of the machine that runs the server; run `modelreg runtime` there, without --server",
        ));
    }
    match cmd {
        RuntimeCommand::Install { with, base_python } => {
            let facts = install_with_progress(data_dir, &base_python, &with).map_err(Error::Internal)?;
            if as_json {
                println!("{}", serde_json::to_string_pretty(&facts).unwrap_or_default());
            } else {
                println!(
                    "installed datarobot-drum {} on Python {} at {}",
                    text(&facts["drum"]),
                    text(&facts["python"]),
                    text(&facts["executable"])
                );
            }
        }
        RuntimeCommand::Show { python } => {
            let shown = runtime::show(data_dir, python.as_deref());
            if as_json {
                println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
            } else {
                let in_use = &shown["inUse"];
                match in_use.get("error") {
                    Some(e) => println!("in use: none ({})", text(e)),
                    None => println!(
                        "in use: {} ({}), Python {}, datarobot-drum {}",
                        text(&in_use["python"]),
                        text(&in_use["origin"]),
                        text(&in_use["facts"]["python"]),
                        text(&in_use["facts"]["drum"])
                    ),
                }
                let mut installed = Table::new(&["CURRENT", "DRUM", "INSTALLED", "VENV", "EXTRAS"]);
                for item in shown["installed"].as_array().into_iter().flatten() {
                    let m = &item["manifest"];
                    let current = if item["current"] == true { "*" } else { "" };
                    installed.row(vec![current.into(), text(&m["drum"]), text(&m["installedAt"]), text(&m["venv"]), list(&m["extraPackages"])]);
                }
                if !installed.is_empty() {
                    println!();
                    installed.print();
                }
                let mut environments = Table::new(&["DEPENDENCY ENVIRONMENT", "REQUIREMENTS"]);
                for env in shown["dependencyEnvironments"].as_array().into_iter().flatten() {
                    environments.row(vec![text(&env["key"]), list(&env["requirements"])]);
                }
                if !environments.is_empty() {
                    println!();
                    environments.print();
                }
            }
        }
    }
    Ok(0)
}

/// Installs, showing pip's progress: one updating line on a terminal, every
/// line otherwise (logs of scripted installs keep the whole story).
fn install_with_progress(data_dir: &Path, base_python: &str, with: &[String]) -> Result<Value, String> {
    if std::io::stderr().is_terminal() {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let result = runtime::install(data_dir, base_python, with, &mut |line| spinner.set_message(line.trim().to_string()));
        spinner.finish_and_clear();
        result
    } else {
        runtime::install(data_dir, base_python, with, &mut |line| eprintln!("{line}"))
    }
}

fn text(v: &Value) -> String {
    v.as_str().map(String::from).unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() })
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().map(text).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}
