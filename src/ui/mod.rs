//! The web UI (issue 13): one HTML page, a script and a stylesheet compiled
//! into the binary and served on the API's port, plus a few JSON routes
//! under `/ui/api/` for the views no dialect's route serves in one request,
//! and signed file downloads under `/ui/downloads/` (see ARCHITECTURE.md,
//! "The web UI").
//!
//! The page itself is public (the key is pasted into it); every JSON route
//! needs the key, like any other route, and reads through `Registry`
//! methods with the caller's `Principal`, so the UI sees exactly what its
//! key may see. The page builds its DOM with `textContent` only, but for a
//! version's model card: HTML the registry rendered and sanitised
//! (`registry::catalogue::cards`), parsed inert and moved into the page
//! (`loadCard` in card.js). The Content-Security-Policy below is the second
//! line of defence: no inline script, no script from anywhere but this
//! server, no plugin or frame.

use serde_json::{json, Map, Value};

use crate::http::params::{query_bool, query_int};
use crate::http::response::attachment;
use crate::registry::access::roles::{Access, EntityKind};
use crate::registry::catalogue::tags::Tags;
use crate::registry::catalogue::weight_facts;
use crate::registry::is_uuid;
use crate::http::{Ctx, Dialect, FileToSend, Request, Response, Router};
use crate::registry::{
    Cursor, Error, Model, ModelQuery, Origin, PageRequest, Principal, Registry, Result, Version, VersionRef, VersionSummary,
};

static INDEX_HTML: &str = include_str!("assets/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads, served as `/ui/NAME`: the stylesheet, the
/// icon, and the script's ES modules (app.js imports the rest; one module
/// per view or concept, no build step).
static ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
    ("app.js", JS, include_str!("assets/app.js")),
    ("core.js", JS, include_str!("assets/core.js")),
    ("signin.js", JS, include_str!("assets/signin.js")),
    ("list.js", JS, include_str!("assets/list.js")),
    ("model.js", JS, include_str!("assets/model.js")),
    ("facts.js", JS, include_str!("assets/facts.js")),
    ("card.js", JS, include_str!("assets/card.js")),
    ("files.js", JS, include_str!("assets/files.js")),
    ("datarobot.js", JS, include_str!("assets/datarobot.js")),
    ("machines.js", JS, include_str!("assets/machines.js")),
    ("resolve.js", JS, include_str!("assets/resolve.js")),
    ("chart.js", JS, include_str!("assets/chart.js")),
    ("compare.js", JS, include_str!("assets/compare.js")),
    ("keys.js", JS, include_str!("assets/keys.js")),
    ("actions.js", JS, include_str!("assets/actions.js")),
    ("labels.js", JS, include_str!("assets/labels.js")),
];

/// `connect-src 'self'` keeps a script, were one ever injected, from
/// sending the key anywhere but here; `img-src` allows only our icon and
/// `data:` (nothing the page builds uses it, but browsers render the
/// favicon through it on some paths).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub static UI: Dialect = Dialect { name: "ui", prefix: "/ui/", render_error, trailing_slash_optional: false, retry_resends_no_body: false };

pub fn routes(router: &mut Router) {
    router.add_public(&UI, "GET", "/", index);
    router.add_public(&UI, "GET", "/ui/", index);
    router.add_public(&UI, "GET", "/ui/{asset}", asset);
    router.add(&UI, "GET", "/ui/api/models", list_models);
    router.add(&UI, "GET", "/ui/api/models/{id}", get_model);
    router.add(&UI, "POST", "/ui/api/models/{id}/versions/{number}/files/{file}/link", file_link);
    // Public: the token in the URL is the credential (`sign_file_download`).
    router.add_public(&UI, "GET", "/ui/downloads/{token}", signed_file);
    router.add(&UI, "GET", "/ui/api/datasets/{id}", get_dataset);
}

/// The headers every UI response carries, errors included.
fn hardened(response: Response) -> Response {
    response
        .with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "no-referrer")
}

/// modelreg's own error body (the generic one of `crate::api`), hardened
/// like every UI response.
fn render_error(error: &Error) -> Response {
    hardened(crate::http::generic::render_generic_error(error))
}

/// Assets change only with the binary; `no-cache` makes the browser
/// revalidate, so an upgraded server never runs yesterday's script.
fn static_file(content_type: &str, body: &str) -> Response {
    hardened(Response::bytes(200, content_type, body.as_bytes().to_vec()).with_header("Cache-Control", "no-cache"))
}

fn index(_: &Ctx, _: &mut Request) -> Result<Response> {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Ok(static_file("text/html; charset=utf-8", PAGE.get_or_init(page_with_preloads)))
}

/// The page, telling the browser every module up front: without it the
/// browser learns of model.js only once app.js has arrived and of
/// actions.js once model.js has, one round trip per level of imports.
fn page_with_preloads() -> String {
    let preloads: String = ASSETS
        .iter()
        .filter(|(name, _, _)| name.ends_with(".js") && *name != "app.js")
        .map(|(name, _, _)| format!("<link rel=\"modulepreload\" href=\"/ui/{name}\">\n"))
        .collect();
    INDEX_HTML.replacen("<!-- modulepreload -->\n", &preloads, 1)
}

fn asset(_: &Ctx, req: &mut Request) -> Result<Response> {
    let name = req.param("asset");
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(known, _, _)| *known == name)
        .ok_or_else(|| Error::NotFound(format!("the UI has no file {name:?}")))?;
    Ok(static_file(content_type, body))
}

fn json_ok(value: &Value) -> Response {
    hardened(Response::json(200, value).with_header("Cache-Control", "no-store"))
}

/// A short free-text query parameter; None when absent or blank.
fn text_param(req: &Request, name: &str, max: usize) -> Result<Option<String>> {
    let Some(text) = req.query(name).map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    if text.chars().count() > max || text.chars().any(char::is_control) {
        return Err(Error::invalid(name, format!("must be at most {max} characters without control characters")));
    }
    Ok(Some(text.to_string()))
}

/// The models of every door, newest first, one keyset page at a time:
/// `q` (name and description), `origin`, `framework`, `targetType`,
/// `modelType`, `public`, `limit` (1–100, 50), `after` (the `next` of the
/// previous page).
fn list_models(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let limit = query_int(req, "limit", 50, 1, 100)? as u64;
    let after = text_param(req, "after", 4096)?.map(|c| Cursor::decode("after", &c)).transpose()?;
    let mut query = ModelQuery::newest_first(PageRequest::After { after, limit });
    query.search = text_param(req, "q", 200)?;
    if let Some(origin) = text_param(req, "origin", 20)? {
        query.origin = Some(Origin::parse(&origin).ok_or_else(|| {
            Error::invalid("origin", format!("must be octomil, datarobot or paperspace, got {origin:?}"))
        })?);
    }
    // The framework by the registry's rule (`Model::framework`), the one the
    // list shows and the Octomil door answers.
    query.framework = text_param(req, "framework", 100)?;
    for attr in ["targetType", "modelType"] {
        if let Some(value) = text_param(req, attr, 100)? {
            query.attr_equals.push((attr.into(), json!(value)));
        }
    }
    if let Some(public) = query_bool(req, "public")? {
        query.attr_equals.push(("isPublic".into(), json!(public)));
    }
    let who = req.who()?;
    let page = ctx.registry.list_models(who, &query)?;
    let summaries = ctx.registry.version_summaries(who, &page.items)?;
    let frameworks = ctx.registry.frameworks_of(who, &page.items)?;
    let items: Vec<Value> =
        page.items.iter().zip(&summaries).zip(frameworks).map(|((m, s), f)| list_item(m, s.as_ref(), f)).collect();
    Ok(json_ok(&json!({
        "items": items,
        "hasMore": page.has_more,
        "next": page.next.map(|c| c.encode()),
    })))
}

fn list_item(model: &Model, summary: Option<&VersionSummary>, framework: Option<String>) -> Value {
    let attr = |key: &str| model.attrs.get(key).cloned().unwrap_or(Value::Null);
    json!({
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "origin": model.origin.as_str(),
        "framework": framework,
        "targetType": attr("targetType"),
        "modelType": attr("modelType"),
        "isPublic": attr("isPublic"),
        "created": model.created_at,
        "modified": model.modified_at,
        "versionCount": summary.map_or(0, |s| s.count),
        "latestVersion": summary.map(|s| json!({
            "number": s.latest_number,
            "label": label(s.latest_number, &s.latest_attrs),
            "created": s.latest_created_at,
        })),
    })
}

/// DataRobot numbers versions major.minor; the other doors 1, 2, 3.
fn label(number: i64, attrs: &Map<String, Value>) -> String {
    match (attrs.get("versionMajor").and_then(Value::as_i64), attrs.get("versionMinor").and_then(Value::as_i64)) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => number.to_string(),
    }
}

fn model_id(req: &Request) -> Result<String> {
    let id = req.param("id");
    if !is_uuid(id) {
        return Err(Error::invalid("id", format!("must be a model id (a UUID), got {id:?}")));
    }
    Ok(id.to_string())
}

/// A model of any door with its tags and aliases, and every version (newest
/// first) with its files and their sha256, tags and metrics: what the model
/// page shows, in one request. The dialects' routes split this over several
/// (DataRobot) or leave the files out (Octomil, Paperspace). modelreg's own
/// model route has no file ids (the downloads need them) and resolves every
/// version's lineage parent, a query or more per version, where the page
/// shows one version's lineage (facts.js reads it from modelreg's version
/// route). Tags and aliases cost three queries whatever the number of versions.
///
/// `{id}` is a model id or a name (`Registry::resolve_model`, the rule every
/// door shares): a name two visible models share answers 409 with the
/// candidates, so the page can offer a link to each. Each `version=HANDLE`
/// (up to ten: a number, a label, `@alias` or `latest`) comes back in
/// `handles` with the number it names or why none, so the page's URLs take
/// whatever the API and the CLI take. `model.handle` is what links to the
/// model should carry: its name when that names it alone, else its id.
fn get_model(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let who = req.who()?;
    let asked = req.param("id");
    let model = match ctx.registry.resolve_model(who, asked) {
        Err(Error::Conflict(message)) => return ambiguous(ctx.registry, who, asked, &message),
        other => other?,
    };
    let id = model.id.clone();
    let wanted: Vec<&str> = req.query_pairs().iter().filter(|(n, _)| n == "version").map(|(_, v)| v.as_str()).collect();
    if wanted.len() > 10 || wanted.iter().any(|h| h.is_empty() || h.chars().count() > 200) {
        return Err(Error::invalid("version", "must be at most ten version handles (a number, a label, @alias or latest)"));
    }
    let mut versions = ctx.registry.list_versions(who, &id)?;
    versions.reverse();
    let handles: Vec<Value> = wanted.iter().map(|h| resolve_handle(ctx.registry, who, &id, &versions, h)).collect::<Result<_>>()?;
    let mut version_tags = ctx.registry.version_tags_of_model(who, &id)?;
    let mut names = UserNames::new(ctx.registry, who);
    let rendered: Vec<Value> = versions
        .iter()
        .map(|v| render_version(v, version_tags.remove(&v.id).unwrap_or_default(), &mut names))
        .collect();
    // Asked by its name, the model was resolved by it, which already
    // refused a name two models share: no second lookup.
    let unique_name = !model.name.is_empty()
        && !is_uuid(&model.name)
        && (asked == model.name || ctx.registry.models_named(who, &model.name)?.iter().all(|m| m.id == model.id));
    Ok(json_ok(&json!({
        "model": {
            "id": model.id,
            "name": model.name,
            "handle": if unique_name { &model.name } else { &model.id },
            "description": model.description,
            "origin": model.origin.as_str(),
            "created": model.created_at,
            "modified": model.modified_at,
            "createdBy": names.name(&model.created_by),
            "attrs": model.attrs,
            "framework": ctx.registry.frameworks_of(who, std::slice::from_ref(&model))?.pop().flatten(),
            "tags": ctx.registry.model_tags(who, &id)?,
            // Alias name to version number; the page groups them by version.
            "aliases": ctx.registry.model_aliases(who, &id)?,
        },
        "may": may(ctx.registry, who, &model.id)?,
        "versions": rendered,
        "handles": handles,
    })))
}

/// A name two visible models share: modelreg's error body, plus each
/// candidate, so the page can link to each by its id.
fn ambiguous(registry: &Registry, who: &Principal, name: &str, message: &str) -> Result<Response> {
    let candidates: Vec<Value> = registry
        .models_named(who, name)?
        .iter()
        .map(|m| json!({"id": m.id, "name": m.name, "origin": m.origin.as_str(), "description": m.description, "created": m.created_at}))
        .collect();
    Ok(hardened(Response::json(409, &json!({"error": "conflict", "message": message, "candidates": candidates}))))
}

/// The version a handle names, by the registry's rule (`VersionRef`, as
/// modelreg's own routes parse `{version}`); a DataRobot version's
/// major.minor ("2.1"), which only `label` below makes, is matched last.
fn resolve_handle(registry: &Registry, who: &Principal, model_id: &str, versions: &[Version], handle: &str) -> Result<Value> {
    let by = VersionRef::parse(handle);
    match registry.find_version(who, model_id, &by) {
        Ok(v) => Ok(json!({"handle": handle, "number": v.number})),
        Err(Error::NotFound(message)) => {
            let shown = match by {
                VersionRef::Label(text) => versions.iter().find(|v| label(v.number, &v.attrs) == text),
                _ => None,
            };
            Ok(match shown {
                Some(v) => json!({"handle": handle, "number": v.number}),
                None => json!({"handle": handle, "error": message}),
            })
        }
        Err(e) => Err(e),
    }
}

/// What the key may do to the model, so that the page offers only that: by
/// the registry's one access rule (`Registry::access`), `change` is write
/// rank (description, aliases, tags, status, new versions) and `delete`
/// owner rank (deleting a version). A CONSUMER of a shared DataRobot model
/// reads only. The routes check again; this only hides what they would refuse.
fn may(registry: &Registry, who: &Principal, id: &str) -> Result<Value> {
    let access = registry.access(who, EntityKind::Model, id)?;
    Ok(json!({"change": access >= Access::Write, "delete": access >= Access::Own}))
}

fn render_version(v: &Version, tags: Tags, names: &mut UserNames) -> Value {
    let files: Vec<Value> = v
        .files
        .iter()
        .map(|f| {
            let facts = weight_facts::of_file(&v.attrs, &f.path);
            json!({
                "id": f.id,
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "weightFacts": facts,
                "weightFactsSummary": facts.map(weight_facts::summary),
            })
        })
        .collect();
    json!({
        "id": v.id,
        "number": v.number,
        "label": label(v.number, &v.attrs),
        "description": v.description,
        "created": v.created_at,
        "createdBy": names.name(&v.created_by),
        "format": v.attrs.get("format"),
        "status": v.status.as_str(),
        "versionLabel": v.label,
        "size": v.total_size(),
        "files": files,
        "tags": tags,
        "metrics": v.metrics,
    })
}

/// User ids to names, looked up once each per request.
struct UserNames<'a> {
    registry: &'a Registry,
    who: &'a Principal,
    known: std::collections::HashMap<String, String>,
}

impl<'a> UserNames<'a> {
    fn new(registry: &'a Registry, who: &'a Principal) -> Self {
        UserNames { registry, who, known: Default::default() }
    }

    fn name(&mut self, user_id: &str) -> String {
        if let Some(name) = self.known.get(user_id) {
            return name.clone();
        }
        let name = self.registry.find_user(&self.who.team_id, user_id).map(|u| u.username).unwrap_or_else(|_| user_id.into());
        self.known.insert(user_id.into(), name.clone());
        name
    }
}

/// A short-lived link to one file of a version, whatever door made it (the
/// Octomil download serves single-file versions only and DataRobot's zips
/// the whole version). The page hands it to the browser, which streams the
/// file to disk: no byte passes through the page's script, and the key never
/// leaves the page (the link carries a token of its own, which dies with the
/// key and after `--signed-url-ttl-secs`).
fn file_link(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = model_id(req)?;
    let number = req
        .param("number")
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::invalid("number", "must be a positive integer"))?;
    let file_id = req.param("file").to_string();
    let (signed, file) = ctx.registry.sign_file_download(req.who()?, &id, number, &file_id, ctx.options.signed_url_ttl)?;
    Ok(json_ok(&json!({
        "url": format!("/ui/downloads/{}", signed.token),
        "expiresAt": signed.expires_at,
        "fileName": base_name(&file.path),
        "sha256": file.sha256,
        "size": file.size,
    })))
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file a `file_link` names, as an attachment; or, where the blob store
/// has presigned URLs, a redirect to one (as Octomil's download-url does).
fn signed_file(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let file = ctx.registry.redeem_file_download(req.param("token"))?;
    let name = base_name(&file.path);
    if let Some(url) = ctx.registry.presigned_blob_url(&file.sha256, name, ctx.options.signed_url_ttl) {
        return Ok(hardened(Response::empty(302).with_header("Location", url).with_header("Cache-Control", "no-store")));
    }
    let response = req.file_answer(FileToSend {
        file: ctx.registry.open_blob(&file.sha256)?,
        size: file.size,
        sha256: file.sha256.clone(),
        content_type: "application/octet-stream".into(),
    });
    Ok(hardened(response.with_header("Content-Disposition", attachment(name)).with_header("Cache-Control", "no-store")))
}

/// A dataset with its column names: DataRobot's dataset route gives only
/// their count, and the model page shows the columns of its training data.
fn get_dataset(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let d = ctx.registry.get_dataset(req.who()?, req.param("id"))?;
    Ok(json_ok(&json!({
        "id": d.id,
        "name": d.name,
        "fileName": d.file_name,
        "state": d.state.as_str(),
        "error": d.error,
        "size": d.size,
        "rowCount": d.row_count,
        "columns": d.columns,
        "created": d.created_at,
        "createdBy": d.created_by_name,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_each_doors_numbering() {
        let mut attrs = Map::new();
        assert_eq!(label(3, &attrs), "3");
        attrs.insert("versionMajor".into(), json!(2));
        attrs.insert("versionMinor".into(), json!(1));
        assert_eq!(label(3, &attrs), "2.1");
    }

    /// The policy is the second line of defence against injected markup;
    /// the page must work under it, so nothing inline may creep in.
    #[test]
    fn the_page_runs_under_a_policy_without_inline_code() {
        assert!(!CSP.contains("unsafe") && CSP.contains("script-src 'self'") && CSP.contains("default-src 'none'"));
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style=") && !INDEX_HTML.contains(" on"));
        let page = page_with_preloads();
        assert!(!page.contains("<!-- modulepreload -->") && page.contains("<link rel=\"modulepreload\" href=\"/ui/core.js\">"));
        let html_sinks =
            ["innerHTML", "outerHTML", "insertAdjacentHTML", "createContextualFragment", "setHTMLUnsafe", "parseHTMLUnsafe", "srcdoc"];
        let scripts: Vec<(&str, &str)> =
            ASSETS.iter().filter(|(name, _, _)| name.ends_with(".js")).map(|(name, _, body)| (*name, *body)).collect();
        for (name, body) in &scripts {
            for forbidden in html_sinks.into_iter().chain(["document.write", "eval(", "new Function", ".style.", "'style'"]) {
                assert!(!body.contains(forbidden), "{name} uses {forbidden}");
            }
        }
        // HTML from the server is parsed in one place, the model card's
        // (its HTML sanitised by the registry), and nowhere else.
        let parsers: usize = scripts.iter().map(|(_, body)| body.matches("parseFromString(").count()).sum();
        assert_eq!(parsers, 1, "the UI parses HTML in more than the model card");
        let card_js = scripts.iter().find(|(name, _)| *name == "card.js").expect("card.js").1;
        let card = &card_js[card_js.find("async function loadCard").expect("loadCard in card.js")..];
        let card = &card[..card.find("\n}\n").unwrap()];
        assert!(card.contains("new DOMParser().parseFromString("), "the model card is the one place HTML is parsed");
    }

    /// A module the page imports but the server does not list would fail
    /// in the browser only; a file in assets/ nobody lists is dead weight.
    #[test]
    fn every_asset_is_served_and_every_import_names_one() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui/assets");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(name == "index.html" || ASSETS.iter().any(|(known, _, _)| *known == name), "src/ui/assets/{name} is not in ASSETS");
        }
        for (name, _, body) in ASSETS.iter().filter(|(name, _, _)| name.ends_with(".js")) {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit("from './").next().and_then(|rest| rest.strip_suffix("';")).expect("import … from './x.js';");
                assert!(ASSETS.iter().any(|(known, _, _)| *known == target), "{name} imports {target}, which is not served");
            }
        }
    }
}
