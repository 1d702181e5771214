//! One error type for the crate: checkpoint and index problems name what is wrong.

/// Errors from loading RVC files and running the synthesiser.
#[derive(Debug, thiserror::Error)]
pub enum RvcError {
    #[error("i/o error reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },
    #[error("checkpoint is missing weight `{0}`")]
    MissingWeight(String),
    #[error("weight `{name}` has shape {actual:?}, expected {expected:?}")]
    WeightShape {
        name: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("unsupported checkpoint: {0}")]
    Unsupported(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("feature index: {0}")]
    Index(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, RvcError>;
