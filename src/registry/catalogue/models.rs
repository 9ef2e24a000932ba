//! Models and their versions, shared by every dialect.
//!
//! A model has common columns and a JSON `attrs` object for the fields only
//! one dialect knows. A version is an immutable, ordered set of files
//! (path -> blob), numbered 1, 2, 3... per model.

use serde_json::{json, Map, Value};

use crate::registry::access::roles::{check_rank, visible_sql, Access, EntityKind};
use crate::registry::page::{clamp_i64, keyset_page, keyset_tail, Cursor, Page, PageRequest};
use crate::registry::{new_id, now, parse_attrs, Error, Principal, Registry, Result};
use crate::registry::webhooks::{emit, EventSubject};
use crate::store::blobs::Digest;
use crate::store::sql::{self, params, params_from_iter, OptionalExtension};

pub type Attrs = Map<String, Value>;

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub modified_at: String,
    pub attrs: Attrs,
    pub origin: Origin,
}

/// The longest name a model may be given, in characters, through any door:
/// DataRobot documents `name` as `maxLength: 255` for a custom model (seed
/// 002), and Octomil's and Paperspace's routes already held their renames to
/// it. Checked once here, on create and on rename, so every door answers the
/// same 4xx in its own error body; a longer name stored before the rule
/// stays as it is (it is shown clamped, never refused on read).
pub const MAX_MODEL_NAME: usize = 255;

/// Fails unless `name` is a name a model may be given (see `MAX_MODEL_NAME`).
pub fn check_model_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n > MAX_MODEL_NAME {
        return Err(Error::invalid("name", format!("must be at most {MAX_MODEL_NAME} characters, got {n}")));
    }
    Ok(())
}

impl Model {
    /// The model's DataRobot target type. One made through another door has
    /// none of its own, and is shown as `Unstructured`, the type DataRobot
    /// gives models whose input and output it does not interpret (see
    /// ARCHITECTURE.md, "One registry, three doors"); a PATCH may set it once.
    pub fn target_type(&self) -> &str {
        self.attrs.get("targetType").and_then(serde_json::Value::as_str).unwrap_or("Unstructured")
    }
}

#[derive(Clone, Debug, Default)]
pub struct NewModel {
    pub name: String,
    pub description: Option<String>,
    pub attrs: Attrs,
    pub origin: Origin,
}

/// The front door a model was made through. Each dialect renders models
/// made through the others with defaults of its own (ARCHITECTURE.md,
/// "One registry, three doors"). The CLI's `models` commands are the
/// Octomil door.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Octomil,
    DataRobot,
    Paperspace,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Octomil => "octomil",
            Origin::DataRobot => "datarobot",
            Origin::Paperspace => "paperspace",
        }
    }

    pub fn parse(s: &str) -> Option<Origin> {
        [Origin::Octomil, Origin::DataRobot, Origin::Paperspace].into_iter().find(|o| o.as_str() == s)
    }
}

/// A partial update: `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ModelPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    /// Keys set here replace the stored ones; a `null` value removes the key.
    pub attrs: Attrs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOrder {
    Created,
    Modified,
    Name,
}

impl ModelOrder {
    fn column(self) -> &'static str {
        match self {
            ModelOrder::Created => "created_at",
            ModelOrder::Modified => "modified_at",
            ModelOrder::Name => "name",
        }
    }

    pub(in crate::registry) fn key_of(self, m: &Model) -> String {
        match self {
            ModelOrder::Created => m.created_at.clone(),
            ModelOrder::Modified => m.modified_at.clone(),
            ModelOrder::Name => m.name.clone(),
        }
    }
}

/// One tag a model search asks for (`catalogue::tags::parse_tag_filter`):
/// that value of the key, or any value when `value` is None.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ModelQuery {
    pub order: ModelOrder,
    pub descending: bool,
    pub page: PageRequest,
    /// Keep models whose `attrs[key]` equals the value.
    pub attr_equals: Vec<(String, Value)>,
    /// Keep models whose `attrs[key]` equals the value or is missing: a
    /// dialect's filter on its default for models made elsewhere.
    pub attr_equals_or_missing: Vec<(String, Value)>,
    /// Keep models whose name or description contains this text
    /// (case-insensitive).
    pub search: Option<String>,
    /// Keep only these ids. The registry applies the access rule itself
    /// (see `access::visible_sql`); this only narrows further.
    pub only_ids: Option<Vec<String>>,
    /// Count all matches (`Page::total`).
    pub count_total: bool,
    /// Keep models made through this door (the web UI's filter).
    pub origin: Option<Origin>,
    /// Keep models that have every one of these tags.
    pub tags: Vec<TagFilter>,
    /// Keep models whose framework is this one by the registry's rule
    /// (`Model::framework`: its own, else what its latest version's weights
    /// imply), the rule every door shows it by.
    pub framework: Option<String>,
}

impl ModelQuery {
    pub fn newest_first(page: PageRequest) -> ModelQuery {
        ModelQuery {
            order: ModelOrder::Created,
            descending: true,
            page,
            attr_equals: Vec::new(),
            attr_equals_or_missing: Vec::new(),
            search: None,
            only_ids: None,
            count_total: false,
            origin: None,
            tags: Vec::new(),
            framework: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VersionFile {
    pub id: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub created_at: String,
}

/// A page of models with what a list renders beside each: see
/// `Registry::list_models_with_latest`.
pub struct ModelsPage {
    pub page: Page<Model>,
    /// `latest[i]` is the latest version of `page.items[i]`.
    pub latest: Vec<Option<Version>>,
    /// Creators' usernames by user id (empty unless asked for).
    pub creators: std::collections::HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    pub id: String,
    pub model_id: String,
    pub number: i64,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub attrs: Attrs,
    pub files: Vec<VersionFile>,
    /// Its lifecycle status: active, published or deprecated.
    pub status: VersionStatus,
    /// The version string the client chose (an alias of `number`), if any.
    pub label: Option<String>,
    /// Evaluation metrics reported for it.
    pub metrics: Attrs,
    /// Where it came from (`catalogue::lineage`).
    pub lineage: Lineage,
}

/// A version's lineage as stored (see `catalogue::lineage`, which changes it).
/// `parent_version` is the parent's version id: a number or an alias could
/// later name another version.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lineage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_version: Option<String>,
}

impl Lineage {
    /// The stored column. A row written by a later modelreg with fields this
    /// one does not know still reads: unknown keys are ignored.
    pub(in crate::registry) fn from_column(text: &str) -> Lineage {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub(in crate::registry) fn to_column(&self) -> String {
        serde_json::to_string(self).expect("a struct of strings serializes")
    }
}

/// A version's place in its lifecycle, shared by every door. A deprecated
/// version is still downloadable, but never a model's latest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VersionStatus {
    #[default]
    Active,
    Published,
    Deprecated,
}

impl VersionStatus {
    pub const ALL: [VersionStatus; 3] = [VersionStatus::Active, VersionStatus::Published, VersionStatus::Deprecated];

    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Active => "active",
            VersionStatus::Published => "published",
            VersionStatus::Deprecated => "deprecated",
        }
    }

    pub fn parse(s: &str) -> Option<VersionStatus> {
        VersionStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A version as a client names it (a version handle): its number, the
/// label it was given, one of the model's aliases (`@champion`), or
/// `latest` (the highest-numbered version not deprecated). Every door and
/// the CLI parse a handle here and resolve it with `Registry::find_version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    Number(i64),
    Label(String),
    /// An alias, without its `@`.
    Alias(String),
    Latest,
}

impl VersionRef {
    /// All digits is a number, `@name` an alias, `latest` the latest
    /// version; anything else names a label (labels never start with `@`
    /// nor are `latest`: `check_label`).
    pub fn parse(text: &str) -> VersionRef {
        if let Some(alias) = text.strip_prefix('@') {
            return VersionRef::Alias(alias.to_string());
        }
        if text == super::aliases::LATEST {
            return VersionRef::Latest;
        }
        match text.parse::<i64>() {
            Ok(n) => VersionRef::Number(n),
            Err(_) => VersionRef::Label(text.to_string()),
        }
    }

    /// Whether the text is an alias or `latest`, which only the registry
    /// resolves (rather than a number, a label or an id).
    pub fn is_alias_or_latest(text: &str) -> bool {
        matches!(VersionRef::parse(text), VersionRef::Alias(_) | VersionRef::Latest)
    }
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Number(n) => write!(f, "{n}"),
            VersionRef::Label(l) => write!(f, "{l:?}"),
            VersionRef::Alias(a) => write!(f, "@{a}"),
            VersionRef::Latest => write!(f, "latest"),
        }
    }
}

/// What deleting a version released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedVersion {
    pub number: i64,
    /// Bytes of stored files that nothing else references any more; the
    /// next gc removes them from disk.
    pub freed_bytes: u64,
}

impl Version {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A file of a version being created. Every version's files get fresh ids,
/// also when they are carried over from the version it derives from.
#[derive(Clone, Debug)]
pub struct NewFile {
    pub path: String,
    pub digest: Digest,
}

#[derive(Clone, Debug, Default)]
pub struct NewVersion {
    pub description: Option<String>,
    pub attrs: Attrs,
    pub files: Vec<NewFile>,
    /// A client-chosen version string (unique within the model). One made
    /// only of digits must equal the number the version gets.
    pub label: Option<String>,
}

const MODEL_COLUMNS: &str = "id, team_id, name, description, created_by, created_at, modified_at, attrs, origin";
/// The position of a column selected after MODEL_COLUMNS.
const MODEL_COLUMN_COUNT: usize = {
    let (list, mut i, mut commas) = (MODEL_COLUMNS.as_bytes(), 0, 0);
    while i < list.len() {
        commas += (list[i] == b',') as usize;
        i += 1;
    }
    commas + 1
};

fn model_from_row(r: &sql::Row) -> sql::Result<Model> {
    Ok(Model {
        id: r.get(0)?,
        team_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        created_by: r.get(4)?,
        created_at: r.get(5)?,
        modified_at: r.get(6)?,
        attrs: parse_attrs(&r.get::<_, String>(7)?)?,
        // The column's CHECK admits only what `Origin::parse` knows.
        origin: Origin::parse(&r.get::<_, String>(8)?).unwrap_or_default(),
    })
}

/// Rejects paths that could escape a folder when a version is written out:
/// absolute paths, `..`, empty segments, backslashes and control characters.
pub fn validate_file_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid("filePath", format!("{path:?} {why}")));
    if path.is_empty() || path.len() > 1024 {
        return bad("must be 1 to 1024 characters");
    }
    if path.starts_with('/') {
        return bad("must be relative");
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return bad("contains a control character or a backslash");
    }
    if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return bad("has an empty, '.' or '..' segment");
    }
    Ok(())
}

/// Rejects a set of version paths that cannot be written out as one tree:
/// a bad path, the same path twice, or a path that is also a folder of
/// another (`a` and `a/b`), which no zip or folder can hold.
pub fn validate_version_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let paths: Vec<&str> = paths.into_iter().collect();
    for path in &paths {
        validate_file_path(path)?;
        if !seen.insert(*path) {
            return Err(Error::invalid("filePath", format!("{path:?} appears twice in one version")));
        }
    }
    for path in &paths {
        for (i, _) in path.match_indices('/') {
            let folder = &path[..i];
            if seen.contains(folder) {
                return Err(Error::invalid("filePath", format!("{folder:?} is a file, so {path:?} cannot be inside it")));
            }
        }
    }
    Ok(())
}

impl Registry {
    pub fn create_model(&self, who: &Principal, new: NewModel) -> Result<Model> {
        self.insert_model(&self.conn, who, new)
    }

    /// Creates a model with the caller as its explicit owner (DataRobot's
    /// access list), both in one transaction.
    pub fn create_owned_model(&self, who: &Principal, new: NewModel) -> Result<Model> {
        let tx = self.write()?;
        let model = self.insert_model(&tx, who, new)?;
        Registry::grant_owner_in(&tx, EntityKind::Model, &model.id, &who.user_id)?;
        tx.commit()?;
        Ok(model)
    }

    /// The caller's model of this name if there is one (false), else a new
    /// one (true): Octomil's create is create-or-get by name, because the
    /// SDK's `ensure_model` looks for the name on the first page only.
    pub fn create_model_named(&self, who: &Principal, new: NewModel) -> Result<(Model, bool)> {
        let tx = self.write()?;
        if !new.name.is_empty() {
            let existing: Option<String> = tx
                .prepare_cached("SELECT id FROM models WHERE team_id = ?1 AND name = ?2 ORDER BY created_at, id LIMIT 1")?
                .query_row([&who.team_id, &new.name], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                drop(tx);
                return Ok((self.get_model(who, &id)?, false));
            }
        }
        let model = self.insert_model(&tx, who, new)?;
        tx.commit()?;
        Ok((model, true))
    }

    /// Fails unless the caller may add versions to the model.
    pub fn check_can_add_version(&self, who: &Principal, model_id: &str) -> Result<()> {
        self.model_for(who, model_id, Access::Write).map(|_| ())
    }

    pub(in crate::registry) fn insert_model(&self, conn: &sql::Connection, who: &Principal, new: NewModel) -> Result<Model> {
        check_model_name(&new.name)?;
        let at = now();
        let id = new_id();
        let model = Model {
            // Every model has a name, because two of the three doors'
            // clients require one; the rule is the same through every door.
            name: if new.name.is_empty() { unnamed(&id) } else { new.name },
            id,
            team_id: who.team_id.clone(),
            description: new.description,
            created_by: who.user_id.clone(),
            created_at: at.clone(),
            modified_at: at,
            attrs: new.attrs,
            origin: new.origin,
        };
        conn.execute(
            &format!("INSERT INTO models ({MODEL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                model.id,
                model.team_id,
                model.name,
                model.description,
                model.created_by,
                model.created_at,
                model.modified_at,
                Value::Object(model.attrs.clone()).to_string(),
                model.origin.as_str()
            ],
        )?;
        Ok(model)
    }

    /// A model the caller may see: of their team, and allowed by the access
    /// rule (`Registry::access`). Otherwise NotFound, so ids do not leak.
    pub fn get_model(&self, who: &Principal, id: &str) -> Result<Model> {
        self.model_for(who, id, Access::Read)
    }

    /// A model the caller may see, checked for `need`: NotFound when it is
    /// invisible to them, Forbidden when visible but `need` is above their
    /// access. Inside a write transaction (same connection) the check and
    /// the write see the same roles.
    pub(in crate::registry) fn model_for(&self, who: &Principal, id: &str, need: Access) -> Result<Model> {
        let model = self
            .conn
            .prepare_cached(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = ?1 AND team_id = ?2"))?
            .query_row([id, &who.team_id], model_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("model", id))?;
        let have = self.decide_access(who, EntityKind::Model, id, &model.created_by, false).map_err(|e| match e {
            Error::NotFound(_) => Error::not_found("model", id),
            other => other,
        })?;
        check_rank(EntityKind::Model, have, need)?;
        Ok(model)
    }

    /// Updates a model with a patch computed from the model as it is inside
    /// the write transaction, so checks such as "cannot be disabled once
    /// enabled" see the committed state. Needs write access.
    pub fn update_model(&self, who: &Principal, id: &str, build: impl FnOnce(&Model) -> Result<ModelPatch>) -> Result<Model> {
        let tx = self.write()?;
        let model = self.patch_model_in(&tx, who, id, build)?;
        tx.commit()?;
        Ok(model)
    }

    /// `update_model` inside the caller's write transaction `tx`, for writes
    /// that must commit together with the model's (a training-data
    /// assignment and its job record).
    pub(in crate::registry) fn patch_model_in(
        &self,
        tx: &sql::Connection,
        who: &Principal,
        id: &str,
        build: impl FnOnce(&Model) -> Result<ModelPatch>,
    ) -> Result<Model> {
        let mut model = self.model_for(who, id, Access::Write)?;
        let patch = build(&model)?;
        if let Some(name) = patch.name {
            check_model_name(&name)?;
            model.name = name;
        }
        if let Some(description) = patch.description {
            model.description = description;
        }
        merge_attrs(&mut model.attrs, patch.attrs);
        model.modified_at = now();
        tx.execute(
            "UPDATE models SET name = ?2, description = ?3, modified_at = ?4, attrs = ?5 WHERE id = ?1",
            params![model.id, model.name, model.description, model.modified_at, Value::Object(model.attrs.clone()).to_string()],
        )?;
        Ok(model)
    }

    /// Deletes a model and its versions. Their blobs stay until gc finds
    /// them unreferenced.
    /// Needs owner rank on the model.
    pub fn delete_model(&self, who: &Principal, id: &str) -> Result<()> {
        let tx = self.write()?;
        self.model_for(who, id, Access::Own)?;
        // DataRobot refuses to delete a model under test; here it would also
        // pull the files from under the running model.
        if self.model_under_test(id)? {
            return Err(Error::Conflict(format!("custom model {id} is being tested; cancel the test or wait for it")));
        }
        emit(&tx, "model.deleted", EventSubject { team_id: &who.team_id, model_id: id, version_id: None }, json!({}))?;
        let changed = tx.execute("DELETE FROM models WHERE id = ?1 AND team_id = ?2", [id, &who.team_id])?;
        if changed == 0 {
            return Err(Error::not_found("model", id));
        }
        tx.commit()?;
        Ok(())
    }

    pub fn list_models(&self, who: &Principal, q: &ModelQuery) -> Result<Page<Model>> {
        match &q.framework {
            Some(framework) => self.list_models_of_framework(who, q, framework),
            None => self.list_models_sql(who, q),
        }
    }

    /// `list_models` for every filter but `framework`, which needs the
    /// latest version of models that have none of their own
    /// (`frameworks::list_models_of_framework` walks this).
    pub(in crate::registry) fn list_models_sql(&self, who: &Principal, q: &ModelQuery) -> Result<Page<Model>> {
        let mut filter = String::from("team_id = ?");
        let mut args: Vec<Value> = vec![Value::String(who.team_id.clone())];
        let filters = q.attr_equals.iter().map(|f| (f, false)).chain(q.attr_equals_or_missing.iter().map(|f| (f, true)));
        for ((key, value), or_missing) in filters {
            // json_extract returns SQL values: booleans as 0/1, strings as text.
            let column = if or_missing { "coalesce(json_extract(attrs, ?), ?)" } else { "json_extract(attrs, ?)" };
            filter.push_str(&format!(" AND {column} IS NOT DISTINCT FROM ?"));
            args.push(Value::String(format!("$.\"{}\"", key.replace('"', ""))));
            let value = match value {
                Value::Bool(b) => Value::from(*b as i64),
                other => other.clone(),
            };
            if or_missing {
                args.push(value.clone());
            }
            args.push(value);
        }
        if let Some(text) = &q.search {
            filter.push_str(" AND (instr(lower(name), lower(?)) > 0 OR instr(lower(coalesce(description, '')), lower(?)) > 0)");
            args.push(Value::String(text.clone()));
            args.push(Value::String(text.clone()));
        }
        if let Some(origin) = q.origin {
            filter.push_str(" AND origin = ?");
            args.push(Value::String(origin.as_str().into()));
        }
        for tag in &q.tags {
            // each an index seek on model_tags_lookup (key, value, model_id)
            match &tag.value {
                Some(value) => {
                    filter.push_str(" AND EXISTS (SELECT 1 FROM model_tags t WHERE t.key = ? AND t.value = ? AND t.model_id = models.id)");
                    args.push(Value::String(tag.key.clone()));
                    args.push(Value::String(value.clone()));
                }
                None => {
                    filter.push_str(" AND EXISTS (SELECT 1 FROM model_tags t WHERE t.model_id = models.id AND t.key = ?)");
                    args.push(Value::String(tag.key.clone()));
                }
            }
        }
        if let Some(ids) = &q.only_ids {
            filter.push_str(" AND id IN (SELECT value FROM json_each(?))");
            args.push(Value::String(Value::from(ids.clone()).to_string()));
        }
        // The access rule, index-backed (EXISTS probes on access_roles'
        // primary key), inside the same keyset query.
        let mut access_args = Vec::new();
        let access_filter = visible_sql(who, EntityKind::Model, "models", &mut access_args);
        filter.push_str(&access_filter);
        args.extend(access_args.into_iter().map(|v| match v {
            sql::Value::Text(t) => Value::String(t),
            _ => Value::Null,
        }));
        let unfiltered = q.attr_equals.is_empty()
            && q.attr_equals_or_missing.is_empty()
            && q.search.is_none()
            && q.only_ids.is_none()
            && q.origin.is_none()
            && q.tags.is_empty()
            && access_filter.is_empty();
        // An unfiltered page reads its team's count in the page query itself:
        // one statement fewer, a round trip fewer on PostgreSQL.
        let count_in_page = q.count_total && unfiltered;
        let total = if count_in_page {
            None // read with the page, below
        } else if q.count_total {
            let sql = format!("SELECT COUNT(*) FROM models WHERE {filter}");
            Some(self.conn.prepare_cached(&sql)?.query_row(params_from_iter(args.iter().map(sql_value)), |r| r.get::<_, i64>(0))? as u64)
        } else {
            None
        };
        // Callers validate their dialect's bounds; this keeps a page's
        // size sane whatever a caller passes.
        let limit = q.page.limit().min(10_000);
        let mut args: Vec<sql::Value> = args.iter().map(sql_value).collect();
        let count_column = if count_in_page {
            // its `?` comes first in the text, so its value goes first
            args.insert(0, sql::Value::Text(who.team_id.clone()));
            ", (SELECT models FROM team_model_counts WHERE team_id = ?)"
        } else {
            ""
        };
        let column = q.order.column();
        let tail = match &q.page {
            PageRequest::After { after, .. } => keyset_tail(column, q.descending, after.as_ref(), limit, &mut args),
            PageRequest::Offset { offset, .. } => {
                let mut tail = keyset_tail(column, q.descending, None, limit, &mut args);
                tail.push_str(" OFFSET ?");
                args.push(sql::Value::Integer(clamp_i64(*offset)));
                tail
            }
        };
        let sql = format!("SELECT {MODEL_COLUMNS}{count_column} FROM models WHERE {filter}{tail}");
        let mut counted: Option<i64> = None;
        let items = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args.iter()), |r| {
                if count_in_page {
                    counted = r.get(MODEL_COLUMN_COUNT)?;
                }
                model_from_row(r)
            })?
            .collect::<sql::Result<Vec<Model>>>()?;
        let total = match (count_in_page, counted) {
            (true, Some(n)) => Some(n as u64),
            // no row to carry it (a page past the end, or no model yet)
            (true, None) => Some(
                self.conn
                    .prepare_cached("SELECT models FROM team_model_counts WHERE team_id = ?1")?
                    .query_row([&who.team_id], |r| r.get::<_, i64>(0))
                    .optional()?
                    .unwrap_or(0) as u64,
            ),
            (false, _) => total,
        };
        let mut page = keyset_page(items, limit, |m| Cursor { key: q.order.key_of(m), id: m.id.clone() });
        page.total = total;
        Ok(page)
    }

    /// A page of models (as `list_models`) with each one's latest version
    /// (as `latest_version`: the highest-numbered one not deprecated) and,
    /// when `with_creators`, the usernames of their creators by user id.
    ///
    /// A list page used to cost a `latest_version` per row: each repeated the
    /// access check on a model the list had just filtered, and each statement
    /// took its own WAL read lock. Here the access rule is applied once, in
    /// the page query; the latest versions of the whole page come from one
    /// query and their files from another, in one read batch (a version and
    /// its files commit together, and each read follows from the one
    /// before, so a version committed meanwhile is never seen half).
    pub fn list_models_with_latest(&self, who: &Principal, q: &ModelQuery, with_creators: bool) -> Result<ModelsPage> {
        let _snapshot = self.read_snapshot()?;
        let page = self.list_models(who, q)?;
        let ids: Vec<&str> = page.items.iter().map(|m| m.id.as_str()).collect();
        let latest = latest_versions_in(&self.conn, &ids)?;
        let mut creators = std::collections::HashMap::new();
        if with_creators {
            let mut wanted: Vec<&str> = page.items.iter().map(|m| m.created_by.as_str()).collect();
            wanted.sort_unstable();
            wanted.dedup();
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, username FROM users WHERE team_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
            )?;
            let rows = stmt.query_map(params![who.team_id, json_list(&wanted)], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, username) = row?;
                creators.insert(id, username);
            }
        }
        Ok(ModelsPage { page, latest, creators })
    }

    /// A read transaction around several statements where the engine makes
    /// them cheaper that way (`Connection::begin_read_batch`). None inside a
    /// transaction already open on this connection. Dropping it ends it (a
    /// rollback, which for a reader only releases the lock).
    pub(in crate::registry) fn read_snapshot(&self) -> Result<Option<sql::Transaction<'_>>> {
        if self.conn.in_transaction() {
            return Ok(None);
        }
        Ok(self.conn.begin_read_batch()?)
    }

    /// Creates the next version of a model. `build` receives the files of the
    /// latest version (None for the first) and returns the new version; it
    /// runs inside the write transaction, so the number it gets and the base
    /// it derives from cannot change under it. Every blob named must already
    /// be stored (written by `put_blob` under an `upload_guard`).
    pub fn create_version_with(
        &self,
        who: &Principal,
        model_id: &str,
        build: impl FnOnce(Option<&Version>) -> Result<NewVersion>,
    ) -> Result<Version> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        // A derived version builds on the newest one, deprecated or not.
        let newest = newest_version_in(&tx, model_id)?;
        let mut new = build(newest.as_ref())?;
        validate_version_paths(new.files.iter().map(|f| f.path.as_str()))?;
        // Every door's versions get the facts of their weights files here.
        self.record_weight_facts(&mut new, newest.as_ref())?;
        let last: i64 = tx.query_row("SELECT last_version_number FROM models WHERE id = ?1", [model_id], |r| r.get(0))?;
        let number = last.max(newest.as_ref().map_or(0, |v| v.number)) + 1;
        if let Some(label) = &new.label {
            check_label(&tx, model_id, label, number)?;
        }
        let version = insert_version(&tx, who, model_id, number, new)?;
        tx.execute("UPDATE models SET modified_at = ?2 WHERE id = ?1", params![model_id, version.created_at])?;
        tx.commit()?;
        self.get_version_by_id(who, model_id, &version.id)
    }

    #[cfg(test)]
    pub fn create_version(&self, who: &Principal, model_id: &str, new: NewVersion) -> Result<Version> {
        self.create_version_with(who, model_id, |_| Ok(new))
    }

    /// All versions of a model, oldest first.
    pub fn list_versions(&self, who: &Principal, model_id: &str) -> Result<Vec<Version>> {
        self.get_model(who, model_id)?;
        let ids: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 ORDER BY number")?
            .query_map([model_id], |r| r.get(0))?
            .collect::<sql::Result<_>>()?;
        ids.iter().map(|id| load_version(&self.conn, id)).collect()
    }

    /// One page of a model's versions, newest first, with `status` only if
    /// given, and how many there are in all: paged in SQL, so a model with
    /// thousands of versions loads only the page.
    pub fn list_versions_page(
        &self,
        who: &Principal,
        model_id: &str,
        status: Option<VersionStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Version>, u64)> {
        let _snapshot = self.read_snapshot()?;
        self.get_model(who, model_id)?;
        let status = status.map(|s| s.as_str());
        let total: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM model_versions WHERE model_id = ?1 AND (status = ?2 OR ?2 IS NULL)")?
            .query_row(params![model_id, status], |r| r.get(0))?;
        let ids: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT id FROM model_versions WHERE model_id = ?1 AND (status = ?2 OR ?2 IS NULL)
                 ORDER BY number DESC LIMIT ?3 OFFSET ?4",
            )?
            .query_map(params![model_id, status, limit, offset], |r| r.get(0))?
            .collect::<sql::Result<_>>()?;
        let versions = ids.iter().map(|id| load_version(&self.conn, id)).collect::<Result<_>>()?;
        Ok((versions, total as u64))
    }

    /// The model's latest version: the highest-numbered one that is not
    /// deprecated. Every door's "latest" is this one.
    pub fn latest_version(&self, who: &Principal, model_id: &str) -> Result<Option<Version>> {
        self.get_model(who, model_id)?;
        latest_version_in(&self.conn, model_id)
    }

    /// A version by its handle: number, label, alias or `latest`.
    pub fn find_version(&self, who: &Principal, model_id: &str, by: &VersionRef) -> Result<Version> {
        match by {
            VersionRef::Number(n) => self.get_version(who, model_id, *n),
            VersionRef::Label(label) => {
                self.get_model(who, model_id)?;
                let id: String = self
                    .conn
                    .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 AND label = ?2")?
                    .query_row([model_id, label], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| Error::NotFound(format!("model {model_id} has no version {label:?}")))?;
                load_version(&self.conn, &id)
            }
            VersionRef::Alias(alias) => {
                self.get_model(who, model_id)?;
                let id = super::aliases::alias_version_id(&self.conn, model_id, alias)?
                    .ok_or_else(|| Error::NotFound(format!("model {model_id} has no alias {alias:?}")))?;
                load_version(&self.conn, &id)
            }
            VersionRef::Latest => self
                .latest_version(who, model_id)?
                .ok_or_else(|| Error::NotFound(format!("model {model_id} has no version that is not deprecated"))),
        }
    }

    /// The version id a door that names versions by id was given: an id as
    /// it is, or an alias or `latest` resolved to the id of the version it
    /// names, so that `@champion` works wherever an id does.
    pub fn resolve_version_id(&self, who: &Principal, model_id: &str, handle: &str) -> Result<String> {
        if VersionRef::is_alias_or_latest(handle) {
            return Ok(self.find_version(who, model_id, &VersionRef::parse(handle))?.id);
        }
        Ok(handle.to_string())
    }

    /// Sets a version's lifecycle status; needs write access.
    pub fn set_version_status(&self, who: &Principal, model_id: &str, by: &VersionRef, status: VersionStatus) -> Result<Version> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let version = self.find_version(who, model_id, by)?;
        tx.execute("UPDATE model_versions SET status = ?2 WHERE id = ?1", params![version.id, status.as_str()])?;
        if status == VersionStatus::Deprecated && version.status != VersionStatus::Deprecated {
            let subject = EventSubject { team_id: &who.team_id, model_id, version_id: Some(&version.id) };
            emit(&tx, "version.deprecated", subject, json!({}))?;
        }
        tx.execute("UPDATE models SET modified_at = ?2 WHERE id = ?1", params![model_id, now()])?;
        tx.commit()?;
        load_version(&self.conn, &version.id)
    }

    /// Merges metrics into a version's (a `null` value removes a key);
    /// needs write access.
    pub fn update_version_metrics(&self, who: &Principal, model_id: &str, by: &VersionRef, metrics: Attrs) -> Result<Version> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let mut version = self.find_version(who, model_id, by)?;
        for (key, value) in metrics {
            if value.is_null() {
                version.metrics.remove(&key);
            } else {
                version.metrics.insert(key, value);
            }
        }
        tx.execute(
            "UPDATE model_versions SET metrics = ?2 WHERE id = ?1",
            params![version.id, Value::Object(version.metrics.clone()).to_string()],
        )?;
        tx.commit()?;
        Ok(version)
    }

    /// Deletes one version; needs owner rank, like deleting the model. Its
    /// number is never given again. Refused while a job is testing it.
    pub fn delete_version(&self, who: &Principal, model_id: &str, by: &VersionRef) -> Result<DeletedVersion> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Own)?;
        let version = self.find_version(who, model_id, by)?;
        if self.model_under_test(model_id)? {
            return Err(Error::Conflict(format!("model {model_id} is being tested; cancel the test or wait for it")));
        }
        let subject = EventSubject { team_id: &who.team_id, model_id, version_id: Some(&version.id) };
        emit(&tx, "version.deleted", subject, json!({}))?;
        tx.execute("DELETE FROM model_versions WHERE id = ?1", [&version.id])?;
        // What the version alone held: its distinct blobs that no other row
        // references once it is gone.
        let mut still_referenced = tx.prepare_cached("SELECT 1 FROM blob_references WHERE sha256 = ?1 LIMIT 1")?;
        let mut seen = std::collections::HashSet::new();
        let mut freed_bytes = 0;
        for file in &version.files {
            if seen.insert(&file.sha256) && still_referenced.query_row([&file.sha256], |_| Ok(())).optional()?.is_none() {
                freed_bytes += file.size;
            }
        }
        drop(still_referenced);
        tx.execute("UPDATE models SET modified_at = ?2 WHERE id = ?1", params![model_id, now()])?;
        tx.commit()?;
        Ok(DeletedVersion { number: version.number, freed_bytes })
    }

    /// The visible models of the caller's team with exactly this name.
    pub fn models_named(&self, who: &Principal, name: &str) -> Result<Vec<Model>> {
        let ids: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM models WHERE team_id = ?1 AND name = ?2 ORDER BY created_at, id LIMIT 50")?
            .query_map([&who.team_id, name], |r| r.get(0))?
            .collect::<sql::Result<_>>()?;
        let mut models = Vec::new();
        for id in ids {
            match self.get_model(who, &id) {
                Ok(model) => models.push(model),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(models)
    }

    /// A model named by its id, or else by its name: the handle people
    /// type. A name two visible models share is an error listing both.
    pub fn resolve_model(&self, who: &Principal, handle: &str) -> Result<Model> {
        match self.get_model(who, handle) {
            Err(Error::NotFound(_)) => {}
            found => return found,
        }
        let mut named = self.models_named(who, handle)?;
        match named.len() {
            0 => Err(Error::not_found("model", handle)),
            1 => Ok(named.remove(0)),
            _ => Err(Error::Conflict(format!(
                "{} models are named {handle:?}; name one by its id: {}",
                named.len(),
                named.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    pub fn get_version(&self, who: &Principal, model_id: &str, number: i64) -> Result<Version> {
        self.get_model(who, model_id)?;
        let id: String = self
            .conn
            .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 AND number = ?2")?
            .query_row(params![model_id, number], |r| r.get(0))
            .optional()?
            .ok_or_else(|| Error::NotFound(format!("model {model_id} has no version {number}")))?;
        load_version(&self.conn, &id)
    }

    pub fn get_version_by_id(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<Version> {
        self.get_model(who, model_id)?;
        let found: Option<String> = self
            .conn
            .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 AND id = ?2")?
            .query_row([model_id, version_id], |r| r.get(0))
            .optional()?;
        match found {
            Some(id) => load_version(&self.conn, &id),
            None => Err(Error::not_found("version", version_id)),
        }
    }

    /// Replaces a version's description and merges attrs; its files never
    /// change.
    pub fn update_version(
        &self,
        who: &Principal,
        model_id: &str,
        version_id: &str,
        description: Option<Option<String>>,
        attrs: Attrs,
    ) -> Result<Version> {
        let tx = self.write()?;
        self.model_for(who, model_id, Access::Write)?;
        let mut version = self.get_version_by_id(who, model_id, version_id)?;
        if let Some(d) = description {
            version.description = d;
        }
        merge_attrs(&mut version.attrs, attrs);
        tx.execute(
            "UPDATE model_versions SET description = ?2, attrs = ?3 WHERE id = ?1",
            params![version.id, version.description, Value::Object(version.attrs.clone()).to_string()],
        )?;
        tx.commit()?;
        Ok(version)
    }
}

/// Inserts a version row numbered `number` with its files (fresh ids) and
/// their blob rows. The caller holds the write transaction, has checked the
/// paths, and stored every blob under an upload guard it still holds.
pub(in crate::registry) fn insert_version(tx: &sql::Connection, who: &Principal, model_id: &str, number: i64, new: NewVersion) -> Result<Version> {
    let at = now();
    let version = Version {
        id: new_id(),
        model_id: model_id.to_string(),
        number,
        description: new.description,
        created_by: who.user_id.clone(),
        created_at: at.clone(),
        attrs: new.attrs,
        status: VersionStatus::Active,
        label: new.label,
        metrics: Attrs::new(),
        lineage: Lineage::default(),
        files: new
            .files
            .into_iter()
            .map(|f| VersionFile { id: new_id(), path: f.path, sha256: f.digest.sha256, size: f.digest.size, created_at: at.clone() })
            .collect(),
    };
    tx.execute(
        "INSERT INTO model_versions (id, model_id, number, description, created_by, created_at, attrs, label)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            version.id,
            version.model_id,
            version.number,
            version.description,
            version.created_by,
            version.created_at,
            Value::Object(version.attrs.clone()).to_string(),
            version.label
        ],
    )?;
    tx.execute(
        "UPDATE models SET last_version_number = ?2 WHERE id = ?1 AND last_version_number < ?2",
        params![version.model_id, version.number],
    )?;
    // prepared once for all of a version's files, which may be thousands
    let mut insert_blob =
        tx.prepare_cached("INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?;
    let mut insert_file = tx.prepare_cached(
        "INSERT INTO version_files (id, version_id, position, path, sha256, size, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (position, file) in version.files.iter().enumerate() {
        insert_blob.execute(params![file.sha256, file.size, at])?;
        insert_file.execute(params![file.id, version.id, position as i64, file.path, file.sha256, file.size, file.created_at])?;
    }
    let subject = EventSubject { team_id: &who.team_id, model_id, version_id: Some(&version.id) };
    emit(tx, "version.created", subject, json!({"files": version.files.len(), "size": version.total_size()}))?;
    Ok(version)
}

/// Applies a partial update: each key replaces the stored one, and a `null`
/// value removes the key.
fn merge_attrs(attrs: &mut Attrs, patch: Attrs) {
    for (key, value) in patch {
        if value.is_null() {
            attrs.remove(&key);
        } else {
            attrs.insert(key, value);
        }
    }
}

fn sql_value(v: &Value) -> sql::Value {
    use sql::Value as Sql;
    match v {
        Value::Null => Sql::Null,
        Value::Bool(b) => Sql::Integer(*b as i64),
        Value::Number(n) => n.as_i64().map(Sql::Integer).unwrap_or_else(|| Sql::Real(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => Sql::Text(s.clone()),
        other => Sql::Text(other.to_string()),
    }
}

/// The name of a model created without one: `model-` and the last 8
/// characters of its id (the random end of a UUIDv7; its start is a
/// timestamp that models made in the same minute share).
pub fn unnamed(id: &str) -> String {
    format!("model-{}", id.get(id.len().saturating_sub(8)..).unwrap_or(id))
}

/// A label is unique within its model, and one that looks like a number
/// must be the number itself, so that a reference is never ambiguous.
fn check_label(tx: &sql::Connection, model_id: &str, label: &str, number: i64) -> Result<()> {
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(|c| c.is_control() || c == '/') {
        return Err(Error::invalid("version", "must be 1 to 64 characters, without control characters or '/'"));
    }
    if label.starts_with('@') || label == super::aliases::LATEST {
        return Err(Error::invalid("version", "must not start with '@' nor be \"latest\": those name an alias and the latest version"));
    }
    if let VersionRef::Number(n) = VersionRef::parse(label) {
        if n != number {
            return Err(Error::Conflict(format!(
                "version numbers are given by modelreg and the next one is {number}; send {number}, or a label such as \"1.0.0\""
            )));
        }
        return Ok(());
    }
    let taken: bool = tx
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM model_versions WHERE model_id = ?1 AND label = ?2)")?
        .query_row([model_id, label], |r| r.get(0))?;
    if taken {
        return Err(Error::Conflict(format!("model {model_id} already has a version {label:?}")));
    }
    Ok(())
}

fn latest_version_in(conn: &sql::Connection, model_id: &str) -> Result<Option<Version>> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM model_versions WHERE model_id = ?1 AND status <> 'deprecated' ORDER BY number DESC LIMIT 1",
        )?
        .query_row([model_id], |r| r.get(0))
        .optional()?;
    id.map(|id| load_version(conn, &id)).transpose()
}

/// The latest version (see `latest_version_in`) of each model in `model_ids`,
/// in the same order: one query for the versions and one for their files,
/// whatever the number of models. No access check: callers pass models they
/// were allowed to list.
pub(in crate::registry) fn latest_versions_in(conn: &sql::Connection, model_ids: &[&str]) -> Result<Vec<Option<Version>>> {
    let mut latest: Vec<Option<Version>> = model_ids.iter().map(|_| None).collect();
    if model_ids.is_empty() {
        return Ok(latest);
    }
    let ids = json_list(model_ids);
    // The correlated subquery is latest_version_in's query, run once per
    // model on the (model_id, number) index. The files come in the same
    // statement (a version's columns repeat on each of its files' rows): a
    // statement is a round trip on PostgreSQL, and a list page waits for
    // each one.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT j.key, {VERSION_COLUMNS}, f.id, f.path, f.sha256, f.size, f.created_at
         FROM json_each(?1) j
         JOIN model_versions v ON v.id =
            (SELECT id FROM model_versions WHERE model_id = j.value AND status <> 'deprecated' ORDER BY number DESC LIMIT 1)
         LEFT JOIN version_files f ON f.version_id = v.id
         ORDER BY j.key, f.position"
    ))?;
    const FILE_AT: usize = 12;
    let mut rows = stmt.query([&ids])?;
    while let Some(r) = rows.next()? {
        let index: usize = r.get(0)?;
        let Some(slot) = latest.get_mut(index) else { continue };
        if slot.is_none() {
            *slot = Some(version_from_row(&r, 1)?);
        }
        let Some(file_id) = r.get::<_, Option<String>>(FILE_AT)? else { continue };
        let file = VersionFile {
            id: file_id,
            path: r.get(FILE_AT + 1)?,
            sha256: r.get(FILE_AT + 2)?,
            size: r.get::<_, i64>(FILE_AT + 3)? as u64,
            created_at: r.get(FILE_AT + 4)?,
        };
        slot.as_mut().expect("set above").files.push(file);
    }
    Ok(latest)
}

fn json_list(items: &[&str]) -> String {
    Value::from(items.iter().map(|s| Value::from(*s)).collect::<Vec<_>>()).to_string()
}

const VERSION_COLUMNS: &str =
    "v.id, v.model_id, v.number, v.description, v.created_by, v.created_at, v.attrs, v.status, v.label, v.metrics, v.lineage";

/// A version's row from `VERSION_COLUMNS` starting at column `at`; its files are left empty.
fn version_from_row(r: &sql::Row, at: usize) -> sql::Result<Version> {
    Ok(Version {
        id: r.get(at)?,
        model_id: r.get(at + 1)?,
        number: r.get(at + 2)?,
        description: r.get(at + 3)?,
        created_by: r.get(at + 4)?,
        created_at: r.get(at + 5)?,
        attrs: parse_attrs(&r.get::<_, String>(at + 6)?)?,
        files: Vec::new(),
        // The column's CHECK admits only what `VersionStatus::parse` knows.
        status: VersionStatus::parse(&r.get::<_, String>(at + 7)?).unwrap_or_default(),
        label: r.get(at + 8)?,
        metrics: parse_attrs(&r.get::<_, String>(at + 9)?)?,
        lineage: Lineage::from_column(&r.get::<_, String>(at + 10)?),
    })
}

fn newest_version_in(conn: &sql::Connection, model_id: &str) -> Result<Option<Version>> {
    let id: Option<String> = conn
        .prepare_cached("SELECT id FROM model_versions WHERE model_id = ?1 ORDER BY number DESC LIMIT 1")?
        .query_row([model_id], |r| r.get(0))
        .optional()?;
    id.map(|id| load_version(conn, &id)).transpose()
}

fn load_version(conn: &sql::Connection, id: &str) -> Result<Version> {
    let mut version = conn
        .prepare_cached(&format!("SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.id = ?1"))?
        .query_row([id], |r| version_from_row(r, 0))?;
    version.files = conn
        .prepare_cached("SELECT id, path, sha256, size, created_at FROM version_files WHERE version_id = ?1 ORDER BY position")?
        .query_map([id], |r| {
            Ok(VersionFile { id: r.get(0)?, path: r.get(1)?, sha256: r.get(2)?, size: r.get::<_, i64>(3)? as u64, created_at: r.get(4)? })
        })?
        .collect::<sql::Result<_>>()?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::validate_file_path;

    #[test]
    fn file_paths_cannot_escape() {
        for ok in ["model.pt", "a/b/c.txt", "custom.py"] {
            assert!(validate_file_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "a\0b", "./a"] {
            assert!(validate_file_path(bad).is_err(), "{bad:?}");
        }
    }
}
