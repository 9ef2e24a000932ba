//! A model's framework, one rule for every door (issue 25).
//!
//! Octomil is the door with a `framework` field (seed 004's four). A model
//! made there has its own; one made through another door (DataRobot,
//! Paperspace, a push by name of a safetensors file) has none, and its
//! latest version's weights stand in where they imply one
//! (`weights::version_framework`). The Octomil door renders it, modelreg's
//! own API and the web UI's list show it, and the `framework` filter of
//! every list (`ModelQuery::framework`) keeps the models this rule names,
//! so a model the API calls `sklearn` is found by `?framework=sklearn`.
//!
//! DataRobot's `language` is a programming language and Paperspace's
//! `modelType` a serving type: neither is read as a framework.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::registry::catalogue::models::{latest_versions_in, Model, ModelQuery, Version};
use crate::registry::catalogue::weights::version_framework;
use crate::registry::page::{keyset_page, Cursor, Page, PageRequest};
use crate::registry::{Principal, Registry, Result};

/// Models read per step of a framework-filtered walk.
const WALK_BATCH: u64 = 200;

impl Model {
    /// The framework the model was given (Octomil's `framework`), if any.
    pub fn own_framework(&self) -> Option<&str> {
        self.attrs.get("framework").and_then(Value::as_str).filter(|f| !f.is_empty())
    }

    /// The model's framework by the registry's rule: its own, else what
    /// `latest` (its latest version, as `Registry::latest_version` means
    /// it) implies. Every door shows this one.
    pub fn framework(&self, latest: Option<&Version>) -> Option<String> {
        match self.own_framework() {
            Some(own) => Some(own.to_string()),
            None => latest.and_then(version_framework).map(str::to_string),
        }
    }
}

impl Registry {
    /// The framework (`Model::framework`) of each of `models`, in order. The
    /// models must come from a read the access rule applied to
    /// (`list_models`); one of another team is answered None. One query for
    /// the latest versions of those that have no framework of their own.
    pub fn frameworks_of(&self, who: &Principal, models: &[Model]) -> Result<Vec<Option<String>>> {
        let mine: Vec<Model> = models.iter().filter(|m| m.team_id == who.team_id).cloned().collect();
        let mut found: HashMap<String, Option<String>> =
            mine.iter().map(|m| m.id.clone()).zip(self.frameworks_in(&mine)?).collect();
        Ok(models.iter().map(|m| found.remove(&m.id).flatten()).collect())
    }

    fn frameworks_in(&self, models: &[Model]) -> Result<Vec<Option<String>>> {
        let missing: Vec<&str> = models.iter().filter(|m| m.own_framework().is_none()).map(|m| m.id.as_str()).collect();
        let latest: HashMap<&str, Option<Version>> = missing.iter().copied().zip(latest_versions_in(&self.conn, &missing)?).collect();
        Ok(models.iter().map(|m| m.framework(latest.get(m.id.as_str()).and_then(Option::as_ref))).collect())
    }

    /// `list_models` with a framework filter. Models whose own framework is
    /// another are left out by the query (on the `framework` attribute);
    /// those with none are kept by it and judged by their latest version
    /// here, a batch at a time, until the page is full. A page's cost so
    /// grows with the models without a framework of their own it walks past.
    pub(in crate::registry) fn list_models_of_framework(&self, who: &Principal, q: &ModelQuery, framework: &str) -> Result<Page<Model>> {
        let (mut skip, limit, mut after) = match &q.page {
            PageRequest::After { after, limit } => (0, *limit, after.clone()),
            PageRequest::Offset { offset, limit } => (*offset, *limit, None),
        };
        let limit = limit.min(10_000);
        let wanted = limit.saturating_add(1) as usize;
        let mut walk = q.clone();
        walk.framework = None;
        walk.count_total = false;
        walk.attr_equals_or_missing.push(("framework".into(), json!(framework)));
        let mut items = Vec::new();
        let mut total = 0u64;
        loop {
            walk.page = PageRequest::After { after: after.take(), limit: WALK_BATCH };
            let batch = self.list_models_sql(who, &walk)?;
            let frameworks = self.frameworks_in(&batch.items)?;
            for (model, found) in batch.items.into_iter().zip(frameworks) {
                if found.as_deref() != Some(framework) {
                    continue;
                }
                total += 1;
                if skip > 0 {
                    skip -= 1;
                } else if items.len() < wanted {
                    items.push(model);
                }
            }
            after = batch.next;
            if !batch.has_more || after.is_none() || (!q.count_total && items.len() >= wanted) {
                break;
            }
        }
        let mut page = keyset_page(items, limit, |m| Cursor { key: q.order.key_of(m), id: m.id.clone() });
        if q.count_total {
            page.total = Some(total);
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewFile, NewModel, NewVersion, Origin};

    #[test]
    fn a_model_without_a_framework_is_listed_under_its_weights_framework() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let mut attrs = crate::registry::catalogue::models::Attrs::new();
        attrs.insert("framework".into(), json!("pytorch"));
        let own = registry.create_model(&who, NewModel { name: "own".into(), attrs, ..Default::default() }).unwrap();
        let paper =
            registry.create_model(&who, NewModel { name: "paper".into(), origin: Origin::Paperspace, ..Default::default() }).unwrap();
        let bare = registry.create_model(&who, NewModel { name: "bare".into(), origin: Origin::DataRobot, ..Default::default() }).unwrap();
        let digest = registry.put_blob(&mut &b"weights"[..], None).unwrap();
        let mut vattrs = crate::registry::catalogue::models::Attrs::new();
        vattrs.insert("format".into(), json!("sklearn"));
        let file = NewFile { path: "model.pkl".into(), digest };
        registry.create_version(&who, &paper.id, NewVersion { attrs: vattrs, files: vec![file], ..Default::default() }).unwrap();

        let got = registry.frameworks_of(&who, &[own.clone(), paper.clone(), bare.clone()]).unwrap();
        assert_eq!(got, [Some("pytorch".to_string()), Some("sklearn".to_string()), None]);

        for (framework, expected) in [("sklearn", vec![paper.id.clone()]), ("pytorch", vec![own.id.clone()])] {
            for limit in [1, 10] {
                let mut query = ModelQuery::newest_first(PageRequest::After { after: None, limit });
                query.framework = Some(framework.into());
                query.count_total = true;
                let page = registry.list_models(&who, &query).unwrap();
                assert_eq!(page.items.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), expected, "{framework} limit {limit}");
                assert_eq!((page.total, page.has_more), (Some(1), false));
            }
        }
    }
}
