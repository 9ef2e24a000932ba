//! What a weights file of today's formats says about itself, read when a
//! version's files are committed, whichever door made the version (an
//! Octomil upload, a DataRobot version, a pull from git, the CLI): a
//! safetensors file's tensors, parameters and dtypes; a GGUF file's
//! architecture, parameters, quantization and context length.
//!
//! A file is examined when it claims one of these formats: by the format
//! it was uploaded as (a version of one file), else by its extension. What
//! its bytes then say decides. A file that is not what it claims is stored
//! all the same, and its facts say why they could not be read
//! (`{"format": "gguf", "error": "not a readable gguf file: …"}`): the
//! registry keeps bytes it was given, and a note is more use than a refusal.
//!
//! The facts live in the version's attrs under `weightFacts`, by path, so
//! every door renders them from the version it already loaded. Only the head
//! of each file is read (a few kilobytes; at most the caps of `safetensors`
//! and `gguf`), under the version's write transaction, as requirements.txt
//! is; a file kept from the version a new one derives from keeps its facts
//! without being read again.

mod gguf;
mod head;
mod safetensors;

use serde_json::{json, Map, Value};

use self::head::Unreadable;
use crate::registry::{referenced_blob_error, Digest, NewVersion, Registry, Result, Version};

/// The version attr that holds the facts: `{path: facts}`.
pub const WEIGHT_FACTS: &str = "weightFacts";

/// The weights formats whose headers modelreg reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    Safetensors,
    Gguf,
}

impl WeightFormat {
    const ALL: [WeightFormat; 2] = [WeightFormat::Safetensors, WeightFormat::Gguf];

    /// Its name as a version's `format` and its files' extension.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "safetensors",
            WeightFormat::Gguf => "gguf",
        }
    }

    pub fn parse(name: &str) -> Option<WeightFormat> {
        WeightFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format a file claims: the one it was uploaded as when that is
    /// one of these, else the one its extension names.
    pub fn claimed(path: &str, declared: Option<&str>) -> Option<WeightFormat> {
        declared.and_then(WeightFormat::parse).or_else(|| {
            let (_, extension) = path.rsplit_once('.')?;
            WeightFormat::parse(&extension.to_ascii_lowercase())
        })
    }
}

/// The facts of one file of a version, if it claims a weights format.
pub fn of_file<'v>(attrs: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    attrs.get(WEIGHT_FACTS)?.get(path)
}

/// What a safetensors file's header says it was saved from
/// (`__metadata__.format`: transformers writes "pt", "tf" or "flax").
pub fn saved_from(facts: &Value) -> Option<&str> {
    facts.get("metadata")?.get("format")?.as_str()
}

impl Registry {
    /// Records in `new.attrs` the facts of each of its files that claims a
    /// weights format, replacing whatever the caller put there. `base` is
    /// the version it is built on: a file it holds at the same path with
    /// the same bytes keeps the facts read then. Fails only when the blob
    /// store cannot be read (a file's own faults are its facts).
    pub(in crate::registry) fn record_weight_facts(&self, new: &mut NewVersion, base: Option<&Version>) -> Result<()> {
        let declared = match new.files.as_slice() {
            [_] => new.attrs.get("format").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        let mut facts = Map::new();
        for file in &new.files {
            let Some(format) = WeightFormat::claimed(&file.path, declared.as_deref()) else { continue };
            let value = match kept_facts(base, &file.path, &file.digest.sha256, format) {
                Some(kept) => kept.clone(),
                None => self.read_weight_facts(format, &file.digest)?,
            };
            facts.insert(file.path.clone(), value);
        }
        new.attrs.remove(WEIGHT_FACTS);
        if !facts.is_empty() {
            new.attrs.insert(WEIGHT_FACTS.into(), Value::Object(facts));
        }
        Ok(())
    }

    /// Reads one file's facts from the head of its blob.
    fn read_weight_facts(&self, format: WeightFormat, digest: &Digest) -> Result<Value> {
        let blob = self.open_blob(&digest.sha256)?;
        let parsed = match format {
            WeightFormat::Safetensors => safetensors::read(blob, digest.size),
            WeightFormat::Gguf => gguf::read(blob, digest.size),
        };
        let mut facts = Map::new();
        facts.insert("format".into(), json!(format.name()));
        match parsed {
            Ok(read) => facts.extend(read),
            Err(Unreadable::Malformed(why)) => {
                facts.insert("error".into(), json!(format!("not a readable {} file: {why}", format.name())));
            }
            Err(Unreadable::Store(e)) => return Err(referenced_blob_error(&digest.sha256, e)),
        }
        Ok(Value::Object(facts))
    }
}

/// The facts `base` holds for this path when it holds the same bytes there,
/// read as the same format.
fn kept_facts<'b>(base: Option<&'b Version>, path: &str, sha256: &str, format: WeightFormat) -> Option<&'b Value> {
    let base = base?;
    base.files.iter().find(|f| f.path == path && f.sha256 == sha256)?;
    of_file(&base.attrs, path).filter(|facts| facts["format"] == format.name())
}

/// The facts in one line, for people: "gguf: llama, 1.10B parameters in
/// 201 tensors, Q4_K_M, context 4096"; a file that could not be read, why.
pub fn summary(facts: &Value) -> String {
    if let Some(error) = facts["error"].as_str() {
        return error.to_string();
    }
    let format = facts["format"].as_str().unwrap_or("weights");
    let mut parts = Vec::new();
    if format == "gguf" {
        parts.push(facts["architecture"].as_str().unwrap_or("unknown architecture").to_string());
    }
    let parameters = facts["parameter_count"].as_u64().map_or_else(|| "?".into(), human_count);
    parts.push(format!("{parameters} parameters in {} tensors", facts["tensor_count"]));
    if let Some(quantization) = facts["quantization"].as_str() {
        parts.push(quantization.to_string());
    } else if let Some(dtypes) = facts["dtypes"].as_object().filter(|d| !d.is_empty()) {
        parts.push(dtypes.keys().cloned().collect::<Vec<_>>().join("/"));
    }
    if let Some(context) = facts["context_length"].as_u64() {
        parts.push(format!("context {context}"));
    }
    format!("{format}: {}", parts.join(", "))
}

/// 1234 -> "1.23K", 6738415616 -> "6.74B": three significant digits.
fn human_count(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")];
    let Some((size, unit)) = UNITS.into_iter().find(|(size, _)| n as f64 >= *size) else { return n.to_string() };
    let scaled = n as f64 / size;
    let decimals = if scaled >= 100.0 {
        0
    } else if scaled >= 10.0 {
        1
    } else {
        2
    };
    format!("{scaled:.decimals$}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::catalogue::models::{NewFile, Version};
    use crate::registry::{NewModel, Principal};

    #[test]
    fn a_file_claims_its_declared_format_else_its_extension() {
        assert_eq!(WeightFormat::claimed("m.safetensors", None), Some(WeightFormat::Safetensors));
        assert_eq!(WeightFormat::claimed("dir/M.GGUF", None), Some(WeightFormat::Gguf));
        assert_eq!(WeightFormat::claimed("model.bin", Some("gguf")), Some(WeightFormat::Gguf));
        assert_eq!(WeightFormat::claimed("model.safetensors", Some("pytorch")), Some(WeightFormat::Safetensors));
        assert_eq!(WeightFormat::claimed("model.pt", Some("pytorch")), None);
        assert_eq!(WeightFormat::claimed("safetensors", None), None);
    }

    #[test]
    fn summaries_read_as_a_line() {
        let gguf = json!({"format": "gguf", "architecture": "llama", "parameter_count": 1_100_048_384u64, "tensor_count": 201,
                          "quantization": "Q4_K_M", "context_length": 2048, "dtypes": {"Q4_K": 1}});
        assert_eq!(summary(&gguf), "gguf: llama, 1.10B parameters in 201 tensors, Q4_K_M, context 2048");
        let st = json!({"format": "safetensors", "parameter_count": 999, "tensor_count": 2, "dtypes": {"BF16": 1, "F32": 1}});
        assert_eq!(summary(&st), "safetensors: 999 parameters in 2 tensors, BF16/F32");
        assert_eq!(summary(&json!({"format": "gguf", "error": "not a readable gguf file: x"})), "not a readable gguf file: x");
        assert_eq!(human_count(124_439_808), "124M");
        assert_eq!(human_count(10_240), "10.2K");
    }

    fn registry_with_model() -> (tempfile::TempDir, Registry, Principal, String) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        registry.bootstrap().unwrap();
        let who = registry.operator().unwrap();
        let model = registry.create_model(&who, NewModel { name: "m".into(), ..Default::default() }).unwrap();
        (dir, registry, who, model.id)
    }

    fn file(registry: &Registry, path: &str, bytes: &[u8]) -> NewFile {
        NewFile { path: path.into(), digest: registry.put_blob(&mut &bytes[..], None).unwrap() }
    }

    fn version(registry: &Registry, who: &Principal, model: &str, files: Vec<NewFile>, attrs: Map<String, Value>) -> Version {
        registry.create_version(who, model, NewVersion { files, attrs, ..Default::default() }).unwrap()
    }

    #[test]
    fn committed_versions_carry_facts_by_path_and_a_note_for_impostors() {
        let (_dir, registry, who, model) = registry_with_model();
        let st = safetensors::tests::file(&json!({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]}}), &[0; 12]);
        let gguf = gguf::tests::Gguf::llama().bytes();
        let mut forged = Map::new();
        forged.insert(WEIGHT_FACTS.into(), json!({"custom.py": {"format": "gguf", "parameter_count": 1}}));
        let files = vec![
            file(&registry, "a/model.safetensors", &st),
            file(&registry, "b.gguf", &gguf),
            file(&registry, "fake.gguf", b"<html>not a model</html>"),
            file(&registry, "custom.py", b"print(1)"),
        ];
        let v = version(&registry, &who, &model, files, forged);
        let facts = v.attrs[WEIGHT_FACTS].as_object().unwrap();
        assert_eq!(
            facts.keys().collect::<Vec<_>>(),
            ["a/model.safetensors", "b.gguf", "fake.gguf"],
            "only files that claim a format, never the caller's"
        );
        assert_eq!(facts["a/model.safetensors"]["parameter_count"], 6);
        assert_eq!(facts["b.gguf"]["quantization"], "Q4_K_M");
        assert_eq!(
            facts["fake.gguf"],
            json!({"format": "gguf", "error": "not a readable gguf file: the file does not start with GGUF's magic bytes \"GGUF\" but with \"<htm\""})
        );
    }

    #[test]
    fn a_declared_format_is_examined_and_kept_files_are_not_read_again() {
        let (_dir, registry, who, model) = registry_with_model();
        let gguf = gguf::tests::Gguf::llama().bytes();
        let mut attrs = Map::new();
        attrs.insert("format".into(), json!("gguf"));
        let first = version(&registry, &who, &model, vec![file(&registry, "model.bin", &gguf)], attrs);
        assert_eq!(first.attrs[WEIGHT_FACTS]["model.bin"]["architecture"], "llama");

        // The same bytes at the same path: the base's facts, as they were recorded.
        let mut base = first.clone();
        base.attrs[WEIGHT_FACTS]["model.bin"]["architecture"] = json!("recorded");
        let mut next = NewVersion { files: vec![file(&registry, "model.bin", &gguf)], attrs: first.attrs.clone(), ..Default::default() };
        registry.record_weight_facts(&mut next, Some(&base)).unwrap();
        assert_eq!(next.attrs[WEIGHT_FACTS]["model.bin"]["architecture"], "recorded");
        // Other bytes at that path are read.
        let mut other = gguf::tests::Gguf::llama();
        other.pairs[0].1 = gguf::tests::typed(8, &gguf::tests::gguf_string("qwen2"));
        let mut next =
            NewVersion { files: vec![file(&registry, "model.bin", &other.bytes())], attrs: first.attrs.clone(), ..Default::default() };
        registry.record_weight_facts(&mut next, Some(&base)).unwrap();
        assert_eq!(next.attrs[WEIGHT_FACTS]["model.bin"]["architecture"], "qwen2");
    }
}
