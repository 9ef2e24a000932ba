//! Machines, their events, and templates (the Paperspace machines API).
//!
//! modelreg provisions no hardware. A machine is a record whose state
//! changes behave like the hosted service's: every requested change is a
//! `machine_events` row (new -> in progress -> done) driven by a job of kind
//! `machine-event`, and the machine reaches its target state only after the
//! emulated delay. The built-in OS templates and the machine-type catalogue
//! are static data here; a team's custom templates are rows.

use std::time::Duration;

use serde_json::{json, Value};

use crate::registry::page::{keyset_page, keyset_tail, Cursor, Page};
use crate::registry::{format_time, new_id, now, Error, Job, NewUser, Principal, Registry, Result};
use crate::store::sql::{self, params, params_from_iter, OptionalExtension};

pub const REGIONS: [&str; 3] = ["East Coast (NY2)", "West Coast (CA1)", "Europe (AMS1)"];
pub const MACHINE_JOB: &str = "machine-event";
pub const PUBLIC_IP_TYPES: [&str; 3] = ["static", "dynamic", "none"];
/// Disk sizes the emulation accepts, in GB (the hosted service's largest is 2 TB).
pub const DISK_SIZES: std::ops::RangeInclusive<i64> = 1..=2000;
/// Auto-shutdown timeouts, in hours (up to a week).
pub const SHUTDOWN_HOURS: std::ops::RangeInclusive<i64> = 1..=168;

// ---------------------------------------------------------------------------
// The machine-type catalogue

const GIB: u64 = 1 << 30;

/// One unit of each GPU type: (label, cpus, RAM GiB, GPU name, GPU memory
/// GiB). Every type also comes in x2, x4 and x8 forms with everything
/// multiplied.
const GPU_TYPES: &[(&str, u32, u64, &str, u64)] = &[
    ("P4000", 8, 30, "Quadro P4000", 8),
    ("RTX4000", 8, 30, "Quadro RTX4000", 8),
    ("A4000", 8, 45, "NVIDIA RTX A4000", 16),
    ("A5000", 8, 45, "NVIDIA RTX A5000", 24),
    ("A6000", 8, 45, "NVIDIA RTX A6000", 48),
    ("V100", 8, 30, "Tesla V100", 16),
    ("A100", 12, 90, "NVIDIA A100", 40),
    ("A100-80G", 12, 90, "NVIDIA A100 80GB", 80),
    ("H100", 20, 250, "NVIDIA H100", 80),
];
const MULTIPLES: [u32; 3] = [2, 4, 8];
/// CPU-only types: (label, cpus, RAM GiB).
const CPU_TYPES: &[(&str, u32, u64)] =
    &[("C4", 2, 4), ("C5", 4, 8), ("C6", 8, 16), ("C7", 12, 30), ("C8", 16, 60), ("C9", 24, 120), ("C10", 32, 240)];

#[derive(Clone, Debug, PartialEq)]
pub struct Accelerator {
    pub name: String,
    pub memory_bytes: u64,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MachineType {
    pub label: String,
    pub cpus: u32,
    pub ram_bytes: u64,
    pub accelerator: Option<Accelerator>,
}

/// Every machine type, CPU types first.
pub fn machine_types() -> Vec<MachineType> {
    let cpu = CPU_TYPES
        .iter()
        .map(|&(label, cpus, ram)| MachineType { label: label.into(), cpus, ram_bytes: ram * GIB, accelerator: None });
    let gpu = GPU_TYPES.iter().flat_map(|&(label, cpus, ram, gpu, memory)| {
        std::iter::once(1).chain(MULTIPLES).map(move |n| MachineType {
            label: if n == 1 { label.to_string() } else { format!("{label}x{n}") },
            cpus: cpus * n,
            ram_bytes: ram * GIB * n as u64,
            accelerator: Some(Accelerator { name: gpu.into(), memory_bytes: memory * GIB, count: n }),
        })
    });
    cpu.chain(gpu).collect()
}

pub fn machine_type(label: &str) -> Option<MachineType> {
    machine_types().into_iter().find(|t| t.label == label)
}

// ---------------------------------------------------------------------------
// Templates

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: String,
    /// None for the built-in OS templates, which every team sees.
    pub team_id: Option<String>,
    pub name: String,
    pub os: String,
    pub agent_type: String,
    pub os_label: String,
    /// None for OS templates: they exist in every region.
    pub region: Option<String>,
    pub default_size_gb: i64,
    pub machine_types: Vec<String>,
    pub created_at: Option<String>,
}

impl Template {
    pub fn is_public(&self) -> bool {
        self.team_id.is_none()
    }
}

/// Which machine types an OS template offers.
#[derive(Clone, Copy)]
enum Offers {
    All,
    GpuOnly,
    /// Everything but the A100 and H100 families (no Windows drivers for them).
    NoDatacenterGpus,
}

/// The built-in OS templates: (id, name, agent type, OS label, default GB,
/// offers). The ids are fixed so that scripts can name them; `tz0ireoj` is
/// the one seed 003's example uses.
const OS_TEMPLATES: &[(&str, &str, &str, &str, i64, Offers)] = &[
    ("tz0ireoj", "Ubuntu 20.04 Desktop", "LinuxDesktop", "Ubuntu 20.04", 50, Offers::All),
    ("tmun4o2g", "Ubuntu 20.04 Server", "LinuxHeadless", "Ubuntu 20.04", 50, Offers::All),
    ("tlsl1b0e", "Ubuntu 22.04 Desktop", "LinuxDesktop", "Ubuntu 22.04", 50, Offers::All),
    ("t0nspur5", "Ubuntu 22.04 Server", "LinuxHeadless", "Ubuntu 22.04", 50, Offers::All),
    ("tkni3aa4", "ML-in-a-Box Ubuntu 22.04", "LinuxHeadless", "Ubuntu 22.04", 100, Offers::GpuOnly),
    ("twnlo3zj", "Windows Server 2019", "WindowsDesktop", "Windows Server 2019", 50, Offers::NoDatacenterGpus),
];

/// The built-in OS templates, ordered by id (their keyset order).
pub fn os_templates() -> Vec<Template> {
    let types = machine_types();
    let mut all: Vec<Template> = OS_TEMPLATES
        .iter()
        .map(|&(id, name, agent, label, size, offers)| Template {
            id: id.into(),
            team_id: None,
            name: name.into(),
            os: name.into(),
            agent_type: agent.into(),
            os_label: label.into(),
            region: None,
            default_size_gb: size,
            machine_types: types
                .iter()
                .filter(|t| match offers {
                    Offers::All => true,
                    Offers::GpuOnly => t.accelerator.is_some(),
                    Offers::NoDatacenterGpus => !t.label.starts_with("A100") && !t.label.starts_with("H100"),
                })
                .map(|t| t.label.clone())
                .collect(),
            created_at: None,
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// What a custom template is made from.
#[derive(Clone, Debug)]
pub enum TemplateSource {
    /// A machine of the team: its OS, disk size and region.
    Machine(String),
    /// An OS template or another custom template.
    Template(String),
}

#[derive(Clone, Debug)]
pub struct NewTemplate {
    pub name: String,
    pub source: TemplateSource,
    pub region: Option<String>,
    pub default_size_gb: Option<i64>,
}

const TEMPLATE_COLUMNS: &str = "id, team_id, name, os, agent_type, os_label, region, default_size_gb, machine_types, created_at";

fn template_from_row(r: &sql::Row) -> sql::Result<Template> {
    let types: String = r.get(8)?;
    Ok(Template {
        id: r.get(0)?,
        team_id: r.get(1)?,
        name: r.get(2)?,
        os: r.get(3)?,
        agent_type: r.get(4)?,
        os_label: r.get(5)?,
        region: r.get(6)?,
        default_size_gb: r.get(7)?,
        machine_types: serde_json::from_str(&types).unwrap_or_default(),
        created_at: r.get(9)?,
    })
}

// ---------------------------------------------------------------------------
// Machines and events

#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    pub id: String,
    pub team_id: String,
    pub user_id: String,
    pub name: String,
    pub state: String,
    pub machine_type: String,
    pub template_id: String,
    pub os: String,
    pub agent_type: String,
    pub region: String,
    pub disk_size_gb: i64,
    pub auto_shutdown_enabled: bool,
    pub auto_shutdown_timeout: Option<i64>,
    pub public_ip_type: String,
    pub created_at: String,
    pub modified_at: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MachineEvent {
    pub id: String,
    pub machine_id: String,
    pub name: String,
    /// new, in progress, done.
    pub state: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// Whom a new machine is assigned to.
#[derive(Clone, Debug)]
pub enum Assignee {
    Caller,
    /// An existing user of the team (admins only).
    User(String),
    /// A new user of the team, made from these fields (admins only). The
    /// password is accepted by the dialect but not stored: modelreg has no
    /// password logins.
    NewUser { email: String, first_name: String, last_name: String },
}

#[derive(Clone, Debug)]
pub struct NewMachine {
    pub name: String,
    pub machine_type: String,
    pub template_id: String,
    pub disk_size_gb: i64,
    pub region: String,
    pub auto_shutdown_enabled: bool,
    pub auto_shutdown_timeout: Option<i64>,
    pub public_ip_type: String,
    pub assignee: Assignee,
}

/// A partial update: `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MachinePatch {
    pub name: Option<String>,
    pub auto_shutdown_enabled: Option<bool>,
    pub auto_shutdown_timeout: Option<Option<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineAction {
    Create,
    Stop,
    Start,
    Restart,
}

impl MachineAction {
    pub fn name(self) -> &'static str {
        match self {
            MachineAction::Create => "create",
            MachineAction::Stop => "stop",
            MachineAction::Start => "start",
            MachineAction::Restart => "restart",
        }
    }

    fn parse(name: &str) -> Option<MachineAction> {
        [MachineAction::Create, MachineAction::Stop, MachineAction::Start, MachineAction::Restart]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// (state it starts from, state while it runs, state it ends in).
    fn states(self) -> (Option<&'static str>, &'static str, &'static str) {
        match self {
            MachineAction::Create => (None, "provisioning", "ready"),
            MachineAction::Stop => (Some("ready"), "stopping", "off"),
            MachineAction::Start => (Some("off"), "starting", "ready"),
            MachineAction::Restart => (Some("ready"), "restarting", "ready"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineOrder {
    Created,
    Name,
}

const MACHINE_COLUMNS: &str = "id, team_id, user_id, name, state, machine_type, template_id, os, agent_type, region, \
     disk_size_gb, auto_shutdown_enabled, auto_shutdown_timeout, public_ip_type, created_at, modified_at";

fn machine_from_row(r: &sql::Row) -> sql::Result<Machine> {
    Ok(Machine {
        id: r.get(0)?,
        team_id: r.get(1)?,
        user_id: r.get(2)?,
        name: r.get(3)?,
        state: r.get(4)?,
        machine_type: r.get(5)?,
        template_id: r.get(6)?,
        os: r.get(7)?,
        agent_type: r.get(8)?,
        region: r.get(9)?,
        disk_size_gb: r.get(10)?,
        auto_shutdown_enabled: r.get(11)?,
        auto_shutdown_timeout: r.get(12)?,
        public_ip_type: r.get(13)?,
        created_at: r.get(14)?,
        modified_at: r.get(15)?,
    })
}

const EVENT_COLUMNS: &str = "id, machine_id, name, state, created_at, started_at, finished_at, error";

fn event_from_row(r: &sql::Row) -> sql::Result<MachineEvent> {
    Ok(MachineEvent {
        id: r.get(0)?,
        machine_id: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        created_at: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        error: r.get(7)?,
    })
}

/// A short lowercase id in the shape Paperspace's clients show
/// (`psvv2ew1gd4s` for machines, `tbwb4c3s` for templates).
fn short_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut id = prefix.to_string();
    id.extend(bytes.iter().take(len).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char));
    id
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(Error::invalid(field, "must be 1 to 255 characters"));
    }
    Ok(())
}

fn check_region(region: &str) -> Result<()> {
    if !REGIONS.contains(&region) {
        return Err(Error::invalid("region", format!("must be one of {}, got {region:?}", REGIONS.join(", "))));
    }
    Ok(())
}

fn check_disk_size(field: &str, size: i64) -> Result<()> {
    if !DISK_SIZES.contains(&size) {
        return Err(Error::invalid(field, format!("must be from {} to {} GB, got {size}", DISK_SIZES.start(), DISK_SIZES.end())));
    }
    Ok(())
}

pub fn check_shutdown_timeout(hours: i64) -> Result<()> {
    if !SHUTDOWN_HOURS.contains(&hours) {
        return Err(Error::invalid(
            "autoShutdownTimeout",
            format!("must be from {} to {} hours, got {hours}", SHUTDOWN_HOURS.start(), SHUTDOWN_HOURS.end()),
        ));
    }
    Ok(())
}

fn run_after(delay: Duration) -> String {
    format_time(time::OffsetDateTime::now_utc() + delay)
}

impl Registry {
    // ---- templates

    /// An OS template, or a custom template of the caller's team.
    pub fn get_template(&self, who: &Principal, id: &str) -> Result<Template> {
        if let Some(t) = os_templates().into_iter().find(|t| t.id == id) {
            return Ok(t);
        }
        self.conn
            .prepare_cached(&format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = ?1 AND team_id = ?2"))?
            .query_row([id, &who.team_id], template_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("template", id))
    }

    /// The OS templates (`public`) or the team's custom templates, newest
    /// first.
    pub fn list_templates(&self, who: &Principal, public: bool, after: Option<&Cursor>, limit: u64) -> Result<Page<Template>> {
        if public {
            // A static list: the keyset is the id alone.
            let items: Vec<Template> =
                os_templates().into_iter().filter(|t| after.is_none_or(|c| t.id > c.id)).take(limit as usize + 1).collect();
            return Ok(keyset_page(items, limit, |t| Cursor { key: String::new(), id: t.id.clone() }));
        }
        let mut args = vec![sql::Value::Text(who.team_id.clone())];
        let tail = keyset_tail("created_at", true, after, limit, &mut args);
        let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM templates WHERE team_id = ?{tail}");
        let items = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), template_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(keyset_page(items, limit, |t| Cursor { key: t.created_at.clone().unwrap_or_default(), id: t.id.clone() }))
    }

    pub fn create_template(&self, who: &Principal, new: NewTemplate) -> Result<Template> {
        check_name("name", &new.name)?;
        let (base, machine) = match &new.source {
            TemplateSource::Machine(id) => {
                let machine = self.get_machine(who, id).map_err(|_| Error::invalid("machineId", format!("no machine {id:?}")))?;
                (self.get_template(who, &machine.template_id).ok(), Some(machine))
            }
            TemplateSource::Template(id) => {
                let base = self.get_template(who, id).map_err(|_| Error::invalid("templateId", format!("no template {id:?}")))?;
                (Some(base), None)
            }
        };
        if let Some(region) = &new.region {
            check_region(region)?;
        }
        if let Some(size) = new.default_size_gb {
            check_disk_size("defaultSizeGb", size)?;
        }
        let template = Template {
            id: short_id("t", 7),
            team_id: Some(who.team_id.clone()),
            name: new.name,
            os: machine.as_ref().map(|m| m.os.clone()).or(base.as_ref().map(|b| b.os.clone())).unwrap_or_default(),
            agent_type: machine
                .as_ref()
                .map(|m| m.agent_type.clone())
                .or(base.as_ref().map(|b| b.agent_type.clone()))
                .unwrap_or_default(),
            os_label: base.as_ref().map(|b| b.os_label.clone()).or(machine.as_ref().map(|m| m.os.clone())).unwrap_or_default(),
            region: new
                .region
                .or(machine.as_ref().map(|m| m.region.clone()))
                .or(base.as_ref().and_then(|b| b.region.clone()))
                .or(Some(REGIONS[0].to_string())),
            default_size_gb: new
                .default_size_gb
                .or(machine.as_ref().map(|m| m.disk_size_gb))
                .or(base.as_ref().map(|b| b.default_size_gb))
                .unwrap_or(50),
            // A machine whose template is gone still runs on its own type.
            machine_types: base
                .map(|b| b.machine_types)
                .or(machine.as_ref().map(|m| vec![m.machine_type.clone()]))
                .unwrap_or_default(),
            created_at: Some(now()),
        };
        self.conn.execute(
            &format!("INSERT INTO templates ({TEMPLATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                template.id,
                template.team_id,
                template.name,
                template.os,
                template.agent_type,
                template.os_label,
                template.region,
                template.default_size_gb,
                Value::from(template.machine_types.clone()).to_string(),
                template.created_at
            ],
        )?;
        Ok(template)
    }

    // ---- machines

    pub fn get_machine(&self, who: &Principal, id: &str) -> Result<Machine> {
        self.conn
            .prepare_cached(&format!("SELECT {MACHINE_COLUMNS} FROM machines WHERE id = ?1 AND team_id = ?2"))?
            .query_row([id, &who.team_id], machine_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("machine", id))
    }

    pub fn list_machines(
        &self,
        who: &Principal,
        order: MachineOrder,
        descending: bool,
        after: Option<&Cursor>,
        limit: u64,
    ) -> Result<Page<Machine>> {
        let column = match order {
            MachineOrder::Created => "created_at",
            MachineOrder::Name => "name",
        };
        let mut args = vec![sql::Value::Text(who.team_id.clone())];
        let tail = keyset_tail(column, descending, after, limit, &mut args);
        let sql = format!("SELECT {MACHINE_COLUMNS} FROM machines WHERE team_id = ?{tail}");
        let items = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), machine_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(keyset_page(items, limit, |m| Cursor {
            key: if order == MachineOrder::Name { m.name.clone() } else { m.created_at.clone() },
            id: m.id.clone(),
        }))
    }

    /// Records a new machine in state `provisioning` with its `create` event,
    /// and queues the job that brings it to `ready`.
    pub fn create_machine(&self, who: &Principal, new: NewMachine) -> Result<(MachineEvent, Machine)> {
        check_name("name", &new.name)?;
        let kind = machine_type(&new.machine_type)
            .ok_or_else(|| Error::invalid("machineType", format!("{:?} is not a machine type", new.machine_type)))?;
        let template = self
            .get_template(who, &new.template_id)
            .map_err(|_| Error::invalid("templateId", format!("no template {:?}", new.template_id)))?;
        if !template.machine_types.contains(&kind.label) {
            return Err(Error::invalid(
                "machineType",
                format!("template {} ({}) does not offer {}", template.id, template.name, kind.label),
            ));
        }
        check_disk_size("diskSize", new.disk_size_gb)?;
        check_region(&new.region)?;
        if let Some(hours) = new.auto_shutdown_timeout {
            check_shutdown_timeout(hours)?;
        }
        if !PUBLIC_IP_TYPES.contains(&new.public_ip_type.as_str()) {
            return Err(Error::invalid("publicIpType", format!("must be one of {}", PUBLIC_IP_TYPES.join(", "))));
        }
        // One transaction from here: a user created for the machine must not
        // outlive a machine that failed to be inserted.
        let tx = self.write()?;
        let user_id = self.assignee(who, &new.assignee)?;
        let at = now();
        let machine = Machine {
            id: short_id("ps", 10),
            team_id: who.team_id.clone(),
            user_id,
            name: new.name,
            state: MachineAction::Create.states().1.to_string(),
            machine_type: kind.label,
            template_id: template.id,
            os: template.os,
            agent_type: template.agent_type,
            region: new.region,
            disk_size_gb: new.disk_size_gb,
            auto_shutdown_enabled: new.auto_shutdown_enabled,
            auto_shutdown_timeout: new.auto_shutdown_timeout,
            public_ip_type: new.public_ip_type,
            created_at: at.clone(),
            modified_at: at,
        };
        tx.execute(
            &format!(
                "INSERT INTO machines ({MACHINE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ),
            params![
                machine.id,
                machine.team_id,
                machine.user_id,
                machine.name,
                machine.state,
                machine.machine_type,
                machine.template_id,
                machine.os,
                machine.agent_type,
                machine.region,
                machine.disk_size_gb,
                machine.auto_shutdown_enabled,
                machine.auto_shutdown_timeout,
                machine.public_ip_type,
                machine.created_at,
                machine.modified_at
            ],
        )?;
        let event = self.record_event(&machine, MachineAction::Create)?;
        tx.commit()?;
        Ok((event, machine))
    }

    /// The user a new machine belongs to. Assigning it to someone else is a
    /// team admin's right (seed 003's last paragraph). Runs inside the
    /// caller's write transaction.
    fn assignee(&self, who: &Principal, assignee: &Assignee) -> Result<String> {
        if !matches!(assignee, Assignee::Caller) && !who.is_admin {
            return Err(Error::Forbidden("only a team admin can assign a machine to another user".into()));
        }
        match assignee {
            Assignee::Caller => Ok(who.user_id.clone()),
            Assignee::User(id) => self
                .find_user(&who.team_id, id)
                .map(|u| u.id)
                .map_err(|_| Error::invalid("userId", format!("no user {id:?} in this team"))),
            Assignee::NewUser { email, first_name, last_name } => {
                if !email.contains('@') {
                    return Err(Error::invalid("email", format!("{email:?} is not an email address")));
                }
                let user = NewUser {
                    username: email.clone(),
                    email: Some(email.clone()),
                    first_name: Some(first_name.clone()),
                    last_name: Some(last_name.clone()),
                    is_admin: false,
                };
                match self.insert_unique_user(&who.team_id, &user) {
                    Ok(user) => Ok(user.id),
                    Err(Error::Conflict(_)) => Err(Error::invalid(
                        "email",
                        format!("user creation failed: {email} is already associated with an account"),
                    )),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Inserts the event of `action` and queues the job that carries it out.
    /// Runs on `self.conn`, so inside the caller's open transaction.
    fn record_event(&self, machine: &Machine, action: MachineAction) -> Result<MachineEvent> {
        let event = MachineEvent {
            id: new_id(),
            machine_id: machine.id.clone(),
            name: action.name().into(),
            state: "new".into(),
            created_at: now(),
            started_at: None,
            finished_at: None,
            error: None,
        };
        self.conn.execute(
            &format!("INSERT INTO machine_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, NULL)"),
            params![event.id, event.machine_id, event.name, event.state, event.created_at],
        )?;
        self.enqueue_job(&machine.team_id, MACHINE_JOB, Some(&machine.id), json!({"eventId": event.id, "phase": "begin"}), None)?;
        Ok(event)
    }

    /// Stop, start or restart: checks the machine is in the state the action
    /// starts from, moves it to the action's running state, and records the
    /// event. Anything else is a 400 that says why.
    pub fn machine_action(&self, who: &Principal, id: &str, action: MachineAction) -> Result<(MachineEvent, Machine)> {
        let (from, during, _) = action.states();
        let tx = self.write()?;
        let mut machine = self.get_machine(who, id)?;
        if from != Some(machine.state.as_str()) {
            let wanted = from.map(|s| format!("a machine that is {s}")).unwrap_or_else(|| "a new machine".into());
            return Err(Error::invalid(
                "state",
                format!("machine {id} is {}; {} needs {wanted}", machine.state, action.name()),
            ));
        }
        machine.state = during.into();
        machine.modified_at = now();
        tx.execute("UPDATE machines SET state = ?2, modified_at = ?3 WHERE id = ?1", params![id, machine.state, machine.modified_at])?;
        let event = self.record_event(&machine, action)?;
        tx.commit()?;
        Ok((event, machine))
    }

    pub fn update_machine(&self, who: &Principal, id: &str, patch: MachinePatch) -> Result<Machine> {
        if let Some(name) = &patch.name {
            check_name("name", name)?;
        }
        if let Some(Some(hours)) = patch.auto_shutdown_timeout {
            check_shutdown_timeout(hours)?;
        }
        let tx = self.write()?;
        let mut machine = self.get_machine(who, id)?;
        if let Some(name) = patch.name {
            machine.name = name;
        }
        if let Some(enabled) = patch.auto_shutdown_enabled {
            machine.auto_shutdown_enabled = enabled;
        }
        if let Some(timeout) = patch.auto_shutdown_timeout {
            machine.auto_shutdown_timeout = timeout;
        }
        machine.modified_at = now();
        tx.execute(
            "UPDATE machines SET name = ?2, auto_shutdown_enabled = ?3, auto_shutdown_timeout = ?4, modified_at = ?5 WHERE id = ?1",
            params![id, machine.name, machine.auto_shutdown_enabled, machine.auto_shutdown_timeout, machine.modified_at],
        )?;
        tx.commit()?;
        Ok(machine)
    }

    /// Deletes a machine in any state, with its events; a pending state
    /// change finds its event gone and does nothing.
    pub fn delete_machine(&self, who: &Principal, id: &str) -> Result<Machine> {
        let tx = self.write()?;
        let machine = self.get_machine(who, id)?;
        tx.execute("DELETE FROM machines WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(machine)
    }

    /// A machine's events, newest first.
    pub fn list_machine_events(
        &self,
        who: &Principal,
        machine_id: &str,
        after: Option<&Cursor>,
        limit: u64,
    ) -> Result<Page<MachineEvent>> {
        self.get_machine(who, machine_id)?;
        let mut args = vec![sql::Value::Text(machine_id.to_string())];
        let tail = keyset_tail("created_at", true, after, limit, &mut args);
        let sql = format!("SELECT {EVENT_COLUMNS} FROM machine_events WHERE machine_id = ?{tail}");
        let items = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), event_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(keyset_page(items, limit, |e| Cursor { key: e.created_at.clone(), id: e.id.clone() }))
    }

    /// One step of a `machine-event` job. `begin` marks the event in progress
    /// and queues `finish` after the emulated `delay`; `finish` puts the
    /// machine in the action's end state and marks the event done.
    pub fn advance_machine_event(&self, job: &Job, delay: Duration) -> Result<Value> {
        let event_id = job.input.get("eventId").and_then(Value::as_str).unwrap_or("");
        let phase = job.input.get("phase").and_then(Value::as_str).unwrap_or("");
        let tx = self.write()?;
        let event = self
            .conn
            .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM machine_events WHERE id = ?1"))?
            .query_row([event_id], event_from_row)
            .optional()?;
        let Some(event) = event else {
            // The machine was deleted meanwhile.
            return Ok(json!({"eventId": event_id, "skipped": "the machine no longer exists"}));
        };
        let action = MachineAction::parse(&event.name)
            .ok_or_else(|| Error::Internal(format!("event {event_id} has an unknown name {:?}", event.name)))?;
        let at = now();
        match phase {
            "begin" => {
                tx.execute(
                    "UPDATE machine_events SET state = 'in progress', started_at = ?2 WHERE id = ?1 AND state = 'new'",
                    params![event_id, at],
                )?;
                self.enqueue_job(
                    &job.team_id,
                    MACHINE_JOB,
                    Some(&event.machine_id),
                    json!({"eventId": event_id, "phase": "finish"}),
                    Some(run_after(delay)),
                )?;
            }
            "finish" => {
                let (_, during, target) = action.states();
                tx.execute(
                    "UPDATE machines SET state = ?3, modified_at = ?4 WHERE id = ?1 AND state = ?2",
                    params![event.machine_id, during, target, at],
                )?;
                tx.execute(
                    "UPDATE machine_events SET state = 'done', finished_at = ?2 WHERE id = ?1 AND state = 'in progress'",
                    params![event_id, at],
                )?;
            }
            other => return Err(Error::Internal(format!("machine job {} has an unknown phase {other:?}", job.id))),
        }
        tx.commit()?;
        Ok(json!({"eventId": event_id, "phase": phase}))
    }
}
