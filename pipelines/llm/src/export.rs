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
            if !files
                .iter()
                .any(|(n, _)| n == "tokenizer.json" || n == "tokenizer.model")
            {
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
    let tokens = meta
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap_or_default();
    let special = crate::tokenizer::SpecialTokens::from_gguf(&meta.metadata);
    let text = |id: Option<u32>| -> Option<String> {
        id.and_then(|i| tokens.get(i as usize))
            .map(|s| s.to_string())
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
        out.push((
            ROPE_FREQS.to_string(),
            QTensor::quantize(&f, GgmlDType::F32)?,
        ));
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
                if k == "general.file_type"
                    || k == "general.alignment"
                    || k.starts_with("quantize.")
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
                        if let Some(r) = o
                            .get("pattern")
                            .and_then(|p| p.get("Regex"))
                            .and_then(|r| r.as_str())
                        {
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
        let digits = digits_individual || regexes.contains(&r"\p{N}");
        return Ok(if digits { "smollm" } else { "gpt2" });
    }
    Err(LlmError::Tokenizer(
        "cannot name the pre-tokenizer of this tokenizer.json for llama.cpp (known: gpt2, \
         smollm, llama-bpe, qwen2)"
            .into(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::load::{load_gguf, load_model};
    use crate::lora::{LoraConfig, SplitMix64};
    use candle_core::quantized::gguf_file::Content;
    use candle_core::Device;
    use candle_nn::VarMap;

    /// A tiny model with a LoRA on every projection whose B is random (a fresh adapter has
    /// B = 0 and would make "merged == base" pass trivially).
    fn tiny_lora_model() -> (LlamaConfig, Llama) {
        let cfg = LlamaConfig::tiny();
        let w = crate::model::random_weights(&cfg, 7).unwrap();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let varmap = VarMap::new();
        let model = Llama::new(&cfg, &w, Some(&lora), &varmap, 11).unwrap();
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.contains("lora_B") {
                let mut rng = SplitMix64::for_name(5, name);
                let n = var.elem_count();
                let v: Vec<f32> = (0..n).map(|_| rng.uniform(0.5)).collect();
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        (cfg, model)
    }

    fn logits(model: &Llama) -> Tensor {
        let ids = Tensor::new(&[[1u32, 5, 9, 17, 33, 63, 2, 40]], &Device::Cpu).unwrap();
        model.forward(&ids, 0, None).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    fn reload(path: &Path) -> (LlamaConfig, Llama) {
        let loaded = load_model(path, &Device::Cpu).unwrap();
        let m = Llama::new(&loaded.config, &loaded.weights, None, &VarMap::new(), 0).unwrap();
        (loaded.config, m)
    }

    #[test]
    fn names_invert_the_loader() {
        let cfg = LlamaConfig::tiny();
        let w = crate::model::random_weights(&cfg, 1).unwrap();
        for name in w.names().into_iter().chain(["lm_head.weight"]) {
            let gg = hf_to_gguf_name(name).unwrap();
            assert_eq!(
                crate::load::gguf_to_hf_name(&gg).as_deref(),
                Some(name),
                "{name} -> {gg}"
            );
        }
        assert_eq!(
            hf_to_gguf_name("model.layers.3.self_attn.q_proj.bias").as_deref(),
            Some("blk.3.attn_q.bias")
        );
        assert_eq!(
            hf_to_gguf_name("model.layers.0.self_attn.rotary.inv_freq"),
            None
        );
        assert_eq!(hf_to_gguf_name("vision.patch.weight"), None);
    }

    #[test]
    fn permute_is_inverted_by_the_loader() {
        let w = Tensor::arange(0f32, 48.0, &Device::Cpu)
            .unwrap()
            .reshape((12, 4))
            .unwrap();
        let p = permute_qk(&w, 3).unwrap();
        // Head 0 holds HF rows 0..4 = [r0 r1 | r2 r3]; interleaved: r0 r2 r1 r3.
        let row1: Vec<f32> = p.get(1).unwrap().to_vec1().unwrap();
        assert_eq!(row1, vec![8.0, 9.0, 10.0, 11.0]);
        let back = crate::load::unpermute_qk(&p, 3).unwrap();
        assert_eq!(max_diff(&back, &w), 0.0);
        assert!(permute_qk(&w, 5).is_err());
    }

    #[test]
    fn merged_safetensors_give_the_lora_logits() {
        let (cfg, model) = tiny_lora_model();
        let want = logits(&model);
        let base_only = {
            let w = crate::model::random_weights(&cfg, 7).unwrap();
            Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap()
        };
        assert!(
            max_diff(&logits(&base_only), &want) > 1e-2,
            "the adapter must change the logits, or this test proves nothing"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("merged");
        export_merged_safetensors(&model, &out, &ExportBase::None).unwrap();
        let (cfg2, back) = reload(&out);
        assert_eq!(cfg2, cfg);
        let d = max_diff(&logits(&back), &want);
        assert!(d < 1e-4, "merged safetensors differ by {d}");
    }

    #[test]
    fn gguf_base_tokenizer_is_written_for_transformers() {
        let (_, model) = tiny_lora_model();
        let mut metadata = crate::tokenizer::tiny_gguf_metadata(&[("h", "i"), ("Ġ", "t")]);
        metadata.insert(
            "tokenizer.chat_template".into(),
            Value::String(crate::chat::CHATML_TEMPLATE.into()),
        );
        let meta = GgufMeta { metadata };
        let dir = tempfile::tempdir().unwrap();
        export_merged_safetensors(&model, dir.path(), &ExportBase::Gguf(&meta)).unwrap();
        let tok = crate::tokenizer::load_tokenizer_json(dir.path().join("tokenizer.json")).unwrap();
        let orig = crate::tokenizer::tokenizer_from_gguf(&meta.metadata).unwrap();
        let text = "<|im_start|>user\nhi there<|im_end|>";
        let a = crate::tokenizer::encode(&tok, text, true).unwrap();
        assert_eq!(a, crate::tokenizer::encode(&orig, text, true).unwrap());
        assert_eq!(a[0], 1, "<|im_start|> stays one special id");
        let tmpl = crate::chat::ChatTemplate::from_tokenizer_config_file(
            dir.path().join("tokenizer_config.json"),
        )
        .unwrap();
        assert_eq!(tmpl.source(), crate::chat::CHATML_TEMPLATE);
        assert_eq!(tmpl.eos_token(), "<|im_end|>");
        let gen: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("generation_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(gen["eos_token_id"], 2);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    }

    #[test]
    fn f32_gguf_round_trips_through_the_loader() {
        let (cfg, model) = tiny_lora_model();
        let want = logits(&model);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        export_gguf(&model, &ExportBase::None, &path, GgufDType::F32).unwrap();

        // The file holds llama.cpp's layout: q rows permuted (checked against the permutation
        // written out independently here), no output.weight for tied embeddings.
        let mut f = File::open(&path).unwrap();
        let content = Content::read(&mut f).unwrap();
        assert!(!content.tensor_infos.contains_key("output.weight"));
        let q = content
            .tensor(&mut f, "blk.0.attn_q.weight", &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap();
        let hf = model.merged_weights().unwrap();
        let hf_q = hf.get("model.layers.0.self_attn.q_proj.weight").unwrap();
        let hd = cfg.head_dim();
        // Row 1 of head 0 in GGUF is HF row hd/2 (first of the second half).
        assert_eq!(
            max_diff(&q.get(1).unwrap(), &hf_q.get(hd / 2).unwrap()),
            0.0
        );
        assert!(max_diff(&q, hf_q) > 0.0);
        assert!(matches!(
            content.metadata.get("general.file_type"),
            Some(Value::U32(0))
        ));

        let (cfg2, back) = reload(&path);
        assert_eq!(cfg2.num_kv_heads(), 2);
        assert!(cfg2.tie_word_embeddings);
        let d = max_diff(&logits(&back), &want);
        assert!(d < 1e-4, "F32 GGUF differs by {d}");
        // load_gguf directly too: the same weights as the merged model.
        let (_, w, _) = load_gguf(&path, &Device::Cpu).unwrap();
        assert_eq!(w.len(), hf.len());
    }

    #[test]
    fn q8_0_gguf_loads_and_is_close() {
        let (_, model) = tiny_lora_model();
        let want = logits(&model);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        export_gguf(&model, &ExportBase::None, &path, GgufDType::Q8_0).unwrap();
        let mut f = File::open(&path).unwrap();
        let content = Content::read(&mut f).unwrap();
        let ty = |n: &str| content.tensor_infos.get(n).unwrap().ggml_dtype;
        assert_eq!(ty("blk.0.attn_q.weight"), GgmlDType::Q8_0);
        // down_proj rows are 48 wide, not whole 32-blocks: f16 fallback; norms stay f32.
        assert_eq!(ty("blk.0.ffn_down.weight"), GgmlDType::F16);
        assert_eq!(ty("blk.0.attn_norm.weight"), GgmlDType::F32);
        assert!(matches!(
            content.metadata.get("general.file_type"),
            Some(Value::U32(7))
        ));
        let (_, back) = reload(&path);
        let got = logits(&back);
        let d = max_diff(&got, &want);
        let scale = max_diff(&want, &want.zeros_like().unwrap());
        // Q8_0 keeps ~1/256 of each block's range: the logits move by a few per cent at most.
        assert!(
            d > 0.0 && d < 0.03 * scale,
            "Q8_0 logits differ by {d} (max |logit| {scale})"
        );
        let am = |t: &Tensor| {
            t.argmax(candle_core::D::Minus1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<u32>()
                .unwrap()
        };
        assert_eq!(am(&got), am(&want), "same greedy choices");
    }

    #[test]
    fn gguf_base_metadata_is_copied_and_file_type_replaced() {
        let (_, model) = tiny_lora_model();
        let mut metadata = crate::tokenizer::tiny_gguf_metadata(&[("h", "i")]);
        metadata.insert("general.architecture".into(), Value::String("llama".into()));
        metadata.insert("general.name".into(), Value::String("Tiny base".into()));
        metadata.insert("general.file_type".into(), Value::U32(3));
        metadata.insert("general.alignment".into(), Value::U32(64));
        metadata.insert("llama.context_length".into(), Value::U32(128));
        metadata.insert("quantize.imatrix.file".into(), Value::String("x".into()));
        let meta = GgufMeta { metadata };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        export_gguf(&model, &ExportBase::Gguf(&meta), &path, GgufDType::F16).unwrap();
        let loaded = load_model(&path, &Device::Cpu).unwrap();
        let g = loaded.gguf.unwrap();
        assert_eq!(g.get_str("general.name"), Some("Tiny base"));
        assert_eq!(g.get_u64("general.file_type"), Some(1));
        assert!(g.get("general.alignment").is_none());
        assert!(g.get("quantize.imatrix.file").is_none());
        assert_eq!(
            g.get_str_array("tokenizer.ggml.tokens"),
            meta.get_str_array("tokenizer.ggml.tokens")
        );
        // vocab_size written from the config wins over the (larger) token list.
        assert_eq!(loaded.config.vocab_size, 64);
    }

    #[test]
    fn tokenizer_json_converts_back_to_gguf_keys() {
        let meta = crate::tokenizer::tiny_gguf_metadata(&[("h", "i"), ("Ġ", "t"), ("Ġt", "h")]);
        let tok = crate::tokenizer::tokenizer_from_gguf(&meta).unwrap();
        let json: serde_json::Value = serde_json::from_str(&tok.to_string(false).unwrap()).unwrap();
        let keys: HashMap<String, Value> = tokenizer_json_to_gguf(&json, 300)
            .unwrap()
            .into_iter()
            .collect();
        let back = GgufMeta {
            metadata: keys.clone(),
        };
        assert_eq!(back.get_str("tokenizer.ggml.pre"), Some("smollm"));
        let tokens = back.get_str_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(tokens.len(), 300, "padded to the vocabulary size");
        assert_eq!(tokens[299], "[PAD299]");
        let orig = GgufMeta {
            metadata: meta.clone(),
        };
        let n = orig.get_str_array("tokenizer.ggml.tokens").unwrap().len();
        assert_eq!(
            &tokens[..n],
            &orig.get_str_array("tokenizer.ggml.tokens").unwrap()[..]
        );
        assert_eq!(
            back.get_str_array("tokenizer.ggml.merges"),
            orig.get_str_array("tokenizer.ggml.merges")
        );
        match keys.get("tokenizer.ggml.token_type") {
            Some(Value::Array(t)) => {
                assert!(matches!(t[1], Value::I32(3)), "<|im_start|> is control");
                assert!(matches!(t[5], Value::I32(1)));
            }
            other => panic!("token_type: {other:?}"),
        }
        let rebuilt = crate::tokenizer::tokenizer_from_gguf(&keys).unwrap();
        let text = "<|im_start|>hi there 42";
        assert_eq!(
            crate::tokenizer::encode(&rebuilt, text, false).unwrap(),
            crate::tokenizer::encode(&tok, text, false).unwrap()
        );
        let wordpiece = serde_json::json!({"model": {"type": "WordPiece"}});
        assert!(tokenizer_json_to_gguf(&wordpiece, 10).is_err());
    }

    #[test]
    fn pre_tokenizer_names_from_hf_layouts() {
        let hf_smollm = serde_json::json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}});
        assert_eq!(pre_tokenizer_name(&hf_smollm).unwrap(), "smollm");
        let gpt2 = serde_json::json!({"pre_tokenizer": {"type": "ByteLevel", "use_regex": true}});
        assert_eq!(pre_tokenizer_name(&gpt2).unwrap(), "gpt2");
        let llama3 = serde_json::json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"}},
            {"type": "ByteLevel", "use_regex": false}]}});
        assert_eq!(pre_tokenizer_name(&llama3).unwrap(), "llama-bpe");
        let none = serde_json::json!({"pre_tokenizer": {"type": "Whitespace"}});
        assert!(pre_tokenizer_name(&none).is_err());
    }

    #[test]
    fn safetensors_base_gguf_gets_tokenizer_and_template() {
        let (_, model) = tiny_lora_model();
        let meta = crate::tokenizer::tiny_gguf_metadata(&[("h", "i")]);
        let tok = crate::tokenizer::tokenizer_from_gguf(&meta).unwrap();
        let src = tempfile::tempdir().unwrap();
        tok.save(src.path().join("tokenizer.json"), false).unwrap();
        std::fs::write(
            src.path().join("tokenizer_config.json"),
            r#"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "chat_template": "{{ messages }}"}"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        export_gguf(
            &model,
            &ExportBase::HfDir(src.path()),
            &path,
            GgufDType::F32,
        )
        .unwrap();
        let loaded = load_model(&path, &Device::Cpu).unwrap();
        let g = loaded.gguf.unwrap();
        assert_eq!(g.get_str("tokenizer.chat_template"), Some("{{ messages }}"));
        assert_eq!(g.get_u64("tokenizer.ggml.eos_token_id"), Some(2));
        assert_eq!(g.get_u64("tokenizer.ggml.bos_token_id"), Some(1));
        assert_eq!(g.get_str("tokenizer.ggml.pre"), Some("smollm"));
        assert!(crate::tokenizer::tokenizer_from_gguf(&g.metadata).is_ok());
        // A folder without tokenizer.json is a clear error, for both formats.
        let empty = tempfile::tempdir().unwrap();
        let err = export_gguf(
            &model,
            &ExportBase::HfDir(empty.path()),
            &path,
            GgufDType::F32,
        );
        assert!(matches!(err, Err(LlmError::Tokenizer(_))));
        let err = export_merged_safetensors(
            &model,
            &dir.path().join("x"),
            &ExportBase::HfDir(empty.path()),
        );
        assert!(matches!(err, Err(LlmError::Tokenizer(_))));
        assert!(!dir.path().join("x").exists(), "nothing written on error");
    }

    #[test]
    fn llama3_rope_scaling_becomes_rope_freqs() {
        let mut cfg = LlamaConfig::tiny();
        cfg.rope_scaling = Some(crate::config::RopeScaling {
            rope_type: Some("llama3".into()),
            factor: 8.0,
            low_freq_factor: Some(1.0),
            high_freq_factor: Some(4.0),
            original_max_position_embeddings: Some(16),
            ..Default::default()
        });
        let w = crate::model::random_weights(&cfg, 2).unwrap();
        let model = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        let want = logits(&model);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        export_gguf(&model, &ExportBase::None, &path, GgufDType::F32).unwrap();
        let loaded = load_model(&path, &Device::Cpu).unwrap();
        assert!(
            loaded.config.rope_scaling.is_none(),
            "scaling lives in rope_freqs"
        );
        assert!(loaded.weights.contains(ROPE_FREQS));
        let back = Llama::new(&loaded.config, &loaded.weights, None, &VarMap::new(), 0).unwrap();
        let d = max_diff(&logits(&back), &want);
        assert!(d < 1e-4, "llama3 RoPE after export differs by {d}");
    }

    /// The demo model (SmolLM2-135M-Instruct Q4_1) through both exports: the folder's
    /// tokenizer.json encodes the reference prompt to llama.cpp's ids, and the F16 GGUF keeps
    /// every tokenizer key and the weights (to f16 precision).
    #[test]
    fn smollm2_exports() {
        let path = crate::load::default_model_path();
        if !path.is_file() {
            eprintln!(
                "skipping: no {} (infra/fetch-models.sh smollm2)",
                path.display()
            );
            return;
        }
        // From /work/shared/reference/smollm2_reference.json (`prompt`, `token_ids`).
        const PROMPT: &str = "<|im_start|>user\nWhat did Ada Lovelace write about the Analytical Engine?<|im_end|>\n<|im_start|>assistant\n";
        const IDS: [u32; 21] = [
            1, 4093, 198, 1780, 1250, 34099, 14210, 532, 590, 2965, 563, 260, 40734, 6059, 47, 2,
            198, 1, 520, 9531, 198,
        ];
        let loaded = load_model(&path, &Device::Cpu).unwrap();
        let meta = loaded.gguf.clone().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("hf");
        save_merged_safetensors(
            &loaded.config,
            &loaded.weights,
            &st,
            &ExportBase::Gguf(&meta),
        )
        .unwrap();
        let tok = crate::tokenizer::load_tokenizer_json(st.join("tokenizer.json")).unwrap();
        assert_eq!(crate::tokenizer::encode(&tok, PROMPT, false).unwrap(), IDS);
        let tmpl =
            crate::chat::ChatTemplate::from_tokenizer_config_file(st.join("tokenizer_config.json"))
                .unwrap();
        let rendered = tmpl
            .render(
                &[crate::chat::ChatMessage::user(
                    "What did Ada Lovelace write about the Analytical Engine?",
                )],
                true,
            )
            .unwrap();
        assert!(rendered.ends_with(PROMPT), "{rendered:?}");

        let gg = dir.path().join("m.gguf");
        write_gguf(
            &loaded.config,
            &loaded.weights,
            &ExportBase::Gguf(&meta),
            &gg,
            GgufDType::F16,
        )
        .unwrap();
        let (cfg2, w2, meta2) = load_gguf(&gg, &Device::Cpu).unwrap();
        assert_eq!(cfg2, loaded.config);
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
            assert_eq!(meta2.get_str_array(key), meta.get_str_array(key), "{key}");
        }
        assert_eq!(
            meta2.get_str("tokenizer.chat_template"),
            meta.get_str("tokenizer.chat_template")
        );
        for name in [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.29.self_attn.k_proj.weight",
            "model.embed_tokens.weight",
        ] {
            let a = loaded.weights.get(name).unwrap();
            let b = w2.get(name).unwrap();
            let scale: f32 = a
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            let d = max_diff(a, b);
            assert!(
                d <= scale / 1000.0,
                "{name}: f16 round trip off by {d} (max {scale})"
            );
        }
    }
}
