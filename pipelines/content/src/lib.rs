//! Speech content features for voice conversion: HuBERT-base / ContentVec in candle (fairseq and
//! Hugging Face layouts).
//!
//! ```no_run
//! use avatar_content::{ContentEncoder, RvcVersion};
//! # fn main() -> avatar_content::Result<()> {
//! let (encoder, _checked) = ContentEncoder::load_default()?; // SHA-256-checked asset folder
//! let wav_16k = vec![0f32; 16_000];
//! let v2 = encoder.encode(&wav_16k, RvcVersion::V2)?; // (49, 768)
//! # Ok(()) }
//! ```

pub mod assets;
pub mod checkpoint;
mod encoder;
mod error;
pub mod hubert;

pub use checkpoint::Layout;
pub use encoder::{ContentEncoder, RvcVersion};
pub use error::{ContentError, Result};
pub use hubert::{frame_count, HubertConfig, RECEPTIVE_FIELD, SAMPLES_PER_FRAME};

/// The sample rate every input must have.
pub const SAMPLE_RATE: u32 = 16_000;
