//! Errors of avatar-rmvpe.

use std::path::PathBuf;

/// What can go wrong loading RMVPE or running it.
#[derive(Debug, thiserror::Error)]
pub enum RmvpeError {
    /// The checkpoint file is not there; RVC's `rmvpe.pt` must be downloaded by the user.
    #[error(
        "RMVPE checkpoint not found at {path}: download rmvpe.pt (RVC's pitch model, \
         https://huggingface.co/lj1995/VoiceConversionWebUI/blob/main/rmvpe.pt) and put it there \
         (the default place is $AVATAR_MODELS/rmvpe/rmvpe.pt, $AVATAR_MODELS defaulting to \
         ~/.cache/avatar/models)"
    )]
    NotFound { path: PathBuf },
    /// The file exists but cannot be read as a checkpoint.
    #[error("cannot read RMVPE checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    /// A tensor the model needs is absent from the state dict.
    #[error("RMVPE checkpoint lacks tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has another shape than RVC's E2E implies.
    #[error("RMVPE tensor `{name}` has shape {got:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A checkpoint RVC's code would build but this port does not handle.
    #[error("unsupported RMVPE checkpoint: {0}")]
    Unsupported(String),
    /// The caller passed inconsistent data.
    #[error("invalid input: {0}")]
    Input(String),
    /// A tensor computation failed (a bug or an inconsistent checkpoint).
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, RmvpeError>;
