//! Per-entity roles for custom models and execution environments
//! (DataRobot's `accessControl/`). Everything stays inside the caller's
//! team; within it, a user sees an entity only with a role on it, except:
//! team admins see everything; a model with no role rows at all (made by
//! another dialect) is shared with its whole team, its creator owning it;
//! a public environment is usable by the whole team.

use rusqlite::{params, OptionalExtension};

use super::{Error, Principal, Registry, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    Model,
    Environment,
}

impl EntityKind {
    fn as_str(self) -> &'static str {
        match self {
            EntityKind::Model => "model",
            EntityKind::Environment => "environment",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            EntityKind::Model => "custom model",
            EntityKind::Environment => "execution environment",
        }
    }
}

/// What a role allows, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read and download.
    Read = 1,
    /// Also update and create versions.
    Write = 2,
    /// Also delete and share any role.
    Own = 3,
}

/// The seed's role enum, ranked (the seed gives no hierarchy; see
/// notes/datarobot.md).
pub const ROLES: [&str; 9] = ["ADMIN", "CONSUMER", "DATA_SCIENTIST", "EDITOR", "OBSERVER", "OWNER", "READ_ONLY", "READ_WRITE", "USER"];

pub fn role_access(role: &str) -> Option<Access> {
    match role {
        "OWNER" | "ADMIN" => Some(Access::Own),
        "EDITOR" | "USER" | "READ_WRITE" | "DATA_SCIENTIST" => Some(Access::Write),
        "CONSUMER" | "OBSERVER" | "READ_ONLY" => Some(Access::Read),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccessEntry {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub can_share: bool,
    pub can_use_data: bool,
}

/// One entry of an access update; `role: None` revokes.
#[derive(Clone, Debug)]
pub struct AccessChange {
    pub username: String,
    pub role: Option<String>,
    pub can_share: Option<bool>,
    pub can_use_data: Option<bool>,
}

impl Registry {
    /// The creator (owner of last resort) of an entity of the caller's
    /// team, and whether it is public; NotFound when there is none.
    fn entity_facts(&self, who: &Principal, kind: EntityKind, id: &str) -> Result<(String, bool)> {
        let sql = match kind {
            EntityKind::Model => "SELECT created_by, 0 FROM models WHERE id = ?1 AND team_id = ?2",
            EntityKind::Environment => {
                "SELECT created_by, is_public FROM environments WHERE id = ?1 AND team_id = ?2 AND deleted_at IS NULL"
            }
        };
        self.conn
            .prepare_cached(sql)?
            .query_row([id, &who.team_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| Error::not_found(kind.describe(), id))
    }

    /// Records `user_id` as the owner of a new entity.
    pub fn grant_owner(&self, kind: EntityKind, entity_id: &str, user_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO access_roles (kind, entity_id, user_id, role, can_share, can_use_data)
             VALUES (?1, ?2, ?3, 'OWNER', 1, 1)",
            params![kind.as_str(), entity_id, user_id],
        )?;
        Ok(())
    }

    /// What the caller may do with an entity; NotFound when they may not
    /// even see it (indistinguishable from "does not exist", on purpose).
    pub fn access(&self, who: &Principal, kind: EntityKind, id: &str) -> Result<Access> {
        let (creator, public) = self.entity_facts(who, kind, id)?;
        if who.is_admin {
            return Ok(Access::Own);
        }
        let entries = self.role_rows(kind, id)?;
        if let Some(mine) = entries.iter().find(|e| e.user_id == who.user_id) {
            return role_access(&mine.role).ok_or_else(|| Error::not_found(kind.describe(), id));
        }
        if entries.is_empty() && kind == EntityKind::Model {
            return Ok(if creator == who.user_id { Access::Own } else { Access::Write });
        }
        if public {
            return Ok(Access::Read);
        }
        Err(Error::not_found(kind.describe(), id))
    }

    /// `access`, failing with Forbidden below `need`.
    pub fn require(&self, who: &Principal, kind: EntityKind, id: &str, need: Access) -> Result<Access> {
        let have = self.access(who, kind, id)?;
        if have < need {
            let what = match need {
                Access::Read => "view",
                Access::Write => "change",
                Access::Own => "delete or share",
            };
            return Err(Error::Forbidden(format!("you do not have permission to {what} this {}", kind.describe())));
        }
        Ok(have)
    }

    /// Ids of the caller's team's entities of `kind` the caller may see, or
    /// None when they may see all (team admins).
    pub fn visible_ids(&self, who: &Principal, kind: EntityKind) -> Result<Option<Vec<String>>> {
        if who.is_admin {
            return Ok(None);
        }
        let sql = match kind {
            EntityKind::Model => {
                "SELECT m.id FROM models m WHERE m.team_id = ?1 AND (
                    EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'model' AND a.entity_id = m.id AND a.user_id = ?2)
                    OR NOT EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'model' AND a.entity_id = m.id))"
            }
            EntityKind::Environment => {
                "SELECT e.id FROM environments e WHERE e.team_id = ?1 AND e.deleted_at IS NULL AND (e.is_public = 1 OR
                    EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'environment' AND a.entity_id = e.id AND a.user_id = ?2))"
            }
        };
        let ids = self
            .conn
            .prepare_cached(sql)?
            .query_map([&who.team_id, &who.user_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(Some(ids))
    }

    fn role_rows(&self, kind: EntityKind, id: &str) -> Result<Vec<AccessEntry>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT a.user_id, u.username, a.role, a.can_share, a.can_use_data FROM access_roles a
                 JOIN users u ON u.id = a.user_id WHERE a.kind = ?1 AND a.entity_id = ?2 ORDER BY u.username",
            )?
            .query_map([kind.as_str(), id], |r| {
                Ok(AccessEntry { user_id: r.get(0)?, username: r.get(1)?, role: r.get(2)?, can_share: r.get(3)?, can_use_data: r.get(4)? })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The entity's role list (visible to anyone who can see the entity).
    pub fn list_access(&self, who: &Principal, kind: EntityKind, id: &str) -> Result<Vec<AccessEntry>> {
        self.access(who, kind, id)?;
        let rows = self.role_rows(kind, id)?;
        if rows.is_empty() && kind == EntityKind::Model {
            // A model from another dialect: its creator is its owner.
            let (creator, _) = self.entity_facts(who, kind, id)?;
            let username: String = self.conn.query_row("SELECT username FROM users WHERE id = ?1", [&creator], |r| r.get(0))?;
            return Ok(vec![AccessEntry { user_id: creator, username, role: "OWNER".into(), can_share: true, can_use_data: true }]);
        }
        Ok(rows)
    }

    /// Applies an access update atomically: all entries or none.
    pub fn update_access(&self, who: &Principal, kind: EntityKind, id: &str, changes: &[AccessChange]) -> Result<()> {
        let have = self.access(who, kind, id)?;
        let (creator, _) = self.entity_facts(who, kind, id)?;
        let mine = self.role_rows(kind, id)?.into_iter().find(|e| e.user_id == who.user_id);
        let can_share = have == Access::Own || mine.as_ref().is_some_and(|m| m.can_share);
        if !can_share {
            return Err(Error::Forbidden(format!("you can view this {} but may not share it", kind.describe())));
        }
        if changes.len() > 100 {
            return Err(Error::invalid("data", "at most 100 entries may be sent at once"));
        }
        let tx = self.write()?;
        let existing: i64 = tx.query_row(
            "SELECT COUNT(*) FROM access_roles WHERE kind = ?1 AND entity_id = ?2",
            [kind.as_str(), id],
            |r| r.get(0),
        )?;
        if existing == 0 {
            // Make the implicit owner of another dialect's model explicit first.
            tx.execute(
                "INSERT INTO access_roles (kind, entity_id, user_id, role) VALUES (?1, ?2, ?3, 'OWNER')",
                params![kind.as_str(), id, creator],
            )?;
        }
        for change in changes {
            let user: Option<String> = tx
                .query_row("SELECT id FROM users WHERE username = ?1 AND team_id = ?2", [&change.username, &who.team_id], |r| r.get(0))
                .optional()?;
            let Some(user_id) = user else {
                return Err(unprocessable(format!("user {:?} does not exist", change.username)));
            };
            match change.role.as_deref().filter(|r| *r != "NO_ROLE") {
                None => {
                    tx.execute(
                        "DELETE FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND user_id = ?3",
                        params![kind.as_str(), id, user_id],
                    )?;
                }
                Some(role) => {
                    let granted = role_access(role).ok_or_else(|| {
                        unprocessable(format!("role {role:?} is not one of {}", ROLES.join(", ")))
                    })?;
                    if granted > have {
                        return Err(Error::Forbidden(format!("you may not grant the role {role}, which is above your own")));
                    }
                    tx.execute(
                        "INSERT INTO access_roles (kind, entity_id, user_id, role, can_share, can_use_data)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (kind, entity_id, user_id) DO UPDATE SET role = ?4, can_share = ?5, can_use_data = ?6",
                        params![
                            kind.as_str(),
                            id,
                            user_id,
                            role,
                            change.can_share.unwrap_or(true),
                            change.can_use_data.unwrap_or(true)
                        ],
                    )?;
                }
            }
        }
        let owners: i64 = tx.query_row(
            "SELECT COUNT(*) FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND role = 'OWNER'",
            [kind.as_str(), id],
            |r| r.get(0),
        )?;
        if owners == 0 {
            return Err(Error::Conflict(format!("the request would leave the {} without an owner", kind.describe())));
        }
        tx.commit()?;
        Ok(())
    }
}

fn unprocessable(message: String) -> Error {
    Error::Unprocessable { message, details: serde_json::Value::Null }
}
