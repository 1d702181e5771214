//! RVC voice conversion in candle: the synthesiser (v1/v2, with and without pitch, NSF-HiFiGAN), RVC WebUI/Applio .pth loading, feature-index blending
//!
//! Port of the inference path of RVC's `SynthesizerTrnMs{256,768}NSFsid[_nono]`, checked
//! against RVC's PyTorch code (see `reference/make_reference.py` and `tests/`).

mod attentions;
pub mod checkpoint;
pub mod config;
pub mod convert;
pub mod error;
mod flow;
pub mod index;
mod nn;
pub mod nsf;
pub mod pipeline;
pub mod shapes;
pub mod synth;
mod text_encoder;
mod timemajor;

pub use checkpoint::{Checkpoint, Weights};
pub use config::{ResBlockKind, SynthConfig, Version};
pub use convert::{
    f0_to_coarse, protect, shift_pitch, synthesize_chunked, upsample_features_2x, Chunking,
};
pub use error::{Result, RvcError};
pub use index::FeatureIndex;
pub use pipeline::{convert, prepare, ConvertParams, Prepared};
pub use synth::{Latent, Noise, SynthInput, Synthesis, Synthesizer};
