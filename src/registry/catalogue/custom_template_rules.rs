//! The rules of DataRobot custom templates, whichever door asks (the
//! `customTemplates/` routes, `customModels/fromModelTemplate/`, the offline
//! CLI): the fields a template may have, its files from an upload, the list
//! filters, and the custom model and first version a `customModel` template
//! makes. The rows and the built-in catalogue are `custom_templates`; the
//! dialect only reads the request and renders the answer.
//!
//! A template's files come as one .zip or .tar.gz of its folder without a
//! `filePath`, or as `file`/`filePath` pairs like a version upload. A PATCH
//! that sends files replaces them all.

use serde_json::{json, Map, Value};

use crate::registry::catalogue::custom_models::new_model;
use crate::registry::catalogue::custom_templates::{runtime_environment, CustomTemplate, TemplateFields, TemplateUpdate, MAX_TEMPLATE_FILES};
use crate::registry::catalogue::custom_versions::{commit_version, Upload};
use crate::registry::compute::envbuild::{each_file, sniff};
use crate::registry::compute::environments::EnvironmentQuery;
use crate::registry::fields::{json_field, opt_bool_or_text, opt_str};
use crate::registry::{Digest, Error, Model, NewFile, NewModel, Principal, Registry, Result, Version};

/// The one template type modelreg makes something of.
pub const MODEL_TEMPLATE_TYPE: &str = "customModel";

/// The list filters of `GET customTemplates/` (and the CLI's list).
#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub search: Option<String>,
    pub tag: Option<String>,
    pub template_type: Option<String>,
    pub template_sub_type: Option<String>,
    pub publisher: Option<String>,
    pub category: Option<String>,
    pub show_hidden: bool,
    pub order_by: Option<String>,
}

impl Registry {
    /// The templates the caller sees that pass `filter`, in its order (by
    /// default: the built-ins, then the team's oldest first).
    pub fn list_custom_templates(&self, who: &Principal, filter: &TemplateFilter) -> Result<Vec<CustomTemplate>> {
        let metadata_is = |t: &CustomTemplate, key: &str, want: &Option<String>| {
            want.as_ref().is_none_or(|w| t.fields.template_metadata.get(key).and_then(Value::as_str) == Some(w.as_str()))
        };
        let mut all: Vec<CustomTemplate> = self
            .custom_templates(who)?
            .into_iter()
            .filter(|t| filter.show_hidden || !t.fields.is_hidden)
            .filter(|t| filter.template_type.as_ref().is_none_or(|w| *w == t.fields.template_type))
            .filter(|t| filter.template_sub_type.as_ref().is_none_or(|w| *w == t.fields.template_sub_type))
            .filter(|t| {
                filter.search.as_ref().is_none_or(|s| {
                    let s = s.to_lowercase();
                    t.fields.name.to_lowercase().contains(&s) || t.fields.description.to_lowercase().contains(&s)
                })
            })
            .filter(|t| {
                filter.tag.as_ref().is_none_or(|tag| {
                    t.fields.template_metadata.get("tags").and_then(Value::as_array).is_some_and(|tags| tags.iter().any(|v| v.as_str() == Some(tag)))
                })
            })
            .filter(|t| metadata_is(t, "publisher", &filter.publisher) && metadata_is(t, "category", &filter.category))
            .collect();
        // The seed's names and client 3.20's (snake_case) for the same orders.
        let key: fn(&CustomTemplate) -> String = match filter.order_by.as_deref().map(|o| o.trim_start_matches('-')) {
            None => return Ok(all),
            Some("name") => |t| t.fields.name.to_lowercase(),
            Some("templateType" | "template_type") => |t| t.fields.template_type.clone(),
            Some("templateSubType" | "template_sub_type") => |t| t.fields.template_sub_type.clone(),
            Some(other) => {
                return Err(Error::invalid("orderBy", format!("must be name, templateType or templateSubType, optionally with a leading '-'; got {other:?}")))
            }
        };
        all.sort_by_key(key);
        if filter.order_by.as_deref().is_some_and(|o| o.starts_with('-')) {
            all.reverse();
        }
        Ok(all)
    }

    /// Creates a template from a create request's fields and files (whose
    /// blobs are stored under an upload guard the caller holds).
    pub fn create_template_from(&self, who: &Principal, body: &Map<String, Value>, files: Option<Vec<NewFile>>) -> Result<CustomTemplate> {
        let fields = template_fields(body, None)?;
        let files = files.filter(|f| !f.is_empty()).ok_or_else(|| {
            Error::invalid("file", "a template needs files: one .zip or .tar.gz of its folder, or file/filePath pairs")
        })?;
        self.create_custom_template(who, fields, files)
    }

    /// Applies a PATCH's fields (and files, which replace all of them) to
    /// the template as it is inside the write transaction.
    pub fn update_template_from(
        &self,
        who: &Principal,
        id: &str,
        body: &Map<String, Value>,
        files: Option<Vec<NewFile>>,
    ) -> Result<CustomTemplate> {
        self.update_custom_template(who, id, |current| Ok(TemplateUpdate { fields: template_fields(body, Some(&current.fields))?, files }))
    }

    /// The template's files from an upload's stored parts: `file`/`filePath`
    /// pairs, or one archive (`file` alone) whose regular files become the
    /// template's, at their paths in it. `limit` caps the unpacked bytes.
    /// None when the upload sent no files.
    pub fn template_upload_files(&self, files: Vec<Digest>, paths: Vec<String>, limit: u64) -> Result<Option<Vec<NewFile>>> {
        match (files.len(), paths.len()) {
            (0, 0) => Ok(None),
            (1, 0) => self.unpack_template_archive(&files[0], limit).map(Some),
            (f, p) if f == p => Ok(Some(paths.into_iter().zip(files).map(|(path, digest)| NewFile { path, digest }).collect())),
            (f, p) => Err(Error::invalid(
                "filePath",
                format!("every file needs a filePath (or send one .zip or .tar.gz of the folder without any): got {f} files and {p} paths"),
            )),
        }
    }

    /// Stores every regular file of an archive blob as a blob of its own.
    fn unpack_template_archive(&self, archive: &Digest, limit: u64) -> Result<Vec<NewFile>> {
        let mut file = self.open_blob(&archive.sha256)?;
        let format = sniff(&mut file)?.ok_or_else(|| {
            Error::invalid("file", "a single file without a filePath must be a .zip or .tar.gz of the template's folder; send filePath to upload one plain file")
        })?;
        let mut out = Vec::new();
        let mut left = limit;
        let mut failure = None;
        let walked = each_file(&mut file, format, &mut |path, reader| {
            if out.len() >= MAX_TEMPLATE_FILES {
                return Err(format!("the archive holds more than {MAX_TEMPLATE_FILES} files"));
            }
            match self.put_blob(reader, Some(left)) {
                Ok(digest) => {
                    left = left.saturating_sub(digest.size);
                    out.push(NewFile { path: path.to_string(), digest });
                    Ok(())
                }
                Err(e) => {
                    let message = e.message();
                    failure = Some(e);
                    Err(message)
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        walked.map_err(|why| Error::invalid("file", format!("the template archive cannot be used: {why}")))?;
        Ok(out)
    }

    /// Makes a custom model and its first version from a
    /// `fromModelTemplate` body: the model as the template describes it
    /// (`template_model`) with the request's resourceBundleId and
    /// secretConfigId, the version from the template's files on
    /// `baseEnvironmentId`/`baseEnvironmentVersionId` when sent, else on the
    /// template's environment (`template_environment`). If the version
    /// cannot be made, the model is deleted again.
    pub fn model_from_template(&self, who: &Principal, body: &Map<String, Value>) -> Result<(Model, Version)> {
        let required = |field: &str| -> Result<String> {
            opt_str(body, field, 100)?.filter(|s| !s.trim().is_empty()).ok_or_else(|| Error::invalid(field, "is required"))
        };
        let template_id = required("templateId")?;
        let bundle = required("resourceBundleId")?;
        let secret = required("secretConfigId")?;
        let mut fields = Map::new();
        for key in ["baseEnvironmentId", "baseEnvironmentVersionId"] {
            if let Some(v) = opt_str(body, key, 100)?.filter(|s| !s.is_empty()) {
                fields.insert(key.into(), json!(v));
            }
        }
        // Held from before the template's files are read until the version
        // that uses their blobs commits: gc cannot sweep them in between.
        let guard = self.upload_guard()?;
        let template = match self.get_custom_template(who, &template_id) {
            Ok(t) => t,
            Err(Error::NotFound(_)) => return Err(invalid_template(format!("there is no template {template_id}"))),
            Err(e) => return Err(e),
        };
        if template.fields.template_type != MODEL_TEMPLATE_TYPE {
            return Err(invalid_template(format!(
                "template {template_id} is a {} template; only {MODEL_TEMPLATE_TYPE} templates make custom models",
                template.fields.template_type
            )));
        }
        if !template.fields.enabled {
            return Err(invalid_template(format!("template {template_id} is disabled")));
        }
        let mut new = template_model(&template.fields).map_err(|e| invalid_template(e.message()))?;
        new.attrs.insert("resourceBundleId".into(), json!(bundle));
        new.attrs.insert("secretConfigId".into(), json!(secret));
        // The seed's enum for modelType is nimModel or invalid; no modelreg
        // template is a NIM model.
        new.attrs.insert("template".into(), json!({"templateId": template.id, "modelType": "invalid"}));
        if fields.is_empty() {
            fields = self.template_environment(who, &template)?;
        }
        fields.insert("resourceBundleId".into(), json!(bundle));
        let (paths, digests) = self.template_file_digests(&template)?.into_iter().unzip();
        let upload = Upload { files: digests, paths, fields, ..Default::default() };
        let model = self.create_owned_model(who, new)?;
        match commit_version(self, who, &model.id, upload, false) {
            Ok(version) => {
                drop(guard);
                Ok((self.get_model(who, &model.id)?, version))
            }
            Err(e) => {
                // Best effort: a model without its version is not what was asked for.
                let _ = self.delete_model(who, &model.id);
                Err(e)
            }
        }
    }

    /// The environment a model from `template` runs on when the request
    /// names none: the template's `defaultEnvironment` when the caller's
    /// team has it (its version, or its newest successful build), else the
    /// team's newest python environment (custom model use case) with a
    /// successful build, as a user would pick one. Without either, a 422
    /// that says to pass `baseEnvironmentId`.
    fn template_environment(&self, who: &Principal, template: &CustomTemplate) -> Result<Map<String, Value>> {
        let default = &template.fields.default_environment;
        let (env_id, version_id) = (default["environmentId"].as_str(), default["environmentVersionId"].as_str());
        let pair = |env: &str, version: Option<&str>| {
            let mut fields = Map::new();
            fields.insert("baseEnvironmentId".into(), json!(env));
            if let Some(v) = version {
                fields.insert("baseEnvironmentVersionId".into(), json!(v));
            }
            fields
        };
        if let Some(vid) = version_id {
            match self.usable_env_version(who, vid) {
                Ok(v) if env_id.is_none_or(|e| e == v.environment_id) => return Ok(pair(&v.environment_id, Some(vid))),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(env) = env_id {
            match self.get_environment(who, env) {
                Ok(_) if self.latest_env_version(env, true)?.is_some() => return Ok(pair(env, None)),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let query = EnvironmentQuery { use_case: Some("customModel".into()), limit: 1000, ..Default::default() };
        for env in self.list_environments(who, &query)?.items.iter().filter(|e| e.programming_language == "python") {
            if self.latest_env_version(&env.id, true)?.is_some() {
                return Ok(pair(&env.id, None));
            }
        }
        Err(Error::invalid(
            "baseEnvironmentId",
            format!(
                "template {} runs on environment {}, which your team does not have, and your team has no python environment with a \
                 successfully built version: pass baseEnvironmentId (or baseEnvironmentVersionId) of the environment to run the model on",
                template.id,
                env_id.unwrap_or("(none)")
            ),
        ))
    }
}

/// A create's (`current` None) or PATCH's fields, from multipart text or
/// JSON values. Strings the client reads must be non-blank; a
/// `customModel` template must describe a model `new_model` accepts.
fn template_fields(body: &Map<String, Value>, current: Option<&TemplateFields>) -> Result<TemplateFields> {
    let text = |field: &str, max: usize| -> Result<Option<String>> {
        match opt_str(body, field, max)? {
            Some(s) if s.trim().is_empty() => Err(Error::invalid(field, "must not be blank")),
            other => Ok(other),
        }
    };
    let required = |field: &str, max: usize, current: Option<&String>| -> Result<String> {
        text(field, max)?.or_else(|| current.cloned()).ok_or_else(|| Error::invalid(field, "is required"))
    };
    let fields = TemplateFields {
        name: required("name", 255, current.map(|c| &c.name))?,
        description: required("description", 10_000, current.map(|c| &c.description))?,
        template_type: required("templateType", 100, current.map(|c| &c.template_type))?,
        template_sub_type: required("templateSubType", 100, current.map(|c| &c.template_sub_type))?,
        template_metadata: match json_field(body, "templateMetadata")? {
            Some(Value::Object(m)) => checked_metadata(m)?,
            Some(_) => return Err(Error::invalid("templateMetadata", "must be a JSON object")),
            None => current.map(|c| c.template_metadata.clone()).unwrap_or_default(),
        },
        default_environment: match json_field(body, "defaultEnvironment")? {
            Some(v) => checked_environment(&v)?,
            None => current.map(|c| c.default_environment.clone()).unwrap_or_else(runtime_environment),
        },
        default_resource_bundle_id: text("defaultResourceBundleId", 100)?.or_else(|| current.and_then(|c| c.default_resource_bundle_id.clone())),
        enabled: opt_bool_or_text(body, "enabled")?.or(current.map(|c| c.enabled)).unwrap_or(true),
        is_hidden: opt_bool_or_text(body, "isHidden")?.or(current.map(|c| c.is_hidden)).unwrap_or(false),
    };
    if fields.template_type == MODEL_TEMPLATE_TYPE {
        template_model(&fields)?;
    }
    Ok(fields)
}

/// `{environmentId, environmentVersionId}`, both non-blank (the client
/// requires both).
fn checked_environment(value: &Value) -> Result<Value> {
    let bad = || Error::invalid("defaultEnvironment", "must be {\"environmentId\": …, \"environmentVersionId\": …} with two non-blank ids");
    let Some(env) = value.as_object() else { return Err(bad()) };
    let id = |key: &str| env.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty() && s.len() <= 100).map(String::from);
    match (id("environmentId"), id("environmentVersionId")) {
        (Some(e), Some(v)) => Ok(json!({"environmentId": e, "environmentVersionId": v})),
        _ => Err(bad()),
    }
}

/// The metadata with the keys `dr.TemplateMetadata` types checked as it
/// checks them (null is fine for each: the client drops nulls), so that no
/// stored template breaks the client's parsing. Other keys are kept.
fn checked_metadata(metadata: Map<String, Value>) -> Result<Map<String, Value>> {
    let bad = |key: &str, what: &str| Error::invalid("templateMetadata", format!("{key} must be {what}"));
    let non_blank = |v: &Value| v.as_str().is_some_and(|s| !s.trim().is_empty());
    for (key, value) in &metadata {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "readme" | "featureFlag" | "previewImage" if !non_blank(value) => return Err(bad(key, "a non-blank string")),
            "tags" | "classLabels" | "resourceBundleIds" if !value.as_array().is_some_and(|a| a.iter().all(non_blank)) => {
                return Err(bad(key, "a list of non-blank strings"))
            }
            "source" | "templateTypeSpecificResources" | "environmentVariables" | "readinessProbe" | "livenessProbe" | "startupProbe"
                if !value.is_object() =>
            {
                return Err(bad(key, "an object"))
            }
            "customMetricMetadata" => {
                let ok = value.as_object().is_some_and(|m| {
                    ["units", "directionality", "type", "timeStep"].iter().all(|k| m.get(*k).is_some_and(non_blank))
                        && m.get("isModelSpecific").is_some_and(Value::is_boolean)
                });
                if !ok {
                    return Err(bad(key, "an object with non-blank units, directionality, type and timeStep and a boolean isModelSpecific"));
                }
            }
            _ => {}
        }
    }
    Ok(metadata)
}

/// The model a `customModel` template makes: its
/// `templateMetadata.templateTypeSpecificResources` read as a
/// `CustomModelCreate` body (targetType, targetName, labels, language…),
/// named and described as the template. Multiclass labels may also come
/// from `templateMetadata.classLabels`.
fn template_model(fields: &TemplateFields) -> Result<NewModel> {
    let mut body = fields.template_metadata.get("templateTypeSpecificResources").and_then(Value::as_object).cloned().unwrap_or_default();
    body.insert("name".into(), json!(fields.name));
    body.insert("description".into(), json!(fields.description));
    if !body.contains_key("classLabels") {
        if let Some(labels) = fields.template_metadata.get("classLabels") {
            body.insert("classLabels".into(), labels.clone());
        }
    }
    new_model(&body).map_err(|e| {
        let why = match &e {
            Error::Invalid { field, message } => format!("{field} {message}"),
            other => other.message(),
        };
        Error::invalid("templateMetadata", format!("templateTypeSpecificResources does not describe a custom model: {why}"))
    })
}

/// The seed's 422 "Invalid template data", saying why.
fn invalid_template(why: String) -> Error {
    Error::Unprocessable { message: format!("Invalid template data: {why}"), details: json!({"errors": {"templateId": why}}) }
}
