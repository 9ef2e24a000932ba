//! Model weights as one file: how Octomil, Paperspace and the CLI upload a
//! version. The format a file holds (given, or implied by its name), the
//! name it is stored under, the name a download is offered under, and the
//! rule that a single file may not follow a version that is more than one
//! (a DataRobot version of many files or with an execution environment).

use serde_json::{json, Map, Value};

use crate::registry::catalogue::custom_models;
use crate::registry::catalogue::models::{Model, NewFile, NewModel, NewVersion, Origin, Version};
use crate::registry::catalogue::weight_facts;
use crate::registry::{Digest, Error, Principal, Registry, Result};

/// The formats a weights file may be uploaded as: seed 004's five, and
/// the two most new weights ship in (whose headers the registry reads:
/// `weight_facts`).
pub const FORMATS: [&str; 7] = ["pytorch", "tensorflow", "onnx", "sklearn", "xgboost", "safetensors", "gguf"];
/// Octomil's frameworks (seed 004's enum).
pub const FRAMEWORKS: [&str; 4] = ["pytorch", "tensorflow", "xgboost", "sklearn"];
/// The longest description a model or version made here may have.
pub const MAX_DESCRIPTION: usize = 1000;

impl Registry {
    /// Creates a model, or returns the caller's model of that name (false)
    /// unless the request contradicts it (a framework other than the one it
    /// has: 409). The Octomil route and the CLI's `models create` share it.
    pub fn create_or_get_model(&self, who: &Principal, new: NewModel) -> Result<(Model, bool)> {
        let framework = new.attrs.get("framework").cloned();
        let (model, created) = self.create_model_named(who, new)?;
        let stored = model.attrs.get("framework");
        if !created && framework.is_some() && stored.is_some() && stored != framework.as_ref() {
            return Err(Error::Conflict(format!(
                "a model named {:?} already exists with framework {}",
                model.name,
                model.attrs.get("framework").and_then(Value::as_str).unwrap_or("unset")
            )));
        }
        Ok((model, created))
    }

    /// Records an uploaded file as the model's next version. The blob must be
    /// stored already, under an upload guard the caller still holds.
    ///
    /// A version made here is one weights file with no environment. A model
    /// whose newest version is more than that (a DataRobot version of many
    /// files, or one with an execution environment) is refused with a 409
    /// naming the DataRobot route, rather than given a version that drops its
    /// other files and its environment.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_weights(
        &self,
        who: &Principal,
        model_id: &str,
        filename: &str,
        digest: Digest,
        format: Option<&str>,
        description: Option<String>,
        label: Option<String>,
    ) -> Result<Version> {
        let format = resolve_format(filename, format)?;
        check_description(description.as_deref())?;
        let path = stored_file_name(filename, &format);
        let mut attrs = Map::new();
        attrs.insert("format".into(), json!(format));
        self.create_version_with(who, model_id, |newest| {
            if let Some(newest) = newest {
                let environment = newest.attrs.get("baseEnvironmentId").is_some_and(|e| !e.is_null());
                if newest.files.len() > 1 || environment {
                    return Err(Error::Conflict(format!(
                        "version {} of model {model_id} is a DataRobot custom model version ({} files{}); a single-file \
                         upload would drop the rest. Add or replace files through the DataRobot door: \
                         PATCH /api/v2/customModels/{model_id}/versions/",
                        newest.number,
                        newest.files.len(),
                        if environment { ", an execution environment" } else { "" }
                    )));
                }
            }
            Ok(NewVersion { description, attrs, files: vec![NewFile { path, digest }], label })
        })
    }
}

/// A description a model or version made here may have.
pub fn check_description(description: Option<&str>) -> Result<()> {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(Error::invalid("description", format!("must be at most {MAX_DESCRIPTION} characters")));
    }
    Ok(())
}

/// A description a model may be given by a door that is not the one that
/// made it (modelreg's own PATCH, hence the web UI): the limit of the door
/// that made it, so that its own clients never read back more than they
/// could have written: a DataRobot custom model's (`custom_models`), else
/// Octomil's (`check_description`, which Paperspace's models share).
pub fn check_model_description(origin: Origin, description: Option<&str>) -> Result<()> {
    match origin {
        Origin::DataRobot if description.is_some_and(|d| d.chars().count() > custom_models::MAX_DESCRIPTION) => {
            Err(Error::invalid("description", format!("must be at most {} characters", custom_models::MAX_DESCRIPTION)))
        }
        Origin::DataRobot => Ok(()),
        _ => check_description(description),
    }
}

/// The format a version is stored as: the one given, or else the one the
/// file name's extension implies. The CLI calls it before sending any bytes.
pub fn resolve_format(filename: &str, format: Option<&str>) -> Result<String> {
    match format.filter(|f| !f.is_empty()) {
        Some(f) if FORMATS.contains(&f) => Ok(f.to_string()),
        Some(f) => Err(Error::invalid("format", format!("must be one of {}, got {f:?}", FORMATS.join(", ")))),
        None => infer_format(filename).ok_or_else(|| {
            Error::invalid("format", format!("is required: it cannot be inferred from the file name {filename:?}"))
        }),
    }
}

fn infer_format(filename: &str) -> Option<String> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    let format = match ext.as_str() {
        "pt" | "pth" => "pytorch",
        "h5" | "keras" => "tensorflow",
        "pkl" | "joblib" => "sklearn",
        "onnx" => "onnx",
        "json" | "ubj" => "xgboost",
        "safetensors" => "safetensors",
        "gguf" => "gguf",
        _ => return None,
    };
    Some(format.to_string())
}

fn default_extension(format: &str) -> &'static str {
    match format {
        "pytorch" => "pt",
        "tensorflow" => "h5",
        "sklearn" => "pkl",
        "onnx" => "onnx",
        "xgboost" => "json",
        "safetensors" => "safetensors",
        "gguf" => "gguf",
        _ => "bin",
    }
}

/// The uploaded file's base name when it is a safe one, else `model.<ext>`.
fn stored_file_name(filename: &str, format: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let safe = !base.is_empty()
        && base != "."
        && base != ".."
        && base.len() <= 255
        && base.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if safe {
        base.to_string()
    } else {
        format!("model.{}", default_extension(format))
    }
}

/// `model_v{N}.{ext}`: the name a download is offered under (the
/// extension of the uploaded file, else the format's usual one). The CLI
/// writes downloads under the same name by default.
pub fn download_file_name(version: &Version) -> String {
    // The extension goes into a quoted header: only a short alphanumeric one
    // is taken from the stored path (which another dialect may have named).
    let ext = match version.files.first().and_then(|f| f.path.rsplit_once('.')) {
        Some((_, ext)) if (1..=16).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) => ext.to_string(),
        _ => default_extension(&version_format(version)).to_string(),
    };
    format!("model_v{}.{ext}", version.number)
}

/// The format a version was uploaded as; for a version made through
/// another door, the one its single file's name implies, else `original`
/// (a DataRobot folder of files, which `?format=original` serves when it
/// is one file).
pub fn version_format(version: &Version) -> String {
    if let Some(format) = version.attrs.get("format").and_then(Value::as_str) {
        return format.to_string();
    }
    match version.files.as_slice() {
        [file] => infer_format(&file.path).unwrap_or_else(|| "original".into()),
        _ => "original".into(),
    }
}

/// The Octomil framework a version's weights imply, for a model that has
/// none of its own (one made through another door, or by a push): the
/// format's own framework where it has one of seed 004's four, else:
///
/// - GGUF: pytorch. GGUF files are made by llama.cpp's converters from
///   PyTorch checkpoints (Hugging Face transformers models), and the
///   architectures they name are those models'; of the four, PyTorch is the
///   one the weights come from, so `?framework=pytorch` finds them with
///   their kin.
/// - safetensors: what the header says the file was saved from
///   (`__metadata__.format`: "pt" pytorch, "tf" tensorflow), pytorch when it
///   says nothing (safetensors is how the Hub keeps PyTorch weights), and
///   none for a library outside the four (flax, numpy, mlx) or a file that
///   is not safetensors after all.
/// - onnx, original: none (ONNX is an exchange format, not a framework).
pub fn version_framework(version: &Version) -> Option<&'static str> {
    let format = version_format(version);
    if format != "safetensors" {
        return format_framework(&format);
    }
    let facts = version.files.first().and_then(|f| weight_facts::of_file(&version.attrs, &f.path))?;
    if facts.get("error").is_some() {
        return None;
    }
    match weight_facts::saved_from(facts) {
        None | Some("pt" | "pytorch" | "torch") => Some("pytorch"),
        Some("tf" | "tensorflow" | "keras") => Some("tensorflow"),
        Some(_) => None,
    }
}

/// The framework a format implies whatever the file says (see
/// `version_framework`); none for safetensors, whose header decides.
pub fn format_framework(format: &str) -> Option<&'static str> {
    match format {
        "gguf" => Some("pytorch"),
        other => FRAMEWORKS.iter().copied().find(|f| *f == other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::models::{VersionFile, VersionStatus};
    use crate::registry::catalogue::weight_facts::WEIGHT_FACTS;

    fn version(path: &str, format: &str, facts: Option<Value>) -> Version {
        let mut attrs = Map::new();
        attrs.insert("format".into(), json!(format));
        if let Some(facts) = facts {
            attrs.insert(WEIGHT_FACTS.into(), json!({ path: facts }));
        }
        let file = VersionFile { id: "f".into(), path: path.into(), sha256: "0".repeat(64), size: 1, created_at: String::new() };
        Version {
            id: "v".into(),
            model_id: "m".into(),
            number: 1,
            description: None,
            created_by: "u".into(),
            created_at: String::new(),
            attrs,
            files: vec![file],
            status: VersionStatus::Active,
            label: None,
            metrics: Map::new(),
            lineage: Default::default(),
        }
    }

    #[test]
    fn weights_imply_a_framework_of_seed_004s_four_or_none() {
        let saved_from = |format: &str| json!({"format": "safetensors", "metadata": {"format": format}});
        let cases = [
            (version("m.gguf", "gguf", None), Some("pytorch")),
            (version("m.pt", "pytorch", None), Some("pytorch")),
            (version("m.onnx", "onnx", None), None),
            (version("m.safetensors", "safetensors", Some(json!({"format": "safetensors", "tensor_count": 1}))), Some("pytorch")),
            (version("m.safetensors", "safetensors", Some(saved_from("pt"))), Some("pytorch")),
            (version("m.safetensors", "safetensors", Some(saved_from("tf"))), Some("tensorflow")),
            (version("m.safetensors", "safetensors", Some(saved_from("flax"))), None),
            (version("m.safetensors", "safetensors", Some(json!({"format": "safetensors", "error": "not one"}))), None),
        ];
        for (version, framework) in cases {
            assert_eq!(version_framework(&version), framework, "{:?}", version.attrs);
        }
        assert_eq!((format_framework("safetensors"), format_framework("gguf")), (None, Some("pytorch")));
    }
}
