//! Speech content features for voice conversion: HuBERT-base / ContentVec in candle (fairseq and
//! Hugging Face layouts).
//!
//! RVC conditions its synthesiser on HuBERT features of the source speech: v1 models on layer 9
//! projected by `final_proj` to 256 values per frame, v2 models on layer 12 (768 values). One
//! frame per 320 samples of 16 kHz mono audio (50 per second), see [`frame_count`]; the raw
//! waveform goes in unnormalised, as fairseq's `hubert_base` task (`normalize: false`) and RVC do.
//!
//! ```no_run
//! use avatar_content::{ContentEncoder, RvcVersion};
//! # fn main() -> avatar_content::Result<()> {
//! let (encoder, _checked) = ContentEncoder::load_default()?; // SHA-256-checked asset folder
//! let wav_16k = vec![0f32; 16_000];
//! let v2 = encoder.encode(&wav_16k, RvcVersion::V2)?; // Tensor (49, 768)
//! let v1 = encoder.encode_frames(&wav_16k, RvcVersion::V1)?; // 49 x Vec of 256
//! # Ok(()) }
//! ```
//!
//! # Weights
//!
//! Nothing on a package registry ships them. [`ContentEncoder::load_default`] reads
//! `${AVATAR_MODELS:-$HOME/.cache/avatar/models}/hubert/` ([`assets::default_dir`]), which holds
//! either
//! - RVC's `hubert_base.pt` (fairseq checkpoint, f16, 189,507,909 bytes, from
//!   <https://huggingface.co/lj1995/VoiceConversionWebUI/resolve/main/hubert_base.pt>), checked
//!   against its published SHA-256 ([`assets::KNOWN_HASHES`]); or
//! - a HuBERT-base / ContentVec model in Hugging Face layout: `config.json` plus
//!   `model.safetensors` or `pytorch_model.bin` (with a `final_proj` for v1), listed in a
//!   `SHA256SUMS` file (`sha256sum config.json model.safetensors > SHA256SUMS`).
//!
//! A `SHA256SUMS` line takes precedence over the published hash; a file nothing vouches for is
//! refused, with its hash in the message. [`ContentEncoder::load`] skips the checks, for weights
//! the caller has verified. When the folder holds several, `hubert_base.pt` is used first.
//!
//! # Limits
//!
//! CPU and f32 only. Inputs under [`RECEPTIVE_FIELD`] (400) samples are an error rather than zero
//! frames, so a caller never gets an empty feature matrix by accident. Memory grows with the
//! input (about 40 MB per second of audio on top of ~380 MB of weights for HuBERT-base, mostly
//! the convolution stack), so feed segments of tens of seconds, as RVC's pipeline does. Pre-norm
//! (HuBERT-large) models and other convolution stacks are refused, not approximated.

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

#[cfg(test)]
mod tests {
    /// The encoder is shared between threads by the voice pipeline.
    #[test]
    fn encoder_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::ContentEncoder>();
    }
}
