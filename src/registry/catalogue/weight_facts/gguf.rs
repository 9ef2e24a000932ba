//! The header of a GGUF file (ggml's docs/gguf.md, llama.cpp's format):
//! the magic `GGUF`, a u32 version (2 or 3), u64 tensor and key-value
//! counts, the key-value pairs (a u64-length string key, a u32 value type,
//! the value: numbers, bools, strings, arrays of them), then one info per
//! tensor (name, u32 dimension count, u64 dimensions, u32 ggml type, u64
//! offset into the aligned data section). All little-endian.
//!
//! The pairs are streamed past, keeping only the few this reads (the
//! tokenizer's arrays, megabytes of them, are skipped as they come); every
//! count and length is checked against what the file could hold before it
//! is followed.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::{json, Map, Value};

use super::head::{malformed, Head, Parsed, Unreadable};

const MAGIC: [u8; 4] = *b"GGUF";
/// The most of a file read to find its facts: the key-value pairs (a large
/// vocabulary is a few megabytes) and the tensor infos.
const MAX_HEAD: u64 = 64 << 20;
/// Arrays of arrays nest this deep at most (real files: one level).
const MAX_ARRAY_DEPTH: u32 = 4;
/// GGML's tensors have at most 4 dimensions; the format allows for more.
const MAX_DIMS: u32 = 8;
/// Distinct ggml types one file may use.
const MAX_TYPES: usize = 64;
/// Strings kept (a name, an architecture) are cut to this many bytes.
const KEPT: u64 = 256;
/// `general.alignment` when the file names none.
const DEFAULT_ALIGNMENT: u64 = 32;
/// The fewest bytes a pair takes (an empty key, a type, a u8), and a tensor
/// info (an empty name, no dimensions, a type, an offset).
const MIN_PAIR_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_BYTES: u64 = 8 + 4 + 4 + 8;

const STRING: u32 = 8;
const ARRAY: u32 = 9;

/// The facts of a GGUF file of `file_len` bytes read from its start:
/// `gguf_version`, `architecture`, `name` (when it has one),
/// `tensor_count`, `parameter_count`, `dtypes` (tensors per ggml type),
/// `quantization` (llama.cpp's name for `general.file_type`, else the type
/// holding most parameters) and `context_length`
/// (`{architecture}.context_length`).
pub fn read(reader: impl Read, file_len: u64) -> Parsed<Map<String, Value>> {
    let mut head = Head::new(reader, file_len, MAX_HEAD, "GGUF header");
    let magic = head.array::<4>()?;
    if magic != MAGIC {
        return Err(malformed(format!("the file does not start with GGUF's magic bytes \"GGUF\" but with \"{}\"", magic.escape_ascii())));
    }
    let version = head.u32()?;
    if !(2..=3).contains(&version) {
        let hint = if (2..=3).contains(&version.swap_bytes()) { " (a big-endian file)" } else { "" };
        return Err(malformed(format!("GGUF version {version}{hint} is not one modelreg reads: it reads versions 2 and 3")));
    }
    let tensor_count = head.u64()?;
    let pair_count = head.u64()?;
    let room = file_len - head.at();
    check_count(tensor_count, "tensors", MIN_TENSOR_BYTES, room, file_len)?;
    check_count(pair_count, "key-value pairs", MIN_PAIR_BYTES, room, file_len)?;
    let mut known = Known::default();
    for _ in 0..pair_count {
        read_pair(&mut head, &mut known)?;
    }
    let alignment = known.alignment()?;
    let tensors = read_tensors(&mut head, tensor_count, alignment)?;
    check_data_fits(&tensors, head.at(), alignment, file_len)?;
    Ok(facts(version, &known, &tensors))
}

fn check_count(count: u64, what: &str, min_bytes: u64, room: u64, file_len: u64) -> Parsed<()> {
    if count > room / min_bytes {
        return Err(malformed(format!("it claims {count} {what}, more than its {file_len} bytes could hold")));
    }
    Ok(())
}

fn facts(version: u32, known: &Known, tensors: &Tensors) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("gguf_version".into(), json!(version));
    facts.insert("architecture".into(), json!(known.architecture));
    if let Some(name) = &known.name {
        facts.insert("name".into(), json!(name));
    }
    facts.insert("tensor_count".into(), json!(tensors.count));
    facts.insert("parameter_count".into(), json!(tensors.parameters));
    let dtypes: BTreeMap<String, u64> = tensors.by_type.iter().map(|(ty, tally)| (type_name(*ty), tally.tensors)).collect();
    facts.insert("dtypes".into(), json!(dtypes));
    facts.insert("quantization".into(), json!(quantization(known.file_type, tensors)));
    facts.insert("context_length".into(), json!(known.context_length()));
    facts
}

/// The few pairs this reads.
#[derive(Default)]
struct Known {
    architecture: Option<String>,
    name: Option<String>,
    file_type: Option<u64>,
    alignment: Option<u64>,
    /// Every `*.context_length` seen (the architecture may come later).
    context_lengths: Vec<(String, u64)>,
}

impl Known {
    fn record(&mut self, key: String, value: Scalar) {
        match (key.as_str(), value) {
            ("general.architecture", Scalar::Text(text)) => self.architecture = Some(text),
            ("general.name", Scalar::Text(text)) => self.name = Some(text),
            ("general.file_type", Scalar::Count(n)) => self.file_type = Some(n),
            ("general.alignment", Scalar::Count(n)) => self.alignment = Some(n),
            (_, Scalar::Count(n)) if key.ends_with(".context_length") && self.context_lengths.len() < 16 => {
                self.context_lengths.push((key, n))
            }
            _ => {}
        }
    }

    fn context_length(&self) -> Option<u64> {
        let wanted = format!("{}.context_length", self.architecture.as_deref()?);
        self.context_lengths.iter().find(|(key, _)| *key == wanted).map(|(_, n)| *n)
    }

    /// The data section's alignment: ggml refuses any that is not a power of two.
    fn alignment(&self) -> Parsed<u64> {
        match self.alignment {
            None => Ok(DEFAULT_ALIGNMENT),
            Some(n) if n.is_power_of_two() => Ok(n),
            Some(n) => Err(malformed(format!("its general.alignment {n} is not a power of two"))),
        }
    }
}

/// A value as far as this needs it.
enum Scalar {
    /// A non-negative integer.
    Count(u64),
    /// A string, cut to `KEPT` bytes.
    Text(String),
    Other,
}

fn read_pair<R: Read>(head: &mut Head<R>, known: &mut Known) -> Parsed<()> {
    let key = string(head, KEPT)?;
    let value = head.u32().and_then(|ty| value(head, ty));
    match value {
        Ok(value) => {
            known.record(key, value);
            Ok(())
        }
        Err(Unreadable::Malformed(why)) => Err(malformed(format!("at key {key:?}: {why}"))),
        Err(e) => Err(e),
    }
}

fn value<R: Read>(head: &mut Head<R>, ty: u32) -> Parsed<Scalar> {
    match ty {
        STRING => Ok(Scalar::Text(string(head, KEPT)?)),
        ARRAY => skip_array(head, 1).map(|()| Scalar::Other),
        _ => {
            let bytes = head.bytes(fixed_size(ty)?)?;
            Ok(integer(ty, &bytes).map_or(Scalar::Other, Scalar::Count))
        }
    }
}

/// Bytes of one value of a fixed-size type.
fn fixed_size(ty: u32) -> Parsed<u64> {
    match ty {
        0 | 1 | 7 => Ok(1),
        2 | 3 => Ok(2),
        4..=6 => Ok(4),
        10..=12 => Ok(8),
        _ => Err(malformed(format!("value type {ty} is not one GGUF defines"))),
    }
}

/// The value of an integer type when it is not negative.
fn integer(ty: u32, bytes: &[u8]) -> Option<u64> {
    let mut le = [0u8; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    let unsigned = u64::from_le_bytes(le);
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    match ty {
        0 | 2 | 4 | 10 => Some(unsigned),
        1 | 3 | 5 | 11 if !negative => Some(unsigned),
        _ => None,
    }
}

/// Reads past an array (its type and count already checked against the
/// file as it goes: each element takes at least a byte).
fn skip_array<R: Read>(head: &mut Head<R>, depth: u32) -> Parsed<()> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(malformed(format!("arrays nest more than {MAX_ARRAY_DEPTH} deep")));
    }
    let ty = head.u32()?;
    let count = head.u64()?;
    match ty {
        STRING => (0..count).try_for_each(|_| {
            let len = head.u64()?;
            head.skip(len)
        }),
        ARRAY => (0..count).try_for_each(|_| skip_array(head, depth + 1)),
        _ => {
            let bytes =
                count.checked_mul(fixed_size(ty)?).ok_or_else(|| malformed(format!("an array of {count} values is 2^64 bytes or more")))?;
            head.skip(bytes)
        }
    }
}

/// A u64-length string, keeping at most `keep` bytes of it (lossy UTF-8,
/// with an ellipsis when cut).
fn string<R: Read>(head: &mut Head<R>, keep: u64) -> Parsed<String> {
    let len = head.u64()?;
    head.need(len)?;
    let kept = head.bytes(len.min(keep))?;
    head.skip(len - kept.len() as u64)?;
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if len > keep {
        text.push('…');
    }
    Ok(text)
}

/// The tensor infos, folded.
#[derive(Default)]
struct Tensors {
    count: u64,
    parameters: u64,
    by_type: BTreeMap<u32, Tally>,
    /// The tensor whose data ends furthest into the data section, and where.
    furthest: Option<(String, u64)>,
}

#[derive(Default)]
struct Tally {
    tensors: u64,
    elements: u64,
}

fn read_tensors<R: Read>(head: &mut Head<R>, count: u64, alignment: u64) -> Parsed<Tensors> {
    let mut tensors = Tensors::default();
    for _ in 0..count {
        let name = string(head, 64)?;
        let dims = head.u32()?;
        if dims > MAX_DIMS {
            return Err(malformed(format!("tensor {name:?} has {dims} dimensions, more than {MAX_DIMS}")));
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            let dim = head.u64()?;
            elements = elements.checked_mul(dim).ok_or_else(|| malformed(format!("tensor {name:?} has 2^64 values or more")))?;
        }
        let ty = head.u32()?;
        let offset = head.u64()?;
        if !offset.is_multiple_of(alignment) {
            return Err(malformed(format!("tensor {name:?} starts at offset {offset}, not a multiple of the alignment {alignment}")));
        }
        if let Some(size) = data_bytes(&name, ty, elements)? {
            let end = offset.checked_add(size).ok_or_else(|| malformed(format!("tensor {name:?} ends past byte 2^64")))?;
            if tensors.furthest.as_ref().is_none_or(|(_, furthest)| end > *furthest) {
                tensors.furthest = Some((name.clone(), end));
            }
        }
        tensors.add(&name, ty, elements)?;
    }
    Ok(tensors)
}

impl Tensors {
    fn add(&mut self, name: &str, ty: u32, elements: u64) -> Parsed<()> {
        self.count += 1;
        self.parameters = self
            .parameters
            .checked_add(elements)
            .ok_or_else(|| malformed(format!("the parameters add up to 2^64 or more at tensor {name:?}")))?;
        if !self.by_type.contains_key(&ty) && self.by_type.len() == MAX_TYPES {
            return Err(malformed(format!("its tensors use more than {MAX_TYPES} ggml types")));
        }
        let tally = self.by_type.entry(ty).or_default();
        tally.tensors += 1;
        tally.elements += elements;
        Ok(())
    }
}

/// Bytes of a tensor's data, when its type is one this knows.
fn data_bytes(name: &str, ty: u32, elements: u64) -> Parsed<Option<u64>> {
    let Some(&(_, type_name, block, block_bytes)) = GGML_TYPES.iter().find(|t| t.0 == ty) else { return Ok(None) };
    if !elements.is_multiple_of(block) {
        return Err(malformed(format!("tensor {name:?} has {elements} values, not a whole number of {type_name} blocks of {block}")));
    }
    Ok((elements / block).checked_mul(block_bytes))
}

/// The data section starts at the first aligned byte after the infos;
/// a tensor ending past the file means the file was cut short.
fn check_data_fits(tensors: &Tensors, infos_end: u64, alignment: u64, file_len: u64) -> Parsed<()> {
    let Some((name, end)) = &tensors.furthest else { return Ok(()) };
    let data_start = infos_end.div_ceil(alignment).saturating_mul(alignment);
    let ends_at = data_start.saturating_add(*end);
    if ends_at > file_len {
        return Err(malformed(format!("tensor {name:?} ends at byte {ends_at}, past the end of the file ({file_len} bytes)")));
    }
    Ok(())
}

/// llama.cpp's name for the file's mix (`general.file_type`, llama.h's
/// `llama_ftype`, named as `llama-quantize` names it), else the ggml type
/// that holds the most parameters.
fn quantization(file_type: Option<u64>, tensors: &Tensors) -> Option<String> {
    // 1024 is llama.cpp's "guessed" flag, not a type.
    if let Some(name) = file_type.and_then(|n| FILE_TYPES.iter().find(|(id, _)| *id == n & !1024)).map(|(_, name)| name) {
        return Some(name.to_string());
    }
    let (ty, _) = tensors.by_type.iter().max_by_key(|(ty, tally)| (tally.elements, std::cmp::Reverse(**ty)))?;
    Some(type_name(*ty))
}

fn type_name(ty: u32) -> String {
    GGML_TYPES.iter().find(|t| t.0 == ty).map_or_else(|| format!("type {ty}"), |t| t.1.to_string())
}

/// ggml's tensor types: id, name, values per block, bytes per block
/// (gguf-py's `GGML_QUANT_SIZES`).
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

/// llama.h's `llama_ftype` values and `llama-quantize`'s names for them.
const FILE_TYPES: &[(u64, &str)] = &[
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (4, "Q4_1_SOME_F16"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (33, "Q4_0_4_4"),
    (34, "Q4_0_4_8"),
    (35, "Q4_0_8_8"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
    (39, "NVFP4"),
    (40, "Q1_0"),
];

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::registry::catalogue::weight_facts::head;

    /// A GGUF file written by hand from the format's description.
    pub struct Gguf {
        pub version: u32,
        pub pairs: Vec<(String, Vec<u8>)>,
        pub tensors: Vec<(String, Vec<u64>, u32)>,
    }

    pub fn gguf_string(text: &str) -> Vec<u8> {
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend(text.as_bytes());
        bytes
    }

    /// A value: its type then its bytes.
    pub fn typed(ty: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = ty.to_le_bytes().to_vec();
        out.extend(bytes);
        out
    }

    impl Gguf {
        pub fn llama() -> Gguf {
            Gguf {
                version: 3,
                pairs: vec![
                    ("general.architecture".into(), typed(STRING, &gguf_string("llama"))),
                    ("general.name".into(), typed(STRING, &gguf_string("tiny"))),
                    ("llama.context_length".into(), typed(4, &4096u32.to_le_bytes())),
                    ("general.file_type".into(), typed(4, &15u32.to_le_bytes())),
                    ("tokenizer.ggml.tokens".into(), {
                        let mut a = typed(ARRAY, &STRING.to_le_bytes());
                        a.extend(3u64.to_le_bytes());
                        for t in ["<s>", "</s>", "hi"] {
                            a.extend(gguf_string(t));
                        }
                        a
                    }),
                    ("tokenizer.ggml.scores".into(), {
                        let mut a = typed(ARRAY, &6u32.to_le_bytes());
                        a.extend(3u64.to_le_bytes());
                        a.extend([0u8; 12]);
                        a
                    }),
                ],
                tensors: vec![
                    ("token_embd.weight".into(), vec![256, 4], 12),
                    ("output_norm.weight".into(), vec![256], 0),
                    ("output.weight".into(), vec![256, 2], 14),
                ],
            }
        }

        pub fn bytes(&self) -> Vec<u8> {
            self.layout(true)
        }

        /// The header only (every offset 0, then 4 KiB of zeros), for
        /// tensors `bytes` could not lay out.
        fn bytes_without_data(&self) -> Vec<u8> {
            self.layout(false)
        }

        fn layout(&self, with_data: bool) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend(self.version.to_le_bytes());
            out.extend((self.tensors.len() as u64).to_le_bytes());
            out.extend((self.pairs.len() as u64).to_le_bytes());
            for (key, value) in &self.pairs {
                out.extend(gguf_string(key));
                out.extend(value);
            }
            let mut offset = 0u64;
            for (name, dims, ty) in &self.tensors {
                out.extend(gguf_string(name));
                out.extend((dims.len() as u32).to_le_bytes());
                dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
                out.extend(ty.to_le_bytes());
                out.extend(offset.to_le_bytes());
                if with_data {
                    let size = data_bytes(name, *ty, dims.iter().product()).unwrap().unwrap();
                    offset += size.div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
                }
            }
            out.resize(out.len().div_ceil(32) * 32, 0);
            out.resize(out.len() + if with_data { offset as usize } else { 4096 }, 0);
            out
        }
    }

    fn facts(bytes: &[u8]) -> Value {
        Value::Object(read(bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{e:?}")))
    }

    fn refusal(bytes: &[u8]) -> String {
        head::refusal(read(bytes, bytes.len() as u64))
    }

    #[test]
    fn reads_architecture_parameters_quantization_and_context() {
        assert_eq!(
            facts(&Gguf::llama().bytes()),
            json!({
                "gguf_version": 3,
                "architecture": "llama",
                "name": "tiny",
                "tensor_count": 3,
                "parameter_count": 1024 + 256 + 512,
                "dtypes": {"F32": 1, "Q4_K": 1, "Q6_K": 1},
                "quantization": "Q4_K_M",
                "context_length": 4096,
            })
        );
    }

    #[test]
    fn without_a_file_type_the_type_holding_most_parameters_names_the_quantization() {
        let mut file = Gguf::llama();
        file.version = 2;
        file.pairs.retain(|(k, _)| k != "general.file_type" && k != "general.architecture");
        let got = facts(&file.bytes());
        assert_eq!(got["quantization"], "Q4_K");
        assert_eq!(got["architecture"], Value::Null);
        assert_eq!(got["context_length"], Value::Null, "no architecture names which context length");
        // llama.cpp's "guessed" flag is not part of the type.
        let mut file = Gguf::llama();
        file.pairs[3].1 = typed(4, &(1024u32 + 7).to_le_bytes());
        assert_eq!(facts(&file.bytes())["quantization"], "Q8_0");
    }

    #[test]
    fn what_is_not_gguf_is_named() {
        assert_eq!(
            refusal(b"PK\x03\x04rest of a zip"),
            "the file does not start with GGUF's magic bytes \"GGUF\" but with \"PK\\x03\\x04\""
        );
        let mut big_endian = Gguf::llama().bytes();
        big_endian[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert!(refusal(&big_endian).contains("GGUF version 50331648 (a big-endian file) is not one"));
        let mut v1 = Gguf::llama().bytes();
        v1[4] = 1;
        assert!(refusal(&v1).contains("GGUF version 1 is not one modelreg reads"));
        assert!(refusal(b"GG").contains("past the end of the file (2 bytes)"));
    }

    #[test]
    fn counts_and_lengths_that_lie_are_refused_before_they_are_followed() {
        let mut counts = Gguf::llama().bytes();
        counts[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(refusal(&counts).contains(&format!("claims {} tensors", u64::MAX)), "{}", refusal(&counts));
        let mut pairs = Gguf::llama().bytes();
        pairs[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(refusal(&pairs).contains("key-value pairs, more than"));

        let mut file = Gguf::llama();
        file.pairs[0].1 = typed(STRING, &u64::MAX.to_le_bytes());
        let got = refusal(&file.bytes());
        assert!(got.starts_with("at key \"general.architecture\": its GGUF header needs 18446744073709551615 more bytes"), "{got}");

        let mut file = Gguf::llama();
        let mut huge = typed(ARRAY, &4u32.to_le_bytes());
        huge.extend((u64::MAX / 2).to_le_bytes());
        file.pairs.push(("x".into(), huge));
        assert!(refusal(&file.bytes()).contains("an array of 9223372036854775807 values is 2^64 bytes or more"));

        let mut file = Gguf::llama();
        let mut strings = typed(ARRAY, &STRING.to_le_bytes());
        strings.extend(u64::MAX.to_le_bytes());
        file.pairs.push(("y".into(), strings));
        assert!(refusal(&file.bytes()).contains("past the end of the file"), "an endless array ends with the file");

        let mut file = Gguf::llama();
        let mut nested = Vec::new();
        for _ in 0..6 {
            nested.extend(ARRAY.to_le_bytes());
            nested.extend(1u64.to_le_bytes());
        }
        file.pairs.push(("z".into(), typed(ARRAY, &nested)));
        assert!(refusal(&file.bytes()).contains("arrays nest more than 4 deep"));

        let mut file = Gguf::llama();
        file.pairs.push(("w".into(), typed(13, &[0])));
        assert!(refusal(&file.bytes()).contains("value type 13 is not one GGUF defines"));
    }

    #[test]
    fn tensors_that_cannot_be_are_refused() {
        let mut file = Gguf::llama();
        file.tensors.push(("big".into(), vec![1 << 32, 1 << 32], 0));
        let bytes = file.bytes_without_data();
        assert!(refusal(&bytes).contains("tensor \"big\" has 2^64 values or more"));

        let mut file = Gguf::llama();
        file.tensors[0].2 = 12;
        file.tensors[0].1 = vec![100];
        assert!(refusal(&file.bytes_without_data()).contains("not a whole number of Q4_K blocks of 256"));

        let mut file = Gguf::llama();
        file.tensors.push(("5d".into(), vec![1; 9], 0));
        assert!(refusal(&file.bytes_without_data()).contains("9 dimensions"));
    }

    #[test]
    fn a_file_cut_short_in_its_data_or_its_header_says_so() {
        let whole = Gguf::llama().bytes();
        let got = refusal(&whole[..whole.len() - 100]);
        assert!(got.contains("ends at byte") && got.contains("past the end of the file"), "{got}");
        let got = refusal(&whole[..300]);
        assert!(got.contains("past the end of the file (300 bytes)"), "{got}");
        let got = refusal(&whole[..100]);
        assert_eq!(got, "it claims 6 key-value pairs, more than its 100 bytes could hold");
    }
}
