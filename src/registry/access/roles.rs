//! Per-entity roles for custom models and execution environments
//! (DataRobot's `accessControl/`). Everything stays inside the caller's
//! team; within it, a user sees an entity only with a role on it, except:
//! team admins see everything; a model with no role rows at all (made by
//! another dialect) is shared with its whole team, its creator owning it;
//! a public environment is usable by the whole team.

use crate::registry::{Error, Principal, Registry, Result};
use crate::store::sql::{self, params, Connection, OptionalExtension};

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

    /// The word a NotFound uses: "model" as every dialect's model lookup
    /// says, so that a missing id reads the same through any route.
    fn missing(self) -> &'static str {
        match self {
            EntityKind::Model => "model",
            EntityKind::Environment => "execution environment",
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
            .ok_or_else(|| Error::not_found(kind.missing(), id))
    }

    /// Records `user_id` as the owner of a new entity. Runs on the
    /// registry's connection, so inside a caller's open write transaction it
    /// commits with it.
    pub(in crate::registry) fn grant_owner_in(conn: &Connection, kind: EntityKind, entity_id: &str, user_id: &str) -> Result<()> {
        conn.execute(
            "INSERT INTO access_roles (kind, entity_id, user_id, role, can_share, can_use_data)
             VALUES (?1, ?2, ?3, 'OWNER', 1, 1)
             ON CONFLICT (kind, entity_id, user_id) DO UPDATE SET role = 'OWNER', can_share = 1, can_use_data = 1",
            params![kind.as_str(), entity_id, user_id],
        )?;
        Ok(())
    }

    /// The caller's role row on an entity (role, can_share), and whether the
    /// entity has any role rows at all.
    fn my_role(&self, who: &Principal, kind: EntityKind, id: &str) -> Result<(Option<(String, bool)>, bool)> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT (SELECT role FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND user_id = ?3),
                        (SELECT can_share FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND user_id = ?3),
                        EXISTS (SELECT 1 FROM access_roles WHERE kind = ?1 AND entity_id = ?2)",
            )?
            .query_row([kind.as_str(), id, &who.user_id], |r| {
                let role: Option<String> = r.get(0)?;
                let share: Option<bool> = r.get(1)?;
                Ok((role.map(|role| (role, share.unwrap_or(false))), r.get(2)?))
            })?)
    }

    /// What the caller may do with an entity; NotFound when they may not
    /// even see it (indistinguishable from "does not exist", on purpose).
    /// This is the one access rule: every model and environment operation
    /// of every dialect goes through it.
    pub fn access(&self, who: &Principal, kind: EntityKind, id: &str) -> Result<Access> {
        let (creator, public) = self.entity_facts(who, kind, id)?;
        self.decide_access(who, kind, id, &creator, public)
    }

    /// The rule itself, for an entity of the caller's team whose creator and
    /// publicity the caller already read.
    pub(in crate::registry) fn decide_access(&self, who: &Principal, kind: EntityKind, id: &str, creator: &str, public: bool) -> Result<Access> {
        if who.is_admin {
            return Ok(Access::Own);
        }
        let (mine, any_roles) = self.my_role(who, kind, id)?;
        if let Some((role, _)) = mine {
            return role_access(&role).ok_or_else(|| Error::not_found(kind.missing(), id));
        }
        if !any_roles && kind == EntityKind::Model {
            return Ok(if creator == who.user_id.as_str() { Access::Own } else { Access::Write });
        }
        if public {
            return Ok(Access::Read);
        }
        Err(Error::not_found(kind.missing(), id))
    }

    /// `access`, failing with Forbidden below `need`.
    pub fn require(&self, who: &Principal, kind: EntityKind, id: &str, need: Access) -> Result<Access> {
        let have = self.access(who, kind, id)?;
        check_rank(kind, have, need)
    }
}

/// Forbidden when `have` is below `need`.
pub(in crate::registry) fn check_rank(kind: EntityKind, have: Access, need: Access) -> Result<Access> {
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

impl Registry {
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
            .collect::<sql::Result<_>>()?)
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

    /// Applies an access update atomically: all entries or none. Every
    /// check runs inside the write transaction, against the roles as they
    /// are when the update applies.
    ///
    /// Rules: the caller needs owner rank or `canShare`; below owner rank
    /// they may neither grant a role above their own nor change (grant,
    /// demote, revoke) anyone whose current role is at or above their own;
    /// the entity must keep at least one owner-rank role (OWNER or ADMIN).
    pub fn update_access(&self, who: &Principal, kind: EntityKind, id: &str, changes: &[AccessChange]) -> Result<()> {
        if changes.len() > 100 {
            return Err(Error::invalid("data", "at most 100 entries may be sent at once"));
        }
        let tx = self.write()?;
        let have = self.access(who, kind, id)?;
        let (creator, _) = self.entity_facts(who, kind, id)?;
        let (mine, _) = self.my_role(who, kind, id)?;
        let can_share = have == Access::Own || mine.as_ref().is_some_and(|(_, share)| *share);
        if !can_share {
            return Err(Error::Forbidden(format!("you can view this {} but may not share it", kind.describe())));
        }
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
                return Err(Error::unprocessable(format!("user {:?} does not exist", change.username)));
            };
            if have < Access::Own {
                let current: Option<String> = tx
                    .query_row(
                        "SELECT role FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND user_id = ?3",
                        params![kind.as_str(), id, user_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if current.as_deref().and_then(role_access).is_some_and(|rank| rank >= have) {
                    return Err(Error::Forbidden(format!(
                        "you may not change the role of {:?}, which is not below your own",
                        change.username
                    )));
                }
            }
            match change.role.as_deref().filter(|r| *r != "NO_ROLE") {
                None => {
                    tx.execute(
                        "DELETE FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND user_id = ?3",
                        params![kind.as_str(), id, user_id],
                    )?;
                }
                Some(role) => {
                    let granted = role_access(role).ok_or_else(|| {
                        Error::unprocessable(format!("role {role:?} is not one of {}", ROLES.join(", ")))
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
                            // The seed's UserRoleWithGrant: canShare "default": true.
                            change.can_share.unwrap_or(CAN_SHARE_DEFAULT),
                            change.can_use_data.unwrap_or(true)
                        ],
                    )?;
                }
            }
        }
        let owners: i64 = tx.query_row(
            "SELECT COUNT(*) FROM access_roles WHERE kind = ?1 AND entity_id = ?2 AND role IN ('OWNER', 'ADMIN')",
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

/// `canShare` when an access PATCH entry omits it: seed 002's
/// `UserRoleWithGrant` declares `"default": true` (L5474, L10936). The
/// damage it could do is bounded by the rank rules in `update_access`.
const CAN_SHARE_DEFAULT: bool = true;

/// The visibility rule as SQL, for lists: " AND (…)" over the row alias
/// `alias` of `kind`'s table, its arguments appended to `args`. Empty for
/// team admins. Both EXISTS probes are served by access_roles' primary key
/// (kind, entity_id, user_id), so a page costs the same whatever the size
/// of the team.
pub(in crate::registry) fn visible_sql(who: &Principal, kind: EntityKind, alias: &str, args: &mut Vec<sql::Value>) -> String {
    if who.is_admin {
        return String::new();
    }
    args.push(sql::Value::Text(who.user_id.clone()));
    match kind {
        EntityKind::Model => format!(
            " AND (EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'model' AND a.entity_id = {alias}.id AND a.user_id = ?)
               OR NOT EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'model' AND a.entity_id = {alias}.id))"
        ),
        EntityKind::Environment => format!(
            " AND {alias}.deleted_at IS NULL AND ({alias}.is_public = 1
               OR EXISTS (SELECT 1 FROM access_roles a WHERE a.kind = 'environment' AND a.entity_id = {alias}.id AND a.user_id = ?))"
        ),
    }
}
