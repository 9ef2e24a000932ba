//! The header of a safetensors file (huggingface/safetensors, "Format"): an
//! 8-byte little-endian length N, then N bytes of JSON mapping each tensor's
//! name to `{dtype, shape, data_offsets: [begin, end]}` (offsets into the
//! data that follows the header), with an optional `__metadata__` object of
//! strings. The data itself is never read.
//!
//! The JSON is folded as it is parsed (a count, a sum, a few dtypes), never
//! built into a tree, so a header of many tiny entries costs no more memory
//! than its own bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::head::{malformed, mebibytes, Head, Parsed};

/// The largest header read. The format's reference reader allows 100 MB;
/// real headers are kilobytes (a tensor's entry is about 100 bytes), and
/// this one is read while the version's write transaction waits.
const MAX_HEADER: u64 = 16 << 20;
/// More dimensions than any real tensor has; beyond it a shape is noise.
const MAX_DIMS: usize = 64;
/// A header naming more dtypes than the format has is not one.
const MAX_DTYPES: usize = 32;
/// `__metadata__` entries kept, and the length each key and value is cut to.
const MAX_METADATA: usize = 16;
const MAX_METADATA_TEXT: usize = 256;

/// The facts of a safetensors file of `file_len` bytes read from its start:
/// `tensor_count`, `parameter_count` (the sum of the shapes' products),
/// `dtypes` (tensors per dtype) and `metadata` when the header has some.
pub fn read(reader: impl Read, file_len: u64) -> Parsed<Map<String, Value>> {
    if file_len < 8 {
        return Err(malformed(format!("the file is {file_len} bytes long; a safetensors file starts with an 8-byte header length")));
    }
    let mut head = Head::new(reader, file_len, 8 + MAX_HEADER, "safetensors header");
    let length = head.u64()?;
    let after = file_len - 8;
    if length > after {
        return Err(malformed(format!("header length {length} exceeds the {after} bytes that follow it in the file")));
    }
    if length > MAX_HEADER {
        return Err(malformed(format!("header length {length} is over the {} modelreg reads", mebibytes(MAX_HEADER))));
    }
    let header = head.bytes(length)?;
    let folded = fold(&header, after - length)?;
    let mut facts = Map::new();
    facts.insert("tensor_count".into(), json!(folded.tensors));
    facts.insert("parameter_count".into(), json!(folded.parameters));
    facts.insert("dtypes".into(), json!(folded.dtypes));
    if let Some(metadata) = folded.metadata {
        facts.insert("metadata".into(), Value::Object(metadata));
    }
    Ok(facts)
}

/// What the header adds up to.
#[derive(Default)]
struct Folded {
    tensors: u64,
    parameters: u64,
    dtypes: BTreeMap<String, u64>,
    metadata: Option<Map<String, Value>>,
}

fn fold(header: &[u8], data_len: u64) -> Parsed<Folded> {
    if header.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(malformed("its header is not a JSON object"));
    }
    let mut json = serde_json::Deserializer::from_slice(header);
    let folded = HeaderSeed { data_len }
        .deserialize(&mut json)
        .and_then(|folded| json.end().map(|()| folded))
        .map_err(|e| malformed(format!("its header is not what safetensors defines: {e}")))?;
    Ok(folded)
}

struct HeaderSeed {
    data_len: u64,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed {
    type Value = Folded;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Folded, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed {
    type Value = Folded;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Folded, A::Error> {
        let mut folded = Folded::default();
        while let Some(name) = map.next_key::<String>()? {
            if name == "__metadata__" {
                folded.metadata = map.next_value::<Option<Metadata>>()?.map(|m| m.0);
                continue;
            }
            let tensor: Tensor = map.next_value()?;
            tensor.check(&name, self.data_len).map_err(de::Error::custom)?;
            folded.tensors += 1;
            folded.parameters = folded
                .parameters
                .checked_add(tensor.shape.elements)
                .ok_or_else(|| de::Error::custom("the tensors' parameters add up to more than 2^64"))?;
            if !folded.dtypes.contains_key(&tensor.dtype) && folded.dtypes.len() == MAX_DTYPES {
                return Err(de::Error::custom(format!("more than {MAX_DTYPES} different dtypes")));
            }
            *folded.dtypes.entry(tensor.dtype).or_default() += 1;
        }
        Ok(folded)
    }
}

#[derive(Deserialize)]
struct Tensor {
    dtype: String,
    shape: Shape,
    data_offsets: (u64, u64),
}

impl Tensor {
    /// The entry is one the format allows, and its bytes lie inside the
    /// file's data (a truncated file fails here).
    fn check(&self, name: &str, data_len: u64) -> Result<(), String> {
        let (begin, end) = self.data_offsets;
        if begin > end || end > data_len {
            return Err(format!("tensor {name:?} has data_offsets [{begin}, {end}], outside the {data_len} bytes of data in the file"));
        }
        match dtype_bits(&self.dtype) {
            Some(bits) => {
                let needed = self.shape.elements.checked_mul(bits).map(|b| b.div_ceil(8));
                if needed != Some(end - begin) {
                    return Err(format!(
                        "tensor {name:?} of {} {} values spans {} bytes, not the {} they take",
                        self.shape.elements,
                        self.dtype,
                        end - begin,
                        needed.map_or("2^64 or more".into(), |n| n.to_string())
                    ));
                }
            }
            // A dtype newer than this table: kept by name, its size unchecked.
            None if is_dtype_name(&self.dtype) => {}
            None => return Err(format!("tensor {name:?} has dtype {:?}, which is not a dtype name", cut(&self.dtype))),
        }
        Ok(())
    }
}

/// Bits per value of the dtypes the format defines.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

fn is_dtype_name(dtype: &str) -> bool {
    (1..=16).contains(&dtype.len()) && dtype.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A shape, folded into its product as it is read.
struct Shape {
    elements: u64,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_seq(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of dimensions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        let (mut elements, mut dims) = (1u64, 0);
        while let Some(dim) = seq.next_element::<u64>()? {
            dims += 1;
            if dims > MAX_DIMS {
                return Err(de::Error::custom(format!("a shape has more than {MAX_DIMS} dimensions")));
            }
            elements = elements.checked_mul(dim).ok_or_else(|| de::Error::custom("a shape's product is 2^64 or more"))?;
        }
        Ok(Shape { elements })
    }
}

/// `__metadata__`: strings only (the format's rule); the first few kept.
struct Metadata(Map<String, Value>);

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Metadata, D::Error> {
        deserializer.deserialize_map(MetadataVisitor)
    }
}

struct MetadataVisitor;

impl<'de> Visitor<'de> for MetadataVisitor {
    type Value = Metadata;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
        let mut kept = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if kept.len() < MAX_METADATA {
                let value: String = map.next_value()?;
                kept.insert(cut(&key), Value::String(cut(&value)));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Metadata(kept))
    }
}

/// At most `MAX_METADATA_TEXT` characters, with an ellipsis when cut.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_METADATA_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::registry::catalogue::weight_facts::head;

    /// A safetensors file, as the format's reference writer lays it out.
    pub fn file(header: &Value, data: &[u8]) -> Vec<u8> {
        let mut text = header.to_string().into_bytes();
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend(text);
        bytes.extend(data);
        bytes
    }

    fn facts(bytes: &[u8]) -> Map<String, Value> {
        read(bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn refusal(bytes: &[u8]) -> String {
        head::refusal(read(bytes, bytes.len() as u64))
    }

    #[test]
    fn counts_tensors_parameters_and_dtypes_and_keeps_metadata() {
        let header = json!({
            "__metadata__": {"format": "pt"},
            "embed.weight": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]},
            "embed.bias": {"dtype": "F32", "shape": [3], "data_offsets": [48, 60]},
            "head.weight": {"dtype": "BF16", "shape": [2, 2, 2], "data_offsets": [60, 76]},
            "scalar": {"dtype": "I64", "shape": [], "data_offsets": [76, 84]},
        });
        let got = facts(&file(&header, &[0; 84]));
        assert_eq!(
            Value::Object(got),
            json!({"tensor_count": 4, "parameter_count": 24, "dtypes": {"BF16": 1, "F32": 2, "I64": 1}, "metadata": {"format": "pt"}})
        );
    }

    #[test]
    fn an_empty_file_of_tensors_has_none() {
        let got = facts(&file(&json!({}), &[]));
        assert_eq!(Value::Object(got), json!({"tensor_count": 0, "parameter_count": 0, "dtypes": {}}));
    }

    #[test]
    fn a_header_length_that_lies_is_named_and_never_allocated() {
        let mut bytes = (9_000_000_000_000_000_000u64).to_le_bytes().to_vec();
        bytes.extend(b"{}");
        let why = refusal(&bytes);
        assert_eq!(why, "header length 9000000000000000000 exceeds the 2 bytes that follow it in the file");
        // Within the file but over the cap (the file's length is what it says: its bytes are not read).
        let big = MAX_HEADER + 1;
        let why = head::refusal(read(&big.to_le_bytes()[..], 8 + big));
        assert!(why.contains("is over the 16 MiB modelreg reads"), "{why}");
    }

    #[test]
    fn truncated_files_say_where_they_end() {
        assert!(refusal(&[1, 2, 3]).contains("is 3 bytes long"));
        let whole = file(&json!({"w": {"dtype": "F16", "shape": [8], "data_offsets": [0, 16]}}), &[0; 16]);
        let cut_in_data = &whole[..whole.len() - 4];
        assert!(refusal(cut_in_data).contains("outside the 12 bytes of data"), "{}", refusal(cut_in_data));
        let cut_in_header = &whole[..20];
        assert!(refusal(cut_in_header).contains("exceeds the 12 bytes"), "{}", refusal(cut_in_header));
    }

    #[test]
    fn what_is_not_a_safetensors_header_is_named() {
        let not_json = {
            let mut b = 4u64.to_le_bytes().to_vec();
            b.extend(b"PK\x03\x04");
            b
        };
        assert_eq!(refusal(&not_json), "its header is not a JSON object");
        let cases = [
            (json!({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}), "spans 4 bytes, not the 8"),
            (json!({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 8]}}), "invalid value"),
            (json!({"w": {"dtype": "F32", "shape": [4294967296u64, 4294967296u64], "data_offsets": [0, 8]}}), "2^64 or more"),
            (json!({"w": {"dtype": "<script>", "shape": [1], "data_offsets": [0, 1]}}), "not a dtype name"),
            (json!({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}), "data_offsets [4, 0]"),
            (json!({"w": {"dtype": "F32", "shape": [1]}}), "missing field `data_offsets`"),
            (json!({"__metadata__": {"n": 1}}), "invalid type"),
            (json!({"w": [1, 2]}), "invalid type"),
        ];
        for (header, expected) in cases {
            let why = refusal(&file(&header, &[0; 8]));
            assert!(why.starts_with("its header is not what safetensors defines") && why.contains(expected), "{header}: {why}");
        }
        // Nesting deep enough to exhaust a recursive parser's stack, in a key nobody reads: skipped without recursion.
        let deep = format!(
            r#"{{"w": {{"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": {}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let mut bytes = (deep.len() as u64).to_le_bytes().to_vec();
        bytes.extend(deep.bytes());
        bytes.extend([0; 4]);
        assert_eq!(facts(&bytes)["tensor_count"], 1);
    }

    #[test]
    fn products_and_sums_that_overflow_are_refused_not_wrapped() {
        let half = 1u64 << 62;
        let header = json!({
            "a": {"dtype": "F32", "shape": [half], "data_offsets": [0, 0]},
        });
        let why = refusal(&file(&header, &[]));
        assert!(why.contains("2^64 or more"), "{why}");
        // Unknown (newer) dtypes are counted but their size is not checked: the sum still is.
        let header = json!({
            "a": {"dtype": "F2_NEW", "shape": [half], "data_offsets": [0, 0]},
            "b": {"dtype": "F2_NEW", "shape": [half], "data_offsets": [0, 0]},
            "c": {"dtype": "F2_NEW", "shape": [half], "data_offsets": [0, 0]},
            "d": {"dtype": "F2_NEW", "shape": [half], "data_offsets": [0, 0]},
        });
        assert!(refusal(&file(&header, &[])).contains("add up to more than 2^64"));
    }

    #[test]
    fn metadata_is_kept_short() {
        let mut metadata = Map::new();
        for i in 0..40 {
            metadata.insert(format!("k{i:02}"), json!("v".repeat(1000)));
        }
        let got = facts(&file(&json!({"__metadata__": metadata}), &[]));
        let kept = got["metadata"].as_object().unwrap();
        assert_eq!(kept.len(), MAX_METADATA);
        assert!(kept.values().all(|v| v.as_str().unwrap().chars().count() == MAX_METADATA_TEXT + 1));
    }
}
