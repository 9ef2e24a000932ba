//! Administration of the data directory: teams, users, keys, verify, gc.
//! These always act on the data directory directly (they are the operator's
//! tools), also while a server runs on it.

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use crate::registry::{Error, NewUser, Registry};

#[derive(Subcommand)]
pub enum TeamsCommand {
    /// Create a team.
    Add { name: String },
    /// List teams.
    List,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user in a team (default: the first team).
    Add {
        username: String,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Make the user a team admin.
        #[arg(long)]
        admin: bool,
    },
    /// List the users of a team (default: the first team).
    List {
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a user and print its secret (shown once).
    Create {
        /// The user (id or username).
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List API keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

/// Prints where the first key went when this call created the first team.
pub fn announce_bootstrap(registry: &Registry) -> Result<(), Error> {
    match registry.bootstrap()? {
        Some(b) => eprintln!(
            "modelreg: created team {:?} with admin user {:?}; its API key is in {}",
            b.team.name,
            b.user.username,
            b.key_file.display()
        ),
        None => eprintln!("modelreg: data directory {} is ready", registry.data_dir().display()),
    }
    Ok(())
}

fn team_id(registry: &Registry, team: Option<&str>) -> Result<String, Error> {
    match team {
        Some(t) => Ok(registry.find_team(t)?.id),
        None => Ok(registry.operator()?.team_id),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub fn teams(registry: &Registry, cmd: TeamsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        TeamsCommand::Add { name } => {
            let team = registry.create_team(&name)?;
            if as_json {
                print_json(&json!(team));
            } else {
                println!("created team {} ({})", team.name, team.id);
            }
        }
        TeamsCommand::List => {
            let teams = registry.list_teams()?;
            if as_json {
                print_json(&json!(teams));
            } else {
                for t in teams {
                    println!("{}  {}  {}", t.id, t.created_at, t.name);
                }
            }
        }
    }
    Ok(0)
}

pub fn users(registry: &Registry, cmd: UsersCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        UsersCommand::Add { username, team, email, admin } => {
            let team_id = team_id(registry, team.as_deref())?;
            let user = registry.create_user(&team_id, &NewUser { username, email, is_admin: admin, ..Default::default() })?;
            if as_json {
                print_json(&json!(user));
            } else {
                println!("created user {} ({})", user.username, user.id);
            }
        }
        UsersCommand::List { team } => {
            let users = registry.list_users(&team_id(registry, team.as_deref())?)?;
            if as_json {
                print_json(&json!(users));
            } else {
                for u in users {
                    println!("{}  {}{}", u.id, u.username, if u.is_admin { "  (admin)" } else { "" });
                }
            }
        }
    }
    Ok(0)
}

pub fn keys(registry: &Registry, cmd: KeysCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        KeysCommand::Create { user, label } => {
            let user = registry.find_user_anywhere(&user)?;
            let (key, secret) = registry.create_key(&user.id, &label)?;
            if as_json {
                print_json(&json!({"id": key.id, "user": key.username, "label": key.label, "secret": secret}));
            } else {
                eprintln!("created key {} for {}; the secret below is not stored and will not be shown again", key.id, key.username);
                println!("{secret}");
            }
        }
        KeysCommand::List => {
            let keys = registry.list_keys()?;
            if as_json {
                print_json(&json!(keys));
            } else {
                for k in keys {
                    let state = k.revoked_at.as_deref().map(|t| format!("revoked {t}")).unwrap_or_else(|| "active".into());
                    println!("{}  {}  {}  {}  {}", k.id, k.username, k.created_at, state, k.label);
                }
            }
        }
        KeysCommand::Revoke { id } => {
            registry.revoke_key(&id)?;
            if !as_json {
                println!("revoked key {id}");
            }
        }
    }
    Ok(0)
}

pub fn verify(registry: &Registry, as_json: bool) -> Result<i32, Error> {
    let report = registry.verify()?;
    if as_json {
        print_json(&json!({
            "blobs_checked": report.blobs_checked,
            "bytes_checked": report.bytes_checked,
            "problems": report.problems,
        }));
    } else {
        for problem in &report.problems {
            println!("problem: {problem}");
        }
        println!(
            "checked {} blobs ({} bytes) and the database: {}",
            report.blobs_checked,
            report.bytes_checked,
            if report.problems.is_empty() { "ok".to_string() } else { format!("{} problem(s)", report.problems.len()) }
        );
    }
    Ok(if report.problems.is_empty() { 0 } else { 1 })
}

pub fn gc(registry: &Registry, grace: Duration, dry_run: bool, as_json: bool) -> Result<i32, Error> {
    let report = registry.gc(grace, dry_run)?;
    let verb = if dry_run { "would remove" } else { "removed" };
    if as_json {
        print_json(&json!({
            "dry_run": dry_run,
            "blobs": report.removed_blobs.iter().map(|(sha, size)| json!({"sha256": sha, "size": size})).collect::<Vec<_>>(),
            "temp_files": report.removed_temp_files.iter().map(|(p, size)| json!({"path": p, "size": size})).collect::<Vec<_>>(),
            "bytes": report.bytes(),
        }));
    } else {
        for (sha, size) in &report.removed_blobs {
            println!("{verb} blob {sha} ({size} bytes)");
        }
        for (path, size) in &report.removed_temp_files {
            println!("{verb} temp file {} ({size} bytes)", path.display());
        }
        println!(
            "{verb} {} blob(s) and {} temp file(s), {} bytes",
            report.removed_blobs.len(),
            report.removed_temp_files.len(),
            report.bytes()
        );
    }
    Ok(0)
}
