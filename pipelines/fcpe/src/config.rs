//! Hyper-parameters of an FCPE checkpoint, read from its `config_dict` (torchfcpe's `args`).

use serde::Deserialize;

use crate::error::{FcpeError, Result};

/// Mel front end settings (`args.mel`); defaults are torchfcpe's when a key is missing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MelConfig {
    #[serde(default = "d_sr")]
    pub sr: u32,
    #[serde(default = "d_mels")]
    pub num_mels: usize,
    #[serde(default = "d_fft")]
    pub n_fft: usize,
    #[serde(default = "d_fft")]
    pub win_size: usize,
    #[serde(default = "d_hop")]
    pub hop_size: usize,
    #[serde(default)]
    pub fmin: f64,
    /// torchfcpe substitutes 8000 when the config has none.
    #[serde(default = "d_fmax")]
    pub fmax: f64,
    /// `None`/"default" is the mel spectrogram; "stft" (raw magnitudes) is not ported.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// Network settings (`args.model`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub out_dims: usize,
    pub hidden_dims: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub f0_min: f64,
    pub f0_max: f64,
    #[serde(default)]
    pub use_fa_norm: bool,
    /// True for the bundled checkpoint: encoder layers are convolution modules only; false adds
    /// a Performer attention block to each layer.
    #[serde(default)]
    pub conv_only: bool,
    #[serde(default)]
    pub use_harmonic_emb: bool,
}

/// Everything the port needs from a checkpoint's config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FcpeConfig {
    pub mel: MelConfig,
    pub model: ModelConfig,
}

fn d_sr() -> u32 {
    16000
}
fn d_mels() -> usize {
    128
}
fn d_fft() -> usize {
    1024
}
fn d_hop() -> usize {
    160
}
fn d_fmax() -> f64 {
    8000.0
}

impl Default for FcpeConfig {
    /// The config stored in torchfcpe 0.0.4's `fcpe_c_v001.pt`, for checkpoints without one.
    fn default() -> Self {
        Self {
            mel: MelConfig {
                sr: 16000,
                num_mels: 128,
                n_fft: 1024,
                win_size: 1024,
                hop_size: 160,
                fmin: 0.0,
                fmax: 8000.0,
                kind: None,
            },
            model: ModelConfig {
                kind: "CFNaiveMelPE".into(),
                out_dims: 360,
                hidden_dims: 512,
                n_layers: 6,
                n_heads: 8,
                f0_min: 32.7,
                f0_max: 1975.5,
                use_fa_norm: true,
                conv_only: true,
                use_harmonic_emb: false,
            },
        }
    }
}

impl FcpeConfig {
    /// Parse torchfcpe's config dict (as JSON) and reject what this port cannot run.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let cfg: Self = serde_json::from_value(value.clone())
            .map_err(|e| FcpeError::Format(format!("config_dict: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that keep the front end and network well defined (no zero sizes, one mel type).
    pub fn validate(&self) -> Result<()> {
        let m = &self.mel;
        if let Some(kind) = &m.kind {
            let k = kind.to_ascii_lowercase();
            if k != "none" && k != "default" {
                return Err(FcpeError::Unsupported(format!("mel type {kind:?}")));
            }
        }
        if m.sr == 0 || m.num_mels == 0 || m.n_fft < 2 || m.hop_size == 0 {
            return Err(FcpeError::Format(format!("mel settings {m:?}")));
        }
        if m.win_size != m.n_fft {
            return Err(FcpeError::Unsupported(format!(
                "win_size {} != n_fft {}",
                m.win_size, m.n_fft
            )));
        }
        if m.hop_size > m.win_size
            || m.fmax.partial_cmp(&m.fmin) != Some(std::cmp::Ordering::Greater)
        {
            return Err(FcpeError::Format(format!("mel settings {m:?}")));
        }
        let n = &self.model;
        if n.kind != "CFNaiveMelPE" {
            return Err(FcpeError::Unsupported(format!("model type {:?}", n.kind)));
        }
        if !n.conv_only && n.n_heads == 0 {
            return Err(FcpeError::Format("attention with 0 heads".into()));
        }
        if n.out_dims < 2
            || n.hidden_dims == 0
            || !n.hidden_dims.is_multiple_of(crate::model::GROUPS)
            || n.f0_min.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || n.f0_max.partial_cmp(&n.f0_min) != Some(std::cmp::Ordering::Greater)
        {
            return Err(FcpeError::Format(format!("model settings {n:?}")));
        }
        Ok(())
    }
}
