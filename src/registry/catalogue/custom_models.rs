//! The rules of a DataRobot custom model (`CustomModelCreate`, seed 002,
//! and its PATCH), whichever way it arrives: `POST customModels/`, a model
//! made from a template (`custom_template_rules`), or the offline CLI.
//! Target type and name, labels, threshold, class labels and resources
//! become the model's attrs under their wire names; the dialect only reads
//! the request and renders the model.

use serde_json::{json, Map, Value};

use crate::registry::catalogue::custom_versions::apply_resource_fields;
use crate::registry::catalogue::models::MAX_MODEL_NAME;
use crate::registry::fields::{insert_some, opt_bool_or_text, opt_str, opt_string_list};
use crate::registry::{Error, Model, ModelPatch, NewModel, Origin, Principal, Registry, Result};

/// The longest description a custom model may have (DataRobot's door, created or patched).
pub const MAX_DESCRIPTION: usize = 10_000;

/// The seed's enum plus Multilabel, which client 3.20 sends.
pub const TARGET_TYPES: [&str; 11] = [
    "Binary", "Regression", "Multiclass", "Multilabel", "Anomaly", "Transform", "TextGeneration", "GeoPoint", "Unstructured",
    "VectorDatabase", "AgenticWorkflow",
];

/// Types the client insists on a targetName for.
const NEEDS_TARGET_NAME: [&str; 6] = ["Binary", "Multiclass", "Multilabel", "Regression", "TextGeneration", "AgenticWorkflow"];

/// Validates `CustomModelCreate` (seed 002) into a shared model.
pub fn new_model(body: &Map<String, Value>) -> Result<NewModel> {
    let name = opt_str(body, "name", MAX_MODEL_NAME)?.filter(|n| !n.trim().is_empty()).ok_or_else(|| Error::invalid("name", "is required"))?;
    match opt_str(body, "customModelType", 20)?.as_deref() {
        None | Some("inference") => {}
        Some("training") => return Err(Error::invalid("customModelType", "training custom models are not supported by modelreg")),
        Some(other) => return Err(Error::invalid("customModelType", format!("must be inference, got {other:?}"))),
    }
    let binary = opt_bool_or_text(body, "supportsBinaryClassification")?.unwrap_or(false);
    let regression = opt_bool_or_text(body, "supportsRegression")?.unwrap_or(false);
    if binary && regression {
        return Err(Error::unprocessable("Custom inference models can only support a single target type"));
    }
    let legacy = if binary { Some("Binary") } else if regression { Some("Regression") } else { None };
    let target_type = match (opt_str(body, "targetType", 50)?, legacy) {
        (Some(t), Some(l)) if t != l => {
            return Err(Error::unprocessable(format!("targetType {t} contradicts the legacy flag for {l}; custom inference models can only support a single target type")))
        }
        (Some(t), _) => t,
        (None, Some(l)) => l.to_string(),
        (None, None) => return Err(Error::unprocessable("All custom models must support at least one target type")),
    };
    if !TARGET_TYPES.contains(&target_type.as_str()) {
        return Err(Error::invalid("targetType", format!("must be one of {}", TARGET_TYPES.join(", "))));
    }
    let mut attrs = Map::new();
    attrs.insert("targetType".into(), json!(target_type));
    let target_name = opt_str(body, "targetName", 500)?.filter(|s| !s.is_empty());
    if target_name.is_none() && NEEDS_TARGET_NAME.contains(&target_type.as_str()) {
        return Err(Error::invalid("targetName", format!("is required for {target_type} models")));
    }
    insert_some(&mut attrs, "targetName", target_name.map(Value::from));
    insert_some(&mut attrs, "language", opt_str(body, "language", 500)?.map(Value::from));
    apply_label_fields(body, &target_type, &mut attrs, true)?;
    apply_resource_fields(body, &mut attrs)?;
    if let Some(v) = opt_bool_or_text(body, "isTrainingDataForVersionsPermanentlyEnabled")? {
        attrs.insert("isTrainingDataForVersionsPermanentlyEnabled".into(), json!(v));
    }
    insert_some(&mut attrs, "calibratePredictions", opt_bool_or_text(body, "calibratePredictions")?.map(Value::from));
    insert_some(&mut attrs, "userProvidedId", opt_str(body, "userProvidedId", 100)?.map(Value::from));
    insert_some(&mut attrs, "playgroundId", opt_str(body, "playgroundId", 100)?.map(Value::from));
    let description = opt_str(body, "description", MAX_DESCRIPTION)?;
    Ok(NewModel { name, description, attrs, origin: Origin::DataRobot })
}

impl Registry {
    /// Applies a custom model PATCH body. The caller has checked write
    /// access (before reading the body); the patch is computed from the
    /// model as it is inside the write transaction, so the one-way
    /// isTrainingData… flag cannot be raced.
    pub fn update_custom_model(&self, who: &Principal, id: &str, body: &Map<String, Value>) -> Result<Model> {
        if body.get("customModelType").is_some_and(|t| t != "inference") {
            return Err(Error::invalid("customModelType", "cannot be changed after the model is created"));
        }
        self.update_model(who, id, |model| model_patch(body, model))
    }
}

/// A PATCH body as a change to `model`.
fn model_patch(body: &Map<String, Value>, model: &Model) -> Result<ModelPatch> {
    let mut attrs = Map::new();
    let stored = model.attrs.get("targetType").and_then(Value::as_str);
    // A model made through another door has no target type until a
    // DataRobot user sets one, once; after that it is fixed, as in
    // DataRobot.
    let target_type = match (opt_str(body, "targetType", 50)?, stored) {
        (Some(new), Some(old)) if new != old => {
            return Err(Error::invalid("targetType", "cannot be changed after it is set"));
        }
        (Some(new), None) => {
            if !TARGET_TYPES.contains(&new.as_str()) {
                return Err(Error::invalid("targetType", format!("must be one of {}", TARGET_TYPES.join(", "))));
            }
            let named = opt_str(body, "targetName", 500)?.filter(|s| !s.is_empty()).is_some()
                || model.attrs.get("targetName").is_some_and(|t| !t.is_null());
            if !named && NEEDS_TARGET_NAME.contains(&new.as_str()) {
                return Err(Error::invalid("targetName", format!("is required for {new} models")));
            }
            attrs.insert("targetType".into(), json!(new));
            new
        }
        _ => model.target_type().to_string(),
    };
    apply_label_fields(body, &target_type, &mut attrs, false)?;
    apply_resource_fields(body, &mut attrs)?;
    if body.contains_key("targetName") {
        attrs.insert("targetName".into(), opt_str(body, "targetName", 500)?.filter(|s| !s.is_empty()).map(Value::from).unwrap_or(Value::Null));
    }
    if let Some(language) = opt_str(body, "language", 500)? {
        attrs.insert("language".into(), json!(language));
    }
    if let Some(enabled) = opt_bool_or_text(body, "isTrainingDataForVersionsPermanentlyEnabled")? {
        let was = model.attrs.get("isTrainingDataForVersionsPermanentlyEnabled").and_then(Value::as_bool).unwrap_or(false);
        if was && !enabled {
            return Err(Error::invalid("isTrainingDataForVersionsPermanentlyEnabled", "cannot be disabled once enabled"));
        }
        attrs.insert("isTrainingDataForVersionsPermanentlyEnabled".into(), json!(enabled));
    }
    let name = match opt_str(body, "name", MAX_MODEL_NAME)? {
        Some(n) if n.trim().is_empty() => return Err(Error::invalid("name", "must not be empty")),
        other => other,
    };
    let description = opt_str(body, "description", MAX_DESCRIPTION)?.map(Some);
    Ok(ModelPatch { name, description, attrs })
}

/// Labels, threshold and class labels, for create (`fresh`) and update.
/// An explicit null label pair resets to the defaults (seed).
fn apply_label_fields(body: &Map<String, Value>, target_type: &str, attrs: &mut Map<String, Value>, fresh: bool) -> Result<()> {
    let pos_given = body.contains_key("positiveClassLabel");
    let neg_given = body.contains_key("negativeClassLabel");
    let pos = opt_str(body, "positiveClassLabel", 500)?.filter(|s| !s.is_empty());
    let neg = opt_str(body, "negativeClassLabel", 500)?.filter(|s| !s.is_empty());
    if pos.is_some() != neg.is_some() {
        return Err(Error::unprocessable("positiveClassLabel and negativeClassLabel must be given together"));
    }
    if let (Some(p), Some(n)) = (&pos, &neg) {
        if p == n {
            return Err(Error::unprocessable("positiveClassLabel and negativeClassLabel must differ"));
        }
        attrs.insert("positiveClassLabel".into(), json!(p));
        attrs.insert("negativeClassLabel".into(), json!(n));
    } else if pos_given && neg_given && !fresh {
        // null, null: back to the defaults, rendered as "1"/"0".
        attrs.insert("positiveClassLabel".into(), Value::Null);
        attrs.insert("negativeClassLabel".into(), Value::Null);
    }
    match body.get("predictionThreshold") {
        None => {}
        Some(Value::Null) if !fresh => {
            attrs.insert("predictionThreshold".into(), Value::Null);
        }
        Some(Value::Null) => {}
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => {
                attrs.insert("predictionThreshold".into(), json!(t));
            }
            _ => return Err(Error::invalid("predictionThreshold", "must be a number from 0 to 1")),
        },
    }
    if let Some(labels) = opt_string_list(body, "classLabels", 100)? {
        attrs.insert("classLabels".into(), json!(labels));
    } else if fresh && matches!(target_type, "Multiclass" | "Multilabel") {
        return Err(Error::invalid("classLabels", format!("is required for {target_type} models")));
    }
    Ok(())
}
