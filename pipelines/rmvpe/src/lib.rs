//! RMVPE neural pitch estimation (RVC's default F0 model) in candle.
//!
//! A port of RVC's `rmvpe.py` for CPU inference: log-mel front end ([`mel`]), the E2E network
//! ([`unet`], [`gru`], [`model`]) and RVC's decoding ([`decode`]). Weights are RVC's own
//! `rmvpe.pt` (not shipped by any package: download it from Hugging Face,
//! `lj1995/VoiceConversionWebUI`, and put it at [`Rmvpe::default_path`], i.e.
//! `${AVATAR_MODELS:-$HOME/.cache/avatar/models}/rmvpe/rmvpe.pt`), read by [`checkpoint`];
//! the same state dict as safetensors works too.
//!
//! ```no_run
//! # fn main() -> avatar_rmvpe::Result<()> {
//! use avatar_rmvpe::{Rmvpe, DEFAULT_THRESHOLD};
//! let rmvpe = Rmvpe::load(Rmvpe::default_path())?;
//! let samples_16k = vec![0f32; 16_000];
//! let f0_hz = rmvpe.f0(&samples_16k, DEFAULT_THRESHOLD)?; // 100 frames/s, 0 = unvoiced
//! # let _ = f0_hz;
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
pub mod conv;
pub mod decode;
pub mod error;
pub mod gru;
pub mod mel;
pub mod model;
pub mod unet;

use std::path::{Path, PathBuf};

pub use error::{Result, RmvpeError};

use checkpoint::Weights;
use mel::{MelFrontEnd, N_MELS};
use model::E2E;

/// RVC's default voicing threshold.
pub const DEFAULT_THRESHOLD: f32 = 0.03;

/// Frames (10 ms each) per network run, plus context on each side: long inputs are cut so
/// memory stays bounded (the bench process peaks at ~0.7 GB with RVC-size weights, alike for
/// 1 s and 40 s). Inputs up to `core + 2·context` frames (12.8 s by default) run whole,
/// exactly as RVC; longer ones differ from a whole run only near chunk seams, where the
/// network's (in principle unbounded) context is cut to `context` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    pub core: usize,
    pub context: usize,
}

impl Default for Chunking {
    fn default() -> Self {
        Self {
            core: 1024,
            context: 128,
        }
    }
}

/// A loaded RMVPE model with its mel front end.
pub struct Rmvpe {
    model: E2E,
    front: MelFrontEnd,
    chunking: Chunking,
}

impl Rmvpe {
    /// `${AVATAR_MODELS:-$HOME/.cache/avatar/models}/rmvpe/rmvpe.pt`.
    pub fn default_path() -> PathBuf {
        let root = std::env::var_os("AVATAR_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home =
                    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
                home.join(".cache/avatar/models")
            });
        root.join("rmvpe").join("rmvpe.pt")
    }

    /// Load RVC's `rmvpe.pt` (or the same state dict as safetensors).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let weights = Weights::read(path.as_ref())?;
        Self::from_weights(&weights)
    }

    /// Build from an already read state dict.
    pub fn from_weights(weights: &Weights) -> Result<Self> {
        Ok(Self {
            model: E2E::load(weights)?,
            front: MelFrontEnd::new(),
            chunking: Chunking::default(),
        })
    }

    /// Change how long inputs are cut (`core` ≥ 1).
    pub fn with_chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = Chunking {
            core: chunking.core.max(1),
            context: chunking.context,
        };
        self
    }

    /// F0 in Hz at 100 frames per second (`1 + len / 160` frames) of 16 kHz mono audio;
    /// 0 for unvoiced frames (salience peak `<= threshold`; RVC uses 0.03).
    pub fn f0(&self, samples_16k: &[f32], threshold: f32) -> Result<Vec<f32>> {
        let salience = self.salience(samples_16k)?;
        Ok(decode::decode(&salience, threshold))
    }

    /// The log-mel RVC's RMVPE sees: `128 × frames`, band-major.
    pub fn mel(&self, samples_16k: &[f32]) -> Vec<f32> {
        self.front.log_mel(samples_16k)
    }

    /// The network's 360-bin salience, `frames × 360` row-major.
    pub fn salience(&self, samples_16k: &[f32]) -> Result<Vec<f32>> {
        let frames = MelFrontEnd::n_frames(samples_16k.len());
        let mel = self.front.log_mel(samples_16k);
        self.salience_from_mel(&mel, frames)
    }

    /// Salience of a log-mel (`128 × frames`), chunked per [`Chunking`].
    pub fn salience_from_mel(&self, mel: &[f32], frames: usize) -> Result<Vec<f32>> {
        if mel.len() != N_MELS * frames {
            return Err(RmvpeError::Input(format!(
                "log-mel has {} values, {N_MELS} bands × {frames} frames need {}",
                mel.len(),
                N_MELS * frames
            )));
        }
        let Chunking { core, context } = self.chunking;
        if frames <= core.saturating_add(context.saturating_mul(2)) {
            return self.model.salience(mel, frames);
        }
        let mut out = Vec::with_capacity(frames * decode::N_BINS);
        let mut start = 0;
        while start < frames {
            let len = core.min(frames - start);
            let lo = start.saturating_sub(context);
            let hi = (start + len).saturating_add(context).min(frames);
            let n = hi - lo;
            let mut part = Vec::with_capacity(N_MELS * n);
            for b in 0..N_MELS {
                part.extend_from_slice(&mel[b * frames + lo..b * frames + hi]);
            }
            let s = self.model.salience(&part, n)?;
            let skip = (start - lo) * decode::N_BINS;
            out.extend_from_slice(&s[skip..skip + len * decode::N_BINS]);
            start += len;
        }
        Ok(out)
    }
}
