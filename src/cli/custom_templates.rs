//! `modelreg custom-templates …`: DataRobot custom templates (the built-in
//! catalogue and the team's own), offline on the data directory or with
//! `--server` (the `/api/v2/customTemplates/` routes). Both paths print the
//! dialect's JSON: offline through the functions its routes call.
//! (`modelreg templates` is Paperspace's machine templates.)

use std::fs::File;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::datarobot::{deleted, folder_files};
use super::progress::progress;
use super::remote::{enc, FormPart};
use super::table::{cell, print, Columns};
use super::Target;
use crate::api::datarobot::templates::render_template;
use crate::registry::catalogue::custom_template_rules::{TemplateFilter, MODEL_TEMPLATE_TYPE};
use crate::registry::catalogue::custom_templates::admin_only;
use crate::registry::{Error, NewFile};

/// The manifest a template folder may hold: the create request's fields as
/// JSON (what the built-ins under templates/ have). It is not a file of the
/// template.
const MANIFEST: &str = "template.json";

#[derive(Subcommand)]
pub enum CustomTemplatesCommand {
    /// List the templates the team sees: the built-ins, then its own.
    #[command(after_help = "Examples:\n  \
        modelreg custom-templates list --template-sub-type Regression\n  \
        modelreg custom-templates list --search sklearn")]
    List {
        /// Only templates of this type (customModel, …).
        #[arg(long)]
        template_type: Option<String>,
        /// Only templates of this sub-type (Regression, Binary, Unstructured, …).
        #[arg(long)]
        template_sub_type: Option<String>,
        /// Only templates whose name or description contains this text.
        #[arg(long)]
        search: Option<String>,
        /// Only templates with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Include hidden templates.
        #[arg(long)]
        show_hidden: bool,
    },
    /// Show a template (its metadata and files).
    #[command(after_help = "Example:\n  modelreg custom-templates show python3-regression")]
    Show { id: String },
    /// Add a template from every file under a folder (team admins only).
    ///
    /// The folder's template.json, when it has one, holds the template's fields (name,
    /// description, templateType, templateSubType, templateMetadata, defaultEnvironment…), as
    /// the built-ins under templates/ do; it is not one of the template's files. For a
    /// customModel template, templateMetadata.templateTypeSpecificResources describes the
    /// model (targetType, targetName, labels, language).
    #[command(after_help = "Example:\n  modelreg custom-templates create templates/python3-binary --name \"Our binary starter\"")]
    Create {
        folder: PathBuf,
        /// Overrides the manifest's name.
        #[arg(long)]
        name: Option<String>,
        /// Overrides the manifest's description.
        #[arg(long)]
        description: Option<String>,
        /// Overrides the manifest's templateType (default: customModel).
        #[arg(long)]
        template_type: Option<String>,
        /// Overrides the manifest's templateSubType.
        #[arg(long)]
        template_sub_type: Option<String>,
    },
    /// Delete one of the team's templates (team admins only; built-ins are read-only).
    #[command(after_help = "Example:\n  modelreg custom-templates delete 0192f3c1-…")]
    Delete { id: String },
}

/// Custom templates: the built-ins, then the team's own.
const TEMPLATES: Columns = Columns {
    headers: &["ID", "TYPE", "SUB-TYPE", "ORIGIN", "FILES", "NAME"],
    cells: |t| {
        let origin = if t["isBuiltIn"] == true { "built-in" } else { "team" };
        let files = t["items"].as_array().map_or_else(|| "-".into(), |items| items.len().to_string());
        vec![cell(&t["id"]), cell(&t["templateType"]), cell(&t["templateSubType"]), origin.into(), files, cell(&t["name"])]
    },
};

fn template_path(id: &str) -> String {
    format!("/api/v2/customTemplates/{}/", enc(id))
}

pub fn custom_templates(target: &Target, cmd: CustomTemplatesCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        CustomTemplatesCommand::List { template_type, template_sub_type, search, tag, show_hidden } => {
            let filter = TemplateFilter { search, tag, template_type, template_sub_type, show_hidden, ..Default::default() };
            let items = match target {
                Target::Local { registry, who } => {
                    Value::Array(registry.list_custom_templates(who, &filter)?.iter().map(render_template).collect())
                }
                Target::Remote(remote) => {
                    let mut query = vec!["limit=1000".to_string()];
                    for (key, value) in [
                        ("templateType", &filter.template_type),
                        ("templateSubType", &filter.template_sub_type),
                        ("search", &filter.search),
                        ("tag", &filter.tag),
                    ] {
                        if let Some(v) = value {
                            query.push(format!("{key}={}", enc(v)));
                        }
                    }
                    if filter.show_hidden {
                        query.push("showHidden=true".into());
                    }
                    remote.get_json(&format!("/api/v2/customTemplates/?{}", query.join("&")))?["data"].take()
                }
            };
            print(&items, as_json, &TEMPLATES);
        }
        CustomTemplatesCommand::Show { id } => {
            let template = match target {
                Target::Local { registry, who } => render_template(&registry.get_custom_template(who, &id)?),
                Target::Remote(remote) => remote.get_json(&template_path(&id))?,
            };
            print(&template, as_json, &TEMPLATES);
        }
        CustomTemplatesCommand::Create { folder, name, description, template_type, template_sub_type } => {
            let mut fields = manifest(&folder)?;
            for (key, value) in [
                ("name", name),
                ("description", description),
                ("templateType", template_type),
                ("templateSubType", template_sub_type),
            ] {
                if let Some(v) = value {
                    fields.insert(key.into(), json!(v));
                }
            }
            fields.entry("templateType").or_insert_with(|| json!(MODEL_TEMPLATE_TYPE));
            let mut files = folder_files(&folder)?;
            files.retain(|(path, _)| path != MANIFEST);
            let template = match target {
                Target::Local { registry, who } => {
                    // Before storing any file, as the route does.
                    admin_only(who)?;
                    let guard = registry.upload_guard()?;
                    let mut stored = Vec::with_capacity(files.len());
                    for (path, file) in &files {
                        stored.push(NewFile { path: path.clone(), digest: registry.put_blob(&mut File::open(file)?, None)? });
                    }
                    let template = registry.create_template_from(who, &fields, Some(stored))?;
                    drop(guard);
                    render_template(&template)
                }
                Target::Remote(remote) => {
                    let mut parts: Vec<FormPart> = fields.iter().filter(|(_, v)| !v.is_null()).map(|(key, value)| FormPart::text(key, form_text(value))).collect();
                    for (path, file) in &files {
                        parts.push(FormPart::file("file", file));
                        parts.push(FormPart::text("filePath", path.as_str()));
                    }
                    let mut created = remote.send_form("POST", "/api/v2/customTemplates/", &parts, |r, len| progress(r, Some(len)))?;
                    if let Some(map) = created.as_object_mut() {
                        map.remove("customTemplateId");
                    }
                    created
                }
            };
            print(&template, as_json, &TEMPLATES);
        }
        CustomTemplatesCommand::Delete { id } => {
            match target {
                Target::Local { registry, who } => registry.delete_custom_template(who, &id)?,
                Target::Remote(remote) => {
                    remote.delete(&template_path(&id))?;
                }
            }
            deleted("custom template", &id, as_json);
        }
    }
    Ok(0)
}

/// The folder's template.json as an object (empty without one).
fn manifest(folder: &std::path::Path) -> Result<Map<String, Value>, Error> {
    let path = folder.join(MANIFEST);
    if !path.is_file() {
        return Ok(Map::new());
    }
    let text = std::fs::read_to_string(&path)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::invalid("template.json", format!("{} must hold a JSON object", path.display()))),
        Err(e) => Err(Error::invalid("template.json", format!("{} is not valid JSON: {e}", path.display()))),
    }
}

/// A manifest value as a multipart text field: strings as they are, JSON
/// (objects, booleans, numbers) as its text, which is what the route reads.
fn form_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
