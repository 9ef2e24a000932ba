//! `modelreg repositories …`: remote git repositories that versions are
//! pulled from (`custom-models versions create --from-repository`),
//! offline on the data directory or against a server with `--server` (the
//! `/api/v2/remoteRepositories/` routes). A token is read from a file or
//! stdin (`--token-file`), never from the command line, where any user of
//! the host could read it in the process list.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::datarobot::{deleted, ListPage};
use super::remote::enc;
use super::table::{cell, print, Columns};
use super::Target;
use crate::api::datarobot::repositories::{new_repository, remove_repository, render_repository};
use crate::registry::catalogue::repositories::GitPaths;
use crate::registry::Error;

#[derive(Subcommand)]
pub enum RepositoriesCommand {
    /// Register a git repository (team admins).
    ///
    /// --location is an https:// URL (github, gitlab-cloud, bitbucket-server) or, for
    /// --source-type git, a local path or file:/// URL (a server allows those only under its
    /// --allow-git-path folders; offline, anywhere).
    #[command(after_help = "Examples:\n  \
        modelreg repositories add --name models --location https://github.com/acme/models --token-file ~/.github-token\n  \
        modelreg repositories add --name local --location /srv/git/models.git")]
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        location: String,
        /// git, github, gitlab-cloud or bitbucket-server (default: git for a path or file://
        /// URL, github or gitlab-cloud for github.com or gitlab.com).
        #[arg(long)]
        source_type: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// A file holding the access token of a private repository (`-`: stdin). The token
        /// is stored and never shown again.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// List the team's repositories, newest first.
    #[command(after_help = "Example:\n  modelreg repositories list")]
    List {
        #[command(flatten)]
        page: ListPage,
    },
    /// Show a repository.
    #[command(after_help = "Example:\n  modelreg repositories show 0192f3c1-…")]
    Show { id: String },
    /// Remove a repository (team admins). Versions pulled from it keep their files.
    #[command(after_help = "Example:\n  modelreg repositories remove 0192f3c1-…")]
    Remove { id: String },
}

fn repository_path(id: &str) -> String {
    format!("/api/v2/remoteRepositories/{}/", enc(id))
}

/// Remote repositories, newest first.
const REPOSITORIES: Columns = Columns {
    headers: &["NAME", "SOURCE", "LOCATION", "TOKEN", "CREATED", "ID"],
    cells: |r| {
        let token = if r["hasToken"] == true { "yes" } else { "no" };
        vec![cell(&r["name"]), cell(&r["sourceType"]), cell(&r["location"]), token.into(), cell(&r["created"]), cell(&r["id"])]
    },
};

/// The source type a location implies when none is given.
fn infer_source_type(location: &str) -> Result<&'static str, Error> {
    if location.starts_with('/') || location.starts_with("file://") {
        return Ok("git");
    }
    if location.starts_with("https://github.com/") {
        return Ok("github");
    }
    if location.starts_with("https://gitlab.com/") {
        return Ok("gitlab-cloud");
    }
    Err(Error::invalid("source-type", "cannot be told from the location: give --source-type github, gitlab-cloud or bitbucket-server"))
}

/// A token from a file or stdin, without its line end.
fn read_token(path: &Path) -> Result<String, Error> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| Error::invalid("token-file", format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

pub fn repositories(target: &Target, cmd: RepositoriesCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        RepositoriesCommand::Add { name, location, source_type, description, token_file } => {
            let source_type = match source_type {
                Some(s) => s,
                None => infer_source_type(&location)?.to_string(),
            };
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("location".into(), json!(location));
            body.insert("sourceType".into(), json!(source_type));
            body.insert("description".into(), json!(description));
            if let Some(path) = token_file {
                body.insert("token".into(), json!(read_token(&path)?));
            }
            let repository = match target {
                Target::Local { registry, who } => {
                    // The operator's own command: local repositories anywhere.
                    render_repository(&registry.create_repository(who, new_repository(&body)?, &GitPaths::Any)?)
                }
                Target::Remote(remote) => remote.post_json("/api/v2/remoteRepositories/", &Value::Object(body))?,
            };
            print(&repository, as_json, &REPOSITORIES);
        }
        RepositoriesCommand::List { page } => {
            let (offset, limit) = page.offset_limit();
            let items = match target {
                Target::Local { registry, who } => {
                    Value::Array(registry.list_repositories(who, offset, limit)?.items.iter().map(render_repository).collect())
                }
                Target::Remote(remote) => remote.get_json(&format!("/api/v2/remoteRepositories/?offset={offset}&limit={limit}"))?["data"].take(),
            };
            print(&items, as_json, &REPOSITORIES);
        }
        RepositoriesCommand::Show { id } => {
            let repository = match target {
                Target::Local { registry, who } => render_repository(&registry.get_repository(who, &id)?),
                Target::Remote(remote) => remote.get_json(&repository_path(&id))?,
            };
            print(&repository, as_json, &REPOSITORIES);
        }
        RepositoriesCommand::Remove { id } => {
            match target {
                Target::Local { registry, who } => remove_repository(registry, who, &id)?,
                Target::Remote(remote) => {
                    remote.delete(&repository_path(&id))?;
                }
            }
            deleted("remote repository", &id, as_json);
        }
    }
    Ok(0)
}
