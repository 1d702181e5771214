//! Input at other rates is brought to the model's 16 kHz with rubato's FFT resampler
//! (`avatar_dsp::resample`).
//!
//! torchfcpe uses torchaudio's sinc resampler instead, so at other rates the two agree only to
//! within the resamplers' differences; at 16 kHz nothing is resampled on either side.

use crate::error::{FcpeError, Result};

/// `samples` at `from` Hz as `to` Hz, `len · to / from` samples, delay removed.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    avatar_dsp::resample::resample(samples, from, to).map_err(|e| FcpeError::Resample {
        from,
        reason: e.reason,
    })
}
