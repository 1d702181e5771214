//! The public entry point: load weights once, turn 16 kHz mono audio into RVC content features.

use std::path::{Path, PathBuf};

use candle_core::Tensor;

use crate::assets::{self, VerifiedModel};
use crate::checkpoint::{self, Checkpoint, Layout};
use crate::error::Result;
use crate::hubert::{self, Hubert, HubertConfig};

/// Which features an RVC model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RvcVersion {
    /// Layer 9, then `final_proj`: 256 values per frame.
    V1,
    /// Layer 12, unprojected: 768 values per frame.
    V2,
}

impl RvcVersion {
    /// The transformer layer RVC reads (fairseq's 1-based `output_layer`).
    pub fn layer(self) -> usize {
        match self {
            Self::V1 => 9,
            Self::V2 => 12,
        }
    }

    /// Whether `final_proj` is applied to that layer.
    pub fn projected(self) -> bool {
        matches!(self, Self::V1)
    }
}

/// A loaded HuBERT-base / ContentVec encoder (CPU, f32).
pub struct ContentEncoder {
    model: Hubert,
    path: PathBuf,
    layout: Layout,
}

impl ContentEncoder {
    /// Load a checkpoint file (fairseq `.pt`, HF `model.safetensors` / `pytorch_model.bin`) or a
    /// folder holding one, WITHOUT hash checks: for weights the caller has vouched for.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_checkpoint(checkpoint::read(path.as_ref())?)
    }

    /// Build from tensors already read (see [`checkpoint::read`]), e.g. weights made in memory.
    pub fn from_checkpoint(ck: Checkpoint) -> Result<Self> {
        let model = Hubert::from_checkpoint(&ck)?;
        Ok(Self {
            model,
            path: ck.path,
            layout: ck.layout,
        })
    }

    /// Load from an asset folder after checking every file's SHA-256 (see [`assets`]).
    pub fn load_verified(dir: impl AsRef<Path>) -> Result<(Self, VerifiedModel)> {
        let verified = assets::locate_verified(dir.as_ref())?;
        let enc = Self::load(&verified.checkpoint)?;
        Ok((enc, verified))
    }

    /// [`Self::load_verified`] on `${AVATAR_MODELS:-$HOME/.cache/avatar/models}/hubert`.
    pub fn load_default() -> Result<(Self, VerifiedModel)> {
        Self::load_verified(assets::default_dir())
    }

    /// RVC features for 16 kHz mono samples (raw, not normalised, as RVC feeds fairseq),
    /// `(frames, 256)` for v1 or `(frames, 768)` for v2 with `frames == frame_count(len)`.
    /// Inputs under 400 samples are an error ([`crate::ContentError::InputTooShort`]).
    pub fn encode(&self, wav_16k: &[f32], version: RvcVersion) -> Result<Tensor> {
        let h = self.model.hidden_state(wav_16k, version.layer())?;
        if version.projected() {
            self.model.project(&h)
        } else {
            Ok(h)
        }
    }

    /// [`Self::encode`] as one `Vec` per frame.
    pub fn encode_frames(&self, wav_16k: &[f32], version: RvcVersion) -> Result<Vec<Vec<f32>>> {
        Ok(self.encode(wav_16k, version)?.to_vec2::<f32>()?)
    }

    /// Hidden state after transformer layer `layer` (0 = input of the first layer),
    /// `(frames, hidden)`.
    pub fn hidden_state(&self, wav_16k: &[f32], layer: usize) -> Result<Tensor> {
        self.model.hidden_state(wav_16k, layer)
    }

    /// `final_proj` of a hidden state; [`crate::ContentError::NoFinalProj`] when the checkpoint has none.
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        self.model.project(hidden)
    }

    /// Output of the convolutional feature extractor, `(frames, conv_dim)`.
    pub fn conv_features(&self, wav_16k: &[f32]) -> Result<Tensor> {
        self.model.conv_features(wav_16k)
    }

    /// Frames produced for `samples` samples (see [`hubert::frame_count`]).
    pub fn frame_count(&self, samples: usize) -> usize {
        hubert::frame_count(samples)
    }

    pub fn config(&self) -> &HubertConfig {
        self.model.config()
    }

    /// The file the weights came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }
}

impl std::fmt::Debug for ContentEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentEncoder")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("config", self.model.config())
            .finish()
    }
}
