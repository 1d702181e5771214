//! The RVC synthesiser's inference path (`SynthesizerTrnMs{256,768}NSFsid[_nono].infer`):
//! speaker embedding, phone encoder, prior sample, reverse flow, HiFiGAN/NSF decoder.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::checkpoint::Checkpoint;
use crate::config::{SynthConfig, Version};
use crate::error::{Result, RvcError};
use crate::flow::Flow;
use crate::nsf::{Decoder, Excitation};
use crate::text_encoder::TextEncoder;

/// Scale RVC applies to the prior's standard deviation at inference.
const PRIOR_NOISE_SCALE: f64 = 0.66666;

/// One utterance for the synthesiser, all at its frame rate (`sr / hop`, 100 Hz for 40k/48k/32k models).
#[derive(Debug, Clone, Copy)]
pub struct SynthInput<'a> {
    /// Content features, row-major `[frames, feature_dim]` (256 for v1, 768 for v2).
    pub features: &'a [f32],
    /// Coarse pitch bins (1..=255) per frame; required by pitch models, refused by `_nono` ones.
    pub pitch: Option<&'a [u32]>,
    /// f0 in Hz per frame (0 = unvoiced); required by pitch models.
    pub f0: Option<&'a [f32]>,
    /// Speaker id (row of `emb_g`); single-speaker models use 0.
    pub speaker: usize,
}

/// The random draws of one inference, for reproducible runs and tests against PyTorch.
#[derive(Debug, Clone)]
pub struct Noise {
    /// Standard normal, `[inter_channels, frames]` row-major: the prior sample's noise.
    pub prior: Vec<f32>,
    /// Standard normal, `frames * hop` values: the sine source's additive noise.
    /// Ignored (may be empty) for models without pitch.
    pub sine: Vec<f32>,
}

/// Result of one inference with its intermediate tensors.
#[derive(Debug, Clone)]
pub struct Synthesis {
    /// `frames * hop` samples at the model's rate, in [-1, 1].
    pub audio: Vec<f32>,
    /// Prior mean and log-scale from the phone encoder, `[inter, frames]`.
    pub m_p: Tensor,
    pub logs_p: Tensor,
    /// The flow's output fed to the decoder, `[inter, frames]`.
    pub z: Tensor,
}

/// A loaded RVC voice ready to synthesise.
#[derive(Debug, Clone)]
pub struct Synthesizer {
    config: SynthConfig,
    version: Version,
    f0: bool,
    /// `[speakers, gin]`
    emb_g: Tensor,
    enc_p: TextEncoder,
    flow: Flow,
    dec: Decoder,
}

impl Synthesizer {
    /// Build from a loaded checkpoint; every weight's shape is checked against the config.
    pub fn new(ckpt: &Checkpoint) -> Result<Self> {
        let cfg = &ckpt.config;
        let w = &ckpt.weights;
        Ok(Self {
            emb_g: w.get("emb_g.weight", &[cfg.spk_embed_dim, cfg.gin_channels])?,
            enc_p: TextEncoder::load(w, cfg, ckpt.version.feature_dim(), ckpt.f0)?,
            flow: Flow::load(w, cfg)?,
            dec: Decoder::load(w, cfg, ckpt.f0)?,
            config: cfg.clone(),
            version: ckpt.version,
            f0: ckpt.f0,
        })
    }

    /// Load an RVC WebUI / Applio `.pth` voice model.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::new(&Checkpoint::load(path)?)
    }

    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether the model takes pitch (`pitch` and `f0` inputs).
    pub fn has_pitch(&self) -> bool {
        self.f0
    }

    /// Output sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.config.sr
    }

    /// Output samples per input frame.
    pub fn hop_length(&self) -> usize {
        self.config.hop_length()
    }

    /// Content-feature width this model expects.
    pub fn feature_dim(&self) -> usize {
        self.version.feature_dim()
    }

    /// Fresh standard-normal noise for `frames` frames.
    pub fn random_noise(&self, frames: usize) -> Result<Noise> {
        let randn = |n: usize| -> Result<Vec<f32>> {
            if n == 0 {
                return Ok(Vec::new());
            }
            Ok(Tensor::randn(0f32, 1f32, n, &Device::Cpu)?.to_vec1::<f32>()?)
        };
        Ok(Noise {
            prior: randn(self.config.inter_channels * frames)?,
            sine: if self.f0 {
                randn(frames * self.hop_length())?
            } else {
                Vec::new()
            },
        })
    }

    /// Synthesise audio, drawing RVC's random noise.
    pub fn infer(&self, input: &SynthInput) -> Result<Vec<f32>> {
        let frames = self.frames(input)?;
        let noise = self.random_noise(frames)?;
        Ok(self.infer_with_noise(input, &noise)?.audio)
    }

    fn frames(&self, input: &SynthInput) -> Result<usize> {
        let dim = self.feature_dim();
        if input.features.is_empty() || !input.features.len().is_multiple_of(dim) {
            return Err(RvcError::Input(format!(
                "features hold {} values, not a positive multiple of the feature width {dim}",
                input.features.len()
            )));
        }
        Ok(input.features.len() / dim)
    }

    /// Synthesise with given noise (as PyTorch RVC would have drawn it).
    pub fn infer_with_noise(&self, input: &SynthInput, noise: &Noise) -> Result<Synthesis> {
        let Latent { m_p, logs_p, z } = self.latent(input, &noise.prior)?;
        let audio = self.decode(&z, input.speaker, input.f0, &noise.sine, 0.0)?;
        Ok(Synthesis {
            audio,
            m_p,
            logs_p,
            z,
        })
    }

    fn speaker(&self, speaker: usize) -> Result<Tensor> {
        if speaker >= self.config.spk_embed_dim {
            return Err(RvcError::Input(format!(
                "speaker {speaker} out of range (model has {})",
                self.config.spk_embed_dim
            )));
        }
        Ok(self
            .emb_g
            .narrow(0, speaker, 1)?
            .reshape((1, self.config.gin_channels, 1))?)
    }

    /// Phone encoder, prior sample and reverse flow: the decoder's input for `input`.
    pub fn latent(&self, input: &SynthInput, prior_noise: &[f32]) -> Result<Latent> {
        let dev = Device::Cpu;
        let frames = self.frames(input)?;
        let inter = self.config.inter_channels;
        let g = self.speaker(input.speaker)?;
        if prior_noise.len() != inter * frames {
            return Err(RvcError::Input(format!(
                "prior noise has {} values, expected {inter} x {frames}",
                prior_noise.len()
            )));
        }
        let pitch = match (self.f0, input.pitch, input.f0) {
            (true, Some(p), Some(f)) => {
                if p.len() != frames || f.len() != frames {
                    return Err(RvcError::Input(format!(
                        "pitch ({}) and f0 ({}) must have one value per frame ({frames})",
                        p.len(),
                        f.len()
                    )));
                }
                if let Some(bad) = p
                    .iter()
                    .find(|&&b| b as usize >= crate::text_encoder::PITCH_BINS)
                {
                    return Err(RvcError::Input(format!(
                        "coarse pitch {bad} out of range 0..=255"
                    )));
                }
                Some(Tensor::from_slice(p, frames, &dev)?)
            }
            (true, _, _) => return Err(RvcError::Input("this model needs pitch and f0".into())),
            (false, None, None) => None,
            (false, _, _) => {
                return Err(RvcError::Input(
                    "this model was trained without pitch".into(),
                ))
            }
        };
        let phone = Tensor::from_slice(input.features, (frames, self.feature_dim()), &dev)?;
        let (m_p, logs_p) = self.enc_p.forward(&phone, pitch.as_ref())?;
        let eps = Tensor::from_slice(prior_noise, (inter, frames), &dev)?;
        let z_p = (&m_p + (logs_p.exp()? * eps)?.affine(PRIOR_NOISE_SCALE, 0.0)?)?;
        let z = self.flow.reverse(&z_p.unsqueeze(0)?, &g)?.squeeze(0)?;
        Ok(Latent { m_p, logs_p, z })
    }

    /// Decode latent frames `z` (`[inter, frames]`) to audio. Pitch models need `f0` (one
    /// per frame) and `sine_noise` (one per sample); `start_phase` continues the sine source
    /// from an earlier window (0 for a whole utterance).
    pub fn decode(
        &self,
        z: &Tensor,
        speaker: usize,
        f0: Option<&[f32]>,
        sine_noise: &[f32],
        start_phase: f64,
    ) -> Result<Vec<f32>> {
        let g = self.speaker(speaker)?;
        let (c, _) = z.dims2()?;
        if c != self.config.inter_channels {
            return Err(RvcError::Input(format!(
                "latent has {c} channels, model has {}",
                self.config.inter_channels
            )));
        }
        let excitation = match f0 {
            Some(f0) if self.f0 => Some(Excitation {
                f0,
                noise: sine_noise,
                start_phase,
            }),
            _ => None,
        };
        self.dec.forward(&z.unsqueeze(0)?, &g, excitation.as_ref())
    }

    /// Frames of latent context each side that make windowed decoding exact.
    pub fn decoder_receptive_frames(&self) -> usize {
        self.dec.receptive_frames()
    }
}

/// The decoder input of one utterance and the prior it was sampled from.
#[derive(Debug, Clone)]
pub struct Latent {
    /// `[inter, frames]`
    pub m_p: Tensor,
    pub logs_p: Tensor,
    pub z: Tensor,
}
