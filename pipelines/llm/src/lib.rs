//! The personal language model: a Llama-family decoder (Llama 2/3, SmolLM/SmolLM2, Qwen2/2.5,
//! Mistral) written out in candle so that LoRA adapters can sit on every linear projection and
//! gradients flow through every op (candle's fused rope/softmax/rms-norm kernels have no backward).
//!
//! Where things happen:
//! - `config`: model hyper-parameters from a Hugging Face `config.json` or GGUF metadata.
//! - `load`: weights from GGUF (dequantised; llama.cpp's q/k row permutation undone) or
//!   safetensors (single file or sharded), always under Hugging Face tensor names.
//! - `lora`: `LoraLinear`, a frozen base weight plus trainable A/B in a `VarMap`.
//! - `model`: the decoder, with a KV cache for generation.
//! - `qmodel`: an inference-only Q8_0 copy of the decoder for fast generation.
//! - `tokenizer`, `chat`: tokenizer from `tokenizer.json` or GGUF metadata; the model's chat
//!   template rendered with minijinja.
//! - `generate`: sampling (temperature, top-p, top-k, repetition penalty), stop sequences, streaming.
pub mod chat;
pub mod config;
pub mod error;
pub mod eval;
pub mod export;
pub mod generate;
pub mod load;
pub mod lora;
pub mod model;
pub mod peft;
pub mod qmodel;
pub mod sft;
pub mod tokenizer;
pub mod train;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::LlamaConfig;
pub use error::{LlmError, Result};
pub use generate::{generate, FinishReason, Generation, Sampler, SamplingParams, StepModel};
pub use load::{
    default_model_path, load_gguf, load_model, load_safetensors, GgufMeta, LoadedModel, Weights,
};
pub use lora::{LoraConfig, LoraLinear};
pub use model::{CachedDecoder, KvCache, Llama, LlamaSession, Session};
pub use qmodel::{QKvCache, QLlama, QLlamaSession};
pub use tokenizer::{load_tokenizer_json, tokenizer_from_gguf, SpecialTokens};
