//! The base model a personal model is trained from: weights, tokenizer, chat template and the
//! ids that end a turn, from a GGUF file, a Hugging Face folder or (with `hub`) a model id.

use crate::{Result, TrainerError};
use avatar_llm::chat::ChatTemplate;
use avatar_llm::config::LlamaConfig;
use avatar_llm::load::{load_model, Weights};
use avatar_llm::tokenizer::{load_tokenizer_json, tokenizer_from_gguf, SpecialTokens};
use candle_core::Device;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

pub struct BaseModel {
    /// Where it was loaded from (recorded in the model card and `adapter_config.json`).
    pub path: PathBuf,
    pub config: LlamaConfig,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub special: SpecialTokens,
    pub eos_ids: Vec<u32>,
    /// The GGUF metadata when the base came from GGUF (tokenizer and hyper-parameters for export).
    pub gguf: Option<avatar_llm::load::GgufMeta>,
}

/// Where `--base` points: nothing → the demo model fetched by `infra/fetch-models.sh smollm2`;
/// an existing path → that; anything else is taken as a Hugging Face id.
pub fn resolve_base(arg: Option<&str>) -> Result<PathBuf> {
    match arg {
        None => {
            let p = avatar_llm::load::default_model_path();
            if p.is_file() {
                Ok(p)
            } else {
                Err(TrainerError::NoBase(format!(
                    "no base model at {}: run `infra/fetch-models.sh smollm2` (or pass --base PATH|HF_ID)",
                    p.display()
                )))
            }
        }
        Some(s) if Path::new(s).exists() => Ok(PathBuf::from(s)),
        Some(id) => from_hub(id),
    }
}

#[cfg(feature = "hub")]
fn from_hub(id: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::Api::new().map_err(|e| TrainerError::NoBase(e.to_string()))?;
    let repo = api.model(id.to_string());
    let get = |f: &str| {
        repo.get(f)
            .map_err(|e| TrainerError::NoBase(format!("{id}: {f}: {e}")))
    };
    let config = get("config.json")?;
    get("tokenizer.json")?;
    let _ = get("tokenizer_config.json");
    match get("model.safetensors") {
        Ok(_) => {}
        Err(_) => {
            let index = get("model.safetensors.index.json")?;
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(index)?)?;
            let mut files: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files.dedup();
            for f in files {
                get(&f)?;
            }
        }
    }
    Ok(config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}

#[cfg(not(feature = "hub"))]
fn from_hub(id: &str) -> Result<PathBuf> {
    Err(TrainerError::NoBase(format!(
        "{id}: no such file or folder; loading a model by Hugging Face id needs a build with `--features hub` and the network (or download it yourself and pass the folder)"
    )))
}

impl BaseModel {
    pub fn load(path: &Path, device: &Device) -> Result<BaseModel> {
        let loaded = load_model(path, device)?;
        let (tokenizer, template, special) = match &loaded.gguf {
            Some(meta) => (
                tokenizer_from_gguf(&meta.metadata)?,
                ChatTemplate::from_gguf_metadata(&meta.metadata)?,
                SpecialTokens::from_gguf(&meta.metadata),
            ),
            None => {
                let dir = if path.is_dir() {
                    path.to_path_buf()
                } else {
                    path.parent().map(Path::to_path_buf).unwrap_or_default()
                };
                let tok = load_tokenizer_json(dir.join("tokenizer.json"))?;
                let cfg_path = dir.join("tokenizer_config.json");
                let (template, special) = if cfg_path.is_file() {
                    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
                    (
                        ChatTemplate::from_tokenizer_config(&v)?,
                        SpecialTokens::from_tokenizer_config(&v, &tok),
                    )
                } else {
                    (ChatTemplate::chatml(), SpecialTokens::default())
                };
                (tok, template, special)
            }
        };
        let eos_ids = special.eos_token_ids(&tokenizer);
        Ok(BaseModel {
            path: path.to_path_buf(),
            config: loaded.config,
            weights: loaded.weights,
            tokenizer,
            template,
            special,
            eos_ids,
            gguf: loaded.gguf,
        })
    }

    /// Token count of a text, for trimming contexts to a budget.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }

    /// The id used to pad packed rows: PAD, else EOS, else 0.
    pub fn pad_id(&self) -> u32 {
        self.special
            .pad
            .or(self.special.eos)
            .or(self.eos_ids.first().copied())
            .unwrap_or(0)
    }

    /// The end-of-turn id appended to `text` examples.
    pub fn eos_id(&self) -> Option<u32> {
        self.special.eos.or(self.eos_ids.first().copied())
    }
}
