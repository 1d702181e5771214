//! One error type for loading, checking and running the encoder.

use std::path::PathBuf;

/// Everything that can go wrong. Loading errors name the file and, for the asset folder, say
/// where to put what: a user with a half-copied model folder should not need the source.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{path} is a legacy (pre-zip) torch pickle, which this loader cannot read; re-save it \
         with PyTorch >= 1.6: `torch.save(torch.load(path, weights_only=False), path)`"
    )]
    LegacyPickle { path: PathBuf },

    #[error("{path} is not a checkpoint this loader understands: {reason}")]
    NotACheckpoint { path: PathBuf, reason: String },

    #[error("cannot read the tensors of {path}: {source}")]
    Read {
        path: PathBuf,
        source: candle_core::Error,
    },

    #[error("checkpoint has no tensor `{name}` (names are given in fairseq's layout)")]
    MissingTensor { name: String },

    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("unsupported model: {0}")]
    Unsupported(String),

    #[error(
        "input of {samples} samples is shorter than the encoder's receptive field of {min} \
         samples (25 ms at 16 kHz): no frame can be computed"
    )]
    InputTooShort { samples: usize, min: usize },

    #[error("layer {layer} requested but the model has {layers} transformer layers")]
    LayerOutOfRange { layer: usize, layers: usize },

    #[error("RVC v1 features need `final_proj`, which this checkpoint does not have")]
    NoFinalProj,

    #[error("{0}")]
    MissingAsset(String),

    #[error(
        "SHA-256 mismatch for {path}: expected {expected} ({source_of_expected}), found {found}. \
         The file is damaged, truncated or a different model"
    )]
    ShaMismatch {
        path: PathBuf,
        expected: String,
        found: String,
        source_of_expected: String,
    },

    #[error("{path}: {reason}")]
    BadSums { path: PathBuf, reason: String },

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ContentError>;
