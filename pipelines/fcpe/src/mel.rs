//! torchfcpe's log-mel front end: reflect padding of (win - hop) / 2 on each side, a periodic
//! Hann window, `center = False` STFT, magnitude `sqrt(re² + im² + 1e-9)`, a Slaney mel
//! filterbank (librosa's default) and `ln(max(x, 1e-5))`. Frames can be computed for any range
//! so long inputs are processed chunk by chunk.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::config::MelConfig;
use crate::error::{FcpeError, Result};

/// torchfcpe's `clip_val` before the logarithm.
const CLIP: f32 = 1e-5;

/// One mel band: the first FFT bin it touches and its weights from there on.
#[derive(Debug, Clone)]
struct Band {
    start: usize,
    weights: Vec<f32>,
}

/// Window, FFT plan and filterbank, built once per model.
pub struct MelFrontEnd {
    n_fft: usize,
    hop: usize,
    window: Vec<f32>,
    bands: Vec<Band>,
    fft: Arc<dyn RealToComplex<f32>>,
}

/// How a signal of a given length is padded and framed (torchfcpe's Wav2Mel + MelModule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    len: usize,
    pad_left: usize,
    reflect: bool,
    /// Frames the STFT itself yields.
    stft_frames: usize,
    /// Frames returned: `len / hop + 1`, the last STFT frame repeated once when one short.
    pub frames: usize,
}

impl std::fmt::Debug for MelFrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelFrontEnd")
            .field("n_fft", &self.n_fft)
            .field("hop", &self.hop)
            .field("mels", &self.bands.len())
            .finish()
    }
}

impl MelFrontEnd {
    pub fn new(cfg: &MelConfig) -> Result<Self> {
        if cfg.n_fft < 2 || cfg.hop_size == 0 || cfg.hop_size > cfg.n_fft {
            return Err(FcpeError::Format(format!("mel settings {cfg:?}")));
        }
        let n = cfg.n_fft;
        // torch.hann_window(n) is periodic.
        let window = (0..n)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
            .collect();
        let bands = slaney_filterbank(cfg.sr as f64, n, cfg.num_mels, cfg.fmin, cfg.fmax);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        Ok(Self {
            n_fft: n,
            hop: cfg.hop_size,
            window,
            bands,
            fft,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// Padding and frame counts for `len` samples, exactly as torchfcpe chooses them.
    pub fn framing(&self, len: usize) -> Framing {
        let pad_left = (self.n_fft - self.hop) / 2;
        let pad_right = (self.n_fft - self.hop)
            .div_ceil(2)
            .max(self.n_fft.saturating_sub(len + pad_left));
        // torch pads with reflection only when the pad is shorter than the signal.
        let reflect = pad_right < len;
        let padded = len + pad_left + pad_right;
        let stft_frames = (padded - self.n_fft) / self.hop + 1;
        let wanted = len / self.hop + 1;
        let mut frames = stft_frames;
        if wanted > frames {
            frames += 1;
        }
        if wanted < frames {
            frames = wanted;
        }
        Framing {
            len,
            pad_left,
            reflect,
            stft_frames,
            frames,
        }
    }

    /// Log-mel frames `range` of `samples` (row-major, `range.len() x n_mels`).
    pub fn frames(
        &self,
        samples: &[f32],
        framing: &Framing,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<f32>> {
        if framing.len != samples.len() || range.end > framing.frames || range.start > range.end {
            return Err(FcpeError::Input(format!(
                "mel frames {range:?} of {} for {} samples",
                framing.frames,
                samples.len()
            )));
        }
        let n_mels = self.bands.len();
        let mut out = vec![0f32; range.len() * n_mels];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut mag = vec![0f32; spectrum.len()];
        for (row, frame) in range.enumerate() {
            // The repeated last frame is the last STFT frame again.
            let frame = frame.min(framing.stft_frames.saturating_sub(1));
            let start = frame * self.hop;
            for (j, x) in input.iter_mut().enumerate() {
                *x = padded_sample(samples, framing, start + j) * self.window[j];
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .map_err(|e| FcpeError::Input(format!("fft: {e}")))?;
            for (m, c) in mag.iter_mut().zip(&spectrum) {
                *m = (c.re * c.re + c.im * c.im + 1e-9).sqrt();
            }
            let dst = &mut out[row * n_mels..(row + 1) * n_mels];
            for (d, band) in dst.iter_mut().zip(&self.bands) {
                let bins = &mag[band.start..band.start + band.weights.len()];
                let s: f32 = bins.iter().zip(&band.weights).map(|(a, w)| a * w).sum();
                *d = s.max(CLIP).ln();
            }
        }
        Ok(out)
    }
}

/// Sample `j` of the padded signal (reflection without repeating the edge, or zeros).
fn padded_sample(x: &[f32], f: &Framing, j: usize) -> f32 {
    let p = j as isize - f.pad_left as isize;
    let n = x.len() as isize;
    if p >= 0 && p < n {
        return x[p as usize];
    }
    if !f.reflect || n < 2 {
        return 0.0;
    }
    let r = if p < 0 { -p } else { 2 * (n - 1) - p };
    x.get(r as usize).copied().unwrap_or(0.0)
}

/// librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax) with Slaney area normalisation, as
/// sparse bands (stored in f32 like librosa's default dtype).
fn slaney_filterbank(sr: f64, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Vec<Band> {
    let n_bins = n_fft / 2 + 1;
    let dense = avatar_dsp::mel::mel_filters(
        sr,
        n_fft,
        n_mels,
        fmin,
        fmax,
        avatar_dsp::mel::MelScale::Slaney,
    );
    dense
        .chunks_exact(n_bins)
        .map(|row| {
            let w: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            let start = w.iter().position(|&v| v > 0.0).unwrap_or(0);
            let end = w.iter().rposition(|&v| v > 0.0).map_or(start, |e| e + 1);
            Band {
                start,
                weights: w[start..end].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front() -> MelFrontEnd {
        MelFrontEnd::new(&crate::config::FcpeConfig::default().mel)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn frame_count_is_len_over_hop_plus_one() {
        let m = front();
        for len in [
            0usize, 1, 100, 159, 160, 300, 591, 592, 1024, 16000, 16001, 48000,
        ] {
            assert_eq!(m.framing(len).frames, len / 160 + 1, "len {len}");
        }
    }

    #[test]
    fn filterbank_matches_librosa_shape() {
        let m = front();
        assert_eq!(m.n_mels(), 128);
        // Slaney bands: the first touches bin 0..~2 and none reaches past fmax (8 kHz = bin 512).
        for b in &m.bands {
            assert!(b.start + b.weights.len() <= 513);
            assert!(!b.weights.is_empty());
        }
    }

    #[test]
    fn silence_gives_the_clipped_floor() {
        let m = front();
        let x = vec![0f32; 1600];
        let f = m.framing(x.len());
        let mel = m
            .frames(&x, &f, 0..f.frames)
            .unwrap_or_else(|e| panic!("{e}"));
        // Each bin is sqrt(1e-9); a band sums fewer than one bin's worth of weight at the low end.
        assert!(mel.iter().all(|v| v.is_finite() && *v >= CLIP.ln() - 1e-6));
    }
}
