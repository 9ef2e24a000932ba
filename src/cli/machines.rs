//! `modelreg machines …` and `modelreg templates …`: the Paperspace
//! machines and templates, offline on the data directory. The JSON output is
//! the Paperspace dialect's shapes.
//!
//! Offline there is nobody to wait for, so a state change a command asks for
//! completes before the command returns (the emulated delay is the server's
//! `--machine-delay-ms`, and applies to jobs a running server picks up).

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use super::models::print;
use crate::api::paperspace::{render_event, render_machine, render_template};
use crate::registry::{
    Assignee, Error, MachineAction, MachineOrder, NewMachine, NewTemplate, Principal, Registry, TemplateSource, MACHINE_JOB,
    REGIONS,
};

#[derive(Subcommand)]
pub enum MachinesCommand {
    /// Record a new machine (no hardware is provisioned: see the README).
    Create {
        #[arg(long)]
        name: String,
        /// A machine type: P4000, A100-80Gx8, C5… (see `modelreg templates list --public`).
        #[arg(long)]
        machine_type: String,
        /// An OS template id (`templates list --public`) or a custom template id.
        #[arg(long)]
        template: String,
        /// Disk size in GB.
        #[arg(long, default_value_t = 50)]
        disk_size: i64,
        #[arg(long, default_value = REGIONS[0])]
        region: String,
        /// Shut down after this many idle hours.
        #[arg(long)]
        auto_shutdown_timeout: Option<i64>,
        /// Assign the machine to this user of the team (id, username or email).
        #[arg(long)]
        user: Option<String>,
    },
    /// List machines, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Show a machine and its events.
    Show { id: String },
    /// Start a machine that is off.
    Start { id: String },
    /// Stop a machine that is ready.
    Stop { id: String },
    /// Delete a machine.
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// List the team's custom templates, or the built-in OS templates.
    List {
        #[arg(long)]
        public: bool,
    },
    /// Create a custom template from a machine or from another template.
    Create {
        #[arg(long)]
        name: String,
        /// The machine to make it from.
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        machine: Option<String>,
        /// The template (OS or custom) to base it on.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Default disk size in GB.
        #[arg(long)]
        size: Option<i64>,
    },
}

/// These commands work on the data directory only for now.
fn offline(data_dir: &Path, server: Option<&str>) -> Result<(Registry, Principal), Error> {
    if server.is_some() {
        return Err(Error::invalid(
            "--server",
            "is not yet supported for `machines` and `templates`; run them on the server's data directory (--data-dir)",
        ));
    }
    let registry = Registry::open(data_dir)?;
    registry.bootstrap()?;
    let who = registry.operator()?;
    Ok((registry, who))
}

/// Runs the machine state changes that are due, with no delay.
fn settle(registry: &Registry) -> Result<(), Error> {
    while let Some(job) = registry.claim_job(&[MACHINE_JOB])? {
        let outcome = registry.advance_machine_event(&job, Duration::ZERO).map_err(|e| e.to_string());
        registry.finish_job(&job.id, outcome)?;
    }
    Ok(())
}

fn machine_line(m: &Value) {
    let s = |k: &str| m[k].as_str().unwrap_or("-").to_string();
    println!("{}  {:<12} {:<10} {:<18} {}  {}", s("id"), s("state"), s("machineType"), s("region"), s("os"), s("name"));
}

pub fn machines(data_dir: &Path, server: Option<&str>, cmd: MachinesCommand, as_json: bool) -> Result<i32, Error> {
    let (registry, who) = offline(data_dir, server)?;
    let action = |id: &str, action: MachineAction| -> Result<Value, Error> {
        let (event, _) = registry.machine_action(&who, id, action)?;
        settle(&registry)?;
        Ok(json!({"event": render_event(&event), "data": render_machine(&registry.get_machine(&who, id)?)}))
    };
    match cmd {
        MachinesCommand::Create { name, machine_type, template, disk_size, region, auto_shutdown_timeout, user } => {
            let new = NewMachine {
                name,
                machine_type,
                template_id: template,
                disk_size_gb: disk_size,
                region,
                auto_shutdown_enabled: auto_shutdown_timeout.is_some(),
                auto_shutdown_timeout,
                public_ip_type: "none".into(),
                assignee: user.map_or(Assignee::Caller, Assignee::User),
            };
            let (event, machine) = registry.create_machine(&who, new)?;
            settle(&registry)?;
            let body = json!({"event": render_event(&event), "data": render_machine(&registry.get_machine(&who, &machine.id)?)});
            print(&body, as_json, |b| machine_line(&b["data"]));
        }
        MachinesCommand::List { limit } => {
            let page = registry.list_machines(&who, MachineOrder::Created, true, None, limit.clamp(1, 1000))?;
            let items: Vec<Value> = page.items.iter().map(render_machine).collect();
            print(&json!(items), as_json, |items| items.as_array().into_iter().flatten().for_each(machine_line));
        }
        MachinesCommand::Show { id } => {
            let mut body = render_machine(&registry.get_machine(&who, &id)?);
            let events = registry.list_machine_events(&who, &id, None, 120)?;
            body["events"] = events.items.iter().map(render_event).collect();
            print(&body, as_json, |m| {
                machine_line(m);
                for e in m["events"].as_array().into_iter().flatten() {
                    println!("  {}  {:<8} {}", e["dtCreated"].as_str().unwrap_or("-"), e["name"].as_str().unwrap_or("-"), e["state"].as_str().unwrap_or("-"));
                }
            });
        }
        MachinesCommand::Start { id } => print(&action(&id, MachineAction::Start)?, as_json, |b| machine_line(&b["data"])),
        MachinesCommand::Stop { id } => print(&action(&id, MachineAction::Stop)?, as_json, |b| machine_line(&b["data"])),
        MachinesCommand::Delete { id } => {
            let machine = registry.delete_machine(&who, &id)?;
            print(&render_machine(&machine), as_json, |_| println!("deleted machine {id}"));
        }
    }
    Ok(0)
}

pub fn templates(data_dir: &Path, server: Option<&str>, cmd: TemplatesCommand, as_json: bool) -> Result<i32, Error> {
    let (registry, who) = offline(data_dir, server)?;
    let line = |t: &Value| {
        let s = |k: &str| t[k].as_str().unwrap_or("-").to_string();
        let types = t["availableMachineTypes"].as_array().map_or(0, Vec::len);
        println!("{}  {:<16} {:<24} {} machine types  {}", s("id"), s("agentType"), s("name"), types, s("region"));
    };
    match cmd {
        TemplatesCommand::List { public } => {
            let mut items = Vec::new();
            let mut after = None;
            loop {
                let page = registry.list_templates(&who, public, after.as_ref(), 120)?;
                items.extend(page.items.iter().map(render_template));
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            print(&json!(items), as_json, |items| items.as_array().into_iter().flatten().for_each(line));
        }
        TemplatesCommand::Create { name, machine, from, region, size } => {
            let source = match (machine, from) {
                (Some(m), _) => TemplateSource::Machine(m),
                (None, Some(t)) => TemplateSource::Template(t),
                (None, None) => return Err(Error::invalid("--machine", "give --machine or --from")),
            };
            let template = registry.create_template(&who, NewTemplate { name, source, region, default_size_gb: size })?;
            print(&render_template(&template), as_json, line);
        }
    }
    Ok(0)
}
