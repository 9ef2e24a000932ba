//! Datasets: uploaded tables (CSV) that custom models train on and are
//! tested with. A dataset is a row pointing at its file's blob; the file is
//! read once, by the ingest job (`INGEST_JOB`, run by `run_ingest`), to learn
//! its header and row count. The row is readable at once, RUNNING, and ends
//! COMPLETED or ERROR with a message a person can act on.
//!
//! Training data is assigned here too: a model's (the `trainingDataset…`
//! attrs) or a version's (`trainingData`/`holdoutData` attrs), always to a
//! COMPLETED dataset that holds the model's target column.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

use serde_json::{json, Value};

use crate::registry::compute::jobs::{enqueue_job_in, finished_job_in, Job, JobLog};
use crate::registry::catalogue::models::{Attrs, Model, ModelPatch};
use crate::registry::page::{offset_page, offset_tail, Page};
use crate::registry::{new_id, now, Digest, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

pub const INGEST_JOB: &str = "dataset-ingest";
/// The kind of the already-finished job a training-data assignment records,
/// so that a client can poll it like any other.
pub const TRAINING_DATA_JOB: &str = "training-data-assignment";

/// A row longer than this fails the ingest: the parser holds one row in
/// memory, and this bounds it whatever the file's size.
pub const MAX_ROW_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetState {
    Running,
    Completed,
    Error,
}

impl DatasetState {
    /// DataRobot's `processingState` values, which the table stores.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetState::Running => "RUNNING",
            DatasetState::Completed => "COMPLETED",
            DatasetState::Error => "ERROR",
        }
    }

    fn parse(s: &str) -> DatasetState {
        match s {
            "COMPLETED" => DatasetState::Completed,
            "RUNNING" => DatasetState::Running,
            _ => DatasetState::Error,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub id: String,
    pub team_id: String,
    /// A dataset has one version; clients carry its id next to the dataset's.
    pub version_id: String,
    pub name: String,
    /// The uploaded file's name (a base name).
    pub file_name: String,
    pub sha256: String,
    pub size: u64,
    pub state: DatasetState,
    /// Why the ingest failed (ERROR only).
    pub error: Option<String>,
    /// The header, once COMPLETED (empty before).
    pub columns: Vec<String>,
    /// Data rows (the header not counted), once COMPLETED.
    pub row_count: Option<u64>,
    pub categories: Vec<String>,
    pub created_by: String,
    pub created_by_name: String,
    pub created_at: String,
}

#[derive(Clone, Debug)]
pub struct NewDataset {
    pub name: String,
    pub file_name: String,
    /// The file, already stored under an upload guard the caller still holds.
    pub digest: Digest,
    pub categories: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DatasetPatch {
    pub name: Option<String>,
    pub categories: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct DatasetQuery {
    pub offset: u64,
    pub limit: u64,
    /// Keep datasets with this category.
    pub category: Option<String>,
    /// Leave out datasets whose ingest failed.
    pub exclude_failed: bool,
    pub oldest_first: bool,
}

/// Training data as a request names it.
#[derive(Clone, Debug, Default)]
pub struct TrainingDataRef {
    pub dataset_id: String,
    pub dataset_version_id: Option<String>,
    pub partition_column: Option<String>,
}

/// The model attrs of a model-level assignment (DataRobot's wire names,
/// which its adapter renders as they are).
pub const MODEL_TRAINING_ATTRS: [&str; 4] =
    ["trainingDatasetId", "trainingDatasetVersionId", "trainingDataFileName", "trainingDataPartitionColumn"];

const DATASET_COLUMNS: &str = "d.id, d.team_id, d.version_id, d.name, d.file_name, d.sha256, d.size, d.state, d.error,
    d.columns, d.row_count, d.categories, d.created_by, u.username, d.created_at";
const DATASET_FROM: &str = "datasets d JOIN users u ON u.id = d.created_by";

fn dataset_from_row(r: &sql::Row) -> sql::Result<Dataset> {
    let strings = |i: usize| -> sql::Result<Vec<String>> {
        let Some(text) = r.get::<_, Option<String>>(i)? else { return Ok(Vec::new()) };
        serde_json::from_str(&text).map_err(|e| sql::Error::conversion(i, e))
    };
    Ok(Dataset {
        id: r.get(0)?,
        team_id: r.get(1)?,
        version_id: r.get(2)?,
        name: r.get(3)?,
        file_name: r.get(4)?,
        sha256: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        state: DatasetState::parse(&r.get::<_, String>(7)?),
        error: r.get(8)?,
        columns: strings(9)?,
        row_count: r.get::<_, Option<i64>>(10)?.map(|n| n as u64),
        categories: strings(11)?,
        created_by: r.get(12)?,
        created_by_name: r.get(13)?,
        created_at: r.get(14)?,
    })
}

impl Registry {
    /// Records a dataset, RUNNING, and queues its ingest job in the same
    /// transaction, so no dataset is ever left without one. Call
    /// `crate::jobs::wake()` after, once the upload guard is dropped.
    pub fn create_dataset(&self, who: &Principal, new: NewDataset) -> Result<(Dataset, Job)> {
        let tx = self.write()?;
        let (id, at) = (new_id(), now());
        tx.execute(
            "INSERT INTO blobs (sha256, size, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![new.digest.sha256, new.digest.size, at],
        )?;
        tx.execute(
            "INSERT INTO datasets (id, team_id, version_id, name, file_name, sha256, size, state, categories, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'RUNNING', ?8, ?9, ?10)",
            params![
                id,
                who.team_id,
                new_id(),
                new.name,
                new.file_name,
                new.digest.sha256,
                new.digest.size as i64,
                Value::from(new.categories).to_string(),
                who.user_id,
                at
            ],
        )?;
        let job = enqueue_job_in(&tx, &who.team_id, INGEST_JOB, Some(&id), json!({"datasetId": id}), None)?;
        tx.commit()?;
        Ok((self.get_dataset(who, &id)?, job))
    }

    /// A dataset of the caller's team; another team's is NotFound.
    pub fn get_dataset(&self, who: &Principal, id: &str) -> Result<Dataset> {
        self.conn
            .prepare_cached(&format!("SELECT {DATASET_COLUMNS} FROM {DATASET_FROM} WHERE d.id = ?1 AND d.team_id = ?2"))?
            .query_row([id, &who.team_id], dataset_from_row)
            .optional()?
            .ok_or_else(|| Error::not_found("dataset", id))
    }

    /// For the ingest job, which acts for no user.
    fn dataset_by_id(&self, id: &str) -> Result<Option<Dataset>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {DATASET_COLUMNS} FROM {DATASET_FROM} WHERE d.id = ?1"))?
            .query_row([id], dataset_from_row)
            .optional()?)
    }

    /// A dataset that can be used (trained on, tested with): COMPLETED.
    /// One still being ingested, or whose ingest failed, is a 422 saying so.
    pub fn usable_dataset(&self, who: &Principal, id: &str) -> Result<Dataset> {
        let dataset = self.get_dataset(who, id)?;
        match dataset.state {
            DatasetState::Completed => Ok(dataset),
            DatasetState::Running => Err(Error::unprocessable(format!(
                "dataset {id} is still being ingested; try again once its processingState is COMPLETED"
            ))),
            DatasetState::Error => Err(Error::unprocessable(format!(
                "dataset {id} failed to ingest and cannot be used: {}",
                dataset.error.as_deref().unwrap_or("no reason was recorded")
            ))),
        }
    }

    /// The team's datasets by creation time (newest first unless asked),
    /// with the total count. The page reads the `(team_id, created_at, id)`
    /// index; an unfiltered total is a counter kept by triggers, and only a
    /// filtered list counts its matches.
    pub fn list_datasets(&self, who: &Principal, q: &DatasetQuery) -> Result<Page<Dataset>> {
        let mut filter = String::from("d.team_id = ?");
        let mut args: Vec<sql::Value> = vec![who.team_id.clone().into()];
        if let Some(category) = &q.category {
            filter.push_str(" AND EXISTS (SELECT 1 FROM json_each(d.categories) WHERE value = ?)");
            args.push(category.clone().into());
        }
        if q.exclude_failed {
            filter.push_str(" AND d.state <> 'ERROR'");
        }
        let total: i64 = if args.len() == 1 && !q.exclude_failed {
            self.conn
                .prepare_cached("SELECT datasets FROM team_dataset_counts WHERE team_id = ?1")?
                .query_row([&who.team_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0)
        } else {
            self.conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM datasets d WHERE {filter}"))?
                .query_row(sql::params_from_iter(args.iter()), |r| r.get(0))?
        };
        let direction = if q.oldest_first { "ASC" } else { "DESC" };
        let tail = offset_tail(q.offset, q.limit, &mut args);
        let items = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DATASET_COLUMNS} FROM {DATASET_FROM} WHERE {filter}
                 ORDER BY d.created_at {direction}, d.id {direction}{tail}"
            ))?
            .query_map(sql::params_from_iter(args.iter()), dataset_from_row)?
            .collect::<sql::Result<Vec<_>>>()?;
        Ok(offset_page(items, q.limit, total))
    }

    /// Renames or re-categorises a dataset; any member of its team may.
    pub fn update_dataset(&self, who: &Principal, id: &str, patch: DatasetPatch) -> Result<Dataset> {
        let tx = self.write()?;
        let mut dataset = self.get_dataset(who, id)?;
        if let Some(name) = patch.name {
            dataset.name = name;
        }
        if let Some(categories) = patch.categories {
            dataset.categories = categories;
        }
        tx.execute(
            "UPDATE datasets SET name = ?2, categories = ?3 WHERE id = ?1",
            params![id, dataset.name, Value::from(dataset.categories.clone()).to_string()],
        )?;
        tx.commit()?;
        Ok(dataset)
    }

    /// Deletes a dataset for good (its blob stays until gc finds it
    /// unreferenced). As for a model without roles, its creator or a team
    /// admin may delete it. A model or version that named it keeps the id;
    /// `training_dataset_for` then reports it gone.
    pub fn delete_dataset(&self, who: &Principal, id: &str) -> Result<()> {
        let tx = self.write()?;
        let dataset = self.get_dataset(who, id)?;
        if dataset.created_by != who.user_id && !who.is_admin {
            return Err(Error::Forbidden(format!("only the creator of dataset {id} or a team admin may delete it")));
        }
        tx.execute("DELETE FROM datasets WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    fn finish_ingest(&self, id: &str, outcome: &std::result::Result<Table, String>) -> Result<()> {
        match outcome {
            Ok(table) => self.conn.execute(
                "UPDATE datasets SET state = 'COMPLETED', error = NULL, columns = ?2, row_count = ?3 WHERE id = ?1",
                params![id, Value::from(table.columns.clone()).to_string(), table.rows as i64],
            )?,
            Err(message) => {
                self.conn.execute("UPDATE datasets SET state = 'ERROR', error = ?2 WHERE id = ?1", params![id, message])?
            }
        };
        Ok(())
    }

    /// The dataset a model, or one of its versions, may train on: one the
    /// caller can use (COMPLETED), of the version named if one is, holding
    /// the model's target column (when it has one) and the partition column
    /// (when one is named). Runs on the caller's connection, so inside the
    /// caller's write transaction when it holds one.
    pub fn training_dataset(&self, who: &Principal, model: &Model, data: &TrainingDataRef) -> Result<Dataset> {
        let dataset = self.usable_dataset(who, &data.dataset_id)?;
        if let Some(version) = data.dataset_version_id.as_deref().filter(|v| *v != dataset.version_id) {
            return Err(Error::NotFound(format!("dataset {} has no version {version}", dataset.id)));
        }
        let target = model.attrs.get("targetName").and_then(Value::as_str).filter(|t| !t.is_empty());
        for (column, role) in [(target, "target"), (data.partition_column.as_deref(), "partition")] {
            if let Some(column) = column.filter(|c| !dataset.columns.iter().any(|have| have == c)) {
                return Err(Error::unprocessable(format!(
                    "dataset {} ({}) has no column {column:?}, the model's {role} column; its columns are {}",
                    dataset.id,
                    dataset.name,
                    column_list(&dataset.columns)
                )));
            }
        }
        Ok(dataset)
    }

    /// Assigns training data to a model itself (not to its versions), in one
    /// write transaction with the record of a finished job whose result is
    /// `result`, so a client polling its status is done on the first poll.
    /// Needs write access; a model whose training data lives on its versions
    /// (`isTrainingDataForVersionsPermanentlyEnabled`) refuses it (422).
    pub fn assign_training_data(&self, who: &Principal, model_id: &str, data: &TrainingDataRef, result: Value) -> Result<(Model, Job)> {
        let tx = self.write()?;
        let model = self.patch_model_in(&tx, who, model_id, |model| {
            if model.attrs.get("isTrainingDataForVersionsPermanentlyEnabled").and_then(Value::as_bool) == Some(true) {
                return Err(Error::unprocessable(
                    "this model assigns training data on its versions (isTrainingDataForVersionsPermanentlyEnabled); \
                     create a version with trainingData instead",
                ));
            }
            let dataset = self.training_dataset(who, model, data)?;
            let values = [
                json!(dataset.id),
                json!(dataset.version_id),
                json!(dataset.file_name),
                data.partition_column.clone().map_or(Value::Null, Value::from),
            ];
            let attrs: Attrs = MODEL_TRAINING_ATTRS.iter().map(|k| k.to_string()).zip(values).collect();
            Ok(ModelPatch { attrs, ..Default::default() })
        })?;
        let job = finished_job_in(&tx, &who.team_id, TRAINING_DATA_JOB, Some(model_id), result)?;
        tx.commit()?;
        Ok((model, job))
    }

    /// What a version trains on, with its partition column: the version's
    /// own `trainingData` (and `holdoutData.partitionColumn`), else the
    /// model's assignment; None when neither names a dataset. A dataset
    /// deleted since is NotFound, naming it.
    pub fn training_dataset_for(&self, who: &Principal, model_id: &str, version_id: &str) -> Result<Option<(Dataset, Option<String>)>> {
        let model = self.get_model(who, model_id)?;
        let version = self.get_version_by_id(who, model_id, version_id)?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        let (dataset_id, partition) = match text(version.attrs.get("trainingData").and_then(|t| t.get("datasetId"))) {
            Some(id) => (id, text(version.attrs.get("holdoutData").and_then(|h| h.get("partitionColumn")))),
            None => match text(model.attrs.get("trainingDatasetId")) {
                Some(id) => (id, text(model.attrs.get("trainingDataPartitionColumn"))),
                None => return Ok(None),
            },
        };
        let dataset = self.get_dataset(who, &dataset_id).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("the training dataset {dataset_id} of this model no longer exists")),
            other => other,
        })?;
        Ok(Some((dataset, partition)))
    }
}

/// At most 20 names, quoted, for an error message.
fn column_list(columns: &[String]) -> String {
    let mut list: Vec<String> = columns.iter().take(20).map(|c| format!("{c:?}")).collect();
    if columns.len() > 20 {
        list.push(format!("and {} more", columns.len() - 20));
    }
    list.join(", ")
}

/// Runs a dataset's ingest: reads its file as CSV, records COMPLETED (with
/// the header and row count) or ERROR (with the reason), and answers the
/// dataset's path so the status route can redirect to it. A failed ingest
/// fails the job with the same reason, which the status route reports.
pub fn run_ingest(registry: &Registry, job: &Job) -> std::result::Result<Value, String> {
    let id = job.subject_id.as_deref().ok_or("the ingest job names no dataset")?;
    let Some(dataset) = registry.dataset_by_id(id).map_err(|e| e.to_string())? else {
        return Err(format!("dataset {id} was deleted before it was ingested"));
    };
    let log = JobLog::new(registry, &job.id);
    log.line(&format!("reading {} ({} bytes) as CSV", dataset.file_name, dataset.size));
    let file = registry.open_blob(&dataset.sha256).map_err(|e| e.to_string())?;
    let outcome = scan_csv(file, dataset.size);
    registry.finish_ingest(id, &outcome).map_err(|e| e.to_string())?;
    match outcome {
        Ok(table) => {
            log.line(&format!("{} columns, {} rows", table.columns.len(), table.rows));
            Ok(json!({"location": format!("/api/v2/datasets/{id}/")}))
        }
        Err(message) => {
            log.line(&message);
            Err(message)
        }
    }
}

/// What the ingest learns of a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: u64,
}

/// Reads a CSV stream once, one row at a time, for its header and its row
/// count. Memory stays bounded whatever the file's size: the parser holds
/// one row, and a row over `MAX_ROW_BYTES` fails the scan. `size` is the
/// file's length, for the empty-file message. Every error names what to fix.
pub fn scan_csv(reader: impl Read, size: u64) -> std::result::Result<Table, String> {
    if size == 0 {
        return Err("the file is empty; upload a CSV file with a header row".into());
    }
    const BUFFER: usize = 64 * 1024;
    let allowed = Rc::new(Cell::new(MAX_ROW_BYTES + BUFFER as u64));
    let capped = RowCap { inner: reader, read: 0, allowed: Rc::clone(&allowed), hit: Rc::new(Cell::new(false)) };
    let hit = Rc::clone(&capped.hit);
    let mut csv = csv::ReaderBuilder::new().has_headers(false).buffer_capacity(BUFFER).from_reader(capped);
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    let read = |csv: &mut csv::Reader<RowCap<_>>, record: &mut csv::StringRecord, line: u64| -> std::result::Result<bool, String> {
        let more = csv.read_record(record).map_err(|e| describe_csv_error(e, line, hit.get()))?;
        // The next row may use MAX_ROW_BYTES past where it starts.
        allowed.set(csv.position().byte() + MAX_ROW_BYTES + BUFFER as u64);
        if more && record.as_slice().contains('\0') {
            let at = record.position().map_or(line, |p| p.line());
            return Err(format!("line {at} contains a NUL byte: this does not look like a CSV text file"));
        }
        Ok(more)
    };
    if !read(&mut csv, &mut record, line)? {
        return Err("the file has no header row (it holds only blank lines); the first line must name the columns".into());
    }
    let columns: Vec<String> = record.iter().map(|c| c.trim().to_string()).collect();
    let mut seen = std::collections::HashMap::new();
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("column {} of the header (line 1) has no name; every column needs a unique name", i + 1));
        }
        if let Some(first) = seen.insert(name.as_str(), i) {
            return Err(format!("the header names column {name:?} twice (columns {} and {}); column names must be unique", first + 1, i + 1));
        }
    }
    let mut rows = 0u64;
    loop {
        line = csv.position().line();
        if !read(&mut csv, &mut record, line)? {
            break;
        }
        rows += 1;
    }
    Ok(Table { columns, rows })
}

/// A person's reading of a parse error. `line` is where the row being read
/// started; `too_long` says the row cap stopped the read.
fn describe_csv_error(e: csv::Error, line: u64, too_long: bool) -> String {
    let line_of = |pos: &Option<csv::Position>| pos.as_ref().map_or(line, |p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => format!(
            "line {} has {len} fields, but the header has {expected_len}; every row needs one value per column \
             (quote values that contain commas or line breaks)",
            line_of(pos)
        ),
        csv::ErrorKind::Utf8 { pos, .. } => format!(
            "line {} is not UTF-8 text: this does not look like a CSV file, or it was saved in another encoding; save it as CSV (UTF-8)",
            line_of(pos)
        ),
        csv::ErrorKind::Io(_) if too_long => format!(
            "the row starting on line {line} is longer than {} MiB (an unclosed quote makes the rest of the file one row)",
            MAX_ROW_BYTES / (1024 * 1024)
        ),
        csv::ErrorKind::Io(io) => format!("reading the stored file failed: {io}"),
        _ => format!("the file could not be read as CSV near line {line}: {e}"),
    }
}

/// Hands the CSV parser no more than `allowed` bytes from the start of the
/// stream; the scan moves `allowed` forward after every row. A row that
/// needs more sets `hit` and fails the read, so one endless row cannot
/// grow the parser's buffer without bound.
struct RowCap<R> {
    inner: R,
    read: u64,
    allowed: Rc<Cell<u64>>,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for RowCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.allowed.get().saturating_sub(self.read);
        if room == 0 && !buf.is_empty() {
            self.hit.set(true);
            return Err(std::io::Error::other("row too long"));
        }
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &[u8]) -> std::result::Result<Table, String> {
        scan_csv(text, text.len() as u64)
    }

    fn stored(registry: &Registry, who: &Principal, bytes: &[u8]) -> (Dataset, Job) {
        let guard = registry.upload_guard().unwrap();
        let digest = registry.put_blob(&mut &bytes[..], None).unwrap();
        let new = NewDataset { name: "d".into(), file_name: "d.csv".into(), digest, categories: Vec::new() };
        let created = registry.create_dataset(who, new).unwrap();
        drop(guard);
        created
    }

    fn ingest(registry: &Registry, id: &str) {
        let lease = crate::registry::compute::jobs::tests::lease("test");
        let job = registry.claim_job_about(&[INGEST_JOB], id, &lease).unwrap().expect("the ingest job was queued with the dataset");
        let outcome = run_ingest(registry, &job);
        registry.finish_job(&job.id, &lease, outcome).unwrap();
    }

    #[test]
    fn ingest_then_training_data_on_the_model_and_on_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let (dataset, _) = stored(&registry, &who, b"fold,price\nA,1\nB,2\n");
        assert_eq!(dataset.state, DatasetState::Running);
        assert!(matches!(registry.usable_dataset(&who, &dataset.id), Err(Error::Unprocessable { .. })));
        ingest(&registry, &dataset.id);
        let dataset = registry.usable_dataset(&who, &dataset.id).unwrap();
        assert_eq!((dataset.columns.clone(), dataset.row_count), (vec!["fold".to_string(), "price".to_string()], Some(2)));

        let mut attrs = Attrs::new();
        attrs.insert("targetName".into(), json!("price"));
        let model = registry.create_model(&who, crate::registry::NewModel { name: "m".into(), description: None, attrs, origin: crate::registry::Origin::DataRobot }).unwrap();
        let version = registry.create_version(&who, &model.id, Default::default()).unwrap();
        assert_eq!(registry.training_dataset_for(&who, &model.id, &version.id).unwrap(), None);
        let data = TrainingDataRef { dataset_id: dataset.id.clone(), partition_column: Some("fold".into()), ..Default::default() };
        let (model, job) = registry.assign_training_data(&who, &model.id, &data, json!({"location": "/m/"})).unwrap();
        assert_eq!(model.attrs["trainingDatasetId"], json!(dataset.id));
        assert_eq!((job.state, registry.get_job(&who, &job.id).unwrap().result), (crate::registry::JobState::Succeeded, Some(json!({"location": "/m/"}))));
        let (used, partition) = registry.training_dataset_for(&who, &model.id, &version.id).unwrap().unwrap();
        assert_eq!((used.id.as_str(), partition.as_deref()), (dataset.id.as_str(), Some("fold")));

        // A version's own training data comes first.
        let (other, _) = stored(&registry, &who, b"price\n3\n");
        ingest(&registry, &other.id);
        let mut attrs = Attrs::new();
        attrs.insert("trainingData".into(), json!({"datasetId": other.id}));
        let v2 = registry.create_version(&who, &model.id, crate::registry::NewVersion { attrs, ..Default::default() }).unwrap();
        let (used, partition) = registry.training_dataset_for(&who, &model.id, &v2.id).unwrap().unwrap();
        assert_eq!((used.id.as_str(), partition), (other.id.as_str(), None));
        registry.delete_dataset(&who, &other.id).unwrap();
        assert!(matches!(registry.training_dataset_for(&who, &model.id, &v2.id), Err(Error::NotFound(_))));

        // A failed check leaves the model as it was and records no job.
        let (no_price, _) = stored(&registry, &who, b"fold\nA\n");
        ingest(&registry, &no_price.id);
        let data = TrainingDataRef { dataset_id: no_price.id.clone(), ..Default::default() };
        assert!(registry.assign_training_data(&who, &model.id, &data, json!({})).is_err());
        assert_eq!(registry.get_model(&who, &model.id).unwrap().attrs["trainingDatasetId"], json!(dataset.id));
        assert_eq!(registry.latest_job_for(&model.id).unwrap().unwrap().id, job.id);
    }

    #[test]
    fn quoted_fields_newlines_and_a_bom() {
        let t = scan(b"\xEF\xBB\xBFid,text,price\r\n1,\"a, b\",2\n2,\"two\nlines \"\"quoted\"\"\",3\n\n").unwrap();
        assert_eq!(t, Table { columns: vec!["id".into(), "text".into(), "price".into()], rows: 2 });
        assert_eq!(scan(b"a,b\n").unwrap().rows, 0);
        assert_eq!(scan(b"a,b").unwrap().columns, vec!["a", "b"]);
    }

    #[test]
    fn errors_name_what_to_fix() {
        let e = |text: &[u8]| scan(text).unwrap_err();
        assert!(e(b"").contains("empty"));
        assert!(e(b"\n\n").contains("no header"));
        let ragged = e(b"a,b\n1,2\n\"x\ny\",2\n1,2,3\n");
        assert!(ragged.starts_with("line 5 has 3 fields, but the header has 2"), "{ragged}");
        assert!(e(b"a,,c\n").contains("column 2"));
        assert!(e(b"a,b,a\n").contains("\"a\" twice (columns 1 and 3)"));
        let binary = e(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe");
        assert!(binary.contains("not UTF-8"), "{binary}");
        assert!(e(b"a,b\n\0\0,1\n").contains("line 2 contains a NUL byte"));
    }

    #[test]
    fn an_endless_row_is_refused_within_bounded_memory() {
        // An unclosed quote: the rest of a 40 MiB stream is one field.
        let body = b"a,b\n1,\"x".chain(std::io::repeat(b'y').take(40 * 1024 * 1024));
        let e = scan_csv(body, 40 * 1024 * 1024).unwrap_err();
        assert!(e.starts_with("the row starting on line 2 is longer than 16 MiB"), "{e}");
    }

    #[test]
    fn long_files_of_short_rows_are_fine() {
        // 30 MiB of rows: far over the row cap in all, which must not count.
        let rows = 1_000_000u64;
        let generated = (0..rows).map(|i| format!("{i},{}\n", "z".repeat(20))).collect::<String>();
        let all = b"x,y\n".chain(generated.as_bytes());
        assert_eq!(scan_csv(all, 1).unwrap().rows, rows);
    }
}
