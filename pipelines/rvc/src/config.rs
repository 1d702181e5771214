//! Model sizes from the checkpoint's `config` list, so every RVC sample rate and size loads.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, RvcError};

/// Which RVC generation: v1 feeds 256-dim HuBERT features, v2 768-dim ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// Parse the checkpoint's `version` string ("v1"/"v2").
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            other => Err(RvcError::Unsupported(format!(
                "unknown RVC version `{other}` (expected v1 or v2)"
            ))),
        }
    }

    /// RVC's label ("v1"/"v2"), as checkpoints and index file names store it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    /// Width of the content features the phone projection expects.
    pub fn feature_dim(self) -> usize {
        match self {
            Self::V1 => 256,
            Self::V2 => 768,
        }
    }
}

/// Residual block flavour of the HiFiGAN decoder (config string "1" or "2").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ResBlockKind {
    One,
    Two,
}

/// Hyper-parameters of `SynthesizerTrnMs{256,768}NSFsid[_nono]`, in WebUI's config-list order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthConfig {
    pub spec_channels: usize,
    pub segment_size: usize,
    pub inter_channels: usize,
    pub hidden_channels: usize,
    pub filter_channels: usize,
    pub n_heads: usize,
    pub n_layers: usize,
    pub kernel_size: usize,
    pub p_dropout: f64,
    pub resblock: ResBlockKind,
    pub resblock_kernel_sizes: Vec<usize>,
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    pub upsample_rates: Vec<usize>,
    pub upsample_initial_channel: usize,
    pub upsample_kernel_sizes: Vec<usize>,
    pub spk_embed_dim: usize,
    pub gin_channels: usize,
    /// Output sample rate in Hz.
    pub sr: u32,
}

fn uint(v: &Value, what: &str) -> Result<usize> {
    v.as_u64().map(|n| n as usize).ok_or_else(|| {
        RvcError::Config(format!("{what} should be a non-negative integer, got {v}"))
    })
}

fn uint_list(v: &Value, what: &str) -> Result<Vec<usize>> {
    v.as_array()
        .ok_or_else(|| RvcError::Config(format!("{what} should be a list, got {v}")))?
        .iter()
        .map(|x| uint(x, what))
        .collect()
}

/// "40k" style rates as the checkpoint's `sr` entry and older configs spell them.
fn sample_rate(v: &Value) -> Result<u32> {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n)
            .map_err(|_| RvcError::Config(format!("sample rate {n} too large")));
    }
    match v.as_str() {
        Some("32k") => Ok(32000),
        Some("40k") => Ok(40000),
        Some("48k") => Ok(48000),
        _ => Err(RvcError::Config(format!("unknown sample rate {v}"))),
    }
}

impl SynthConfig {
    /// Parse the 18-entry config list RVC WebUI and Applio store with the weights.
    pub fn from_list(list: &[Value]) -> Result<Self> {
        if list.len() < 18 {
            return Err(RvcError::Config(format!(
                "config list has {} entries, expected 18",
                list.len()
            )));
        }
        let resblock = match &list[9] {
            Value::String(s) if s == "1" => ResBlockKind::One,
            Value::String(s) if s == "2" => ResBlockKind::Two,
            Value::Number(n) if n.as_u64() == Some(1) => ResBlockKind::One,
            Value::Number(n) if n.as_u64() == Some(2) => ResBlockKind::Two,
            other => return Err(RvcError::Config(format!("unknown resblock kind {other}"))),
        };
        let dilations = list[11]
            .as_array()
            .ok_or_else(|| RvcError::Config("resblock_dilation_sizes should be a list".into()))?
            .iter()
            .map(|d| uint_list(d, "resblock_dilation_sizes"))
            .collect::<Result<Vec<_>>>()?;
        let cfg = Self {
            spec_channels: uint(&list[0], "spec_channels")?,
            segment_size: uint(&list[1], "segment_size")?,
            inter_channels: uint(&list[2], "inter_channels")?,
            hidden_channels: uint(&list[3], "hidden_channels")?,
            filter_channels: uint(&list[4], "filter_channels")?,
            n_heads: uint(&list[5], "n_heads")?,
            n_layers: uint(&list[6], "n_layers")?,
            kernel_size: uint(&list[7], "kernel_size")?,
            p_dropout: list[8]
                .as_f64()
                .ok_or_else(|| RvcError::Config("p_dropout should be a number".into()))?,
            resblock,
            resblock_kernel_sizes: uint_list(&list[10], "resblock_kernel_sizes")?,
            resblock_dilation_sizes: dilations,
            upsample_rates: uint_list(&list[12], "upsample_rates")?,
            upsample_initial_channel: uint(&list[13], "upsample_initial_channel")?,
            upsample_kernel_sizes: uint_list(&list[14], "upsample_kernel_sizes")?,
            spk_embed_dim: uint(&list[15], "spk_embed_dim")?,
            gin_channels: uint(&list[16], "gin_channels")?,
            sr: sample_rate(&list[17])?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reject sizes the modules cannot be built from, before any tensor is touched.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(RvcError::Config(m.to_string()));
        if self.inter_channels == 0 || !self.inter_channels.is_multiple_of(2) {
            return bad("inter_channels must be even and positive");
        }
        if self.n_heads == 0 || !self.hidden_channels.is_multiple_of(self.n_heads) {
            return bad("hidden_channels must be divisible by n_heads");
        }
        if self.kernel_size == 0 {
            return bad("kernel_size must be positive");
        }
        if self.upsample_rates.is_empty()
            || self.upsample_rates.len() != self.upsample_kernel_sizes.len()
        {
            return bad(
                "upsample_rates and upsample_kernel_sizes must be non-empty and equally long",
            );
        }
        for (&u, &k) in self.upsample_rates.iter().zip(&self.upsample_kernel_sizes) {
            if u == 0 || k < u || (k - u) % 2 != 0 {
                return bad("each upsample kernel must be >= its rate with an even difference");
            }
        }
        let hop = self
            .upsample_rates
            .iter()
            .try_fold(1usize, |acc, &u| acc.checked_mul(u));
        if hop.is_none_or(|h| h > 1 << 16) {
            return bad("upsample rates multiply to an implausible hop length");
        }
        if self.upsample_initial_channel >> self.upsample_rates.len() == 0 {
            return bad("upsample_initial_channel too small for the number of upsampling stages");
        }
        if self.resblock_kernel_sizes.is_empty()
            || self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
        {
            return bad("resblock kernel and dilation lists must be non-empty and equally long");
        }
        let want = match self.resblock {
            ResBlockKind::One => 3,
            ResBlockKind::Two => 2,
        };
        for (&k, d) in self
            .resblock_kernel_sizes
            .iter()
            .zip(&self.resblock_dilation_sizes)
        {
            if k == 0 || d.len() != want || d.contains(&0) {
                return bad("resblock dilations: 3 per kernel for resblock 1, 2 for resblock 2");
            }
        }
        if self.spk_embed_dim == 0 || self.gin_channels == 0 {
            return bad("spk_embed_dim and gin_channels must be positive");
        }
        if self.sr == 0 {
            return bad("sample rate must be positive");
        }
        Ok(())
    }

    /// The 18-entry list [`SynthConfig::from_list`] reads, spelt as RVC WebUI writes it
    /// (resblock as "1"/"2", the rate in Hz, an integral `p_dropout` as an int), so exported
    /// voices carry the same `config` a WebUI-trained one does.
    pub fn to_list(&self) -> Vec<Value> {
        let ints = |v: &[usize]| Value::from(v.to_vec());
        let p_dropout = if self.p_dropout.fract() == 0.0 && self.p_dropout.abs() < 1e15 {
            Value::from(self.p_dropout as i64)
        } else {
            Value::from(self.p_dropout)
        };
        vec![
            Value::from(self.spec_channels),
            Value::from(self.segment_size),
            Value::from(self.inter_channels),
            Value::from(self.hidden_channels),
            Value::from(self.filter_channels),
            Value::from(self.n_heads),
            Value::from(self.n_layers),
            Value::from(self.kernel_size),
            p_dropout,
            Value::from(match self.resblock {
                ResBlockKind::One => "1",
                ResBlockKind::Two => "2",
            }),
            ints(&self.resblock_kernel_sizes),
            Value::Array(
                self.resblock_dilation_sizes
                    .iter()
                    .map(|d| ints(d))
                    .collect(),
            ),
            ints(&self.upsample_rates),
            Value::from(self.upsample_initial_channel),
            ints(&self.upsample_kernel_sizes),
            Value::from(self.spk_embed_dim),
            Value::from(self.gin_channels),
            Value::from(self.sr),
        ]
    }

    /// Output samples per synthesiser frame (product of the upsample rates).
    pub fn hop_length(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}
