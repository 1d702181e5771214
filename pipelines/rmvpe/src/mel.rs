//! RVC's RMVPE front end: log-mel of 16 kHz audio, 128 bands, 100 frames per second.
//!
//! As `MelSpectrogram` in RVC's rmvpe.py: `torch.stft` with n_fft = window = 1024, hop 160,
//! periodic Hann window, `center=True` with reflect padding; magnitude `sqrt(re² + im²)`;
//! librosa's mel filters (HTK scale, Slaney area normalisation, 30–8000 Hz); `ln(max(x, 1e-5))`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: f64 = 16_000.0;
pub const N_FFT: usize = 1024;
pub const HOP: usize = 160;
pub const N_MELS: usize = 128;
const N_BINS: usize = N_FFT / 2 + 1;
const FMIN: f64 = 30.0;
const FMAX: f64 = 8000.0;
const CLAMP: f64 = 1e-5;

/// The STFT plan, window and mel filter bank, built once per model.
pub struct MelFrontEnd {
    fft: Arc<dyn RealToComplex<f64>>,
    window: Vec<f64>,
    /// `N_MELS × N_BINS`, row-major, rounded to f32 as librosa returns it.
    basis: Vec<f64>,
}

impl Default for MelFrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl MelFrontEnd {
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        // torch.hann_window(1024) is periodic: the denominator is N, not N - 1.
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        Self {
            fft,
            window,
            basis: mel_basis(),
        }
    }

    /// Frames `1 + len / 160`, as torch.stft with `center=True`.
    pub fn n_frames(n_samples: usize) -> usize {
        if n_samples == 0 {
            0
        } else {
            1 + n_samples / HOP
        }
    }

    /// Log-mel of `samples` (16 kHz), `N_MELS × n_frames` row-major (band-major, like RVC's
    /// `[128, T]`). Inputs shorter than 513 samples, which torch's reflect padding refuses,
    /// are mirrored repeatedly.
    pub fn log_mel(&self, samples: &[f32]) -> Vec<f32> {
        let n = samples.len();
        let frames = Self::n_frames(n);
        let mut out = vec![0f32; N_MELS * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut mag = vec![0f64; N_BINS];
        for f in 0..frames {
            let start = (f * HOP) as isize - (N_FFT / 2) as isize;
            for (k, slot) in input.iter_mut().enumerate() {
                let i = reflect(start + k as isize, n);
                *slot = f64::from(samples[i]) * self.window[k];
            }
            // Lengths are fixed by the plan, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                continue;
            }
            for (m, c) in mag.iter_mut().zip(&spectrum) {
                *m = (c.re * c.re + c.im * c.im).sqrt();
            }
            for b in 0..N_MELS {
                let row = &self.basis[b * N_BINS..(b + 1) * N_BINS];
                let e: f64 = row.iter().zip(&mag).map(|(w, m)| w * m).sum();
                out[b * frames + f] = e.max(CLAMP).ln() as f32;
            }
        }
        out
    }
}

/// Index into a signal of length `n` with reflection at both ends (no edge repeat), folding
/// as often as needed for very short signals.
fn reflect(mut i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let n = n as isize;
    let period = 2 * (n - 1);
    i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True), kept
/// at librosa's f32 precision.
fn mel_basis() -> Vec<f64> {
    let basis = avatar_dsp::mel::mel_filters(
        SAMPLE_RATE,
        N_FFT,
        N_MELS,
        FMIN,
        FMAX,
        avatar_dsp::mel::MelScale::Htk,
    );
    basis.into_iter().map(|w| f64::from(w as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy_reflect() {
        // np.pad([0,1,2,3], 3, mode="reflect") = [3,2,1,0,1,2,3,2,1,0]
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn frame_count_as_torch_stft() {
        assert_eq!(MelFrontEnd::n_frames(24_000), 151);
        assert_eq!(MelFrontEnd::n_frames(159), 1);
        assert_eq!(MelFrontEnd::n_frames(0), 0);
    }
}
