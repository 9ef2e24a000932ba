//! Administration: teams, users and keys (on the data directory, or with
//! `--server` through the admin API, `api::admin`), and verify, gc, backup
//! and restore, which only work on the data directory (also while a server
//! runs on it).

use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use super::remote::{enc, Remote};
use super::table::{cell, human_size, Columns, Table};
use crate::registry::{Error, NewUser, Registry};

/// Where `teams`, `users` and `keys` act.
pub enum Admin {
    Local(Box<Registry>),
    Remote(Remote),
}

#[derive(Subcommand)]
pub enum TeamsCommand {
    /// Create a team.
    #[command(after_help = "Example:\n  modelreg teams add research")]
    Add { name: String },
    /// List teams.
    #[command(after_help = "Example:\n  modelreg teams list")]
    List,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user in a team (default: the first team).
    #[command(after_help = "Examples:\n  \
        modelreg users add alice --team research --email alice@example.com\n  \
        modelreg users add bob --admin")]
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
    #[command(after_help = "Example:\n  modelreg users list --team research")]
    List {
        #[arg(long)]
        team: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a user and print its secret (shown once).
    #[command(after_help = "Examples:\n  \
        modelreg keys create --user alice --label laptop\n  \
        modelreg --server https://models.example.com --token \"$ADMIN_KEY\" keys create --user ci")]
    Create {
        /// The user (id or username). With --server it may be left out: a key for the key's own user.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List API keys (never their secrets).
    #[command(after_help = "Example:\n  modelreg keys list")]
    List,
    /// Revoke a key by id.
    #[command(after_help = "Example:\n  modelreg keys revoke 0192f3c1-…")]
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

const TEAMS: Columns = Columns { headers: &["NAME", "CREATED", "ID"], cells: |t| vec![cell(&t["name"]), cell(&t["created_at"]), cell(&t["id"])] };

const USERS: Columns = Columns {
    headers: &["USERNAME", "ADMIN", "EMAIL", "CREATED", "ID"],
    cells: |u| {
        let admin = if u["is_admin"] == true { "yes" } else { "no" };
        vec![cell(&u["username"]), admin.into(), cell(&u["email"]), cell(&u["created_at"]), cell(&u["id"])]
    },
};

/// Keys never show their secrets (the API has none to show).
const KEYS: Columns = Columns {
    headers: &["ID", "USER", "STATE", "CREATED", "LABEL"],
    cells: |k| {
        let state = k["revoked_at"].as_str().map_or_else(|| "active".into(), |t| format!("revoked {t}"));
        vec![cell(&k["id"]), cell(&k["username"]), state, cell(&k["created_at"]), cell(&k["label"])]
    },
};

/// The registry lists teams, users and keys oldest first (and `--json`
/// keeps that order); people read the newest first, as every other list.
fn newest_first(columns: &Columns, items: &serde_json::Value) -> Table {
    let reversed: Vec<serde_json::Value> = items.as_array().into_iter().flatten().rev().cloned().collect();
    columns.table(&serde_json::Value::Array(reversed))
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
                newest_first(&TEAMS, &teams).print();
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
                newest_first(&USERS, &users).print();
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
                    let Some(user) = user else {
                        return Err(Error::invalid("--user", "is needed on the data directory (with --server it defaults to the key's own user)"));
                    };
                    let user = registry.find_user_anywhere(&user)?;
                    let (key, secret) = registry.create_key(&user.id, &label)?;
                    crate::api::admin::key_created(&key, &secret)
                }
                Admin::Remote(remote) => match user {
                    Some(user) => remote.post_json(&format!("{API}/keys"), &json!({"user": user, "label": label}))?,
                    None => remote.post_json(&format!("{API}/keys"), &json!({"label": label}))?,
                },
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
                newest_first(&KEYS, &keys).print();
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
        let mut table = Table::new(&["KIND", "SIZE", "NAME"]);
        for (sha, size) in &report.removed_blobs {
            table.row(vec!["blob".into(), human_size(*size), sha.clone()]);
        }
        for (path, size) in &report.removed_temp_files {
            table.row(vec!["temp file".into(), human_size(*size), path.clone()]);
        }
        if !table.is_empty() {
            table.print();
        }
        println!(
            "{verb} {} blob(s) and {} temp file(s), {}",
            report.removed_blobs.len(),
            report.removed_temp_files.len(),
            human_size(report.bytes())
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
    let mut tables = Table::new(&["TABLE", "ROWS", "SHA256 OF THE ROWS"]);
    for table in &report.tables {
        tables.row(vec![table.table.clone(), table.rows.to_string(), table.checksum.clone()]);
    }
    tables.print();
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
    let bar = if as_json { None } else { super::progress::byte_bar(0) };
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
