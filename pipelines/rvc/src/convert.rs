//! The steps RVC's pipeline applies around the synthesiser: pitch shift and quantisation,
//! `protect`, 2x feature upsampling, and chunked synthesis of long inputs.

use crate::error::{Result, RvcError};
use crate::nsf::phase_after;
use crate::synth::{Noise, SynthInput, Synthesizer};

/// Pitch range RVC quantises into the 255 voiced bins.
pub const F0_MIN: f64 = 50.0;
pub const F0_MAX: f64 = 1100.0;

fn mel(f0: f64) -> f64 {
    1127.0 * (1.0 + f0 / 700.0).ln()
}

/// RVC's coarse pitch: mel scale between 50 and 1100 Hz mapped onto 1..=255, unvoiced
/// (0 Hz) and anything below the range on 1, above it on 255; rounded half-to-even like `np.rint`.
pub fn f0_to_coarse(f0: &[f32]) -> Vec<u32> {
    let (lo, hi) = (mel(F0_MIN), mel(F0_MAX));
    f0.iter()
        .map(|&f| {
            let mut m = mel(f64::from(f));
            if !m.is_finite() {
                return 1;
            }
            if m > 0.0 {
                m = (m - lo) * 254.0 / (hi - lo) + 1.0;
            }
            m.clamp(1.0, 255.0).round_ties_even() as u32
        })
        .collect()
}

/// Transpose f0 by `semitones` (RVC's `f0_up_key`); unvoiced frames stay 0.
pub fn shift_pitch(f0: &[f32], semitones: f32) -> Vec<f32> {
    let factor = 2f32.powf(semitones / 12.0);
    f0.iter().map(|&f| f * factor).collect()
}

/// Repeat every frame twice (`F.interpolate(scale_factor=2)`, nearest): HuBERT's 50 Hz
/// features onto the synthesiser's 100 Hz frames.
pub fn upsample_features_2x(features: &[f32], dim: usize) -> Result<Vec<f32>> {
    check_rows(features, dim, "features")?;
    let mut out = Vec::with_capacity(features.len() * 2);
    for row in features.chunks_exact(dim) {
        out.extend_from_slice(row);
        out.extend_from_slice(row);
    }
    Ok(out)
}

/// RVC's `protect`: on unvoiced frames (f0 < 1 Hz) keep only `protect` of the retrieved
/// features and take the rest from the original ones, so breaths and consonants are not
/// smeared by the index; voiced frames keep the retrieved features. RVC only applies this
/// when `protect < 0.5` (0.5 switches it off).
pub fn protect(
    retrieved: &[f32],
    original: &[f32],
    f0: &[f32],
    dim: usize,
    protect: f32,
) -> Result<Vec<f32>> {
    check_rows(retrieved, dim, "retrieved features")?;
    if original.len() != retrieved.len() {
        return Err(RvcError::Input(format!(
            "original features ({}) and retrieved ones ({}) differ in size",
            original.len(),
            retrieved.len()
        )));
    }
    if f0.len() * dim != retrieved.len() {
        return Err(RvcError::Input(format!(
            "f0 has {} frames, features have {}",
            f0.len(),
            retrieved.len() / dim
        )));
    }
    let mut out = Vec::with_capacity(retrieved.len());
    for ((r, o), &f) in retrieved
        .chunks_exact(dim)
        .zip(original.chunks_exact(dim))
        .zip(f0)
    {
        // As RVC: f0 > 0 -> 1, then f0 < 1 -> protect (so 0 < f0 < 1 counts as unvoiced).
        let w = if f < 1.0 { protect } else { 1.0 };
        out.extend(r.iter().zip(o).map(|(&r, &o)| r * w + o * (1.0 - w)));
    }
    Ok(out)
}

fn check_rows(x: &[f32], dim: usize, what: &str) -> Result<()> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(RvcError::Input(format!(
            "{what} hold {} values, not a multiple of the width {dim}",
            x.len()
        )));
    }
    Ok(())
}

/// How long inputs are cut so memory stays bounded. The encoder (attention over frames)
/// runs on windows of `encoder_frames` with `encoder_context` real frames each side; the
/// decoder (where memory goes: `frames x hop x channels`) runs on windows of
/// `decoder_frames` with `decoder_context` frames each side. Context is dropped after use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    pub encoder_frames: usize,
    pub encoder_context: usize,
    pub decoder_frames: usize,
    /// `None`: the decoder's receptive field, which makes windowed decoding exact.
    pub decoder_context: Option<usize>,
}

impl Default for Chunking {
    /// At 100 frames/s: 10 s encoder windows with 1 s context each side (RVC pads by 1 s
    /// too), 4 s decoder windows (the ~13 frames of decoder context each side cost ~6%).
    fn default() -> Self {
        Self {
            encoder_frames: 1000,
            encoder_context: 100,
            decoder_frames: 400,
            decoder_context: None,
        }
    }
}

/// `[c, n]` row-major columns `lo..hi`.
fn columns(x: &[f32], n: usize, lo: usize, hi: usize) -> Vec<f32> {
    x.chunks_exact(n)
        .flat_map(|row| row[lo..hi].iter().copied())
        .collect()
}

/// Windows `(start, end, lo, hi)`: output frames `start..end`, computed from `lo..hi`.
fn windows(frames: usize, size: usize, context: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < frames {
        let end = (start + size).min(frames);
        out.push((
            start,
            end,
            start.saturating_sub(context),
            (end + context).min(frames),
        ));
        start = end;
    }
    out
}

/// Synthesise a long input window by window (see [`Chunking`]). With `noise` given, each
/// window uses the matching slice of it and the sine source continues its phase across
/// windows, so the result equals [`Synthesizer::infer_with_noise`] except where an encoder
/// window's attention could not see far enough; decoder joins are exact.
pub fn synthesize_chunked(
    synth: &Synthesizer,
    input: &SynthInput,
    noise: Option<&Noise>,
    chunking: Chunking,
) -> Result<Vec<f32>> {
    let dim = synth.feature_dim();
    check_rows(input.features, dim, "features")?;
    if chunking.encoder_frames == 0 || chunking.decoder_frames == 0 {
        return Err(RvcError::Input("window sizes must be positive".into()));
    }
    let frames = input.features.len() / dim;
    let hop = synth.hop_length();
    let inter = synth.config().inter_channels;
    let owned;
    let noise = match noise {
        Some(n) => n,
        None => {
            owned = synth.random_noise(frames)?;
            &owned
        }
    };
    if noise.prior.len() != inter * frames {
        return Err(RvcError::Input(format!(
            "prior noise has {} values, expected {inter} x {frames}",
            noise.prior.len()
        )));
    }
    if synth.has_pitch() && noise.sine.len() != frames * hop {
        return Err(RvcError::Input(format!(
            "sine noise has {} values, expected {}",
            noise.sine.len(),
            frames * hop
        )));
    }
    for (name, len) in [
        ("pitch", input.pitch.map(<[u32]>::len)),
        ("f0", input.f0.map(<[f32]>::len)),
    ] {
        if let Some(len) = len.filter(|&l| l != frames) {
            return Err(RvcError::Input(format!(
                "{name} has {len} frames, features have {frames}"
            )));
        }
    }

    // Latent for every frame, encoder window by encoder window.
    let mut z = vec![0f32; inter * frames];
    for (start, end, lo, hi) in windows(frames, chunking.encoder_frames, chunking.encoder_context) {
        let window = SynthInput {
            features: &input.features[lo * dim..hi * dim],
            pitch: input.pitch.map(|p| &p[lo..hi]),
            f0: input.f0.map(|f| &f[lo..hi]),
            speaker: input.speaker,
        };
        let latent = synth.latent(&window, &columns(&noise.prior, frames, lo, hi))?;
        let zw = latent.z.to_vec2::<f32>()?;
        for (c, row) in zw.iter().enumerate() {
            z[c * frames + start..c * frames + end].copy_from_slice(&row[start - lo..end - lo]);
        }
    }

    // Audio, decoder window by decoder window.
    let context = chunking
        .decoder_context
        .unwrap_or_else(|| synth.decoder_receptive_frames());
    let mut audio = Vec::with_capacity(frames * hop);
    for (start, end, lo, hi) in windows(frames, chunking.decoder_frames, context) {
        let zw = candle_core::Tensor::from_vec(
            columns(&z, frames, lo, hi),
            (inter, hi - lo),
            &candle_core::Device::Cpu,
        )?;
        let f0 = input.f0.map(|f| &f[lo..hi]);
        let (sine, phase) = match input.f0 {
            Some(f) if synth.has_pitch() => (
                &noise.sine[lo * hop..hi * hop],
                phase_after(&f[..lo], hop, synth.sample_rate()),
            ),
            _ => (&[][..], 0.0),
        };
        let out = synth.decode(&zw, input.speaker, f0, sine, phase)?;
        if out.len() != (hi - lo) * hop {
            return Err(RvcError::Input(format!(
                "window produced {} samples, expected {}",
                out.len(),
                (hi - lo) * hop
            )));
        }
        audio.extend_from_slice(&out[(start - lo) * hop..(end - lo) * hop]);
    }
    Ok(audio)
}
