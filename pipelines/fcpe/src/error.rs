//! One error type for the crate: loading, input and tensor failures all surface here.

use std::path::PathBuf;

/// What can go wrong loading FCPE or estimating pitch.
#[derive(Debug, thiserror::Error)]
pub enum FcpeError {
    /// The file could not be opened or is not a PyTorch zip checkpoint.
    #[error("reading FCPE checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// The checkpoint opened but its tensors or config do not describe an FCPE model.
    #[error("malformed FCPE checkpoint: {0}")]
    Format(String),
    /// A valid checkpoint of a variant this port does not implement.
    #[error("unsupported FCPE model: {0}")]
    Unsupported(String),
    /// Audio the estimator cannot take (rate 0, NaN samples, ...).
    #[error("invalid input: {0}")]
    Input(String),
    #[error("resampling {from} Hz -> 16000 Hz failed: {reason}")]
    Resample { from: u32, reason: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, FcpeError>;
