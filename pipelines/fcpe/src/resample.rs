//! Input at other rates is brought to the model's 16 kHz with rubato's FFT resampler.
//!
//! torchfcpe uses torchaudio's sinc resampler instead, so at other rates the two agree only to
//! within the resamplers' differences; at 16 kHz nothing is resampled on either side.

use rubato::{FftFixedIn, Resampler};

use crate::error::{FcpeError, Result};

/// `samples` at `from` Hz as `to` Hz, `len · to / from` samples, delay removed.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: String| FcpeError::Resample { from, reason: e };
    const CHUNK: usize = 1024;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
        .map_err(|e| err(e.to_string()))?;
    let delay = r.output_delay();
    let want = (samples.len() as u64 * to as u64 / from as u64) as usize;
    let mut out: Vec<f32> = Vec::with_capacity(want + delay + 2 * CHUNK);
    let mut pos = 0;
    while samples.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let block = r
            .process(&[&samples[pos..pos + n]], None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&block[0]);
        pos += n;
    }
    if pos < samples.len() {
        let block = r
            .process_partial(Some(&[&samples[pos..]]), None)
            .map_err(|e| err(e.to_string()))?;
        out.extend_from_slice(&block[0]);
    }
    // Flush the delay line.
    while out.len() < want + delay {
        let block = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| err(e.to_string()))?;
        if block[0].is_empty() {
            break;
        }
        out.extend_from_slice(&block[0]);
    }
    let end = (delay + want).min(out.len());
    Ok(out.get(delay..end).map(<[f32]>::to_vec).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_follows_the_ratio() {
        let x: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let y = resample(&x, 22050, 16000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(y.len(), 16000);
    }
}
