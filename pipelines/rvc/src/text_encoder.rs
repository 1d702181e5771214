//! `enc_p` (TextEncoder256/768): content features + coarse pitch -> prior mean and log-scale.

use candle_core::{Tensor, D};

use crate::attentions::Encoder;
use crate::checkpoint::Weights;
use crate::config::SynthConfig;
use crate::error::{Result, RvcError};
use crate::nn::{leaky_relu, Linear};

/// Number of coarse pitch bins (`emb_pitch` rows).
pub const PITCH_BINS: usize = 256;

#[derive(Debug, Clone)]
pub struct TextEncoder {
    emb_phone: Linear,
    emb_pitch: Option<Tensor>,
    encoder: Encoder,
    /// 1x1 conv hidden -> 2 * inter, as a transposed matrix.
    proj_wt: Tensor,
    proj_b: Tensor,
    hidden: usize,
    inter: usize,
}

impl TextEncoder {
    pub fn load(w: &Weights, cfg: &SynthConfig, feature_dim: usize, f0: bool) -> Result<Self> {
        let h = cfg.hidden_channels;
        let inter = cfg.inter_channels;
        let emb_pitch = if f0 {
            Some(w.get("enc_p.emb_pitch.weight", &[PITCH_BINS, h])?)
        } else {
            None
        };
        let proj = w.get("enc_p.proj.weight", &[2 * inter, h, 1])?;
        Ok(Self {
            emb_phone: Linear::load(w, "enc_p.emb_phone", feature_dim, h)?,
            emb_pitch,
            encoder: Encoder::load(
                w,
                "enc_p.encoder",
                h,
                cfg.filter_channels,
                cfg.n_heads,
                cfg.n_layers,
                cfg.kernel_size,
            )?,
            proj_wt: proj.reshape((2 * inter, h))?.t()?.contiguous()?,
            proj_b: w.get("enc_p.proj.bias", &[2 * inter])?,
            hidden: h,
            inter,
        })
    }

    /// `phone`: `[frames, feature_dim]`; `pitch`: `[frames]` u32 coarse bins (pitch models only).
    /// Returns `(m_p, logs_p)`, each `[inter_channels, frames]`.
    pub fn forward(&self, phone: &Tensor, pitch: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let mut x = self.emb_phone.forward(phone)?;
        match (&self.emb_pitch, pitch) {
            (Some(emb), Some(p)) => x = (x + emb.index_select(p, 0)?)?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(RvcError::Input("this model needs coarse pitch".into()));
            }
            (None, Some(_)) => {
                return Err(RvcError::Input(
                    "this model was trained without pitch".into(),
                ));
            }
        }
        let x = leaky_relu(&(x * (self.hidden as f64).sqrt())?, 0.1)?;
        let x = self.encoder.forward(&x)?;
        let stats = x.matmul(&self.proj_wt)?.broadcast_add(&self.proj_b)?.t()?;
        let m = stats.narrow(D::Minus2, 0, self.inter)?.contiguous()?;
        let logs = stats
            .narrow(D::Minus2, self.inter, self.inter)?
            .contiguous()?;
        Ok((m, logs))
    }
}
