//! Export of a fine-tuned model with its LoRA merged in: a Hugging Face folder (safetensors) for
//! transformers and our own loader, or one GGUF file for llama.cpp / Ollama.
//!
//! Why both: the safetensors folder is lossless (f32) and what Python tooling expects; GGUF is
//! what people actually run locally, and it must look like convert_hf_to_gguf wrote it: GGUF
//! tensor names, q/k rows re-permuted for llama.cpp's interleaved RoPE (the inverse of
//! [`crate::load::unpermute_qk`]), and the tokenizer and chat template in the metadata, or
//! llama.cpp cannot load it. When the base came from a GGUF, its metadata is copied (only
//! `general.file_type` changes), so the tokenizer stays byte for byte the one the base used.
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use crate::config::{LlamaConfig, RopeKind};
use crate::load::{GgufMeta, Weights, ROPE_FREQS};
use crate::model::Llama;
use crate::{LlmError, Result};

/// Where the tokenizer (and, for GGUF, the metadata) of the exported model comes from.
#[derive(Debug, Clone, Copy)]
pub enum ExportBase<'a> {
    /// The base was a GGUF file: its metadata holds the tokenizer and chat template.
    Gguf(&'a GgufMeta),
    /// The base was a Hugging Face folder (`tokenizer.json`, `tokenizer_config.json`...).
    HfDir(&'a Path),
    /// No tokenizer (tests, synthetic models): only weights and hyper-parameters are written.
    None,
}

/// Tensor type of the 2-D weights in an exported GGUF (norms and biases always stay f32, as in
/// llama.cpp's own quantiser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgufDType {
    F32,
    F16,
    Q8_0,
}

impl GgufDType {
    fn ggml(self) -> GgmlDType {
        match self {
            GgufDType::F32 => GgmlDType::F32,
            GgufDType::F16 => GgmlDType::F16,
            GgufDType::Q8_0 => GgmlDType::Q8_0,
        }
    }

    /// llama.cpp's `llama_ftype` for `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            GgufDType::F32 => 0,
            GgufDType::F16 => 1,
            GgufDType::Q8_0 => 7,
        }
    }
}

impl std::str::FromStr for GgufDType {
    type Err = LlmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(GgufDType::F32),
            "f16" => Ok(GgufDType::F16),
            "q8_0" | "q8" => Ok(GgufDType::Q8_0),
            other => Err(LlmError::Config(format!(
                "unknown GGUF type {other:?} (f32, f16, q8_0)"
            ))),
        }
    }
}

/// Hugging Face per-layer suffix → GGUF per-layer suffix (inverse of the loader's table).
const LAYER_NAMES: [(&str, &str); 9] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
];

/// The GGUF name of a Hugging Face tensor name (inverse of [`crate::load::gguf_to_hf_name`]);
/// None for names llama.cpp has no slot for.
pub fn hf_to_gguf_name(name: &str) -> Option<String> {
    if name == ROPE_FREQS {
        return Some(ROPE_FREQS.to_string());
    }
    let (stem, kind) = name.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    match stem {
        "model.embed_tokens" => return Some(format!("token_embd.{kind}")),
        "model.norm" => return Some(format!("output_norm.{kind}")),
        "lm_head" => return Some(format!("output.{kind}")),
        _ => {}
    }
    let rest = stem.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let gg = LAYER_NAMES
        .iter()
        .find(|(h, _)| *h == part)
        .map(|(_, g)| *g)?;
    Some(format!("blk.{layer}.{gg}.{kind}"))
}

/// convert_hf_to_gguf's `permute`: each head's rows go from the rotate-half layout `[2, half]`
/// to llama.cpp's interleaved `[half, 2]`. Weights `[out, in]` and biases `[out]`.
pub fn permute_qk(t: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims.first().copied().unwrap_or(0);
    if n_head == 0 || out % (2 * n_head) != 0 {
        return Err(LlmError::Model(format!(
            "cannot permute a {dims:?} tensor over {n_head} heads"
        )));
    }
    let half = out / n_head / 2;
    let rest: usize = dims[1..].iter().product();
    Ok(t.reshape((n_head, 2, half, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Architectures whose q/k rows llama.cpp expects permuted (the loader's list: LlamaModel and
/// its subclasses in convert_hf_to_gguf).
fn permutes_qk(arch: &str) -> bool {
    matches!(arch, "llama" | "mistral" | "granite")
}

/// The `architectures` entry transformers needs to pick a model class; GGUF-born configs have
/// none.
fn hf_architecture(model_type: &str) -> String {
    match model_type {
        "mistral" => "MistralForCausalLM",
        "qwen2" => "Qwen2ForCausalLM",
        "granite" => "GraniteForCausalLM",
        _ => "LlamaForCausalLM",
    }
    .to_string()
}

/// Writes `model` with every adapter merged as a Hugging Face folder: `config.json`,
/// `model.safetensors` (f32) and the tokenizer files, so that transformers and
/// [`crate::load::load_model`] read it back.
pub fn export_merged_safetensors(model: &Llama, dir: &Path, base: &ExportBase) -> Result<()> {
    let weights = model.merged_weights()?;
    save_merged_safetensors(model.config(), &weights, dir, base)
}

/// [`export_merged_safetensors`] for weights already merged (a [`crate::load::LoadedModel`]).
/// The tokenizer files are prepared before anything is written, so a base whose tokenizer we
/// cannot convert leaves no half-written folder.
pub fn save_merged_safetensors(
    cfg: &LlamaConfig,
    weights: &Weights,
    dir: &Path,
    base: &ExportBase,
) -> Result<()> {
    let mut cfg = cfg.clone();
    if cfg.architectures.is_empty() {
        cfg.architectures = vec![hf_architecture(&cfg.model_type)];
    }
    let files = tokenizer_files(&cfg, base)?;
    crate::load::save_pretrained(dir, &cfg, weights)?;
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

/// The tokenizer files of the exported folder, by file name.
fn tokenizer_files(cfg: &LlamaConfig, base: &ExportBase) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    match base {
        ExportBase::None => {}
        ExportBase::HfDir(src) => {
            for name in [
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "chat_template.jinja",
                "generation_config.json",
                "tokenizer.model",
            ] {
                let p = src.join(name);
                if p.is_file() {
                    files.push((name.to_string(), std::fs::read(&p)?));
                }
            }
            if !files.iter().any(|(n, _)| n == "tokenizer.json" || n == "tokenizer.model") {
                return Err(LlmError::Tokenizer(format!(
                    "{}: no tokenizer.json or tokenizer.model to copy",
                    src.display()
                )));
            }
        }
        ExportBase::Gguf(meta) => {
            let tok = crate::tokenizer::tokenizer_from_gguf(&meta.metadata)?;
            // The same JSON `Tokenizer::save` writes, kept in memory until the weights are out.
            let json = tok
                .to_string(false)
                .map_err(|e| LlmError::Tokenizer(format!("serialising tokenizer.json: {e}")))?;
            files.push(("tokenizer.json".to_string(), json.into_bytes()));
            let tc = tokenizer_config_from_gguf(cfg, meta);
            files.push((
                "tokenizer_config.json".to_string(),
                serde_json::to_vec_pretty(&tc)?,
            ));
            let special = crate::tokenizer::SpecialTokens::from_gguf(&meta.metadata);
            let mut gen = serde_json::Map::new();
            if let Some(b) = special.bos {
                gen.insert("bos_token_id".into(), b.into());
            }
            if let Some(e) = special.eos {
                gen.insert("eos_token_id".into(), e.into());
            }
            if let Some(p) = special.pad {
                gen.insert("pad_token_id".into(), p.into());
            }
            files.push((
                "generation_config.json".to_string(),
                serde_json::to_vec_pretty(&serde_json::Value::Object(gen))?,
            ));
        }
    }
    Ok(files)
}

/// A `tokenizer_config.json` from GGUF metadata: the special tokens as text, the add-BOS flags
/// and the chat template, which is what transformers' `PreTrainedTokenizerFast` and
/// [`crate::chat::ChatTemplate::from_tokenizer_config`] read.
fn tokenizer_config_from_gguf(cfg: &LlamaConfig, meta: &GgufMeta) -> serde_json::Value {
    let tokens = meta.get_str_array("tokenizer.ggml.tokens").unwrap_or_default();
    let special = crate::tokenizer::SpecialTokens::from_gguf(&meta.metadata);
    let text = |id: Option<u32>| -> Option<String> {
        id.and_then(|i| tokens.get(i as usize)).map(|s| s.to_string())
    };
    let mut tc = serde_json::Map::new();
    tc.insert(
        "tokenizer_class".into(),
        "PreTrainedTokenizerFast".to_string().into(),
    );
    tc.insert("add_bos_token".into(), special.add_bos.into());
    tc.insert("add_eos_token".into(), special.add_eos.into());
    tc.insert("clean_up_tokenization_spaces".into(), false.into());
    tc.insert(
        "model_max_length".into(),
        cfg.max_position_embeddings.into(),
    );
    for (key, id) in [
        ("bos_token", special.bos),
        ("eos_token", special.eos),
        ("unk_token", special.unk),
        ("pad_token", special.pad),
    ] {
        if let Some(t) = text(id) {
            tc.insert(key.into(), t.into());
        }
    }
    if let Some(t) = meta.get_str("tokenizer.chat_template") {
        tc.insert("chat_template".into(), t.to_string().into());
    }
    serde_json::Value::Object(tc)
}

/// Writes `model` with every adapter merged as one GGUF file of type `dtype`.
pub fn export_gguf(model: &Llama, base: &ExportBase, path: &Path, dtype: GgufDType) -> Result<()> {
    let weights = model.merged_weights()?;
    write_gguf(model.config(), &weights, base, path, dtype)
}

/// Writes HF-named, merged `weights` as a GGUF file llama.cpp loads.
///
/// Metadata: a GGUF base's keys are copied (minus `general.file_type`, `general.alignment` and
/// `quantize.*`, which describe the old file); hyper-parameters the base lacks are written from
/// `cfg`. A Hugging Face base's `tokenizer.json` (byte-level BPE) becomes `tokenizer.ggml.*`
/// and its chat template `tokenizer.chat_template`. 2-D weights whose rows do not fill whole
/// quantisation blocks fall back to f16, as llama.cpp's quantiser does.
pub fn write_gguf(
    cfg: &LlamaConfig,
    weights: &Weights,
    base: &ExportBase,
    path: &Path,
    dtype: GgufDType,
) -> Result<()> {
    let metadata = gguf_metadata(cfg, base, dtype)?;
    let tensors = gguf_tensors(cfg, weights, dtype)?;
    // general.architecture first, as llama.cpp's writer does; the rest sorted (stable files).
    let mut meta_refs: Vec<(&str, &Value)> = Vec::with_capacity(metadata.len());
    if let Some(v) = metadata.get("general.architecture") {
        meta_refs.push(("general.architecture", v));
    }
    meta_refs.extend(
        metadata
            .iter()
            .filter(|(k, _)| k.as_str() != "general.architecture")
            .map(|(k, v)| (k.as_str(), v)),
    );
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let file = File::create(path)?;
    let mut w = BufWriter::new(file);
    gguf_file::write(&mut w, &meta_refs, &t_refs)
        .map_err(|e| LlmError::Model(format!("{}: writing GGUF: {e}", path.display())))?;
    use std::io::Write;
    w.flush()?;
    Ok(())
}

/// The tensors in GGUF layout, in llama.cpp's order (embeddings, blocks by layer, head).
fn gguf_tensors(
    cfg: &LlamaConfig,
    weights: &Weights,
    dtype: GgufDType,
) -> Result<Vec<(String, QTensor)>> {
    let permute = permutes_qk(&cfg.model_type);
    let rope_freqs = llama3_rope_freqs(cfg)?;
    let mut out: Vec<(String, QTensor)> = Vec::with_capacity(weights.len() + 1);
    for name in weights.names() {
        if name == ROPE_FREQS && rope_freqs.is_some() {
            continue;
        }
        let gg = hf_to_gguf_name(name).ok_or_else(|| {
            LlmError::Model(format!("tensor {name} has no GGUF name; cannot export it"))
        })?;
        let mut t = weights.get(name)?.to_dtype(DType::F32)?;
        if permute {
            if name.contains(".self_attn.q_proj.") {
                t = permute_qk(&t, cfg.num_attention_heads)?;
            } else if name.contains(".self_attn.k_proj.") {
                t = permute_qk(&t, cfg.num_kv_heads())?;
            }
        }
        let ty = if t.rank() == 2 {
            let want = dtype.ggml();
            let cols = t.dims().last().copied().unwrap_or(0);
            if cols % want.block_size() == 0 {
                want
            } else {
                GgmlDType::F16
            }
        } else {
            GgmlDType::F32
        };
        let q = QTensor::quantize(&t, ty)
            .map_err(|e| LlmError::Model(format!("tensor {name}: cannot quantise: {e}")))?;
        out.push((gg, q));
    }
    if let Some(f) = rope_freqs {
        out.push((ROPE_FREQS.to_string(), QTensor::quantize(&f, GgmlDType::F32)?));
    }
    out.sort_by_key(|(n, _)| tensor_order(n));
    Ok(out)
}

/// Sort key: `token_embd`, `rope_freqs`, blocks by number, `output_norm`, `output`.
fn tensor_order(name: &str) -> (usize, usize, String) {
    if let Some(rest) = name.strip_prefix("blk.") {
        if let Some((n, part)) = rest.split_once('.') {
            if let Ok(n) = n.parse::<usize>() {
                return (2, n, part.to_string());
            }
        }
    }
    let rank = match name.split('.').next().unwrap_or("") {
        "token_embd" => 0,
        "rope_freqs" => 1,
        "output_norm" => 3,
        "output" => 4,
        _ => 5,
    };
    (rank, 0, name.to_string())
}

/// Llama 3.1 RoPE scaling as llama.cpp wants it: per-frequency divisors in `rope_freqs.weight`
/// (convert_hf_to_gguf writes no metadata for it). None for other RoPE kinds.
fn llama3_rope_freqs(cfg: &LlamaConfig) -> Result<Option<Tensor>> {
    if !matches!(cfg.rope_kind()?, RopeKind::Llama3 { .. }) {
        return Ok(None);
    }
    let plain = LlamaConfig {
        rope_scaling: None,
        ..cfg.clone()
    };
    let base = crate::model::inv_freq(&plain)?;
    let scaled = crate::model::inv_freq(cfg)?;
    let f: Vec<f32> = base.iter().zip(&scaled).map(|(b, s)| b / s).collect();
    let n = f.len();
    Ok(Some(Tensor::from_vec(f, n, &candle_core::Device::Cpu)?))
}

/// The metadata of the exported file (see [`write_gguf`]).
fn gguf_metadata(
    cfg: &LlamaConfig,
    base: &ExportBase,
    dtype: GgufDType,
) -> Result<BTreeMap<String, Value>> {
    let arch = match base {
        ExportBase::Gguf(meta) => meta
            .architecture()
            .unwrap_or(cfg.model_type.as_str())
            .to_string(),
        _ => cfg.model_type.clone(),
    };
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    // From the config first; a GGUF base's own keys then win, keeping its exact types.
    for (k, v) in hyper_parameters(cfg, &arch)? {
        m.insert(k, v);
    }
    match base {
        ExportBase::Gguf(meta) => {
            for (k, v) in &meta.metadata {
                if k == "general.file_type" || k == "general.alignment" || k.starts_with("quantize.")
                {
                    continue;
                }
                m.insert(k.clone(), v.clone());
            }
        }
        ExportBase::HfDir(dir) => {
            for (k, v) in tokenizer_metadata_from_hf_dir(dir, cfg.vocab_size)? {
                m.insert(k, v);
            }
        }
        ExportBase::None => {}
    }
    m.insert("general.file_type".into(), Value::U32(dtype.file_type()));
    m.entry("general.quantization_version".into())
        .or_insert(Value::U32(2));
    Ok(m)
}

/// `general.*` and `{arch}.*` keys for `cfg`, as convert_hf_to_gguf writes them.
fn hyper_parameters(cfg: &LlamaConfig, arch: &str) -> Result<Vec<(String, Value)>> {
    let u = |v: usize, key: &str| -> Result<Value> {
        u32::try_from(v)
            .map(Value::U32)
            .map_err(|_| LlmError::Config(format!("{key} = {v} does not fit GGUF's u32")))
    };
    let k = |s: &str| format!("{arch}.{s}");
    let mut v: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String("avatar-merged".into())),
    ];
    for (key, val) in [
        ("context_length", cfg.max_position_embeddings),
        ("embedding_length", cfg.hidden_size),
        ("feed_forward_length", cfg.intermediate_size),
        ("block_count", cfg.num_hidden_layers),
        ("attention.head_count", cfg.num_attention_heads),
        ("attention.head_count_kv", cfg.num_kv_heads()),
        ("rope.dimension_count", cfg.head_dim()),
        ("vocab_size", cfg.vocab_size),
    ] {
        v.push((k(key), u(val, &k(key))?));
    }
    if cfg.head_dim.is_some() {
        v.push((k("attention.key_length"), u(cfg.head_dim(), "key_length")?));
        v.push((
            k("attention.value_length"),
            u(cfg.head_dim(), "value_length")?,
        ));
    }
    v.push((
        k("attention.layer_norm_rms_epsilon"),
        Value::F32(cfg.rms_norm_eps as f32),
    ));
    v.push((k("rope.freq_base"), Value::F32(cfg.rope_theta as f32)));
    if let RopeKind::Linear { factor } = cfg.rope_kind()? {
        v.push((k("rope.scaling.type"), Value::String("linear".into())));
        v.push((k("rope.scaling.factor"), Value::F32(factor as f32)));
    }
    if let Some(b) = cfg.bos_token_id {
        v.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(b)));
    }
    if let Some(e) = cfg.eos_token_ids().first() {
        v.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(*e)));
    }
    Ok(v)
}

/// llama.cpp token types.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

/// `tokenizer.*` keys from a Hugging Face folder (`tokenizer.json` required,
/// `tokenizer_config.json` / `chat_template.jinja` optional).
fn tokenizer_metadata_from_hf_dir(dir: &Path, vocab_size: usize) -> Result<Vec<(String, Value)>> {
    let tj = dir.join("tokenizer.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&tj).map_err(|e| {
        LlmError::Tokenizer(format!(
            "{}: {e}; GGUF export needs the base's tokenizer.json",
            tj.display()
        ))
    })?)?;
    let mut m = tokenizer_json_to_gguf(&json, vocab_size)?;
    let tc_path = dir.join("tokenizer_config.json");
    if tc_path.is_file() {
        let tc: serde_json::Value = serde_json::from_slice(&std::fs::read(&tc_path)?)?;
        let ids = token_ids(&json);
        let flag = |key: &str| tc.get(key).and_then(|v| v.as_bool());
        for (key, gkey) in [
            ("bos_token", "tokenizer.ggml.bos_token_id"),
            ("eos_token", "tokenizer.ggml.eos_token_id"),
            ("unk_token", "tokenizer.ggml.unknown_token_id"),
            ("pad_token", "tokenizer.ggml.padding_token_id"),
        ] {
            let id = crate::tokenizer::token_text_from_config(&tc, key)
                .and_then(|t| ids.get(t.as_str()).copied());
            if let Some(id) = id {
                m.push((gkey.into(), Value::U32(id)));
            }
        }
        if let Some(b) = flag("add_bos_token") {
            m.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(b)));
        }
        if let Some(b) = flag("add_eos_token") {
            m.push(("tokenizer.ggml.add_eos_token".into(), Value::Bool(b)));
        }
        if let Some(t) = chat_template_source(&tc, dir)? {
            m.push(("tokenizer.chat_template".into(), Value::String(t)));
        }
    }
    Ok(m)
}

/// The chat template of a `tokenizer_config.json` (string, or the "default"/first of a list),
/// else `chat_template.jinja` beside it.
fn chat_template_source(tc: &serde_json::Value, dir: &Path) -> Result<Option<String>> {
    match tc.get("chat_template") {
        Some(serde_json::Value::String(s)) => return Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            let named = list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first());
            return Ok(named
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string));
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return Ok(Some(std::fs::read_to_string(jinja)?));
    }
    Ok(None)
}

/// Every token of a `tokenizer.json` (model vocabulary and added tokens) by text.
fn token_ids(json: &serde_json::Value) -> HashMap<&str, u32> {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    if let Some(vocab) = json.pointer("/model/vocab").and_then(|v| v.as_object()) {
        for (t, id) in vocab {
            if let Some(id) = id.as_u64().and_then(|i| u32::try_from(i).ok()) {
                ids.insert(t.as_str(), id);
            }
        }
    }
    if let Some(added) = json.get("added_tokens").and_then(|v| v.as_array()) {
        for a in added {
            let id = a
                .get("id")
                .and_then(|v| v.as_u64())
                .and_then(|i| u32::try_from(i).ok());
            if let (Some(t), Some(id)) = (a.get("content").and_then(|v| v.as_str()), id) {
                ids.insert(t, id);
            }
        }
    }
    ids
}

/// `tokenizer.ggml.{model,pre,tokens,token_type,merges}` for a byte-level BPE `tokenizer.json`.
///
/// llama.cpp stores the pre-tokenizer only by name, so the name is recognised from the regexes
/// (or the `Digits`/`ByteLevel` steps) the file uses; anything else is an error rather than a
/// guess, because a wrong name tokenises plausibly but differently. The token list is padded to
/// `vocab_size` with `[PAD{i}]` entries, as convert_hf_to_gguf does.
pub fn tokenizer_json_to_gguf(
    json: &serde_json::Value,
    vocab_size: usize,
) -> Result<Vec<(String, Value)>> {
    let bad = |m: String| LlmError::Tokenizer(m);
    let model_type = json.pointer("/model/type").and_then(|v| v.as_str());
    if model_type != Some("BPE") {
        return Err(bad(format!(
            "tokenizer.json model {model_type:?}: only byte-level BPE can be written to GGUF"
        )));
    }
    let pre = pre_tokenizer_name(json)?;
    let ids = token_ids(json);
    let n = ids
        .values()
        .map(|&i| i as usize + 1)
        .max()
        .unwrap_or(0)
        .max(vocab_size);
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types: Vec<i32> = vec![TOKEN_NORMAL; n];
    for (t, &id) in &ids {
        tokens[id as usize] = Some((*t).to_string());
    }
    if let Some(added) = json.get("added_tokens").and_then(|v| v.as_array()) {
        for a in added {
            let id = a.get("id").and_then(|v| v.as_u64()).map(|i| i as usize);
            let special = a.get("special").and_then(|v| v.as_bool()).unwrap_or(false);
            if let Some(slot) = id.and_then(|i| types.get_mut(i)) {
                *slot = if special {
                    TOKEN_CONTROL
                } else {
                    TOKEN_USER_DEFINED
                };
            }
        }
    }
    let tokens: Vec<Value> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) => Value::String(t),
            None => {
                types[i] = TOKEN_UNUSED;
                Value::String(format!("[PAD{i}]"))
            }
        })
        .collect();
    let merges = json
        .pointer("/model/merges")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("tokenizer.json has no model.merges".into()))?
        .iter()
        .map(|m| match m {
            serde_json::Value::String(s) => Ok(Value::String(s.clone())),
            serde_json::Value::Array(p) => match (p.first(), p.get(1)) {
                (Some(serde_json::Value::String(a)), Some(serde_json::Value::String(b))) => {
                    Ok(Value::String(format!("{a} {b}")))
                }
                _ => Err(bad(format!("malformed merge {m}"))),
            },
            _ => Err(bad(format!("malformed merge {m}"))),
        })
        .collect::<Result<Vec<Value>>>()?;
    Ok(vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
    ])
}

/// llama.cpp's pre-tokenizer name for a `tokenizer.json` (see [`tokenizer_json_to_gguf`]).
fn pre_tokenizer_name(json: &serde_json::Value) -> Result<&'static str> {
    let mut regexes: Vec<&str> = Vec::new();
    let mut digits_individual = false;
    let mut byte_level_regex = false;
    let mut stack: Vec<&serde_json::Value> = json.get("pre_tokenizer").into_iter().collect();
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => {
                match o.get("type").and_then(|t| t.as_str()) {
                    Some("Split") => {
                        if let Some(r) = o.pointer("/pattern/Regex").and_then(|r| r.as_str()) {
                            regexes.push(r);
                        }
                    }
                    Some("Digits") => {
                        digits_individual |= o
                            .get("individual_digits")
                            .and_then(|d| d.as_bool())
                            .unwrap_or(false);
                    }
                    Some("ByteLevel") => {
                        byte_level_regex |=
                            o.get("use_regex").and_then(|d| d.as_bool()).unwrap_or(true);
                    }
                    _ => {}
                }
                if let Some(p) = o.get("pretokenizers") {
                    stack.push(p);
                }
            }
            _ => {}
        }
    }
    let any = |needle: &str| regexes.iter().any(|r| r.contains(needle));
    if any(r"\p{N}{1,3}") {
        return Ok("llama-bpe");
    }
    if any(r"[^\r\n\p{L}\p{N}]?\p{L}+") {
        return Ok("qwen2");
    }
    let gpt2 = byte_level_regex || any(r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+");
    if gpt2 {
        let digits = digits_individual || regexes.iter().any(|r| *r == r"\p{N}");
        return Ok(if digits { "smollm" } else { "gpt2" });
    }
    Err(LlmError::Tokenizer(
        "cannot name the pre-tokenizer of this tokenizer.json for llama.cpp (known: gpt2, \
         smollm, llama-bpe, qwen2)"
            .into(),
    ))
}
