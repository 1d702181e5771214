//! RVC's spectrogram and mel front end (`mel_processing.py`): reflect padding of
//! `(n_fft - hop) / 2`, periodic Hann window, no centring, magnitude `sqrt(re² + im² + 1e-6)`,
//! librosa's Slaney mel filters, `log(max(x, 1e-5))`. Written as tensor ops (framing by
//! gather, DFT by matmul) so the mel loss differentiates through the generated audio.

use candle_core::{Device, Tensor};

use crate::error::{Result, TrainError};
use crate::ops::reflect_pad;

/// RVC's 40 kHz data settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelConfig {
    pub n_fft: usize,
    pub hop: usize,
    pub n_mels: usize,
    pub sample_rate: u32,
}

impl MelConfig {
    /// RVC's `configs/v2/40k.json` (also v1 40k): 2048 / 400 / 125 mels.
    pub fn rvc(sample_rate: u32) -> Self {
        match sample_rate {
            48_000 => Self {
                n_fft: 2048,
                hop: 480,
                n_mels: 128,
                sample_rate,
            },
            32_000 => Self {
                n_fft: 1024,
                hop: 320,
                n_mels: 80,
                sample_rate,
            },
            _ => Self {
                n_fft: 2048,
                hop: 400,
                n_mels: 125,
                sample_rate,
            },
        }
    }

    pub fn bins(&self) -> usize {
        self.n_fft / 2 + 1
    }
}

/// Precomputed DFT and mel matrices.
#[derive(Debug, Clone)]
pub struct Mel {
    pub cfg: MelConfig,
    /// `[n_fft, 2 * bins]`: windowed cosines, then windowed negative sines.
    dft: Tensor,
    /// `[bins, n_mels]`
    mel_t: Tensor,
}

impl Mel {
    pub fn new(cfg: MelConfig, device: &Device) -> Result<Self> {
        let n = cfg.n_fft;
        let bins = cfg.bins();
        let mut dft = vec![0f32; n * 2 * bins];
        for i in 0..n {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            for k in 0..bins {
                let a = 2.0 * std::f64::consts::PI * ((i * k) % n) as f64 / n as f64;
                dft[i * 2 * bins + k] = (w * a.cos()) as f32;
                dft[i * 2 * bins + bins + k] = (-w * a.sin()) as f32;
            }
        }
        let fb = slaney_mel(cfg.sample_rate, n, cfg.n_mels);
        let mut mel_t = vec![0f32; bins * cfg.n_mels];
        for m in 0..cfg.n_mels {
            for k in 0..bins {
                mel_t[k * cfg.n_mels + m] = fb[m * bins + k] as f32;
            }
        }
        Ok(Self {
            cfg,
            dft: Tensor::from_vec(dft, (n, 2 * bins), device)?,
            mel_t: Tensor::from_vec(mel_t, (bins, cfg.n_mels), device)?,
        })
    }

    /// `[b, len]` audio → `[b, bins, frames]` magnitudes (`spectrogram_torch`).
    pub fn spectrogram(&self, y: &Tensor) -> Result<Tensor> {
        let (n, hop, bins) = (self.cfg.n_fft, self.cfg.hop, self.cfg.bins());
        let pad = (n - hop) / 2;
        let y = reflect_pad(y, pad, pad)?;
        let (b, len) = y.dims2()?;
        if len < n {
            return Err(TrainError::Shape(format!(
                "{} samples are too few for a {n}-point STFT",
                len - 2 * pad
            )));
        }
        let frames = (len - n) / hop + 1;
        let idx: Vec<u32> = (0..frames)
            .flat_map(|f| (0..n).map(move |i| (f * hop + i) as u32))
            .collect();
        let idx = Tensor::from_vec(idx, frames * n, y.device())?;
        let framed = y.index_select(&idx, 1)?.reshape((b * frames, n))?;
        let ri = framed.matmul(&self.dft)?;
        let re = ri.narrow(1, 0, bins)?;
        let im = ri.narrow(1, bins, bins)?;
        let mag = ((re.sqr()? + im.sqr()?)? + 1e-6)?.sqrt()?;
        Ok(mag
            .reshape((b, frames, bins))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `[b, bins, frames]` magnitudes → `[b, n_mels, frames]` log mel (`spec_to_mel_torch`).
    pub fn spec_to_mel(&self, spec: &Tensor) -> Result<Tensor> {
        let (b, bins, frames) = spec.dims3()?;
        let m = spec
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * frames, bins))?
            .matmul(&self.mel_t)?
            .reshape((b, frames, self.cfg.n_mels))?
            .transpose(1, 2)?;
        Ok(m.clamp(1e-5f32, f32::MAX)?.log()?)
    }

    /// `mel_spectrogram_torch`: `[b, len]` → `[b, n_mels, frames]`.
    pub fn mel(&self, y: &Tensor) -> Result<Tensor> {
        self.spec_to_mel(&self.spectrogram(y)?)
    }
}

/// RVC's filters: librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2), Slaney scale and
/// norm, row-major `[n_mels, bins]`.
pub fn slaney_mel(sr: u32, n_fft: usize, n_mels: usize) -> Vec<f64> {
    let sr = sr as f64;
    avatar_dsp::mel::mel_filters(
        sr,
        n_fft,
        n_mels,
        0.0,
        sr / 2.0,
        avatar_dsp::mel::MelScale::Slaney,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sinusoid at an exact bin: the magnitude peaks there at about A * sum(window) / 2.
    #[test]
    fn spectrogram_of_a_sine_peaks_at_its_bin() {
        let cfg = MelConfig::rvc(40_000);
        let mel = Mel::new(cfg, &Device::Cpu).unwrap();
        let bin = 100usize;
        let f = bin as f64 * 40_000.0 / 2048.0;
        let y: Vec<f32> = (0..4000)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / 40_000.0).sin()) as f32)
            .collect();
        let y = Tensor::from_vec(y, (1, 4000), &Device::Cpu).unwrap();
        let spec = mel.spectrogram(&y).unwrap();
        assert_eq!(spec.dims(), &[1, 1025, 10]);
        let col: Vec<f32> = spec
            .narrow(2, 5, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (arg, max) = col
            .iter()
            .enumerate()
            .fold((0, 0f32), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        assert_eq!(arg, bin);
        assert!((max - 0.5 * 1024.0 / 2.0).abs() < 5.0, "{max}");
        let m = mel.mel(&y.reshape((1, 4000)).unwrap()).unwrap();
        assert_eq!(m.dims(), &[1, 125, 10]);
    }

    /// The values themselves are checked against RVC's (librosa's) in tests/reference.rs.
    #[test]
    fn slaney_filters_are_triangles_with_unit_area_in_hz() {
        let w = slaney_mel(40_000, 2048, 125);
        let bins = 1025;
        // Slaney normalisation makes each triangle's area (in Hz) about 1.
        let df = 20_000.0 / 1024.0;
        for m in [0, 10, 60, 124] {
            let area: f64 = w[m * bins..(m + 1) * bins].iter().sum::<f64>() * df;
            assert!((area - 1.0).abs() < 0.15, "filter {m}: {area}");
        }
    }
}
