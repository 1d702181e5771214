//! FCPE (torchfcpe's fast context-based pitch estimator) in candle, on CPU, with torchfcpe's
//! own `fcpe_c_v001.pt`: f0 in Hz every 10 ms for RVC voice conversion and its training.
//!
//! The pipeline is torchfcpe's `infer(wav, sr, decoder_mode="local_argmax", threshold=0.006)`:
//! 16 kHz audio → log-mel ([`mel`]) → conformer ([`model`]) → local-argmax cents
//! ([`decode`]) → Hz. Long inputs run in chunks with enough context on each side that every
//! frame sees what it would in one run; GroupNorm statistics are gathered over the whole input
//! first, so chunking does not change the result.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod error;
pub mod mel;
pub mod model;
pub mod resample;

use std::path::{Path, PathBuf};

pub use config::FcpeConfig;
pub use error::{FcpeError, Result};

use checkpoint::Checkpoint;
use mel::MelFrontEnd;
use model::{GroupStats, Network};

/// torchfcpe's default unvoiced threshold on the peak activation (`InferCFNaiveMelPE.infer`).
pub const DEFAULT_THRESHOLD: f32 = 0.006;
/// RVC's pitch range: voiced frames are clamped into it.
pub const F0_MIN: f32 = 50.0;
pub const F0_MAX: f32 = 1100.0;
/// Frames per chunk (20 s) unless set with [`Fcpe::with_chunk_frames`].
pub const DEFAULT_CHUNK_FRAMES: usize = 2000;

/// How frames are decoded and post-processed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F0Options {
    /// A frame is voiced when its peak activation is above this.
    pub threshold: f32,
    /// Voiced frames are clamped into `[f0_min, f0_max]`; unvoiced frames stay 0.
    pub f0_min: f32,
    pub f0_max: f32,
}

impl Default for F0Options {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            f0_min: F0_MIN,
            f0_max: F0_MAX,
        }
    }
}

impl F0Options {
    /// torchfcpe's raw output: no range clamp (for comparisons with it).
    pub fn raw(threshold: f32) -> Self {
        Self {
            threshold,
            f0_min: 0.0,
            f0_max: f32::INFINITY,
        }
    }
}

/// A loaded FCPE model.
#[derive(Debug)]
pub struct Fcpe {
    config: FcpeConfig,
    mel: MelFrontEnd,
    net: Network,
    chunk_frames: usize,
}

impl Fcpe {
    /// Load a torchfcpe checkpoint (`fcpe_c_v001.pt` or one saved the same way).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let ckpt = Checkpoint::read(path.as_ref())?;
        let config = ckpt.config.unwrap_or_default();
        Self::from_tensors(&ckpt.tensors, config)
    }

    /// Build from a state dict already in memory (tests, other loaders).
    pub fn from_tensors(
        tensors: &std::collections::HashMap<String, candle_core::Tensor>,
        config: FcpeConfig,
    ) -> Result<Self> {
        config.validate()?;
        let mel = MelFrontEnd::new(&config.mel)?;
        let net = Network::new(tensors, &config)?;
        Ok(Self {
            config,
            mel,
            net,
            chunk_frames: DEFAULT_CHUNK_FRAMES,
        })
    }

    /// Where `infra/fetch-models.sh fcpe` puts the weights:
    /// `${AVATAR_MODELS:-$HOME/.cache/avatar/models}/fcpe/fcpe_c_v001.pt`.
    pub fn default_path() -> PathBuf {
        let root = match std::env::var_os("AVATAR_MODELS") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
                .join(".cache")
                .join("avatar")
                .join("models"),
        };
        root.join("fcpe").join("fcpe_c_v001.pt")
    }

    /// Process at most `frames` output frames at a time (plus context); bounds memory.
    pub fn with_chunk_frames(mut self, frames: usize) -> Self {
        self.chunk_frames = frames.max(1);
        self
    }

    pub fn config(&self) -> &FcpeConfig {
        &self.config
    }

    /// The model's sample rate (16 kHz) and hop (160 samples → 100 frames per second).
    pub fn sample_rate(&self) -> u32 {
        self.config.mel.sr
    }

    pub fn hop_size(&self) -> usize {
        self.config.mel.hop_size
    }

    /// f0 in Hz per 10 ms frame, 0 for unvoiced, voiced frames clamped to 50–1100 Hz;
    /// torchfcpe's default threshold. There are `len16k / 160 + 1` frames (`len16k`: the length
    /// at 16 kHz); frame `i` is the 1024-sample window centred on 16 kHz sample `160·i + 80`
    /// (torchfcpe pads (1024 − 160) / 2 on the left), the last one repeated.
    pub fn f0(&self, samples: &[f32], rate: u32) -> Result<Vec<f32>> {
        self.f0_with(samples, rate, &F0Options::default())
    }

    /// [`Fcpe::f0`] with an explicit threshold and range.
    pub fn f0_with(&self, samples: &[f32], rate: u32, opts: &F0Options) -> Result<Vec<f32>> {
        let mut f0 = Vec::new();
        self.for_each_chunk(samples, rate, |latent| {
            f0.extend(decode::local_argmax(
                latent,
                &self.net.cent_table,
                opts.threshold,
            ));
            Ok(())
        })?;
        for f in f0.iter_mut().filter(|f| **f > 0.0) {
            *f = f.clamp(opts.f0_min, opts.f0_max);
        }
        Ok(f0)
    }

    /// Sigmoid activations of the cent bins, (frames × out_dims) row-major. Empty input gives
    /// no frames. (360 floats a frame: for long inputs prefer [`Fcpe::f0`], which decodes chunk
    /// by chunk.)
    pub fn activations(&self, samples: &[f32], rate: u32) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.for_each_chunk(samples, rate, |latent| {
            out.extend_from_slice(latent);
            Ok(())
        })?;
        Ok(out)
    }

    /// Validate and resample, then hand each chunk's activations to `f` in order.
    fn for_each_chunk(
        &self,
        samples: &[f32],
        rate: u32,
        f: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        if rate == 0 {
            return Err(FcpeError::Input("sample rate 0".into()));
        }
        if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
            return Err(FcpeError::Input(format!("sample {i} is not finite")));
        }
        if samples.is_empty() {
            return Ok(());
        }
        if rate == self.config.mel.sr {
            self.run_chunked(samples, f)
        } else {
            let audio = resample::resample(samples, rate, self.config.mel.sr)?;
            self.run_chunked(&audio, f)
        }
    }

    /// Two passes over chunks: GroupNorm statistics of the first conv over all frames, then the
    /// network per chunk with `receptive_radius` frames of context, keeping the chunk's frames.
    /// Memory is bounded by the chunk size, whatever the input length.
    fn run_chunked(&self, audio: &[f32], mut f: impl FnMut(&[f32]) -> Result<()>) -> Result<()> {
        let framing = self.mel.framing(audio.len());
        let n = framing.frames;
        let chunk = self.chunk_frames;
        let ctx = model::receptive_radius(self.net.n_layers());

        if n <= chunk || !self.net.is_local() {
            // One chunk: the statistics come from the same stem output. Attention layers see
            // every frame, so such models always take one pass (memory grows with the input).
            let mel = self.mel.frames(audio, &framing, 0..n)?;
            let y = self.net.forward(&mel, n)?;
            return f(&y.flatten_all()?.to_vec1::<f32>()?);
        }

        let mut stats = GroupStats::default();
        for s in (0..n).step_by(chunk) {
            let e = (s + chunk).min(n);
            let (a, b) = (s.saturating_sub(1), (e + 1).min(n));
            let mel = self.mel.frames(audio, &framing, a..b)?;
            let h = self.net.stem(&mel, b - a)?;
            stats.add(&h.narrow(0, s - a, e - s)?)?;
        }

        for s in (0..n).step_by(chunk) {
            let e = (s + chunk).min(n);
            let (a, b) = (s.saturating_sub(ctx), (e + ctx).min(n));
            let mel = self.mel.frames(audio, &framing, a..b)?;
            let h = self.net.stem(&mel, b - a)?;
            let y = self.net.rest(&h, &stats)?.narrow(0, s - a, e - s)?;
            f(&y.flatten_all()?.to_vec1::<f32>()?)?;
        }
        Ok(())
    }

    /// Log-mel frames of 16 kHz audio exactly as torchfcpe's Wav2Mel computes them
    /// ((frames × n_mels) row-major).
    pub fn mel(&self, samples16k: &[f32]) -> Result<Vec<f32>> {
        let framing = self.mel.framing(samples16k.len());
        self.mel.frames(samples16k, &framing, 0..framing.frames)
    }

    /// The network on a whole mel sequence at once (no chunking), for checks.
    pub fn activations_from_mel(&self, mel: &[f32]) -> Result<Vec<f32>> {
        let frames = mel.len() / self.mel.n_mels().max(1);
        Ok(self
            .net
            .forward(mel, frames)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    /// Cent value of each output bin.
    pub fn cent_table(&self) -> &[f32] {
        &self.net.cent_table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_where_fetch_models_puts_it() {
        assert!(Fcpe::default_path().ends_with("fcpe/fcpe_c_v001.pt"));
    }

    #[test]
    fn default_options_are_torchfcpes_threshold_and_rvcs_range() {
        let o = F0Options::default();
        assert_eq!((o.threshold, o.f0_min, o.f0_max), (0.006, 50.0, 1100.0));
    }
}
