//! Weights from GGUF or safetensors, always under Hugging Face tensor names.
//!
//! One naming scheme downstream means the model, LoRA (PEFT names) and export never care where
//! the weights came from. GGUF tensors are dequantised to f32 (training needs real numbers) and
//! llama.cpp's q/k row permutation is undone, so the model uses the standard rotate-half RoPE for
//! both sources. Nothing here panics on a malformed file: every failure is an `LlmError` that
//! names the file or tensor.
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::{LlmError, Result};

/// Where the demo model lives: `$AVATAR_MODELS` or `<cache>/avatar/models`, then
/// `SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf` (installed by
/// `infra/fetch-models.sh smollm2`).
pub fn default_model_path() -> PathBuf {
    models_root()
        .join("SmolLM2-135M-Instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The models directory: `$AVATAR_MODELS` if set, else `<cache dir>/avatar/models`.
pub fn models_root() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dirs::cache_dir()
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("avatar")
            .join("models"),
    }
}

/// Model tensors by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`, ...).
#[derive(Debug, Clone, Default)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_map(tensors: HashMap<String, Tensor>) -> Self {
        Weights { tensors }
    }

    /// The tensor, or an error naming the missing key.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| LlmError::Model(format!("missing tensor {name}")))
    }

    /// The tensor, checked against the shape the config implies.
    pub fn get_shaped(&self, name: &str, dims: &[usize]) -> Result<&Tensor> {
        let t = self.get(name)?;
        if t.dims() != dims {
            return Err(LlmError::Model(format!(
                "tensor {name} has shape {:?}, the config implies {dims:?}",
                t.dims()
            )));
        }
        Ok(t)
    }

    pub fn get_opt(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.tensors.insert(name.into(), t);
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names in sorted order (deterministic listings and exports).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.tensors.iter()
    }

    pub fn into_inner(self) -> HashMap<String, Tensor> {
        self.tensors
    }
}

/// The GGUF metadata map, kept for the tokenizer (`tokenizer.ggml.*`) and chat template
/// (`tokenizer.chat_template`) readers.
#[derive(Debug, Clone)]
pub struct GgufMeta {
    pub metadata: HashMap<String, Value>,
}

impl GgufMeta {
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.metadata.get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// An integer of any width, if present and non-negative.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        crate::config::meta_usize(&self.metadata, key)
            .ok()
            .flatten()
            .map(|v| v as u64)
    }

    /// A string array such as `tokenizer.ggml.tokens` / `tokenizer.ggml.merges`.
    pub fn get_str_array(&self, key: &str) -> Option<Vec<&str>> {
        match self.metadata.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// A loaded checkpoint: config, weights, and the GGUF metadata when it came from GGUF.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    pub config: LlamaConfig,
    pub weights: Weights,
    pub gguf: Option<GgufMeta>,
}

/// llama.cpp's RoPE frequency divisors (Llama 3.1 GGUFs): `inv_freq[i] / rope_freqs[i]`. Kept
/// under this GGUF name in [`Weights`]; the model uses it when the config has no RoPE scaling.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// GGUF per-layer suffix → Hugging Face per-layer suffix.
const LAYER_NAMES: [(&str, &str); 9] = [
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
];

/// The Hugging Face name of a GGUF tensor, or None for tensors the model does not use
/// (`rope_freqs`, vision towers...).
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    let (stem, kind) = name.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    match stem {
        "token_embd" => return Some(format!("model.embed_tokens.{kind}")),
        "output_norm" => return Some(format!("model.norm.{kind}")),
        "output" => return Some(format!("lm_head.{kind}")),
        _ => {}
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = LAYER_NAMES
        .iter()
        .find(|(g, _)| *g == part)
        .map(|(_, h)| *h)?;
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes convert_hf_to_gguf's `permute`: it reorders the rows of each head from
/// `[half, d]` to `[d, half]` (`reshape(n_head, 2, hd/2, ..).swapaxes(1, 2)`) so llama.cpp can use
/// interleaved RoPE; we swap back to the Hugging Face rotate-half layout. Works on weights
/// `[out, in]` and biases `[out]`.
pub fn unpermute_qk(t: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims.first().copied().unwrap_or(0);
    if n_head == 0 || out % (2 * n_head) != 0 {
        return Err(LlmError::Model(format!(
            "cannot un-permute a {dims:?} tensor over {n_head} heads"
        )));
    }
    let half = out / n_head / 2;
    let rest: usize = dims[1..].iter().product();
    let r = t
        .reshape((n_head, half, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?;
    Ok(r)
}

/// The architectures whose GGUF q/k rows convert_hf_to_gguf permutes (LlamaModel and its
/// subclasses); Qwen2 and others are written unpermuted.
fn gguf_permutes_qk(arch: &str) -> bool {
    matches!(arch, "llama" | "mistral" | "granite")
}

/// Reads a GGUF file: config from its metadata, tensors dequantised to f32 under HF names.
pub fn load_gguf(path: &Path, device: &Device) -> Result<(LlamaConfig, Weights, GgufMeta)> {
    let file = File::open(path)?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| {
        LlmError::Model(format!("{}: not a readable GGUF file: {e}", path.display()))
    })?;
    let embd_rows = content
        .tensor_infos
        .get("token_embd.weight")
        .and_then(|i| i.shape.dims().first().copied());
    let mut cfg = LlamaConfig::from_gguf_with_vocab(&content.metadata, embd_rows)?;
    let permuted = gguf_permutes_qk(&cfg.model_type);
    let mut weights = Weights::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        // llama.cpp stores Llama 3.1's RoPE scaling as per-frequency divisors in this tensor
        // rather than in metadata; it has no HF name, so it keeps its GGUF one.
        let hf = if name == ROPE_FREQS {
            ROPE_FREQS.to_string()
        } else if let Some(hf) = gguf_to_hf_name(name) {
            hf
        } else {
            continue;
        };
        let q = content
            .tensor(&mut reader, name, device)
            .map_err(|e| LlmError::Model(format!("{}: tensor {name}: {e}", path.display())))?;
        let mut t = q
            .dequantize(device)
            .map_err(|e| LlmError::Model(format!("tensor {name}: cannot dequantise: {e}")))?
            .to_dtype(DType::F32)?;
        if permuted {
            if hf.contains(".self_attn.q_proj.") {
                t = unpermute_qk(&t, cfg.num_attention_heads)?;
            } else if hf.contains(".self_attn.k_proj.") {
                t = unpermute_qk(&t, cfg.num_kv_heads())?;
            }
        }
        weights.insert(hf, t);
    }
    cfg.tie_word_embeddings = !weights.contains("lm_head.weight");
    if weights.contains("model.layers.0.self_attn.q_proj.bias") {
        cfg.attention_bias = Some(true);
    }
    Ok((
        cfg,
        weights,
        GgufMeta {
            metadata: content.metadata,
        },
    ))
}

/// Reads safetensors files into one f32 weight map (names as stored).
pub fn load_safetensors_files(paths: &[PathBuf], device: &Device) -> Result<Weights> {
    let mut weights = Weights::new();
    for p in paths {
        let map = candle_core::safetensors::load(p, device)
            .map_err(|e| LlmError::Model(format!("{}: {e}", p.display())))?;
        for (name, t) in map {
            let t = if t.dtype() == DType::F32 {
                t
            } else {
                t.to_dtype(DType::F32)?
            };
            weights.insert(name, t);
        }
    }
    Ok(weights)
}

/// Reads a Hugging Face model directory: `config.json` plus `model.safetensors` or the shards
/// listed in `model.safetensors.index.json`.
pub fn load_safetensors(dir: &Path, device: &Device) -> Result<(LlamaConfig, Weights)> {
    let mut cfg = LlamaConfig::from_json_file(&dir.join("config.json"))?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        shard_files(dir, &std::fs::read_to_string(&index)?)?
    } else {
        return Err(LlmError::Model(format!(
            "{}: neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        )));
    };
    let weights = load_safetensors_files(&files, device)?;
    if cfg.attention_bias.is_none() && weights.contains("model.layers.0.self_attn.q_proj.bias") {
        cfg.attention_bias = Some(true);
    }
    Ok((cfg, weights))
}

/// The distinct shard files of a `model.safetensors.index.json`, in sorted order.
fn shard_files(dir: &Path, index_json: &str) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let index: Index = serde_json::from_str(index_json)?;
    let mut files: Vec<&String> = index.weight_map.values().collect();
    files.sort();
    files.dedup();
    files
        .into_iter()
        .map(|f| {
            // Shard names are plain file names; refuse anything that walks out of the directory.
            if f.contains('/') || f.contains('\\') || f == ".." {
                Err(LlmError::Model(format!("unexpected shard name {f:?}")))
            } else {
                Ok(dir.join(f))
            }
        })
        .collect()
}

/// Loads a model from a GGUF file, a safetensors file (with `config.json` beside it), or a
/// Hugging Face directory.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel> {
    if path.is_dir() {
        let (config, weights) = load_safetensors(path, device)?;
        return Ok(LoadedModel {
            config,
            weights,
            gguf: None,
        });
    }
    if is_gguf(path)? {
        let (config, weights, meta) = load_gguf(path, device)?;
        return Ok(LoadedModel {
            config,
            weights,
            gguf: Some(meta),
        });
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut config = LlamaConfig::from_json_file(&dir.join("config.json"))?;
        let weights = load_safetensors_files(&[path.to_path_buf()], device)?;
        if config.attention_bias.is_none()
            && weights.contains("model.layers.0.self_attn.q_proj.bias")
        {
            config.attention_bias = Some(true);
        }
        return Ok(LoadedModel {
            config,
            weights,
            gguf: None,
        });
    }
    Err(LlmError::Model(format!(
        "{}: not a GGUF file, a .safetensors file or a model directory",
        path.display()
    )))
}

fn is_gguf(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path)?;
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Writes weights as one safetensors file (merged export); names sorted for stable output.
pub fn save_safetensors(weights: &Weights, path: &Path) -> Result<()> {
    let map: HashMap<&str, Tensor> = weights
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, path)?;
    Ok(())
}

/// Writes a Hugging Face directory (`config.json` + `model.safetensors`) that
/// [`load_safetensors`] and transformers read back.
pub fn save_pretrained(dir: &Path, cfg: &LlamaConfig, weights: &Weights) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(cfg)?)?;
    save_safetensors(weights, &dir.join("model.safetensors"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hf() {
        assert_eq!(
            gguf_to_hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(
            gguf_to_hf_name("blk.12.attn_output.weight").as_deref(),
            Some("model.layers.12.self_attn.o_proj.weight")
        );
        assert_eq!(
            gguf_to_hf_name("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            gguf_to_hf_name("blk.3.attn_q.bias").as_deref(),
            Some("model.layers.3.self_attn.q_proj.bias")
        );
        assert_eq!(
            gguf_to_hf_name("output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(gguf_to_hf_name("rope_freqs.weight"), None);
        assert_eq!(gguf_to_hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(gguf_to_hf_name("blk.1.unknown.weight"), None);
    }

    /// convert_hf_to_gguf's permute, written out in the test so the inverse is checked against
    /// the forward transform and not against itself.
    fn permute(w: &Tensor, n_head: usize) -> Tensor {
        let (out, inp) = w.dims2().unwrap();
        w.reshape((n_head, 2, out / n_head / 2, inp))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((out, inp))
            .unwrap()
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        let (heads, hd, inp) = (3, 4, 2);
        let w = Tensor::arange(0f32, (heads * hd * inp) as f32, &Device::Cpu)
            .unwrap()
            .reshape((heads * hd, inp))
            .unwrap();
        let p = permute(&w, heads);
        // Row 1 of head 0 in GGUF is HF row 2 (first element of the second half).
        let row1: Vec<f32> = p.get(1).unwrap().to_vec1().unwrap();
        assert_eq!(row1, vec![4.0, 5.0]);
        let back = unpermute_qk(&p, heads).unwrap();
        let diff: f32 = (back - &w)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);
        assert!(unpermute_qk(&w, 5).is_err());
    }

    /// A tiny model written as GGUF the way convert_hf_to_gguf does (llama names, q/k rows
    /// permuted, no `output.weight` because embeddings are tied) loads back to the HF weights.
    #[test]
    fn synthetic_gguf_round_trip() {
        use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
        let cfg = LlamaConfig::tiny();
        let hf = crate::model::random_weights(&cfg, 3).unwrap();
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        for (name, t) in hf.iter() {
            let gg = match name.as_str() {
                "model.embed_tokens.weight" => "token_embd.weight".to_string(),
                "model.norm.weight" => "output_norm.weight".to_string(),
                n => {
                    let rest = n.strip_prefix("model.layers.").unwrap();
                    let (layer, part) = rest.split_once('.').unwrap();
                    let part = part.strip_suffix(".weight").unwrap();
                    let g = LAYER_NAMES.iter().find(|(_, h)| *h == part).unwrap().0;
                    format!("blk.{layer}.{g}.weight")
                }
            };
            let t = if name.ends_with("q_proj.weight") {
                permute(t, cfg.num_attention_heads)
            } else if name.ends_with("k_proj.weight") {
                permute(t, cfg.num_kv_heads())
            } else {
                t.clone()
            };
            tensors.push((gg, QTensor::quantize(&t, GgmlDType::F32).unwrap()));
        }
        let factors = Tensor::new(&[1f32, 1.0, 2.0, 8.0], &Device::Cpu).unwrap();
        tensors.push((
            ROPE_FREQS.to_string(),
            QTensor::quantize(&factors, GgmlDType::F32).unwrap(),
        ));
        let u = |v: u32| Value::U32(v);
        let meta: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String("llama".into())),
            ("llama.block_count", u(2)),
            ("llama.embedding_length", u(32)),
            ("llama.feed_forward_length", u(48)),
            ("llama.attention.head_count", u(4)),
            ("llama.attention.head_count_kv", u(2)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("llama.rope.freq_base", Value::F32(10000.0)),
            ("llama.context_length", u(128)),
            ("tokenizer.ggml.bos_token_id", u(1)),
            ("tokenizer.ggml.eos_token_id", u(2)),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        let mut f = File::create(&path).unwrap();
        let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
        let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut f, &meta_refs, &t_refs).unwrap();
        drop(f);

        let loaded = load_model(&path, &Device::Cpu).unwrap();
        let mut want = cfg.clone();
        want.architectures.clear();
        assert_eq!(loaded.config, want, "config from metadata");
        assert_eq!(loaded.gguf.unwrap().architecture(), Some("llama"));
        for (name, t) in hf.iter() {
            let got = loaded.weights.get(name).unwrap();
            let d: f32 = (got - t)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(d, 0.0, "{name} differs after load");
        }
        assert!(loaded.weights.contains(ROPE_FREQS));
        assert_eq!(loaded.weights.len(), hf.len() + 1);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.gguf");
        std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
        assert!(load_model(&bad, &Device::Cpu).is_err());
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            load_model(&empty, &Device::Cpu),
            Err(LlmError::Model(_))
        ));
        assert!(
            load_model(dir.path(), &Device::Cpu).is_err(),
            "no config.json"
        );
        let st = dir.path().join("w.safetensors");
        std::fs::write(&st, b"\xff\xff\xff\xff\xff\xff\xff\xffnot json").unwrap();
        assert!(load_safetensors_files(&[st], &Device::Cpu).is_err());
    }

    #[test]
    fn save_pretrained_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LlamaConfig::tiny();
        let mut w = Weights::new();
        w.insert(
            "model.norm.weight",
            Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap(),
        );
        save_pretrained(dir.path(), &cfg, &w).unwrap();
        let loaded = load_model(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(loaded.config, cfg);
        assert!(loaded.gguf.is_none());
        let v: Vec<f32> = loaded
            .weights
            .get("model.norm.weight")
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
        assert!(loaded.weights.get("nope").is_err());
        assert!(loaded
            .weights
            .get_shaped("model.norm.weight", &[4])
            .is_err());
        // Shards listed in an index.
        let sharded = dir.path().join("sharded");
        std::fs::create_dir_all(&sharded).unwrap();
        std::fs::copy(dir.path().join("config.json"), sharded.join("config.json")).unwrap();
        save_safetensors(&w, &sharded.join("model-00001-of-00001.safetensors")).unwrap();
        std::fs::write(
            sharded.join("model.safetensors.index.json"),
            r#"{"metadata":{},"weight_map":{"model.norm.weight":"model-00001-of-00001.safetensors"}}"#,
        )
        .unwrap();
        let (_, w2) = load_safetensors(&sharded, &Device::Cpu).unwrap();
        assert_eq!(w2.len(), 1);
    }

    #[test]
    fn default_path_ends_with_the_demo_model() {
        let p = default_model_path();
        assert!(p.ends_with("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
    }
}
