//! Model hyper-parameters, read from a Hugging Face `config.json` or from GGUF metadata.
//!
//! One struct serves Llama 2/3, SmolLM/SmolLM2, Mistral and Qwen2: they differ only in a few
//! knobs (GQA head counts, RoPE base and scaling, tied embeddings, Qwen2's q/k/v bias). Field names
//! follow `config.json` so that `serde_json` round-trips it and export writes a file that
//! transformers reads back.
use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use serde::{Deserialize, Serialize};

use crate::{LlmError, Result};

/// A token id, or several (Llama 3 lists several end-of-turn ids as `eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// All ids as a list, whichever form the file used.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// `rope_scaling` as Hugging Face writes it. Older files say `type`, newer `rope_type`, some both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RopeScaling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default = "one")]
    pub factor: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
}

fn one() -> f64 {
    1.0
}

/// The RoPE variants the model implements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeKind {
    /// Plain RoPE (no scaling or `rope_type: "default"`).
    Default,
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl RopeScaling {
    /// The scaling kind, or an error for kinds the model does not implement (yarn, dynamic...):
    /// silently ignoring them would give wrong logits on long contexts.
    pub fn kind(&self) -> Result<RopeKind> {
        let name = self
            .rope_type
            .as_deref()
            .or(self.type_.as_deref())
            .unwrap_or("default");
        match name {
            "default" => Ok(RopeKind::Default),
            "linear" => Ok(RopeKind::Linear {
                factor: self.factor,
            }),
            "llama3" => Ok(RopeKind::Llama3 {
                factor: self.factor,
                low_freq_factor: self.low_freq_factor.unwrap_or(1.0),
                high_freq_factor: self.high_freq_factor.unwrap_or(4.0),
                original_max_position_embeddings: self
                    .original_max_position_embeddings
                    .unwrap_or(8192) as f64,
            }),
            other => Err(LlmError::Config(format!(
                "rope scaling type {other:?} is not supported (default, linear, llama3 are)"
            ))),
        }
    }
}

/// Hyper-parameters of a Llama-family decoder (the keys of Hugging Face's `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `llama`, `qwen2`, `mistral`... (GGUF: `general.architecture`).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention; absent means one key/value head per query head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Absent means `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Bias on q/k/v projections (Qwen2). Qwen2's config.json lacks the key, so absent means
    /// "decide from `model_type`" (see [`LlamaConfig::attention_bias`]); the loader also sets it
    /// when the checkpoint holds `q_proj.bias`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
}

fn default_model_type() -> String {
    "llama".to_string()
}
fn default_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

/// The part of a transformers 5 `rope_parameters` block we read (it replaces `rope_theta` and
/// `rope_scaling` at the top level).
#[derive(Deserialize)]
struct RopeParameters {
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(flatten)]
    scaling: RopeScaling,
}

#[derive(Deserialize)]
struct Extras {
    #[serde(default)]
    rope_parameters: Option<RopeParameters>,
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json` and checks it.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let mut cfg: LlamaConfig = serde_json::from_str(json)?;
        let extras: Extras = serde_json::from_str(json)?;
        if let Some(params) = extras.rope_parameters {
            if let Some(theta) = params.rope_theta {
                cfg.rope_theta = theta;
            }
            if cfg.rope_scaling.is_none() && params.scaling.kind()? != RopeKind::Default {
                cfg.rope_scaling = Some(params.scaling);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `config.json` from disk.
    pub fn from_json_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::from_json_str(&text)
    }

    /// Reads the hyper-parameters from GGUF metadata (`{arch}.block_count` etc.). The vocabulary
    /// size comes from `{arch}.vocab_size` or the length of `tokenizer.ggml.tokens`; use
    /// [`LlamaConfig::from_gguf_with_vocab`] to supply it from the embedding shape instead.
    pub fn from_gguf(metadata: &HashMap<String, Value>) -> Result<Self> {
        Self::from_gguf_with_vocab(metadata, None)
    }

    /// Like [`LlamaConfig::from_gguf`], with a fallback vocabulary size (rows of `token_embd`).
    pub fn from_gguf_with_vocab(
        metadata: &HashMap<String, Value>,
        vocab_fallback: Option<usize>,
    ) -> Result<Self> {
        let arch = meta_str(metadata, "general.architecture")?;
        let key = |k: &str| format!("{arch}.{k}");
        let need = |k: &str| meta_usize(metadata, &key(k))?.ok_or_else(|| missing(&key(k)));
        let hidden_size = need("embedding_length")?;
        let num_attention_heads = need("attention.head_count")?;
        let vocab_size = match meta_usize(metadata, &key("vocab_size"))? {
            Some(v) => v,
            None => match metadata.get("tokenizer.ggml.tokens") {
                Some(Value::Array(tokens)) => tokens.len(),
                _ => vocab_fallback.ok_or_else(|| missing("tokenizer.ggml.tokens"))?,
            },
        };
        let head_dim = match meta_usize(metadata, &key("attention.key_length"))? {
            Some(d) => Some(d),
            None => meta_usize(metadata, &key("rope.dimension_count"))?,
        }
        .filter(|d| num_attention_heads == 0 || *d != hidden_size / num_attention_heads);
        let rope_scaling = match metadata.get(&key("rope.scaling.type")) {
            Some(v) => {
                let kind = v
                    .to_string()
                    .map_err(|e| LlmError::Config(format!("{}: {e}", key("rope.scaling.type"))))?
                    .clone();
                let factor = meta_f64(metadata, &key("rope.scaling.factor"))?.unwrap_or(1.0);
                let orig = meta_usize(metadata, &key("rope.scaling.original_context_length"))?;
                (kind != "none").then_some(RopeScaling {
                    rope_type: Some(kind),
                    factor,
                    original_max_position_embeddings: orig,
                    ..RopeScaling::default()
                })
            }
            None => None,
        };
        let eos = meta_usize(metadata, "tokenizer.ggml.eos_token_id")?;
        let cfg = LlamaConfig {
            architectures: Vec::new(),
            model_type: arch.clone(),
            vocab_size,
            hidden_size,
            intermediate_size: need("feed_forward_length")?,
            num_hidden_layers: need("block_count")?,
            num_attention_heads,
            num_key_value_heads: meta_usize(metadata, &key("attention.head_count_kv"))?,
            head_dim,
            rms_norm_eps: meta_f64(metadata, &key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(default_eps()),
            rope_theta: meta_f64(metadata, &key("rope.freq_base"))?.unwrap_or(default_rope_theta()),
            rope_scaling,
            max_position_embeddings: meta_usize(metadata, &key("context_length"))?
                .unwrap_or(default_max_pos()),
            // GGUF has no key for it: the loader sets it from the presence of `output.weight`.
            tie_word_embeddings: false,
            bos_token_id: meta_usize(metadata, "tokenizer.ggml.bos_token_id")?.map(|v| v as u32),
            eos_token_id: eos.map(|v| TokenIds::One(v as u32)),
            attention_bias: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// A tiny model for unit tests (2 layers, GQA 4:2, vocab 64).
    pub fn tiny() -> Self {
        LlamaConfig {
            architectures: vec!["LlamaForCausalLM".to_string()],
            model_type: "llama".to_string(),
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 48,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 128,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(TokenIds::One(2)),
            attention_bias: None,
        }
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v projections carry a bias: explicit key, else true for Qwen2.
    pub fn attention_bias(&self) -> bool {
        self.attention_bias
            .unwrap_or(self.model_type == "qwen2" || self.model_type == "qwen2_moe")
    }

    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    pub fn rope_kind(&self) -> Result<RopeKind> {
        match &self.rope_scaling {
            None => Ok(RopeKind::Default),
            Some(s) => s.kind(),
        }
    }

    /// Rejects configurations the model cannot run, so errors surface at load time with the
    /// offending key instead of as a shape error deep in a forward pass.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LlmError::Config(m));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        let hd = self.head_dim();
        if hd == 0 || !hd.is_multiple_of(2) {
            return bad(format!("head_dim {hd} must be even and positive (RoPE)"));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return bad(format!(
                "rms_norm_eps {} must be positive",
                self.rms_norm_eps
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return bad(format!("rope_theta {} must be positive", self.rope_theta));
        }
        self.rope_kind()?;
        Ok(())
    }
}

fn missing(key: &str) -> LlmError {
    LlmError::Config(format!("GGUF metadata lacks {key}"))
}

fn meta_str(metadata: &HashMap<String, Value>, key: &str) -> Result<String> {
    match metadata.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(LlmError::Config(format!(
            "GGUF metadata {key} is not a string: {other:?}"
        ))),
        None => Err(missing(key)),
    }
}

/// Integer metadata, accepting any integer width (writers differ: u32, u64, i32).
pub(crate) fn meta_usize(metadata: &HashMap<String, Value>, key: &str) -> Result<Option<usize>> {
    let v = match metadata.get(key) {
        None => return Ok(None),
        Some(v) => v,
    };
    let n: i128 = match v {
        Value::U8(x) => (*x).into(),
        Value::I8(x) => (*x).into(),
        Value::U16(x) => (*x).into(),
        Value::I16(x) => (*x).into(),
        Value::U32(x) => (*x).into(),
        Value::I32(x) => (*x).into(),
        Value::U64(x) => (*x).into(),
        Value::I64(x) => (*x).into(),
        other => {
            return Err(LlmError::Config(format!(
                "GGUF metadata {key} is not an integer: {other:?}"
            )))
        }
    };
    usize::try_from(n)
        .map(Some)
        .map_err(|_| LlmError::Config(format!("GGUF metadata {key} out of range: {n}")))
}

fn meta_f64(metadata: &HashMap<String, Value>, key: &str) -> Result<Option<f64>> {
    match metadata.get(key) {
        None => Ok(None),
        // Via the shortest decimal form, so an f32 `1e-5` becomes the f64 `1e-5` that
        // config.json would hold, not 9.99999974e-6.
        Some(Value::F32(x)) => Ok(Some(x.to_string().parse().unwrap_or(f64::from(*x)))),
        Some(Value::F64(x)) => Ok(Some(*x)),
        Some(_) => meta_usize(metadata, key).map(|o| o.map(|v| v as f64)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_config_json_with_defaults() {
        // Trimmed from SmolLM2-135M-Instruct's config.json (keys we do not model left in).
        let json = r#"{"architectures":["LlamaForCausalLM"],"bos_token_id":1,"eos_token_id":2,
          "hidden_act":"silu","hidden_size":576,"initializer_range":0.041666666666666664,
          "intermediate_size":1536,"max_position_embeddings":8192,"model_type":"llama",
          "num_attention_heads":9,"num_hidden_layers":30,"num_key_value_heads":3,
          "rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":100000,
          "tie_word_embeddings":true,"vocab_size":49152}"#;
        let cfg = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(cfg.head_dim(), 64);
        assert_eq!(cfg.num_kv_heads(), 3);
        assert_eq!(cfg.rope_theta, 100_000.0);
        assert!(cfg.tie_word_embeddings);
        assert!(!cfg.attention_bias());
        assert_eq!(cfg.eos_token_ids(), vec![2]);
        assert_eq!(cfg.rope_kind().unwrap(), RopeKind::Default);
        // Round trip: what export writes reads back equal.
        let back = LlamaConfig::from_json_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn llama3_scaling_and_eos_list() {
        let json = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
          "num_attention_heads":4,"vocab_size":10,"eos_token_id":[128001,128008,128009],
          "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
          "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let cfg = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(cfg.num_kv_heads(), 4, "defaults to the head count");
        assert_eq!(cfg.eos_token_ids(), vec![128001, 128008, 128009]);
        assert_eq!(
            cfg.rope_kind().unwrap(),
            RopeKind::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0
            }
        );
        let linear = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
          "num_attention_heads":4,"vocab_size":10,"rope_scaling":{"type":"linear","factor":2.0}}"#;
        let cfg = LlamaConfig::from_json_str(linear).unwrap();
        assert_eq!(cfg.rope_kind().unwrap(), RopeKind::Linear { factor: 2.0 });
    }

    #[test]
    fn qwen2_infers_attention_bias_and_rejects_bad_configs() {
        let json = r#"{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,
          "num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10}"#;
        assert!(LlamaConfig::from_json_str(json).unwrap().attention_bias());
        let bad = json.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3");
        assert!(matches!(
            LlamaConfig::from_json_str(&bad),
            Err(LlmError::Config(_))
        ));
        let yarn = json.replace(
            "\"vocab_size\":10",
            "\"vocab_size\":10,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0}",
        );
        assert!(LlamaConfig::from_json_str(&yarn).is_err());
        assert!(LlamaConfig::from_json_str("{\"hidden_size\":1}").is_err());
    }

    #[test]
    fn transformers5_rope_parameters() {
        let json = r#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
          "num_attention_heads":4,"vocab_size":10,
          "rope_parameters":{"rope_theta":500000.0,"rope_type":"default"}}"#;
        let cfg = LlamaConfig::from_json_str(json).unwrap();
        assert_eq!(cfg.rope_theta, 500_000.0);
        assert!(cfg.rope_scaling.is_none());
    }

    #[test]
    fn from_gguf_metadata() {
        let mut m = HashMap::new();
        m.insert(
            "general.architecture".to_string(),
            Value::String("llama".into()),
        );
        m.insert("llama.block_count".into(), Value::U32(30));
        m.insert("llama.embedding_length".into(), Value::U32(576));
        m.insert("llama.feed_forward_length".into(), Value::U32(1536));
        m.insert("llama.attention.head_count".into(), Value::U32(9));
        m.insert("llama.attention.head_count_kv".into(), Value::U32(3));
        m.insert(
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        );
        m.insert("llama.rope.freq_base".into(), Value::F32(100000.0));
        m.insert("llama.rope.dimension_count".into(), Value::U32(64));
        m.insert("llama.context_length".into(), Value::U32(8192));
        m.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        // No token list and no vocab_size: needs the fallback.
        assert!(LlamaConfig::from_gguf(&m).is_err());
        let cfg = LlamaConfig::from_gguf_with_vocab(&m, Some(49152)).unwrap();
        assert_eq!(cfg.vocab_size, 49152);
        assert_eq!(cfg.head_dim(), 64);
        assert_eq!(
            cfg.head_dim, None,
            "rope dim equal to hidden/heads is not recorded"
        );
        assert_eq!(cfg.num_kv_heads(), 3);
        assert_eq!(cfg.rms_norm_eps, 1e-5);
        assert_eq!(cfg.max_position_embeddings, 8192);
        assert_eq!(cfg.eos_token_ids(), vec![2]);
        m.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(vec![Value::String("a".into()); 7]),
        );
        assert_eq!(LlamaConfig::from_gguf(&m).unwrap().vocab_size, 7);
        m.insert("llama.block_count".into(), Value::String("x".into()));
        assert!(LlamaConfig::from_gguf(&m).is_err());
    }
}
