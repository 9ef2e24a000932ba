//! The version workflow of `modelreg models …` and `modelreg versions …`
//! (issue 24): aliases, tags, lineage and metrics, status, deletion, and the
//! detail views that show them. Offline it calls the registry and renders
//! with modelreg's own API (`api::modelreg_models`); with `--server` it calls
//! those routes, so both print the same JSON.

use serde_json::{json, Map, Value};

use super::local::Local;
use super::remote::{enc, Remote};
use super::table::{cell, pairs, size, Table};
use super::version_handle;
use crate::api::modelreg_models;
use crate::registry::catalogue::weight_facts;
use crate::registry::{Error, VersionRef, VersionStatus};

pub trait Workflow {
    /// One version with metrics, lineage, tags and aliases.
    fn version_detail(&self, model: &str, version: &str) -> Result<Value, Error>;
    /// `{"lineage": …, "metrics": …, "status": …}` applied to a version.
    fn update_version(
        &self,
        model: &str,
        version: &str,
        body: Map<String, Value>,
    ) -> Result<Value, Error>;
    fn delete_version(&self, model: &str, version: &str) -> Result<(), Error>;
    fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<Value, Error>;
    fn delete_alias(&self, model: &str, alias: &str) -> Result<(), Error>;
    /// Sets (`Some(value)`) or removes a tag of a model, or of one of its
    /// versions; answers `{"tags": …}`.
    fn tag(
        &self,
        model: &str,
        version: Option<&str>,
        key: &str,
        value: Option<&str>,
    ) -> Result<Value, Error>;
}

impl Workflow for Local {
    fn version_detail(&self, handle: &str, version: &str) -> Result<Value, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let version = version_handle::find_local(&self.registry, &self.who, &model.id, version)?;
        modelreg_models::version_detail(&self.registry, &self.who, &model, &version)
    }

    fn update_version(
        &self,
        handle: &str,
        version: &str,
        body: Map<String, Value>,
    ) -> Result<Value, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let version = version_handle::find_local(&self.registry, &self.who, &model.id, version)?;
        let updated = modelreg_models::apply_version_update(
            &self.registry,
            &self.who,
            &model,
            &version,
            &body,
        )?;
        modelreg_models::version_detail(&self.registry, &self.who, &model, &updated)
    }

    fn delete_version(&self, handle: &str, version: &str) -> Result<(), Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let version = version_handle::find_local(&self.registry, &self.who, &model.id, version)?;
        self.registry
            .delete_version(&self.who, &model.id, &VersionRef::Number(version.number))
            .map(|_| ())
    }

    fn set_alias(&self, handle: &str, alias: &str, version: &str) -> Result<Value, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let version = version_handle::find_local(&self.registry, &self.who, &model.id, version)?;
        Ok(json!(self.registry.set_alias(
            &self.who,
            &model.id,
            alias,
            version.number
        )?))
    }

    fn delete_alias(&self, handle: &str, alias: &str) -> Result<(), Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        self.registry.delete_alias(&self.who, &model.id, alias)
    }

    fn tag(
        &self,
        handle: &str,
        version: Option<&str>,
        key: &str,
        value: Option<&str>,
    ) -> Result<Value, Error> {
        let model = self.registry.resolve_model(&self.who, handle)?;
        let (registry, who) = (&self.registry, &self.who);
        let tags = match version {
            None => match value {
                Some(value) => registry.set_model_tag(who, &model.id, key, value)?,
                None => registry.delete_model_tag(who, &model.id, key)?,
            },
            Some(version) => {
                let by = VersionRef::Number(
                    version_handle::find_local(registry, who, &model.id, version)?.number,
                );
                match value {
                    Some(value) => registry.set_version_tag(who, &model.id, &by, key, value)?,
                    None => registry.delete_version_tag(who, &model.id, &by, key)?,
                }
            }
        };
        Ok(json!({"tags": tags}))
    }
}

impl Remote {
    /// `/api/modelreg/v1/models/{model}/versions/{version}`: modelreg's
    /// routes take a number, a client's label, an alias or `latest`; an id
    /// or a DataRobot label is looked up first.
    fn version_path(&self, model: &str, version: &str) -> Result<String, Error> {
        let version = version.trim();
        let handle = match VersionRef::parse(version) {
            VersionRef::Number(_) | VersionRef::Alias(_) | VersionRef::Latest => {
                version.to_string()
            }
            VersionRef::Label(_) => {
                version_handle::find_remote(self, &self.model_id(model)?, version)?
                    .1
                    .to_string()
            }
        };
        Ok(format!(
            "/api/modelreg/v1/models/{}/versions/{}",
            enc(model),
            enc(&handle)
        ))
    }
}

impl Workflow for Remote {
    fn version_detail(&self, model: &str, version: &str) -> Result<Value, Error> {
        self.get_json(&self.version_path(model, version)?)
    }

    fn update_version(
        &self,
        model: &str,
        version: &str,
        body: Map<String, Value>,
    ) -> Result<Value, Error> {
        self.patch_json(
            &self.version_path(model, version)?,
            Some(&Value::Object(body)),
        )
    }

    fn delete_version(&self, model: &str, version: &str) -> Result<(), Error> {
        self.delete(&self.version_path(model, version)?).map(|_| ())
    }

    fn set_alias(&self, model: &str, alias: &str, version: &str) -> Result<Value, Error> {
        let number = self.version_detail(model, version)?["number"].clone();
        self.put_json(
            &format!(
                "/api/modelreg/v1/models/{}/aliases/{}",
                enc(model),
                enc(alias)
            ),
            &json!({"version": number}),
        )
    }

    fn delete_alias(&self, model: &str, alias: &str) -> Result<(), Error> {
        self.delete(&format!(
            "/api/modelreg/v1/models/{}/aliases/{}",
            enc(model),
            enc(alias)
        ))
        .map(|_| ())
    }

    fn tag(
        &self,
        model: &str,
        version: Option<&str>,
        key: &str,
        value: Option<&str>,
    ) -> Result<Value, Error> {
        let owner = match version {
            None => format!("/api/modelreg/v1/models/{}", enc(model)),
            Some(version) => self.version_path(model, version)?,
        };
        let path = format!("{owner}/tags/{}", enc(key));
        match value {
            Some(value) => self.put_json(&path, &json!({"value": value})),
            None => self.delete(&path),
        }
    }
}

/// `KEY=VALUE` arguments of `tag` commands.
pub fn parse_assignments(args: &[String]) -> Result<Vec<(String, String)>, Error> {
    args.iter()
        .map(|arg| {
            arg.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    Error::invalid(
                        "tag",
                        format!("must be KEY=VALUE, got {arg:?} (use --remove KEY to remove one)"),
                    )
                })
        })
        .collect()
}

/// Sets and removes tags one by one, and answers the tags as they end up.
pub fn retag(
    workflow: &dyn Workflow,
    model: &str,
    version: Option<&str>,
    set: &[String],
    remove: &[String],
) -> Result<Value, Error> {
    let set = parse_assignments(set)?;
    if set.is_empty() && remove.is_empty() {
        return Err(Error::invalid(
            "tag",
            "give KEY=VALUE to set a tag or --remove KEY to remove one",
        ));
    }
    let mut last = Value::Null;
    for (key, value) in &set {
        last = workflow.tag(model, version, key, Some(value))?;
    }
    for key in remove {
        last = workflow.tag(model, version, key, None)?;
    }
    Ok(last)
}

/// The lineage and metrics flags of `versions update`, as the API's body.
pub struct VersionUpdate {
    pub source_commit: Option<String>,
    pub dataset: Option<String>,
    pub run_url: Option<String>,
    /// `N`, `@alias`, or `MODEL@HANDLE` for a version of another model.
    pub parent: Option<String>,
    pub clear: Vec<String>,
    pub metrics: Vec<String>,
}

impl VersionUpdate {
    pub fn body(self) -> Result<Map<String, Value>, Error> {
        let mut lineage = Map::new();
        for (field, value) in [
            ("source_commit", self.source_commit),
            ("dataset", self.dataset),
            ("run_url", self.run_url),
        ] {
            if let Some(value) = value {
                lineage.insert(field.into(), json!(value));
            }
        }
        if let Some(parent) = self.parent {
            let parent = match version_handle::split_model_at(&parent) {
                Some((model, handle)) => json!({"model": model, "version": handle}),
                None => json!({"version": parent}),
            };
            lineage.insert("parent_version".into(), parent);
        }
        for field in self.clear {
            let field = field.replace('-', "_");
            let field = if field == "parent" {
                "parent_version".to_string()
            } else {
                field
            };
            lineage.insert(field, Value::Null);
        }
        let mut body = Map::new();
        if !lineage.is_empty() {
            body.insert("lineage".into(), Value::Object(lineage));
        }
        let mut metrics = Map::new();
        for (name, value) in parse_assignments(&self.metrics)
            .map_err(|_| Error::invalid("metric", "must be NAME=VALUE"))?
        {
            // A number where it reads as one: metrics are compared and charted.
            let value = value
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or(Value::String(value));
            metrics.insert(name, value);
        }
        if !metrics.is_empty() {
            body.insert("metrics".into(), Value::Object(metrics));
        }
        if body.is_empty() {
            return Err(Error::invalid("lineage", "nothing to change: give --source-commit, --dataset, --run-url, --parent, --clear or --metric"));
        }
        Ok(body)
    }
}

/// `versions publish`/`deprecate`: the status as the API's body.
pub fn status_body(status: VersionStatus) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("status".into(), json!(status.as_str()));
    body
}

fn aliases_cell(aliases: &Value) -> String {
    let names: Vec<String> = aliases
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|a| format!("@{a}"))
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(" ")
    }
}

/// One version as `versions show` prints it.
pub fn print_version(v: &Value) {
    let lineage = &v["lineage"];
    let parent = match &lineage["parent_version"] {
        Value::Null => "-".to_string(),
        p if p["deleted"] == true => format!("{} (deleted)", cell(&p["id"])),
        p => format!("{}@{}", cell(&p["model"]), cell(&p["version"])),
    };
    let rows = [
        ("version", cell(&v["number"])),
        ("id", cell(&v["id"])),
        ("label", cell(&v["label"])),
        ("status", cell(&v["status"])),
        ("aliases", aliases_cell(&v["aliases"])),
        ("tags", pairs(&v["tags"])),
        ("description", cell(&v["description"])),
        ("created", cell(&v["created_at"])),
        ("size", size(&v["size"])),
        ("source commit", cell(&lineage["source_commit"])),
        ("dataset", cell(&lineage["dataset"])),
        ("run", cell(&lineage["run_url"])),
        ("parent", parent),
    ];
    for (name, value) in rows {
        println!("{name:<14} {value}");
    }
    if let Some(metrics) = v["metrics"].as_object().filter(|m| !m.is_empty()) {
        println!();
        let mut table = Table::new(&["METRIC", "VALUE"]);
        for (name, value) in metrics {
            table.row(vec![name.clone(), cell(value)]);
        }
        table.print();
    }
    println!();
    let mut files = Table::new(&["FILE", "SIZE", "SHA256", "WEIGHTS"]);
    for f in v["files"].as_array().into_iter().flatten() {
        files.row(vec![
            cell(&f["path"]),
            size(&f["size"]),
            cell(&f["sha256"]),
            // What a safetensors or GGUF file's header says.
            if f["weight_facts"].is_object() { weight_facts::summary(&f["weight_facts"]) } else { "-".into() },
        ]);
    }
    files.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_flags_become_the_api_body() {
        let update = VersionUpdate {
            source_commit: Some("abc".into()),
            dataset: None,
            run_url: None,
            parent: Some("base-model@champion".into()),
            clear: vec!["run-url".into()],
            metrics: vec!["auc=0.93".into(), "note=good".into()],
        };
        let body = Value::Object(update.body().unwrap());
        assert_eq!(body["lineage"]["source_commit"], "abc");
        assert_eq!(
            body["lineage"]["parent_version"],
            json!({"model": "base-model", "version": "@champion"})
        );
        assert_eq!(body["lineage"]["run_url"], Value::Null);
        assert_eq!(body["metrics"], json!({"auc": 0.93, "note": "good"}));
    }
}
