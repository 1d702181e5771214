//! The voice pipeline, from a family's recordings to clips of the person speaking.
//!
//! * [`decode`]: any supported audio or video file → mono f32 PCM at its own rate;
//! * [`dsp`]: resampling, high-pass, loudness normalisation;
//! * [`clips`]: voice-activity slicing into 2–12 s clips and rejection of silence, clipping and
//!   music-only segments;
//! * [`wav`]: the 16-bit WAV the clips are stored as;
//! * [`pitch`]: YIN F0 at 100 Hz, median pitch, pitch shift and F0 error;
//! * [`tts`]: espeak-ng as the base voice, its pitch matched to the person's;
//! * [`conversion`]: speech → the person's voice (HuBERT + FCPE/YIN + RVC);
//! * [`mos`]: predicted MOS (DNSMOS P.835); [`onnx`]: the ONNX Runtime both ONNX models use;
//! * [`piper`]: Piper voices (VITS in ONNX) through ONNX Runtime, the neural base voice;
//! * [`speaker`]: resemblyzer's speaker encoder in candle; [`speakers`]: clips grouped by voice.
//!
//! All of it is pure: bytes in, samples and clip boundaries out. Storage is the caller's.

pub mod clips;
pub mod conversion;
pub mod decode;
pub mod dsp;
pub mod mos;
pub mod onnx;
pub mod piper;
pub mod pitch;
pub mod speaker;
pub mod speakers;
pub mod training_data;
pub mod tts;
pub mod wav;

pub use clips::{slice_clips, Clip, ClipConfig, Rejected, Slicing};
pub use decode::{decode, is_recording, Audio, DecodeError};
