//! Administration: teams, users and keys (on the data directory, or with
//! `--server` through the admin API, `api::admin`), and verify, gc, backup
//! and restore, which only work on the data directory (also while a server
//! runs on it).

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::remote::{enc, Remote};
use crate::registry::{Error, NewUser, Registry};

/// Where `teams`, `users` and `keys` act.
pub enum Admin {
    Local(Registry),
    Remote(Remote),
}

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

const API: &str = "/api/modelreg/v1";

fn text(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

pub fn teams(admin: &Admin, cmd: TeamsCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        TeamsCommand::Add { name } => {
            let team = match admin {
                Admin::Local(registry) => json!(registry.create_team(&name)?),
                Admin::Remote(remote) => remote.post_json(&format!("{API}/teams"), &json!({"name": name}))?,
            };
            if as_json {
                print_json(&team);
            } else {
                println!("created team {} ({})", text(&team["name"]), text(&team["id"]));
            }
        }
        TeamsCommand::List => {
            let teams = match admin {
                Admin::Local(registry) => json!(registry.list_teams()?),
                Admin::Remote(remote) => remote.get_json(&format!("{API}/teams"))?,
            };
            if as_json {
                print_json(&teams);
            } else {
                for t in teams.as_array().into_iter().flatten() {
                    println!("{}  {}  {}", text(&t["id"]), text(&t["created_at"]), text(&t["name"]));
                }
            }
        }
    }
    Ok(0)
}

pub fn users(target: &Admin, cmd: UsersCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        UsersCommand::Add { username, team, email, admin } => {
            let user = match target {
                Admin::Local(registry) => {
                    let team_id = team_id(registry, team.as_deref())?;
                    json!(registry.create_user(&team_id, &NewUser { username, email, is_admin: admin, ..Default::default() })?)
                }
                Admin::Remote(remote) => remote.post_json(
                    &format!("{API}/users"),
                    &json!({"username": username, "team": team, "email": email, "admin": admin}),
                )?,
            };
            if as_json {
                print_json(&user);
            } else {
                println!("created user {} ({})", text(&user["username"]), text(&user["id"]));
            }
        }
        UsersCommand::List { team } => {
            let users = match target {
                Admin::Local(registry) => json!(registry.list_users(&team_id(registry, team.as_deref())?)?),
                Admin::Remote(remote) => remote.get_json(&match team {
                    Some(team) => format!("{API}/users?team={}", enc(&team)),
                    None => format!("{API}/users"),
                })?,
            };
            if as_json {
                print_json(&users);
            } else {
                for u in users.as_array().into_iter().flatten() {
                    println!("{}  {}{}", text(&u["id"]), text(&u["username"]), if u["is_admin"] == true { "  (admin)" } else { "" });
                }
            }
        }
    }
    Ok(0)
}

pub fn keys(target: &Admin, cmd: KeysCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        KeysCommand::Create { user, label } => {
            let created = match target {
                Admin::Local(registry) => {
                    let user = registry.find_user_anywhere(&user)?;
                    let (key, secret) = registry.create_key(&user.id, &label)?;
                    crate::api::admin::key_created(&key, &secret)
                }
                Admin::Remote(remote) => remote.post_json(&format!("{API}/keys"), &json!({"user": user, "label": label}))?,
            };
            if as_json {
                print_json(&created);
            } else {
                eprintln!(
                    "created key {} for {}; the secret below is not stored and will not be shown again",
                    text(&created["id"]),
                    text(&created["user"])
                );
                println!("{}", text(&created["secret"]));
            }
        }
        KeysCommand::List => {
            let keys = match target {
                Admin::Local(registry) => json!(registry.list_keys()?),
                Admin::Remote(remote) => remote.get_json(&format!("{API}/keys"))?,
            };
            if as_json {
                print_json(&keys);
            } else {
                for k in keys.as_array().into_iter().flatten() {
                    let state = k["revoked_at"].as_str().map(|t| format!("revoked {t}")).unwrap_or_else(|| "active".into());
                    println!("{}  {}  {}  {}  {}", text(&k["id"]), text(&k["username"]), text(&k["created_at"]), state, text(&k["label"]));
                }
            }
        }
        KeysCommand::Revoke { id } => {
            match target {
                Admin::Local(registry) => registry.revoke_key(&id)?,
                Admin::Remote(remote) => {
                    remote.delete(&format!("{API}/keys/{}", enc(&id)))?;
                }
            }
            if as_json {
                print_json(&json!({"id": id, "revoked": true}));
            } else {
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
            println!("{verb} temp file {path} ({size} bytes)");
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

pub fn backup(registry: &Registry, dest: &std::path::Path, with_blobs: bool, as_json: bool) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let report = registry.backup(dest, with_blobs)?;
    report_copy(&report, "backed up", started, as_json)
}

pub fn migrate_database(registry: &Registry, to: &str, as_json: bool) -> Result<i32, Error> {
    let report = registry.migrate_database(to)?;
    if as_json {
        print_json(&json!(report));
        return Ok(0);
    }
    println!("{:<24} {:>10}  sha256 of the rows", "table", "rows");
    for table in &report.tables {
        println!("{:<24} {:>10}  {}", table.table, table.rows, table.checksum);
    }
    println!("every table has the same rows in {} as here; the SQLite database is unchanged", report.to);
    println!("to switch, give every modelreg command on this registry --database (or MODELREG_DATABASE_URL) with that URL");
    if report.blob_store == "local" {
        println!(
            "the blobs stay in this data directory: servers on other machines cannot reach them; \
             move them to a bucket first with `modelreg blobs migrate --to s3://BUCKET`"
        );
    }
    Ok(0)
}

pub fn migrate_blobs(registry: &mut Registry, to: &crate::registry::BlobLocation, as_json: bool) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let bar = if as_json { None } else { super::models::byte_bar(0) };
    let report = registry.migrate_blobs(to, &mut |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if as_json {
        print_json(&json!(report));
    } else {
        println!(
            "{} blob(s) ({} bytes) are in {}: {} copied and checked, {} already there, in {:.1}s",
            report.blobs,
            report.bytes,
            report.to,
            report.copied,
            report.already_there,
            started.elapsed().as_secs_f64()
        );
        if report.switched {
            println!("the registry now keeps its blobs in {}; those in {} are no longer used", report.to, report.from);
        } else {
            println!(
                "not switched: a server is running on this data directory; stop it and run this again \
                 (what is copied stays copied)"
            );
        }
    }
    Ok(if report.switched { 0 } else { 1 })
}

pub fn restore(backup: &std::path::Path, data_dir: &std::path::Path, as_json: bool) -> Result<i32, Error> {
    let started = std::time::Instant::now();
    let report = crate::registry::restore(backup, data_dir)?;
    report_copy(&report, "restored", started, as_json)
}

fn report_copy(report: &crate::registry::BackupReport, verb: &str, started: std::time::Instant, as_json: bool) -> Result<i32, Error> {
    if as_json {
        print_json(&json!(report));
    } else {
        for sha in &report.missing {
            println!("problem: blob {sha} is referenced but was missing from the source; the copy lacks it too");
        }
        if report.blob_store == "local" {
            println!(
                "{verb} the database ({} bytes) and {} blob(s) ({} bytes, {} hard-linked) to {} in {:.1}s",
                report.database_bytes,
                report.blobs,
                report.blob_bytes,
                report.linked,
                report.destination.display(),
                started.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "{verb} the database ({} bytes) to {} in {:.1}s; its blobs stay in {} (back up with --with-blobs \
                 to copy them too)",
                report.database_bytes,
                report.destination.display(),
                started.elapsed().as_secs_f64(),
                report.blob_store
            );
        }
    }
    Ok(if report.missing.is_empty() { 0 } else { 1 })
}
