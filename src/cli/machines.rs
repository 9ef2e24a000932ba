//! `modelreg machines …` and `modelreg templates …`: the Paperspace
//! machines and templates, offline on the data directory or against a server
//! with `--server` (the `/v1/machines` and `/v1/templates` routes). Both
//! paths print the Paperspace dialect's JSON: offline through the same
//! render functions the routes use, remotely as the server answers it.
//!
//! Offline there is nobody to wait for, so a state change a command asks for
//! completes before the command returns (the emulated delay is the server's
//! `--machine-delay-ms`, and applies to jobs a running server picks up).
//! With `--server` the command returns the server's answer: the machine in
//! its transitional state.


use clap::Subcommand;
use serde_json::{json, Value};

use super::models::print;
use super::remote::enc;
use super::table::{cell, Columns};
use super::Target;
use crate::api::paperspace::{new_machine_from_json, render_event, render_machine, render_page, render_template};
use crate::registry::{
    Cursor, Error, MachineAction, MachineOrder, MachinePatch, NewTemplate, Registry, TemplateSource, REGIONS,
};

/// The Paperspace routes' page size limits (`limit` 1–120).
fn page_limit(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if (1..=120).contains(&n) => Ok(n),
        _ => Err("must be a whole number from 1 to 120".into()),
    }
}

#[derive(Subcommand)]
pub enum MachinesCommand {
    /// Record a new machine (no hardware is provisioned: see docs/paperspace.md).
    ///
    /// Offline the machine is ready when the command returns; with --server it is
    /// `provisioning` until the server has run the change.
    #[command(after_help = "Example:\n  \
        modelreg machines create --name trainer --machine-type A4000 --template t0nspur5 --auto-shutdown-timeout 6")]
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
    /// List machines, newest first: one page (`hasMore`, `items`, `nextPage`).
    #[command(after_help = "Examples:\n  modelreg machines list --limit 50\n  modelreg machines list --after \"$NEXT_PAGE\"")]
    List {
        /// Page size, 1 to 120.
        #[arg(long, default_value_t = 20, value_parser = page_limit)]
        limit: u64,
        /// The `nextPage` of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show a machine and its events.
    #[command(after_help = "Example:\n  modelreg machines show psuyxelq2vbf")]
    Show { id: String },
    /// Rename a machine or change its auto-shutdown.
    #[command(after_help = "Examples:\n  \
        modelreg machines update psuyxelq2vbf --name trainer-2 --auto-shutdown-timeout 3\n  \
        modelreg machines update psuyxelq2vbf --no-auto-shutdown")]
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Shut down after this many idle hours (turns auto-shutdown on).
        #[arg(long, conflicts_with = "no_auto_shutdown")]
        auto_shutdown_timeout: Option<i64>,
        /// Turn auto-shutdown off.
        #[arg(long)]
        no_auto_shutdown: bool,
    },
    /// Start a machine that is off (with --server: returns it `starting`).
    #[command(after_help = "Example:\n  modelreg machines start psuyxelq2vbf")]
    Start { id: String },
    /// Stop a machine that is ready (with --server: returns it `stopping`).
    #[command(after_help = "Example:\n  modelreg machines stop psuyxelq2vbf")]
    Stop { id: String },
    /// Restart a machine that is ready (with --server: returns it `restarting`).
    #[command(after_help = "Example:\n  modelreg machines restart psuyxelq2vbf")]
    Restart { id: String },
    /// Delete a machine.
    #[command(after_help = "Example:\n  modelreg machines delete psuyxelq2vbf")]
    Delete { id: String },
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
    /// List the team's custom templates, or the built-in OS templates: one page
    /// (`hasMore`, `items`, `nextPage`).
    #[command(after_help = "Examples:\n  modelreg templates list --public\n  modelreg templates list --limit 10")]
    List {
        #[arg(long)]
        public: bool,
        /// Page size, 1 to 120.
        #[arg(long, default_value_t = 120, value_parser = page_limit)]
        limit: u64,
        /// The `nextPage` of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show a template (OS or custom).
    #[command(after_help = "Example:\n  modelreg templates show tz0ireoj")]
    Show { id: String },
    /// Create a custom template from a machine or from another template.
    #[command(after_help = "Examples:\n  \
        modelreg templates create --name golden --machine psuyxelq2vbf\n  \
        modelreg templates create --name bigger --from t0nspur5 --size 200")]
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

/// Carries out the queued state changes of one machine, with no delay
/// (other machines' jobs are a server's to run).
fn settle(registry: &Registry, machine_id: &str) -> Result<(), Error> {
    crate::jobs::run_jobs_about(registry, &crate::jobs::JobSettings::offline(registry.data_dir(), None), machine_id)
}

/// Machines, newest first.
const MACHINES: Columns = Columns {
    headers: &["NAME", "STATE", "TYPE", "REGION", "OS", "CREATED", "ID"],
    cells: |m| vec![cell(&m["name"]), cell(&m["state"]), cell(&m["machineType"]), cell(&m["region"]), cell(&m["os"]), cell(&m["dtCreated"]), cell(&m["id"])],
};

/// A machine's events, newest first.
const EVENTS: Columns = Columns {
    headers: &["EVENT", "STATE", "CREATED"],
    cells: |e| vec![cell(&e["name"]), cell(&e["state"]), cell(&e["dtCreated"])],
};

/// OS and custom templates.
const TEMPLATES: Columns = Columns {
    headers: &["ID", "NAME", "AGENT TYPE", "MACHINE TYPES", "DISK", "REGION"],
    cells: |t| {
        let types = t["availableMachineTypes"].as_array().map_or(0, Vec::len).to_string();
        let disk = t["defaultSizeGb"].as_i64().map_or_else(|| "-".into(), |gb| format!("{gb} GB"));
        vec![cell(&t["id"]), cell(&t["name"]), cell(&t["agentType"]), types, disk, cell(&t["region"])]
    },
};

/// Prints a page's items, and how to get the next one.
fn print_page(page: &Value, columns: &Columns) {
    columns.table(&page["items"]).print();
    if let Some(next) = page["nextPage"].as_str().filter(|_| page["hasMore"] == true) {
        println!("more: --after {next}");
    }
}

/// `?limit=N&after=C` of a Paperspace list.
fn list_query(limit: u64, after: Option<&str>) -> String {
    match after {
        Some(a) => format!("?limit={limit}&after={}", enc(a)),
        None => format!("?limit={limit}"),
    }
}

fn cursor(after: Option<&str>) -> Result<Option<Cursor>, Error> {
    after.filter(|a| !a.is_empty()).map(|a| Cursor::decode("after", a)).transpose()
}

pub fn machines(target: &Target, cmd: MachinesCommand, as_json: bool) -> Result<i32, Error> {
    let action = |id: &str, action: MachineAction| -> Result<Value, Error> {
        match target {
            Target::Local { registry, who } => {
                let (event, _) = registry.machine_action(who, id, action)?;
                settle(registry, id)?;
                Ok(json!({"event": render_event(&event), "data": render_machine(&registry.get_machine(who, id)?)}))
            }
            Target::Remote(remote) => remote.patch_json(&format!("/v1/machines/{}/{}", enc(id), action.name()), None),
        }
    };
    match cmd {
        MachinesCommand::Create { name, machine_type, template, disk_size, region, auto_shutdown_timeout, user } => {
            // Seed 003's create body: offline it goes through the route's own parser.
            let mut body = json!({
                "name": name,
                "machineType": machine_type,
                "templateId": template,
                "diskSize": disk_size,
                "region": region,
                "autoShutdownEnabled": auto_shutdown_timeout.is_some(),
                "publicIpType": "none",
            });
            if let Some(hours) = auto_shutdown_timeout {
                body["autoShutdownTimeout"] = json!(hours);
            }
            if let Some(user) = user {
                body["userId"] = json!(user);
            }
            let body = match target {
                Target::Local { registry, who } => {
                    let new = new_machine_from_json(body.as_object().expect("an object"))?;
                    let (event, machine) = registry.create_machine(who, new)?;
                    settle(registry, &machine.id)?;
                    json!({"event": render_event(&event), "data": render_machine(&registry.get_machine(who, &machine.id)?)})
                }
                Target::Remote(remote) => remote.post_json("/v1/machines", &body)?,
            };
            print(&body, as_json, |b| MACHINES.table(&b["data"]).print());
        }
        MachinesCommand::List { limit, after } => {
            let page = match target {
                Target::Local { registry, who } => {
                    let after = cursor(after.as_deref())?;
                    render_page(registry.list_machines(who, MachineOrder::Created, true, after.as_ref(), limit)?, render_machine)
                }
                Target::Remote(remote) => remote.get_json(&format!("/v1/machines{}", list_query(limit, after.as_deref())))?,
            };
            print(&page, as_json, |p| print_page(p, &MACHINES));
        }
        MachinesCommand::Show { id } => {
            let body = match target {
                Target::Local { registry, who } => {
                    let mut body = render_machine(&registry.get_machine(who, &id)?);
                    let events = registry.list_machine_events(who, &id, None, 120)?;
                    body["events"] = events.items.iter().map(render_event).collect();
                    body
                }
                Target::Remote(remote) => {
                    let mut body = remote.get_json(&format!("/v1/machines/{}", enc(&id)))?;
                    let events = remote.get_json(&format!("/v1/machines/{}/events?limit=120", enc(&id)))?;
                    body["events"] = events["items"].clone();
                    body
                }
            };
            print(&body, as_json, |m| {
                MACHINES.table(m).print();
                println!();
                EVENTS.table(&m["events"]).print();
            });
        }
        MachinesCommand::Update { id, name, auto_shutdown_timeout, no_auto_shutdown } => {
            let patch = MachinePatch {
                name,
                auto_shutdown_enabled: if no_auto_shutdown { Some(false) } else { auto_shutdown_timeout.map(|_| true) },
                auto_shutdown_timeout: if no_auto_shutdown { Some(None) } else { auto_shutdown_timeout.map(Some) },
            };
            let body = match target {
                Target::Local { registry, who } => render_machine(&registry.update_machine(who, &id, patch)?),
                Target::Remote(remote) => {
                    let mut body = json!({});
                    if let Some(name) = &patch.name {
                        body["name"] = json!(name);
                    }
                    if let Some(enabled) = patch.auto_shutdown_enabled {
                        body["autoShutdownEnabled"] = json!(enabled);
                    }
                    if let Some(timeout) = patch.auto_shutdown_timeout {
                        body["autoShutdownTimeout"] = json!(timeout);
                    }
                    remote.put_json(&format!("/v1/machines/{}", enc(&id)), &body)?
                }
            };
            print(&body, as_json, |m| MACHINES.table(m).print());
        }
        MachinesCommand::Start { id } => print(&action(&id, MachineAction::Start)?, as_json, |b| MACHINES.table(&b["data"]).print()),
        MachinesCommand::Stop { id } => print(&action(&id, MachineAction::Stop)?, as_json, |b| MACHINES.table(&b["data"]).print()),
        MachinesCommand::Restart { id } => print(&action(&id, MachineAction::Restart)?, as_json, |b| MACHINES.table(&b["data"]).print()),
        MachinesCommand::Delete { id } => {
            let body = match target {
                Target::Local { registry, who } => render_machine(&registry.delete_machine(who, &id)?),
                Target::Remote(remote) => remote.delete(&format!("/v1/machines/{}", enc(&id)))?,
            };
            print(&body, as_json, |_| println!("deleted machine {id}"));
        }
    }
    Ok(0)
}

pub fn templates(target: &Target, cmd: TemplatesCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        TemplatesCommand::List { public, limit, after } => {
            let page = match target {
                Target::Local { registry, who } => {
                    let after = cursor(after.as_deref())?;
                    render_page(registry.list_templates(who, public, after.as_ref(), limit)?, render_template)
                }
                Target::Remote(remote) => {
                    let route = if public { "/v1/os-templates" } else { "/v1/custom-templates" };
                    remote.get_json(&format!("{route}{}", list_query(limit, after.as_deref())))?
                }
            };
            print(&page, as_json, |p| print_page(p, &TEMPLATES));
        }
        TemplatesCommand::Show { id } => {
            let body = match target {
                Target::Local { registry, who } => render_template(&registry.get_template(who, &id)?),
                Target::Remote(remote) => remote.get_json(&format!("/v1/templates/{}", enc(&id)))?,
            };
            print(&body, as_json, |t| TEMPLATES.table(t).print());
        }
        TemplatesCommand::Create { name, machine, from, region, size } => {
            let source = match (machine, from) {
                (Some(m), _) => TemplateSource::Machine(m),
                (None, Some(t)) => TemplateSource::Template(t),
                (None, None) => return Err(Error::invalid("--machine", "give --machine or --from")),
            };
            let body = match target {
                Target::Local { registry, who } => {
                    render_template(&registry.create_template(who, NewTemplate { name, source, region, default_size_gb: size })?)
                }
                Target::Remote(remote) => {
                    let mut body = json!({"name": name});
                    match source {
                        TemplateSource::Machine(m) => body["machineId"] = json!(m),
                        TemplateSource::Template(t) => body["templateId"] = json!(t),
                    }
                    if let Some(r) = region {
                        body["region"] = json!(r);
                    }
                    if let Some(gb) = size {
                        body["defaultSizeGb"] = json!(gb);
                    }
                    remote.post_json("/v1/templates", &body)?
                }
            };
            print(&body, as_json, |t| TEMPLATES.table(t).print());
        }
    }
    Ok(0)
}
