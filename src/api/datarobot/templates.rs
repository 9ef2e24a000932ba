//! Custom templates (`/customTemplates/…`, the shape `dr.CustomTemplate`
//! reads) and custom models made from them (`customModels/fromModelTemplate/`).
//!
//! Built-ins are read-only and every team sees them; a team's admins add,
//! change and delete their own. A template's files come as one .zip or
//! .tar.gz of its folder without a `filePath` (what the client sends:
//! `file`, named `template-content`), or as `file`/`filePath` pairs like a
//! version upload. What a template may hold and what a model from one is
//! are decided in `registry::catalogue::custom_template_rules`; this file
//! reads the requests and renders the answers.

use serde_json::{json, Map, Value};

use super::versions::read_upload;
use super::{page_of, paging, query_bool};
use crate::http::{Ctx, Request, Response, Router};
use crate::registry::catalogue::custom_template_rules::TemplateFilter;
use crate::registry::catalogue::custom_templates::{admin_only, CustomTemplate};
use crate::registry::catalogue::custom_versions::Upload;
use crate::registry::{Error, NewFile, Result};

pub fn routes(router: &mut Router) {
    let d = &super::DATAROBOT;
    router.add(d, "GET", "/api/v2/customTemplates/", list);
    router.add(d, "POST", "/api/v2/customTemplates/", create);
    // Client 3.20's create() joins "customTemplates/" and "/": it posts here.
    router.add(d, "POST", "/api/v2/customTemplates//", create);
    router.add(d, "GET", "/api/v2/customTemplates/{id}/", get);
    router.add(d, "PATCH", "/api/v2/customTemplates/{id}/", update);
    router.add(d, "DELETE", "/api/v2/customTemplates/{id}/", delete);
    router.add(d, "GET", "/api/v2/customTemplates/{id}/files/{item}/", file);
    router.add(d, "POST", "/api/v2/customModels/fromModelTemplate/", from_template);
}

/// `GET …/files/{item}/` answers files of at most this many bytes (the
/// content travels inside a JSON body).
const MAX_SHOWN_BYTES: u64 = 10 * 1024 * 1024;

// ----------------------------------------------------------------------------
// Reading and listing.

fn list(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let paging = paging(req)?;
    let text = |name: &str| req.query(name).filter(|s| !s.is_empty()).map(String::from);
    let filter = TemplateFilter {
        search: text("search"),
        tag: text("tag"),
        template_type: text("templateType"),
        template_sub_type: text("templateSubType"),
        publisher: text("publisher"),
        category: text("category"),
        show_hidden: query_bool(req, "showHidden")?.unwrap_or(false),
        order_by: text("orderBy"),
    };
    // A team holds at most MAX_TEAM_TEMPLATES: paged in memory.
    let all = ctx.registry.list_custom_templates(&who, &filter)?.iter().map(render_template).collect();
    Ok(Response::json(200, &page_of(req, paging, all)))
}

fn get(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let template = ctx.registry.get_custom_template(req.who()?, req.param("id"))?;
    Ok(Response::json(200, &render_template(&template)))
}

/// `{id, name, filePath, content}`: the text of one file (what the client's
/// `download_content` reads). A file that is not UTF-8 text is a 422.
fn file(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let template = ctx.registry.get_custom_template(req.who()?, req.param("id"))?;
    let item = req.param("item");
    let file = template.files.iter().find(|f| f.id == item).ok_or_else(|| Error::not_found("template file", item))?;
    let bytes = ctx.registry.template_file_bytes(file, MAX_SHOWN_BYTES)?;
    let content = String::from_utf8(bytes).map_err(|_| Error::unprocessable(format!("{} is not UTF-8 text", file.path)))?;
    Ok(Response::json(200, &json!({"id": file.id, "name": file.path, "filePath": file.path, "content": content})))
}

/// The template as `dr.CustomTemplate` reads it (every key it requires,
/// non-blank), plus `isBuiltIn` and the creator and times.
pub(crate) fn render_template(t: &CustomTemplate) -> Value {
    let items: Vec<Value> = t.files.iter().map(|f| json!({"id": f.id, "name": f.path, "filePath": f.path, "fileSize": f.size})).collect();
    json!({
        "id": t.id,
        "name": t.fields.name,
        "description": t.fields.description,
        "enabled": t.fields.enabled,
        "isHidden": t.fields.is_hidden,
        "templateType": t.fields.template_type,
        "templateSubType": t.fields.template_sub_type,
        "templateMetadata": t.fields.template_metadata,
        "defaultEnvironment": t.fields.default_environment,
        "defaultResourceBundleId": t.fields.default_resource_bundle_id,
        "items": items,
        "isBuiltIn": t.is_builtin(),
        "createdBy": t.created_by,
        "createdAt": t.created_at,
        "updatedAt": t.updated_at,
    })
}

// ----------------------------------------------------------------------------
// Create, update, delete.

fn create(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    // Before storing a byte of the upload.
    admin_only(&who)?;
    let guard = ctx.registry.upload_guard()?;
    let (body, files) = read_template_upload(ctx, req)?;
    let template = ctx.registry.create_template_from(&who, &body, files)?;
    drop(guard);
    // The client reads customTemplateId and then GETs the template.
    let mut rendered = render_template(&template);
    rendered["customTemplateId"] = json!(template.id);
    Ok(Response::json(201, &rendered))
}

fn update(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let id = req.param("id").to_string();
    // 404 or 403 before reading the body.
    ctx.registry.writable_template(&who, &id)?;
    let guard = ctx.registry.upload_guard()?;
    let (body, files) = read_template_upload(ctx, req)?;
    let template = ctx.registry.update_template_from(&who, &id, &body, files)?;
    drop(guard);
    Ok(Response::json(200, &render_template(&template)))
}

fn delete(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    ctx.registry.delete_custom_template(req.who()?, req.param("id"))?;
    Ok(Response::empty(204))
}

/// A create's or PATCH's text fields, and its files once stored (None when
/// it sent none).
type TemplateUpload = (Map<String, Value>, Option<Vec<NewFile>>);

fn read_template_upload(ctx: &Ctx, req: &mut Request) -> Result<TemplateUpload> {
    let limit = req.upload_limit();
    let Upload { files, paths, delete, fields, .. } = read_upload(ctx, req)?;
    if !delete.is_empty() {
        return Err(Error::invalid("filesToDelete", "is not supported by templates: files sent with a PATCH replace all of them"));
    }
    Ok((fields, ctx.registry.template_upload_files(files, paths, limit)?))
}

// ----------------------------------------------------------------------------
// Custom models from templates.

/// `POST customModels/fromModelTemplate/`: 201 with the seed's
/// `{customModelId, customModelVersionId}`.
pub(crate) fn from_template(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?.clone();
    let body = req.json_object()?;
    let (model, version) = ctx.registry.model_from_template(&who, &body)?;
    Ok(Response::json(201, &json!({"customModelId": model.id, "customModelVersionId": version.id})))
}
