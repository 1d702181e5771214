//! Runs the personal model's jobs over one avatar's records: build the SFT dataset, train a
//! LoRA adapter on the base model (resumable), evaluate base against finetuned, and answer as
//! the person. The CLI and the query service call these; the maths lives in `avatar-llm`.
//!
//! On disk, under the avatar's model folder (`DIR/models/<avatar>/llm/`):
//! `checkpoints/` (resumable state), `adapter/` (PEFT layout), `card.json` (what was trained on
//! what, and how it went).

pub mod base;
pub mod canary;
pub mod job;

pub use avatar_llm::model::LlamaSession;
pub use base::{resolve_base, BaseModel};
pub use job::{
    build_examples, encode_rows, evaluate, load_finetuned, train_llm, EvalReport, ModelCard,
    TrainOptions, TrainReport,
};

use thiserror::Error;

pub type Result<T> = std::result::Result<T, TrainerError>;

#[derive(Debug, Error)]
pub enum TrainerError {
    #[error("{0}")]
    NoBase(String),
    #[error("{0}")]
    NoModel(String),
    #[error("{0}")]
    Data(String),
    #[error(transparent)]
    Llm(#[from] avatar_llm::LlmError),
    #[error(transparent)]
    Dataset(#[from] avatar_dataset::DatasetError),
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}
