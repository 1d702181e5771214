//! One call from content features and f0 to audio, the way RVC WebUI's `Pipeline.vc` chains
//! the steps: index retrieval, 2x upsampling, pitch shift and quantisation, `protect`, synthesis.

use crate::convert::{
    f0_to_coarse, protect, shift_pitch, synthesize_chunked, upsample_features_2x, Chunking,
};
use crate::error::{Result, RvcError};
use crate::index::FeatureIndex;
use crate::synth::{Noise, SynthInput, Synthesizer};

/// The knobs of one conversion, defaulting to RVC WebUI's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvertParams {
    pub speaker: usize,
    /// Pitch shift in semitones.
    pub f0_up_key: f32,
    /// How much of each frame comes from the voice's feature index (0 = none).
    pub index_rate: f32,
    /// Unvoiced-frame protection; 0.5 or more switches it off.
    pub protect: f32,
    pub chunking: Chunking,
}

impl Default for ConvertParams {
    fn default() -> Self {
        Self {
            speaker: 0,
            f0_up_key: 0.0,
            index_rate: 0.75,
            protect: 0.33,
            chunking: Chunking::default(),
        }
    }
}

/// Synthesiser-rate inputs ready for [`Synthesizer`]: `frames x feature_dim` features and,
/// for pitch models, coarse pitch and shifted f0 per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub features: Vec<f32>,
    pub pitch: Option<Vec<u32>>,
    pub f0: Option<Vec<f32>>,
    pub frames: usize,
}

impl Prepared {
    pub fn input(&self, speaker: usize) -> SynthInput<'_> {
        SynthInput {
            features: &self.features,
            pitch: self.pitch.as_deref(),
            f0: self.f0.as_deref(),
            speaker,
        }
    }
}

/// RVC's steps before the synthesiser. `features`: `[n, dim]` content features at 50 Hz
/// (HuBERT: v1 layer 9 + final_proj, 256 wide; v2 layer 12, 768 wide); `f0`: Hz at 100 Hz
/// (ignored by models without pitch). The output has `min(2 n, f0 frames)` frames (RVC
/// trims pitch to the features the same way; longer features are cut to the f0 here).
pub fn prepare(
    synth: &Synthesizer,
    index: Option<&FeatureIndex>,
    features: &[f32],
    f0: &[f32],
    params: &ConvertParams,
) -> Result<Prepared> {
    let dim = synth.feature_dim();
    if features.is_empty() || !features.len().is_multiple_of(dim) {
        return Err(RvcError::Input(format!(
            "features hold {} values, not rows of this model's width {dim}",
            features.len()
        )));
    }
    let retrieved = match index {
        Some(ix) if params.index_rate != 0.0 => {
            if ix.dim() != dim {
                return Err(RvcError::Index(format!(
                    "index holds {}-dim features, the model takes {dim}",
                    ix.dim()
                )));
            }
            ix.blend(features, params.index_rate)?
        }
        _ => features.to_vec(),
    };
    let mut up = upsample_features_2x(&retrieved, dim)?;
    let mut frames = up.len() / dim;
    if !synth.has_pitch() {
        return Ok(Prepared {
            features: up,
            pitch: None,
            f0: None,
            frames,
        });
    }
    if f0.is_empty() {
        return Err(RvcError::Input("this model needs f0".into()));
    }
    frames = frames.min(f0.len());
    up.truncate(frames * dim);
    let f0 = shift_pitch(&f0[..frames], params.f0_up_key);
    let features = if params.protect < 0.5 {
        let original = upsample_features_2x(features, dim)?;
        protect(&up, &original[..frames * dim], &f0, dim, params.protect)?
    } else {
        up
    };
    Ok(Prepared {
        features,
        pitch: Some(f0_to_coarse(&f0)),
        f0: Some(f0),
        frames,
    })
}

/// Convert content features (+ f0) to audio at `synth.sample_rate()`: [`prepare`] then
/// [`synthesize_chunked`]. `noise: None` draws RVC's random noise.
pub fn convert(
    synth: &Synthesizer,
    index: Option<&FeatureIndex>,
    features: &[f32],
    f0: &[f32],
    params: &ConvertParams,
    noise: Option<&Noise>,
) -> Result<Vec<f32>> {
    let prepared = prepare(synth, index, features, f0, params)?;
    synthesize_chunked(
        synth,
        &prepared.input(params.speaker),
        noise,
        params.chunking,
    )
}
