//! Sample-rate conversion with rubato's FFT resampler: every model here wants its own rate
//! (16 kHz for HuBERT, Whisper, FCPE and the speaker encoder; 32–48 kHz for RVC).

use rubato::{FftFixedIn, Resampler};

#[derive(Debug, thiserror::Error)]
#[error("resampling {from} Hz -> {to} Hz failed: {reason}")]
pub struct ResampleError {
    pub from: u32,
    pub to: u32,
    pub reason: String,
}

/// `samples` at `from` Hz as `to` Hz (FFT resampler; output length `len * to / from`, with the
/// resampler's delay removed so timestamps stay put).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |reason: String| ResampleError { from, to, reason };
    const CHUNK: usize = 1024;
    let mut r = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, 1)
        .map_err(|e| err(e.to_string()))?;
    let delay = r.output_delay();
    let want = (samples.len() as u64 * to as u64 / from as u64) as usize;
    let mut out: Vec<f32> = Vec::with_capacity(want + delay + CHUNK);
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
    fn length_follows_the_ratio_and_an_impulse_keeps_its_time() {
        let x: Vec<f32> = (0..22_050).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        assert_eq!(resample(&x, 22_050, 16_000).unwrap().len(), 16_000);
        assert_eq!(resample(&x, 22_050, 22_050).unwrap(), x);
        let mut x = vec![0.0f32; 22_050];
        x[11_025] = 1.0;
        let y = resample(&x, 22_050, 16_000).unwrap();
        let peak = (0..y.len())
            .max_by(|&a, &b| y[a].abs().total_cmp(&y[b].abs()))
            .unwrap();
        assert!((peak as i64 - 8_000).abs() <= 2, "impulse moved to {peak}");
    }
}
