//! What can go wrong while training.

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("voice model: {0}")]
    Rvc(#[from] avatar_rvc::RvcError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("shape: {0}")]
    Shape(String),
    #[error("{0}")]
    Input(String),
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.display().to_string(),
        source,
    }
}
