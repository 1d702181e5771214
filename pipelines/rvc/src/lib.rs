//! RVC voice conversion in candle: the synthesiser (v1/v2, with and without pitch, NSF-HiFiGAN), RVC WebUI/Applio .pth loading, feature-index blending
//!
//! Port of the inference path of RVC's `SynthesizerTrnMs{256,768}NSFsid[_nono]`, checked
//! against RVC's PyTorch code (see `reference/make_reference.py` and `tests/`).
//!
//! Typical use, with content features from HuBERT (50 Hz) and f0 from a pitch tracker (100 Hz):
//!
//! ```no_run
//! # fn main() -> avatar_rvc::Result<()> {
//! use avatar_rvc::{convert, ConvertParams, FeatureIndex, Synthesizer};
//! let synth = Synthesizer::load("voice.pth")?; // RVC WebUI / Applio export
//! let index = FeatureIndex::read("added_IVF256_Flat_nprobe_1_voice_v2.index")?;
//! # let (features, f0) = (vec![0f32; 768 * 50], vec![0f32; 100]);
//! let params = ConvertParams { f0_up_key: 2.0, ..ConvertParams::default() };
//! let audio = convert(&synth, Some(&index), &features, &f0, &params, None)?;
//! // `audio` is mono at synth.sample_rate(), in [-1, 1].
//! # Ok(()) }
//! ```
//!
//! Lower level: [`Synthesizer::infer`] / [`Synthesizer::infer_with_noise`] take features
//! already at the synthesiser's frame rate; [`synthesize_chunked`] bounds memory for long
//! inputs; [`prepare`] exposes RVC's pre-processing on its own.

mod attentions;
pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod error;
pub mod export;
mod flow;
pub mod index;
pub mod ivf;
mod nn;
pub mod nsf;
pub mod pipeline;
pub mod rng;
pub mod shapes;
pub mod synth;
mod text_encoder;
mod timemajor;

pub use attentions::{Bands, WINDOW};
pub use checkpoint::{Checkpoint, Weights};
pub use config::{ResBlockKind, SynthConfig, Version};
pub use convert::{
    f0_to_coarse, protect, shift_pitch, synthesize_chunked, upsample_features_2x, Chunking,
};
pub use error::{Result, RvcError};
pub use index::FeatureIndex;
pub use pipeline::{convert, prepare, ConvertParams, Prepared};
pub use synth::{Latent, Noise, SynthInput, Synthesis, Synthesizer};
