//! Teams, users and API keys, and turning a presented key into a principal.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::registry::{new_id, now, Error, Registry, Result};
use crate::store::blobs::hex;
use crate::store::sql::{self, params, OptionalExtension};

/// Who is making a request: resolved from an API key on every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub team_id: String,
    pub user_id: String,
    pub username: String,
    pub is_admin: bool,
    /// The API key the request presented; None for the offline CLI.
    pub key_id: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: String,
    pub team_id: String,
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ApiKey {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub label: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Who a request is (`Registry::whoami`).
#[derive(Clone, Debug)]
pub struct Me {
    pub user: User,
    pub team: Team,
    pub key: Option<ApiKey>,
}

/// What `bootstrap` created on a new data directory.
pub struct Bootstrap {
    pub team: Team,
    pub user: User,
    /// Where the first key's secret was written (mode 0600).
    pub key_file: PathBuf,
}

/// The file in the data directory that holds the first key's secret.
pub const FIRST_KEY_FILE: &str = "admin.key";

pub(in crate::registry) fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub(in crate::registry) fn new_secret() -> String {
    // Two v4 UUIDs give 244 random bits from the OS generator.
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("mr_{}{}", a.simple(), b.simple())
}

/// An API key with its user's name, as `key_from_row` reads it.
const SELECT_KEYS: &str = "SELECT k.id, k.user_id, u.username, k.label, k.created_at, k.revoked_at
                           FROM api_keys k JOIN users u ON u.id = k.user_id";

fn key_from_row(r: &sql::Row) -> sql::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        label: r.get(3)?,
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

fn user_from_row(r: &sql::Row) -> sql::Result<User> {
    Ok(User {
        id: r.get("id")?,
        team_id: r.get("team_id")?,
        username: r.get("username")?,
        email: r.get("email")?,
        first_name: r.get("first_name")?,
        last_name: r.get("last_name")?,
        is_admin: r.get("is_admin")?,
        created_at: r.get("created_at")?,
    })
}

/// Fields of a new user; only `username` is required.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub is_admin: bool,
}

impl Registry {
    /// On a data directory with no team yet, creates the first team, an admin
    /// user and a key, and writes the key to `admin.key` readable only by its
    /// owner. Returns None when the directory was already set up.
    pub fn bootstrap(&self) -> Result<Option<Bootstrap>> {
        let tx = self.write()?;
        let teams: i64 = tx.query_row("SELECT COUNT(*) FROM teams", [], |r| r.get(0))?;
        if teams > 0 {
            return Ok(None);
        }
        let team = insert_team(&tx, "default")?;
        let user = insert_user(&tx, &team.id, &NewUser { username: "admin".into(), is_admin: true, ..Default::default() })?;
        let (_, secret) = insert_key(&tx, &user.id, "first key")?;
        let key_file = self.data_dir.join(FIRST_KEY_FILE);
        // Written before the commit: if writing fails, the team is not
        // created and the next start tries again.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_file)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", key_file.display())))?;
        writeln!(file, "{secret}")?;
        file.sync_all()?;
        tx.commit()?;
        Ok(Some(Bootstrap { team, user, key_file }))
    }

    /// Whether the registry has been set up (`bootstrap` made its first team).
    pub fn has_teams(&self) -> Result<bool> {
        Ok(self.conn.query_row("SELECT EXISTS (SELECT 1 FROM teams)", [], |r| r.get(0))?)
    }

    /// Resolves a presented API key secret.
    pub fn authenticate(&self, secret: &str) -> Result<Principal> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT u.team_id, u.id, u.username, u.is_admin, k.id FROM api_keys k JOIN users u ON u.id = k.user_id
                 WHERE k.secret_hash = ?1 AND k.revoked_at IS NULL",
            )?
            .query_row([hash_secret(secret)], |r| {
                Ok(Principal {
                    team_id: r.get(0)?,
                    user_id: r.get(1)?,
                    username: r.get(2)?,
                    is_admin: r.get(3)?,
                    key_id: Some(r.get(4)?),
                })
            })
            .optional()?;
        found.ok_or_else(|| Error::Unauthorized("the API key is unknown or revoked".into()))
    }

    pub fn create_team(&self, name: &str) -> Result<Team> {
        validate_name("name", name)?;
        let tx = self.write()?;
        let exists: bool = tx.query_row("SELECT EXISTS(SELECT 1 FROM teams WHERE name = ?1)", [name], |r| r.get(0))?;
        if exists {
            return Err(Error::Conflict(format!("a team named {name:?} already exists")));
        }
        let team = insert_team(&tx, name)?;
        tx.commit()?;
        Ok(team)
    }

    pub fn find_team(&self, id_or_name: &str) -> Result<Team> {
        self.conn
            .query_row(
                "SELECT id, name, created_at FROM teams WHERE id = ?1 OR name = ?1",
                [id_or_name],
                |r| Ok(Team { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? }),
            )
            .optional()?
            .ok_or_else(|| Error::not_found("team", id_or_name))
    }

    pub fn list_teams(&self) -> Result<Vec<Team>> {
        let mut stmt = self.conn.prepare("SELECT id, name, created_at FROM teams ORDER BY created_at, id")?;
        let teams = stmt.query_map([], |r| Ok(Team { id: r.get(0)?, name: r.get(1)?, created_at: r.get(2)? }))?;
        Ok(teams.collect::<sql::Result<_>>()?)
    }

    pub fn create_user(&self, team_id: &str, new: &NewUser) -> Result<User> {
        let tx = self.write()?;
        let user = self.insert_unique_user(team_id, new)?;
        tx.commit()?;
        Ok(user)
    }

    /// Inserts a user unless the username or email is taken. Runs on
    /// `self.conn`, so inside the caller's write transaction.
    pub(in crate::registry) fn insert_unique_user(&self, team_id: &str, new: &NewUser) -> Result<User> {
        validate_name("username", &new.username)?;
        let taken: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM users WHERE username = ?1 OR (email IS NOT NULL AND email = ?2))",
            params![new.username, new.email],
            |r| r.get(0),
        )?;
        if taken {
            return Err(Error::Conflict(format!("a user named {:?} or with that email already exists", new.username)));
        }
        insert_user(&self.conn, team_id, new)
    }

    /// A user of `team_id`, by id, username or email.
    pub fn find_user(&self, team_id: &str, key: &str) -> Result<User> {
        self.conn
            .query_row(
                "SELECT * FROM users WHERE team_id = ?1 AND (id = ?2 OR username = ?2 OR email = ?2)",
                [team_id, key],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| Error::not_found("user", key))
    }

    /// A user of any team, by id or username: for the CLI, which acts as the
    /// operator of the data directory.
    pub fn find_user_anywhere(&self, key: &str) -> Result<User> {
        self.conn
            .query_row("SELECT * FROM users WHERE id = ?1 OR username = ?1", [key], user_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("user", key))
    }

    pub fn list_users(&self, team_id: &str) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare("SELECT * FROM users WHERE team_id = ?1 ORDER BY created_at, id")?;
        let users = stmt.query_map([team_id], user_from_row)?;
        Ok(users.collect::<sql::Result<_>>()?)
    }

    /// Creates a key for `user_id`; returns it with its secret, which is not
    /// stored and cannot be shown again.
    pub fn create_key(&self, user_id: &str, label: &str) -> Result<(ApiKey, String)> {
        if label.chars().count() > 200 || label.chars().any(char::is_control) {
            return Err(Error::invalid("label", "must be at most 200 characters without control characters"));
        }
        let tx = self.write()?;
        let (key, secret) = insert_key(&tx, user_id, label)?;
        tx.commit()?;
        Ok((key, secret))
    }

    pub fn list_keys(&self) -> Result<Vec<ApiKey>> {
        let mut stmt = self.conn.prepare(&format!("{SELECT_KEYS} ORDER BY k.created_at, k.id"))?;
        let keys = stmt.query_map([], key_from_row)?;
        Ok(keys.collect::<sql::Result<_>>()?)
    }

    pub fn revoke_key(&self, key_id: &str) -> Result<()> {
        let changed = self.conn.execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![key_id, now()],
        )?;
        if changed == 0 {
            return Err(Error::NotFound(format!("no active key with id {key_id}")));
        }
        Ok(())
    }

    /// Whether `who` administers the whole server: an admin of the first
    /// team (the one `init` made). Team admins manage their own team; only
    /// operators create teams, act on other teams, and read /metrics.
    pub fn is_operator(&self, who: &Principal) -> Result<bool> {
        if !who.is_admin {
            return Ok(false);
        }
        let first: Option<String> =
            self.conn.query_row("SELECT id FROM teams ORDER BY created_at, id LIMIT 1", [], |r| r.get(0)).optional()?;
        Ok(first.as_deref() == Some(who.team_id.as_str()))
    }

    /// The team an admin request acts on: the caller's own, or (for an
    /// operator only) the one named. A team admin naming another team gets
    /// NotFound, as for any other team's row.
    fn administered_team(&self, who: &Principal, team: Option<&str>) -> Result<String> {
        if !who.is_admin {
            return Err(Error::Forbidden("only a team admin's key can manage users and keys".into()));
        }
        let Some(team) = team else { return Ok(who.team_id.clone()) };
        let found = self.find_team(team)?;
        if found.id != who.team_id && !self.is_operator(who)? {
            return Err(Error::not_found("team", team));
        }
        Ok(found.id)
    }

    /// Teams `who` may see: every team for an operator, else their own.
    pub fn teams_for(&self, who: &Principal) -> Result<Vec<Team>> {
        let teams = self.list_teams()?;
        if self.is_operator(who)? {
            return Ok(teams);
        }
        Ok(teams.into_iter().filter(|t| t.id == who.team_id).collect())
    }

    pub fn create_team_as(&self, who: &Principal, name: &str) -> Result<Team> {
        if !self.is_operator(who)? {
            return Err(Error::Forbidden("only an admin of the first team can create teams".into()));
        }
        self.create_team(name)
    }

    pub fn users_for(&self, who: &Principal, team: Option<&str>) -> Result<Vec<User>> {
        let team_id = self.administered_team(who, team)?;
        self.list_users(&team_id)
    }

    pub fn create_user_as(&self, who: &Principal, team: Option<&str>, new: &NewUser) -> Result<User> {
        let team_id = self.administered_team(who, team)?;
        self.create_user(&team_id, new)
    }

    /// The keys `who` may see (never their secrets): a team admin's, every
    /// key of their team (an operator's, every key); anyone else's, their own.
    pub fn keys_for(&self, who: &Principal) -> Result<Vec<ApiKey>> {
        if !who.is_admin {
            return Ok(self.list_keys()?.into_iter().filter(|k| k.user_id == who.user_id).collect());
        }
        self.administered_team(who, None)?;
        let operator = self.is_operator(who)?;
        let team_of: std::collections::HashMap<String, String> =
            self.list_all_users()?.into_iter().map(|u| (u.id, u.team_id)).collect();
        Ok(self
            .list_keys()?
            .into_iter()
            .filter(|k| operator || team_of.get(&k.user_id) == Some(&who.team_id))
            .collect())
    }

    /// A key for a user (id, username or email): `who` themselves (None, or
    /// naming themselves), or a user of a team `who` administers. A member
    /// naming anyone else is refused (403), as before keys were their own.
    pub fn create_key_as(&self, who: &Principal, user: Option<&str>, label: &str) -> Result<(ApiKey, String)> {
        let Some(user) = user else { return self.create_key(&who.user_id, label) };
        if !who.is_admin {
            let found = self.find_user(&who.team_id, user).ok();
            if found.is_some_and(|u| u.id == who.user_id) {
                return self.create_key(&who.user_id, label);
            }
            return Err(Error::Forbidden("a member's key can create keys for its own user only; ask a team admin".into()));
        }
        self.administered_team(who, None)?;
        let user = if self.is_operator(who)? { self.find_user_anywhere(user)? } else { self.find_user(&who.team_id, user)? };
        self.create_key(&user.id, label)
    }

    /// Revokes a key `who` may see (`keys_for`); any other is 404, as if it
    /// did not exist.
    pub fn revoke_key_as(&self, who: &Principal, key_id: &str) -> Result<()> {
        if !self.is_operator(who)? {
            let owner: Option<(String, String)> = self
                .conn
                .query_row(
                    "SELECT u.team_id, u.id FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?1",
                    [key_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let allowed = match owner {
                Some((team, user)) => if who.is_admin { team == who.team_id } else { user == who.user_id },
                None => false,
            };
            if !allowed {
                return Err(Error::NotFound(format!("no active key with id {key_id}")));
            }
        }
        self.revoke_key(key_id)
    }

    /// Who a request is: its user, team and the key it presented (None
    /// for the offline CLI), for the UI's header and `GET /me`.
    pub fn whoami(&self, who: &Principal) -> Result<Me> {
        let user = self.find_user(&who.team_id, &who.user_id)?;
        let team = self.find_team(&who.team_id)?;
        let key = match &who.key_id {
            Some(id) => self.conn.query_row(&format!("{SELECT_KEYS} WHERE k.id = ?1"), [id], key_from_row).optional()?,
            None => None,
        };
        Ok(Me { user, team, key })
    }

    fn list_all_users(&self) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare("SELECT * FROM users")?;
        let users = stmt.query_map([], user_from_row)?;
        Ok(users.collect::<sql::Result<_>>()?)
    }

    /// A user as a principal: jobs act with the rights of whoever queued
    /// them.
    pub fn principal_of(&self, user_id: &str) -> Result<Principal> {
        self.conn
            .prepare_cached("SELECT team_id, id, username, is_admin FROM users WHERE id = ?1")?
            .query_row([user_id], |r| {
                Ok(Principal { team_id: r.get(0)?, user_id: r.get(1)?, username: r.get(2)?, is_admin: r.get(3)?, key_id: None })
            })
            .optional()?
            .ok_or_else(|| Error::not_found("user", user_id))
    }

    /// The first admin of the first team: whom offline CLI commands act as.
    pub fn operator(&self) -> Result<Principal> {
        self.conn
            .query_row(
                "SELECT team_id, id, username, is_admin FROM users ORDER BY is_admin DESC, created_at, id LIMIT 1",
                [],
                |r| {
                    Ok(Principal { team_id: r.get(0)?, user_id: r.get(1)?, username: r.get(2)?, is_admin: r.get(3)?, key_id: None })
                },
            )
            .optional()?
            .ok_or_else(|| Error::NotFound("the data directory has no users yet; run `modelreg init`".into()))
    }
}

fn validate_name(field: &str, name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 255 {
        return Err(Error::invalid(field, "must be 1 to 255 characters"));
    }
    Ok(())
}

fn insert_team(tx: &sql::Transaction, name: &str) -> Result<Team> {
    let team = Team { id: new_id(), name: name.to_string(), created_at: now() };
    tx.execute("INSERT INTO teams (id, name, created_at) VALUES (?1, ?2, ?3)", params![team.id, team.name, team.created_at])?;
    Ok(team)
}

fn insert_user(tx: &sql::Connection, team_id: &str, new: &NewUser) -> Result<User> {
    let user = User {
        id: new_id(),
        team_id: team_id.to_string(),
        username: new.username.clone(),
        email: new.email.clone(),
        first_name: new.first_name.clone(),
        last_name: new.last_name.clone(),
        is_admin: new.is_admin,
        created_at: now(),
    };
    tx.execute(
        "INSERT INTO users (id, team_id, username, email, first_name, last_name, is_admin, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![user.id, user.team_id, user.username, user.email, user.first_name, user.last_name, user.is_admin, user.created_at],
    )?;
    Ok(user)
}

fn insert_key(tx: &sql::Transaction, user_id: &str, label: &str) -> Result<(ApiKey, String)> {
    let username: String = tx
        .query_row("SELECT username FROM users WHERE id = ?1", [user_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found("user", user_id))?;
    let secret = new_secret();
    let key = ApiKey {
        id: new_id(),
        user_id: user_id.to_string(),
        username,
        label: label.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    tx.execute(
        "INSERT INTO api_keys (id, user_id, secret_hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.id, key.user_id, hash_secret(&secret), key.label, key.created_at],
    )?;
    Ok((key, secret))
}
