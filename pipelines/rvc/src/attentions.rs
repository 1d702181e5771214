//! The transformer in RVC's phone encoder: self-attention with relative-position keys and
//! values (window 10, shared across heads), conv feed-forward, post-LayerNorm.
//! Activations here are `[frames, channels]`; batch is always one utterance, unpadded,
//! so RVC's sequence masks are all ones and are left out.

use candle_core::{DType, Device, Tensor, D};

use crate::checkpoint::Weights;
use crate::error::Result;
use crate::nn::{Conv1d, ConvSpec};

/// Relative-position window RVC (VITS) hard-codes in `attentions.Encoder`.
pub const WINDOW: usize = 10;

/// LayerNorm over channels (`modules.LayerNorm`, eps 1e-5).
#[derive(Debug, Clone)]
struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl LayerNorm {
    fn load(w: &Weights, prefix: &str, c: usize) -> Result<Self> {
        Ok(Self {
            gamma: w.get(&format!("{prefix}.gamma"), &[c])?,
            beta: w.get(&format!("{prefix}.beta"), &[c])?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        Ok(y.broadcast_mul(&self.gamma)?.broadcast_add(&self.beta)?)
    }
}

/// A 1x1 conv applied to `[frames, c_in]` as a matmul.
#[derive(Debug, Clone)]
struct Pointwise {
    wt: Tensor,
    b: Tensor,
}

impl Pointwise {
    fn load(w: &Weights, prefix: &str, c_in: usize, c_out: usize) -> Result<Self> {
        let weight = w.get(&format!("{prefix}.weight"), &[c_out, c_in, 1])?;
        Ok(Self {
            wt: weight.reshape((c_out, c_in))?.t()?.contiguous()?,
            b: w.get(&format!("{prefix}.bias"), &[c_out])?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.wt)?.broadcast_add(&self.b)?)
    }
}

/// `attentions.MultiHeadAttention` (self-attention, window 10, heads_share).
#[derive(Debug, Clone)]
struct MultiHeadAttention {
    q: Pointwise,
    k: Pointwise,
    v: Pointwise,
    o: Pointwise,
    /// `[2w+1, k_channels]`
    emb_rel_k: Tensor,
    emb_rel_v: Tensor,
    n_heads: usize,
    k_channels: usize,
}

impl MultiHeadAttention {
    fn load(w: &Weights, prefix: &str, channels: usize, n_heads: usize) -> Result<Self> {
        let kc = channels / n_heads;
        let rel = |n: &str| -> Result<Tensor> {
            Ok(w.get(&format!("{prefix}.{n}"), &[1, 2 * WINDOW + 1, kc])?
                .reshape((2 * WINDOW + 1, kc))?)
        };
        Ok(Self {
            q: Pointwise::load(w, &format!("{prefix}.conv_q"), channels, channels)?,
            k: Pointwise::load(w, &format!("{prefix}.conv_k"), channels, channels)?,
            v: Pointwise::load(w, &format!("{prefix}.conv_v"), channels, channels)?,
            o: Pointwise::load(w, &format!("{prefix}.conv_o"), channels, channels)?,
            emb_rel_k: rel("emb_rel_k")?,
            emb_rel_v: rel("emb_rel_v")?,
            n_heads,
            k_channels: kc,
        })
    }

    /// `[frames, channels]` -> `[heads, frames, k_channels]`.
    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(0)?;
        Ok(x.reshape((t, self.n_heads, self.k_channels))?
            .transpose(0, 1)?
            .contiguous()?)
    }

    fn forward(&self, x: &Tensor, bands: &Bands) -> Result<Tensor> {
        let t = x.dim(0)?;
        let scale = 1.0 / (self.k_channels as f64).sqrt();
        let q = (self.heads(&self.q.forward(x)?)? * scale)?;
        let k = self.heads(&self.k.forward(x)?)?;
        let v = self.heads(&self.v.forward(x)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        // Relative keys: score[i, j] += q_i . E_k[j - i + w] inside the window.
        let qe = q.broadcast_matmul(&self.emb_rel_k.t()?)?;
        let local = qe
            .gather(
                &bands
                    .rel_of_abs
                    .broadcast_left(self.n_heads)?
                    .contiguous()?,
                2,
            )?
            .broadcast_mul(&bands.abs_mask)?;
        scores = (scores + local)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        let mut out = p.matmul(&v)?;
        // Relative values: out_i += sum_j p[i, j] E_v[j - i + w].
        let rw = p
            .gather(
                &bands
                    .abs_of_rel
                    .broadcast_left(self.n_heads)?
                    .contiguous()?,
                2,
            )?
            .broadcast_mul(&bands.rel_mask)?;
        out = (out + rw.broadcast_matmul(&self.emb_rel_v)?)?;
        let out = out
            .transpose(0, 1)?
            .reshape((t, self.n_heads * self.k_channels))?;
        self.o.forward(&out)
    }
}

/// Index maps between absolute `(i, j)` and relative `(i, j - i + w)` positions for one length
/// (VITS's windowed relative attention, window [`WINDOW`]); the trainer uses them too.
pub struct Bands {
    /// `[t, t]` u32: `j - i + w`, clamped into the window.
    pub rel_of_abs: Tensor,
    /// `[t, t]`: 1 where `|j - i| <= w`.
    pub abs_mask: Tensor,
    /// `[t, 2w+1]` u32: `i + r - w`, clamped into the sequence.
    pub abs_of_rel: Tensor,
    /// `[t, 2w+1]`: 1 where `0 <= i + r - w < t`.
    pub rel_mask: Tensor,
}

impl Bands {
    pub fn new(t: usize, dev: &Device) -> Result<Self> {
        let w = WINDOW as i64;
        let n = t as i64;
        let mut rel_of_abs = Vec::with_capacity(t * t);
        let mut abs_mask = Vec::with_capacity(t * t);
        for i in 0..n {
            for j in 0..n {
                let r = j - i + w;
                rel_of_abs.push(r.clamp(0, 2 * w) as u32);
                abs_mask.push(if (0..=2 * w).contains(&r) { 1f32 } else { 0f32 });
            }
        }
        let width = 2 * WINDOW + 1;
        let mut abs_of_rel = Vec::with_capacity(t * width);
        let mut rel_mask = Vec::with_capacity(t * width);
        for i in 0..n {
            for r in 0..(2 * w + 1) {
                let j = i + r - w;
                abs_of_rel.push(j.clamp(0, n - 1) as u32);
                rel_mask.push(if (0..n).contains(&j) { 1f32 } else { 0f32 });
            }
        }
        Ok(Self {
            rel_of_abs: Tensor::from_vec(rel_of_abs, (t, t), dev)?,
            abs_mask: Tensor::from_vec(abs_mask, (t, t), dev)?.to_dtype(DType::F32)?,
            abs_of_rel: Tensor::from_vec(abs_of_rel, (t, width), dev)?,
            rel_mask: Tensor::from_vec(rel_mask, (t, width), dev)?,
        })
    }
}

/// `attentions.FFN`: conv(k) -> relu -> conv(k), `same` padding (left (k-1)/2, right k/2).
#[derive(Debug, Clone)]
struct Ffn {
    conv1: Conv1d,
    conv2: Conv1d,
    kernel: usize,
}

impl Ffn {
    fn load(
        w: &Weights,
        prefix: &str,
        channels: usize,
        filter: usize,
        kernel: usize,
    ) -> Result<Self> {
        let spec = ConvSpec {
            kernel,
            stride: 1,
            padding: 0,
            dilation: 1,
            bias: true,
        };
        Ok(Self {
            conv1: Conv1d::load(w, &format!("{prefix}.conv_1"), channels, filter, spec)?,
            conv2: Conv1d::load(w, &format!("{prefix}.conv_2"), filter, channels, spec)?,
            kernel,
        })
    }

    fn pad(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.pad_with_zeros(2, (self.kernel - 1) / 2, self.kernel / 2)?)
    }

    /// `[frames, channels]` in and out.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xc = x.t()?.unsqueeze(0)?;
        let h = self.conv1.forward(&self.pad(&xc)?)?.relu()?;
        let y = self.conv2.forward(&self.pad(&h)?)?;
        Ok(y.squeeze(0)?.t()?.contiguous()?)
    }
}

/// `attentions.Encoder`: n layers of attention + FFN, each followed by residual + LayerNorm.
#[derive(Debug, Clone)]
pub struct Encoder {
    layers: Vec<(MultiHeadAttention, LayerNorm, Ffn, LayerNorm)>,
}

impl Encoder {
    pub fn load(
        w: &Weights,
        prefix: &str,
        hidden: usize,
        filter: usize,
        n_heads: usize,
        n_layers: usize,
        kernel: usize,
    ) -> Result<Self> {
        let layers = (0..n_layers)
            .map(|i| {
                Ok((
                    MultiHeadAttention::load(
                        w,
                        &format!("{prefix}.attn_layers.{i}"),
                        hidden,
                        n_heads,
                    )?,
                    LayerNorm::load(w, &format!("{prefix}.norm_layers_1.{i}"), hidden)?,
                    Ffn::load(
                        w,
                        &format!("{prefix}.ffn_layers.{i}"),
                        hidden,
                        filter,
                        kernel,
                    )?,
                    LayerNorm::load(w, &format!("{prefix}.norm_layers_2.{i}"), hidden)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    /// `[frames, hidden]` in and out.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let bands = Bands::new(x.dim(0)?, x.device())?;
        let mut x = x.clone();
        for (attn, norm1, ffn, norm2) in &self.layers {
            let y = attn.forward(&x, &bands)?;
            x = norm1.forward(&(x + y)?)?;
            let y = ffn.forward(&x)?;
            x = norm2.forward(&(x + y)?)?;
        }
        Ok(x)
    }
}
