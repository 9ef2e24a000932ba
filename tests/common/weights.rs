//! Weights files of today's formats, made by hand from their published
//! descriptions (no library of either format is involved), and what their
//! headers say, for the tests that upload them.

use serde_json::{json, Value};

/// A safetensors file (huggingface/safetensors, "Format"): the header's
/// length as a little-endian u64, the JSON header padded with spaces to a
/// multiple of 8 bytes, then the tensors' bytes.
pub fn safetensors_file(header: &Value, data_len: usize) -> Vec<u8> {
    let mut text = header.to_string().into_bytes();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text);
    bytes.extend(super::pseudo_random(7, data_len));
    bytes
}

/// Three tensors, 82,248 bytes of data: more than the 64 KiB kept in the
/// database, so the facts are read from the blob store's file.
pub fn safetensors() -> Vec<u8> {
    safetensors_file(
        &json!({
            "__metadata__": {"format": "pt"},
            "embed.weight": {"dtype": "F32", "shape": [128, 160], "data_offsets": [0, 81920]},
            "embed.bias": {"dtype": "F16", "shape": [160], "data_offsets": [81920, 82240]},
            "step": {"dtype": "I64", "shape": [], "data_offsets": [82240, 82248]},
        }),
        82248,
    )
}

/// What its header says: the tensors, the sum of their shapes' products,
/// the tensors per dtype and the metadata.
pub fn safetensors_facts() -> Value {
    json!({
        "format": "safetensors",
        "tensor_count": 3,
        "parameter_count": 128 * 160 + 160 + 1,
        "dtypes": {"F16": 1, "F32": 1, "I64": 1},
        "metadata": {"format": "pt"},
    })
}

pub fn gguf_string(text: &str) -> Vec<u8> {
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend(text.as_bytes());
    bytes
}

/// A key-value pair of a GGUF header: the key, the value's type, the value.
pub fn pair(key: &str, value_type: u32, value: &[u8]) -> Vec<u8> {
    let mut bytes = gguf_string(key);
    bytes.extend(value_type.to_le_bytes());
    bytes.extend(value);
    bytes
}

/// A GGUF version 3 file (ggml's docs/gguf.md) of a tiny llama: its
/// architecture, name, context length, llama.cpp file type 15 (Q4_K_M) and
/// a vocabulary, then three tensors: token_embd Q4_K [256, 8] (8 blocks of
/// 256 values in 144 bytes), output_norm F32 [256], output Q6_K [256, 4]
/// (4 blocks of 210 bytes), each at an offset aligned to 32 bytes.
pub fn gguf() -> Vec<u8> {
    const STRING: u32 = 8;
    const UINT32: u32 = 4;
    const ARRAY: u32 = 9;
    let mut vocabulary = STRING.to_le_bytes().to_vec();
    vocabulary.extend(3u64.to_le_bytes());
    for token in ["<s>", "</s>", "hello"] {
        vocabulary.extend(gguf_string(token));
    }
    let pairs = [
        pair("general.architecture", STRING, &gguf_string("llama")),
        pair("general.name", STRING, &gguf_string("tiny-llama")),
        pair("llama.context_length", UINT32, &4096u32.to_le_bytes()),
        pair("general.file_type", UINT32, &15u32.to_le_bytes()),
        pair("tokenizer.ggml.tokens", ARRAY, &vocabulary),
    ];
    // name, dimensions, ggml type, bytes of data
    let tensors: [(&str, &[u64], u32, u64); 3] =
        [("token_embd.weight", &[256, 8], 12, 8 * 144), ("output_norm.weight", &[256], 0, 256 * 4), ("output.weight", &[256, 4], 14, 4 * 210)];
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend((tensors.len() as u64).to_le_bytes());
    bytes.extend((pairs.len() as u64).to_le_bytes());
    bytes.extend(pairs.concat());
    let mut offset = 0u64;
    for (name, dims, ggml_type, size) in tensors {
        bytes.extend(gguf_string(name));
        bytes.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| bytes.extend(d.to_le_bytes()));
        bytes.extend(ggml_type.to_le_bytes());
        bytes.extend(offset.to_le_bytes());
        offset += size.div_ceil(32) * 32;
    }
    bytes.resize(bytes.len().div_ceil(32) * 32, 0);
    bytes.extend(super::pseudo_random(11, offset as usize));
    bytes
}

pub fn gguf_facts() -> Value {
    json!({
        "format": "gguf",
        "gguf_version": 3,
        "architecture": "llama",
        "name": "tiny-llama",
        "tensor_count": 3,
        "parameter_count": 256 * 8 + 256 + 256 * 4,
        "dtypes": {"F32": 1, "Q4_K": 1, "Q6_K": 1},
        "quantization": "Q4_K_M",
        "context_length": 4096,
    })
}

/// The one line the CLI and the web UI show for `gguf()`.
pub const GGUF_SUMMARY: &str = "gguf: llama, 3.33K parameters in 3 tensors, Q4_K_M, context 4096";
