//! Remote repositories: git repositories a team's admins register, from
//! which versions are pulled (`crate::git` does the pulling). The shape is
//! DataRobot's `remoteRepositories/` as its Terraform provider uses it.
//!
//! The rules that keep a pull safe live here, so every front door applies
//! them: `github`, `gitlab-cloud` and `bitbucket-server` are `https://` URLs
//! without credentials in them; `git` (modelreg's own) is a local path or
//! `file://` URL under a folder the operator allowed (`serve
//! --allow-git-path`), checked when registered and again, symlinks
//! resolved, before every pull; `s3` is refused. A repository's token is
//! stored for pulls and never returned (`Repository` does not carry it).

use std::path::{Component, Path, PathBuf};

use crate::registry::page::{offset_page, offset_tail, Page};
use crate::registry::{new_id, now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The job that pulls files from a repository into a new version.
pub const PULL_JOB: &str = "version-from-repository";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    Github,
    GitlabCloud,
    BitbucketServer,
    /// A local repository (modelreg's extension): a path or `file://` URL.
    Git,
}

impl SourceType {
    pub const NAMES: [&'static str; 4] = ["github", "gitlab-cloud", "bitbucket-server", "git"];

    pub fn parse(text: &str) -> Result<SourceType> {
        match text {
            "github" => Ok(SourceType::Github),
            "gitlab-cloud" => Ok(SourceType::GitlabCloud),
            "bitbucket-server" => Ok(SourceType::BitbucketServer),
            "git" => Ok(SourceType::Git),
            "s3" => Err(Error::invalid("sourceType", "s3 repositories are not supported: modelreg pulls from git repositories only")),
            other => Err(Error::invalid("sourceType", format!("must be one of {}, got {other:?}", SourceType::NAMES.join(", ")))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Github => "github",
            SourceType::GitlabCloud => "gitlab-cloud",
            SourceType::BitbucketServer => "bitbucket-server",
            SourceType::Git => "git",
        }
    }

    /// The user name git sends with a token over HTTPS: each host's
    /// convention for access tokens.
    pub fn token_username(self) -> &'static str {
        match self {
            SourceType::Github => "x-access-token",
            SourceType::GitlabCloud => "oauth2",
            SourceType::BitbucketServer | SourceType::Git => "x-token-auth",
        }
    }
}

/// Where local (`git`) repositories may be: anywhere for the offline CLI,
/// whose user is the operator; only under the folders `serve
/// --allow-git-path` names for a server (none by default).
#[derive(Clone, Debug)]
pub enum GitPaths {
    Any,
    Under(Vec<PathBuf>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Repository {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub description: String,
    pub location: String,
    pub source_type: SourceType,
    /// The opaque credential id a client sent (DataRobot's Terraform
    /// provider); modelreg has no credential objects and only keeps it.
    pub credential_id: Option<String>,
    /// Whether a token is stored (the token itself never leaves the
    /// registry but for a pull).
    pub has_token: bool,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Default)]
pub struct NewRepository {
    pub name: String,
    pub description: String,
    pub location: String,
    pub source_type: Option<SourceType>,
    pub credential_id: Option<String>,
    pub token: Option<String>,
}

/// A partial update: `None` leaves a field; `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct RepositoryPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub location: Option<String>,
    pub source_type: Option<SourceType>,
    pub credential_id: Option<Option<String>>,
    pub token: Option<Option<String>>,
}

const COLUMNS: &str = "id, team_id, name, description, location, source_type, credential_id, token IS NOT NULL, created_by, created_at";

fn repository_from_row(r: &sql::Row) -> sql::Result<Repository> {
    let source: String = r.get(5)?;
    Ok(Repository {
        id: r.get(0)?,
        team_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        location: r.get(4)?,
        // Only parsed values are ever stored.
        source_type: SourceType::parse(&source).unwrap_or(SourceType::Git),
        credential_id: r.get(6)?,
        has_token: r.get(7)?,
        created_by: r.get(8)?,
        created_at: r.get(9)?,
    })
}

fn check_text(field: &str, text: &str, min: usize, max: usize) -> Result<()> {
    let chars = text.chars().count();
    if chars < min || chars > max || (min > 0 && text.trim().is_empty()) {
        return Err(Error::invalid(field, format!("must be {min} to {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A token as git's askpass helper will print it: one line, no control
/// characters. An empty one is no token.
fn check_token(token: Option<String>) -> Result<Option<String>> {
    match token {
        Some(t) if t.is_empty() => Ok(None),
        Some(t) if t.len() > 4096 || t.chars().any(|c| c.is_control()) => {
            Err(Error::invalid("token", "must be at most 4096 characters on one line"))
        }
        other => Ok(other),
    }
}

/// Checks a location for its source type (see the module comment).
pub fn check_location(source_type: SourceType, location: &str, allowed: &GitPaths) -> Result<()> {
    let bad = |why: String| Err(Error::invalid("location", why));
    if location.is_empty() || location.len() > 2048 || location.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must be 1 to 2048 characters without spaces or control characters".into());
    }
    match source_type {
        SourceType::Git => {
            let path = local_path(location).map_err(|why| Error::invalid("location", why))?;
            // A repository that does not exist yet is checked by its path as
            // written; an existing one by its real path (links resolved).
            let real = std::fs::canonicalize(&path).unwrap_or(path);
            allowed_path(&real, allowed).map_err(|why| Error::invalid("location", why))
        }
        _ => {
            let Some(rest) = location.strip_prefix("https://") else {
                return bad(format!("a {} repository is an https:// URL", source_type.as_str()));
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if authority.is_empty() {
                return bad("names no host".into());
            }
            if authority.contains('@') {
                return bad("must not carry credentials; send the token in the token field, which is never shown".into());
            }
            Ok(())
        }
    }
}

/// The absolute, `..`-free path of a `git` location (`/path` or
/// `file:///path`), as written.
fn local_path(location: &str) -> std::result::Result<PathBuf, String> {
    let text = match location.strip_prefix("file://") {
        Some(rest) if !rest.starts_with('/') => return Err("a file:// URL must name an absolute path (file:///path/to/repo)".into()),
        Some(rest) if rest.contains(['%', '?', '#']) => return Err("a file:// URL must not contain %, ? or #".into()),
        Some(rest) => rest,
        None => location,
    };
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err("a git repository is an absolute path or a file:/// URL".into());
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err("must not contain . or .. segments".into());
    }
    Ok(path.to_path_buf())
}

fn allowed_path(path: &Path, allowed: &GitPaths) -> std::result::Result<(), String> {
    let dirs = match allowed {
        GitPaths::Any => return Ok(()),
        GitPaths::Under(dirs) => dirs,
    };
    if dirs.is_empty() {
        return Err("local git repositories are not allowed on this server; its operator can allow a folder with `modelreg serve --allow-git-path DIR`".into());
    }
    let inside = dirs.iter().any(|dir| {
        let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        path.starts_with(&real) || path.starts_with(dir)
    });
    if !inside {
        return Err(format!("{} is not under a folder this server allows (serve --allow-git-path)", path.display()));
    }
    Ok(())
}

/// What git is given to fetch from: an https URL as registered, or a local
/// repository's real path (links resolved), which must exist and still be
/// allowed now. The message says why not.
pub fn fetch_location(repository: &Repository, allowed: &GitPaths) -> std::result::Result<String, String> {
    if repository.source_type != SourceType::Git {
        return Ok(repository.location.clone());
    }
    let path = local_path(&repository.location)?;
    let real = std::fs::canonicalize(&path)
        .map_err(|e| format!("repository {} cannot be reached: {}: {e}", repository.name, path.display()))?;
    // Checked on the real path: a link inside an allowed folder must not
    // lead out of it.
    allowed_path(&real, allowed).map_err(|why| format!("repository {} cannot be pulled: {why}", repository.name))?;
    real.to_str().map(String::from).ok_or_else(|| format!("repository {}: {} is not UTF-8", repository.name, real.display()))
}

/// A ref as a request may name it: a branch, a tag or a commit sha. What
/// could be read as an option, a refspec or a revision expression is
/// refused, so that git only ever sees a name.
pub fn validate_ref(text: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid("ref", format!("{text:?} {why}")));
    if text.is_empty() || text.len() > 255 {
        return bad("must be 1 to 255 characters");
    }
    if text.starts_with('-') || text.starts_with('/') || text.ends_with('/') || text.ends_with('.') || text.ends_with(".lock") {
        return bad("is not a valid git ref name");
    }
    if text.contains("..") || text.contains("@{") || text.contains("//") {
        return bad("is not a valid git ref name");
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, ':' | '^' | '~' | '?' | '*' | '[' | '\\')) {
        return bad("is not a valid git ref name");
    }
    Ok(())
}

/// A `sourcePath` as a request names it: a file or folder of the
/// repository, relative to its root (a trailing `/` is dropped). An
/// absolute path or one with `..` could only escape the repository.
pub fn normalize_source_path(text: &str) -> Result<String> {
    let path = text.strip_suffix('/').unwrap_or(text);
    let bad = |why: &str| Err(Error::invalid("sourcePath", format!("{text:?} {why}")));
    if path.is_empty() || path.len() > 1024 {
        return bad("must name a file or folder of the repository (1 to 1024 characters)");
    }
    if path.starts_with('/') {
        return bad("must be relative to the repository's root");
    }
    if path.split('/').any(|s| s == "..") {
        return bad("must not contain '..': it would leave the repository");
    }
    if path.split('/').any(|s| s.is_empty() || s == ".") || path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("has an empty or '.' segment, a backslash or a control character");
    }
    Ok(path.to_string())
}

impl Registry {
    fn require_team_admin(&self, who: &Principal, what: &str) -> Result<()> {
        if !who.is_admin {
            return Err(Error::Forbidden(format!("only a team admin may {what} remote repositories")));
        }
        Ok(())
    }

    /// Registers a repository (team admins only).
    pub fn create_repository(&self, who: &Principal, new: NewRepository, allowed: &GitPaths) -> Result<Repository> {
        self.require_team_admin(who, "register")?;
        check_text("name", &new.name, 1, 255)?;
        check_text("description", &new.description, 0, 10_000)?;
        let source_type = new.source_type.ok_or_else(|| Error::invalid("sourceType", format!("is required: one of {}", SourceType::NAMES.join(", "))))?;
        check_location(source_type, &new.location, allowed)?;
        if let Some(c) = &new.credential_id {
            check_text("credentialId", c, 1, 255)?;
        }
        let token = check_token(new.token)?;
        let (id, at) = (new_id(), now());
        self.conn.execute(
            "INSERT INTO remote_repositories (id, team_id, name, description, location, source_type, credential_id, token, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![id, who.team_id, new.name, new.description, new.location, source_type.as_str(), new.credential_id, token, who.user_id, at],
        )?;
        self.get_repository(who, &id)
    }

    /// A repository of the caller's team; another team's is NotFound.
    pub fn get_repository(&self, who: &Principal, id: &str) -> Result<Repository> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM remote_repositories WHERE id = ?1 AND team_id = ?2"))?
            .query_row([id, &who.team_id], repository_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("remote repository", id))
    }

    /// The team's repositories, newest first, with the total count.
    pub fn list_repositories(&self, who: &Principal, offset: u64, limit: u64) -> Result<Page<Repository>> {
        let total: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM remote_repositories WHERE team_id = ?1")?
            .query_row([&who.team_id], |r| r.get(0))?;
        let mut args: Vec<sql::Value> = vec![who.team_id.clone().into()];
        let tail = offset_tail(offset, limit, &mut args);
        let items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM remote_repositories WHERE team_id = ? ORDER BY created_at DESC, id DESC{tail}"
            ))?
            .query_map(sql::params_from_iter(args.iter()), repository_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(offset_page(items, limit, total))
    }

    /// Changes a repository (team admins only); the location is checked
    /// against its (possibly new) source type.
    pub fn update_repository(&self, who: &Principal, id: &str, patch: RepositoryPatch, allowed: &GitPaths) -> Result<Repository> {
        let tx = self.write()?;
        let current = self.get_repository(who, id)?;
        self.require_team_admin(who, "change")?;
        let name = patch.name.unwrap_or(current.name);
        let description = patch.description.unwrap_or(current.description);
        let location = patch.location.unwrap_or(current.location);
        let source_type = patch.source_type.unwrap_or(current.source_type);
        check_text("name", &name, 1, 255)?;
        check_text("description", &description, 0, 10_000)?;
        check_location(source_type, &location, allowed)?;
        let credential_id = patch.credential_id.unwrap_or(current.credential_id);
        if let Some(c) = &credential_id {
            check_text("credentialId", c, 1, 255)?;
        }
        tx.execute(
            "UPDATE remote_repositories SET name = ?2, description = ?3, location = ?4, source_type = ?5, credential_id = ?6 WHERE id = ?1",
            params![id, name, description, location, source_type.as_str(), credential_id],
        )?;
        if let Some(token) = patch.token {
            tx.execute("UPDATE remote_repositories SET token = ?2 WHERE id = ?1", params![id, check_token(token)?])?;
        }
        tx.commit()?;
        self.get_repository(who, id)
    }

    /// Removes a repository (team admins only). Versions pulled from it
    /// keep their files and their record of where they came from.
    pub fn delete_repository(&self, who: &Principal, id: &str) -> Result<()> {
        let tx = self.write()?;
        self.get_repository(who, id)?;
        self.require_team_admin(who, "delete")?;
        tx.execute("DELETE FROM remote_repositories WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// The stored token of a repository of the caller's team, for a pull.
    pub fn repository_token(&self, who: &Principal, id: &str) -> Result<Option<String>> {
        self.conn
            .prepare_cached("SELECT token FROM remote_repositories WHERE id = ?1 AND team_id = ?2")?
            .query_row([id, &who.team_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .ok_or_else(|| Error::not_found("remote repository", id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_names_only() {
        for ok in ["main", "feature/x", "v1.2.0", "0123456789abcdef0123456789abcdef01234567", "HEAD"] {
            assert!(validate_ref(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "--upload-pack=sh", "a..b", "a:b", "a b", "x^", "x~1", "a@{1}", "/a", "a/", "a\\b", "x.lock"] {
            assert!(validate_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn source_paths_stay_in_the_repository() {
        assert_eq!(normalize_source_path("models/").unwrap(), "models");
        assert_eq!(normalize_source_path("a/b.py").unwrap(), "a/b.py");
        for bad in ["", "/", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b"] {
            assert!(normalize_source_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locations_follow_their_source_type() {
        let any = GitPaths::Any;
        assert!(check_location(SourceType::Github, "https://github.com/a/b", &any).is_ok());
        assert!(check_location(SourceType::Github, "http://github.com/a/b", &any).is_err());
        assert!(check_location(SourceType::Github, "https://user:pw@github.com/a/b", &any).is_err());
        assert!(check_location(SourceType::Github, "ext::sh -c x", &any).is_err());
        assert!(check_location(SourceType::Git, "file:///srv/repos/a", &any).is_ok());
        assert!(check_location(SourceType::Git, "relative/path", &any).is_err());
        assert!(check_location(SourceType::Git, "/srv/../etc", &any).is_err());
        assert!(check_location(SourceType::Git, "file://host/srv/a", &any).is_err());
        let none = GitPaths::Under(Vec::new());
        let message = check_location(SourceType::Git, "/srv/repos/a", &none).unwrap_err().message();
        assert!(message.contains("--allow-git-path"), "{message}");
        let some = GitPaths::Under(vec![PathBuf::from("/srv/repos")]);
        assert!(check_location(SourceType::Git, "/srv/repos/a", &some).is_ok());
        assert!(check_location(SourceType::Git, "/srv/other", &some).is_err());
        assert!(SourceType::parse("s3").unwrap_err().message().contains("not supported"));
    }
}
