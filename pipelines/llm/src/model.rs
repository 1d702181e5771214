//! The Llama-family decoder: embeddings, N pre-norm blocks (RMSNorm → GQA attention with RoPE →
//! RMSNorm → SwiGLU MLP), final norm, LM head.
//!
//! Two forward paths share the weights: [`Llama::forward`] for inference uses candle's fused
//! kernels (rms-norm, rope, softmax), which have no backward pass; [`Llama::forward_train`] uses
//! only differentiable ops so gradients reach the LoRA vars. A test keeps the two equal.
//!
//! The LoRA `VarMap` stays outside the model: the caller creates it, passes it to
//! [`Llama::new`] (which registers A/B under PEFT names, or reuses vars already there), gives
//! `varmap.all_vars()` to the optimiser and saves the adapter with `varmap.save(...)`.
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor, D};
use candle_nn::VarMap;
use rayon::prelude::*;

use crate::config::{LlamaConfig, RopeKind};
use crate::load::{Weights, ROPE_FREQS};
use crate::lora::{peft_prefix, LoraConfig, LoraLinear, SplitMix64};
use crate::{LlmError, Result};

/// Keys and values of past positions, one entry per layer, `[b, n_kv_heads, t, head_dim]`.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: vec![None; num_layers],
        }
    }

    pub fn reset(&mut self) {
        for l in &mut self.layers {
            *l = None;
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims().get(2).copied().unwrap_or(0),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which kernels a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    /// candle's fused kernels: fast, no backward.
    Fused,
    /// Plain tensor ops: differentiable.
    Differentiable,
    /// Fused CPU kernels with hand-written backward passes (see [`fused`]): what training uses
    /// on the CPU.
    Train,
}

/// Training kernels for the CPU: each replaces a chain of small candle ops (and their
/// backward chains) with one pass over the data, because on a CPU the step time of a 135M
/// model is dominated by memory traffic, allocations and thread hand-offs of those small ops,
/// not by arithmetic. Every op checks its layout and is tested against the plain-op path.
mod fused {
    use super::*;

    pub(super) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
            (CpuStorage::F32(_), None) => candle_core::bail!("fused op: input not contiguous"),
            _ => candle_core::bail!("fused op: f32 expected"),
        }
    }

    /// Runs `f` on the data of a (made contiguous) f32 CPU tensor.
    pub(super) fn with_data<R>(
        t: &Tensor,
        f: impl FnOnce(&[f32]) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        let t = t.contiguous()?;
        let (guard, layout) = t.storage_and_layout();
        match &*guard {
            candle_core::Storage::Cpu(s) => f(slice(s, layout)?),
            _ => candle_core::bail!("fused op: tensor not on the CPU"),
        }
    }

    /// RMSNorm with a frozen weight over the last dimension.
    pub(super) struct RmsNorm {
        pub w: Arc<Vec<f32>>,
        pub eps: f32,
    }

    impl CustomOp1 for RmsNorm {
        fn name(&self) -> &'static str {
            "train-rms-norm"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = slice(s, l)?;
            let h = self.w.len();
            if h == 0 || l.shape().dims().last() != Some(&h) {
                candle_core::bail!("rms-norm: last dim of {:?} is not {h}", l.shape());
            }
            let mut y = vec![0f32; x.len()];
            y.par_chunks_mut(h).zip(x.par_chunks(h)).for_each(|(y, x)| {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / h as f32;
                let inv = 1.0 / (ms + self.eps).sqrt();
                for ((y, x), w) in y.iter_mut().zip(x).zip(self.w.iter()) {
                    *y = x * inv * w;
                }
            });
            Ok((CpuStorage::F32(y), l.shape().clone()))
        }

        fn bwd(&self, x: &Tensor, _: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
            if !x.track_op() {
                return Ok(None);
            }
            let h = self.w.len();
            let dx = with_data(x, |x| {
                with_data(g, |g| {
                    let mut dx = vec![0f32; x.len()];
                    dx.par_chunks_mut(h)
                        .zip(x.par_chunks(h).zip(g.par_chunks(h)))
                        .for_each(|(dx, (x, g))| {
                            let ms = x.iter().map(|v| v * v).sum::<f32>() / h as f32;
                            let inv = 1.0 / (ms + self.eps).sqrt();
                            let dot: f32 = x
                                .iter()
                                .zip(g)
                                .zip(self.w.iter())
                                .map(|((x, g), w)| x * g * w)
                                .sum();
                            let c = inv * inv * inv * dot / h as f32;
                            for (((dx, x), g), w) in dx.iter_mut().zip(x).zip(g).zip(self.w.iter())
                            {
                                *dx = inv * g * w - c * x;
                            }
                        });
                    Ok(dx)
                })
            })?;
            Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
        }
    }

    /// RoPE (rotate-half layout) on `[b, t, n, hd]` that also moves the heads forward: the
    /// output is `[b, n, t, hd]`, ready for attention, so no separate transpose copy is made.
    pub(super) struct Rope {
        /// `[t, hd/2]` each.
        pub cos: Arc<Vec<f32>>,
        pub sin: Arc<Vec<f32>>,
    }

    impl Rope {
        fn dims(&self, shape: &Shape) -> candle_core::Result<(usize, usize, usize, usize)> {
            let (b, t, n, hd) = shape.dims4()?;
            if hd % 2 != 0 || self.cos.len() != t * hd / 2 || self.sin.len() != self.cos.len() {
                candle_core::bail!("rope: tables do not fit {shape:?}");
            }
            Ok((b, t, n, hd))
        }
    }

    impl CustomOp1 for Rope {
        fn name(&self) -> &'static str {
            "train-rope"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = slice(s, l)?;
            let (b, t, n, hd) = self.dims(l.shape())?;
            let half = hd / 2;
            let mut y = vec![0f32; x.len()];
            // One chunk per (batch, head): t rows of hd.
            y.par_chunks_mut(t * hd).enumerate().for_each(|(bh, out)| {
                let (bi, h) = (bh / n, bh % n);
                for p in 0..t {
                    let src = &x[((bi * t + p) * n + h) * hd..][..hd];
                    let dst = &mut out[p * hd..][..hd];
                    let (c, sn) = (&self.cos[p * half..][..half], &self.sin[p * half..][..half]);
                    for i in 0..half {
                        dst[i] = src[i] * c[i] - src[i + half] * sn[i];
                        dst[i + half] = src[i + half] * c[i] + src[i] * sn[i];
                    }
                }
            });
            Ok((CpuStorage::F32(y), Shape::from((b, n, t, hd))))
        }

        fn bwd(&self, x: &Tensor, _: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
            if !x.track_op() {
                return Ok(None);
            }
            let (_, t, n, hd) = self.dims(x.shape())?;
            let half = hd / 2;
            let dx = with_data(g, |g| {
                let mut dx = vec![0f32; g.len()];
                // One chunk per (batch, position): n heads of hd. The inverse rotation.
                dx.par_chunks_mut(n * hd).enumerate().for_each(|(bp, out)| {
                    let (bi, p) = (bp / t, bp % t);
                    let (c, sn) = (&self.cos[p * half..][..half], &self.sin[p * half..][..half]);
                    for h in 0..n {
                        let src = &g[((bi * n + h) * t + p) * hd..][..hd];
                        let dst = &mut out[h * hd..][..hd];
                        for i in 0..half {
                            dst[i] = src[i] * c[i] + src[i + half] * sn[i];
                            dst[i + half] = src[i + half] * c[i] - src[i] * sn[i];
                        }
                    }
                });
                Ok(dx)
            })?;
            Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
        }
    }

    /// Causal softmax of `scale · scores` over the last dim (`t` keys); row `r` is the query
    /// at position `r % t` (GQA stacks the query heads of one KV head as rows), so keys after it
    /// get probability 0. Replaces scale + mask add + softmax and their backward chains.
    pub(super) struct CausalSoftmax {
        pub scale: f32,
    }

    impl CustomOp1 for CausalSoftmax {
        fn name(&self) -> &'static str {
            "train-causal-softmax"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let x = slice(s, l)?;
            let t = l.shape().dims().last().copied().unwrap_or(0);
            if t == 0 {
                candle_core::bail!("causal softmax over an empty dim");
            }
            let mut y = vec![0f32; x.len()];
            y.par_chunks_mut(t)
                .zip(x.par_chunks(t))
                .enumerate()
                .for_each(|(r, (y, x))| {
                    let n = r % t + 1;
                    let m = x[..n].iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) * self.scale;
                    let mut sum = 0f32;
                    for (y, x) in y[..n].iter_mut().zip(&x[..n]) {
                        *y = (x * self.scale - m).exp();
                        sum += *y;
                    }
                    let inv = 1.0 / sum;
                    for y in &mut y[..n] {
                        *y *= inv;
                    }
                });
            Ok((CpuStorage::F32(y), l.shape().clone()))
        }

        fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
            if !x.track_op() {
                return Ok(None);
            }
            let t = x.dim(D::Minus1)?;
            let dx = with_data(y, |y| {
                with_data(g, |g| {
                    let mut dx = vec![0f32; y.len()];
                    dx.par_chunks_mut(t)
                        .zip(y.par_chunks(t).zip(g.par_chunks(t)))
                        .enumerate()
                        .for_each(|(r, (dx, (y, g)))| {
                            let n = r % t + 1;
                            let dot: f32 = y[..n].iter().zip(&g[..n]).map(|(y, g)| y * g).sum();
                            for ((dx, y), g) in dx[..n].iter_mut().zip(&y[..n]).zip(&g[..n]) {
                                *dx = self.scale * y * (g - dot);
                            }
                        });
                    Ok(dx)
                })
            })?;
            Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
        }
    }

    /// `silu(gate) · up`, the SwiGLU activation, in one pass each way.
    pub(super) struct SwiGlu;

    fn sigmoid(v: f32) -> f32 {
        1.0 / (1.0 + (-v).exp())
    }

    impl CustomOp2 for SwiGlu {
        fn name(&self) -> &'static str {
            "train-swiglu"
        }

        fn cpu_fwd(
            &self,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            let (g, u) = (slice(s1, l1)?, slice(s2, l2)?);
            if l1.shape() != l2.shape() {
                candle_core::bail!("swiglu: {:?} vs {:?}", l1.shape(), l2.shape());
            }
            let mut y = vec![0f32; g.len()];
            const CHUNK: usize = 4096;
            y.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
                .for_each(|(y, (g, u))| {
                    for ((y, g), u) in y.iter_mut().zip(g).zip(u) {
                        *y = g * sigmoid(*g) * u;
                    }
                });
            Ok((CpuStorage::F32(y), l1.shape().clone()))
        }

        fn bwd(
            &self,
            gate: &Tensor,
            up: &Tensor,
            _: &Tensor,
            grad: &Tensor,
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
            let (dg, du) = with_data(gate, |g| {
                with_data(up, |u| {
                    with_data(grad, |d| {
                        let mut dg = vec![0f32; g.len()];
                        let mut du = vec![0f32; g.len()];
                        const CHUNK: usize = 4096;
                        dg.par_chunks_mut(CHUNK)
                            .zip(du.par_chunks_mut(CHUNK))
                            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
                            .zip(d.par_chunks(CHUNK))
                            .for_each(|(((dg, du), (g, u)), d)| {
                                for i in 0..g.len() {
                                    let sg = sigmoid(g[i]);
                                    let silu = g[i] * sg;
                                    du[i] = d[i] * silu;
                                    dg[i] = d[i] * u[i] * sg * (1.0 + g[i] * (1.0 - sg));
                                }
                            });
                        Ok((dg, du))
                    })
                })
            })?;
            let dg = gate
                .track_op()
                .then(|| Tensor::from_vec(dg, gate.shape(), gate.device()))
                .transpose()?;
            let du = up
                .track_op()
                .then(|| Tensor::from_vec(du, up.shape(), up.device()))
                .transpose()?;
            Ok((dg, du))
        }
    }
}

/// What the fused training layers share within one forward pass.
struct TrainCtx {
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, path: Path) -> Result<Tensor> {
    match path {
        Path::Fused => Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?),
        Path::Differentiable | Path::Train => {
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            let inv = (ms + eps)?.sqrt()?.recip()?;
            Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
        }
    }
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

/// RoPE in the Hugging Face rotate-half layout; `cos`/`sin` are `[t, head_dim/2]`.
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor, path: Path) -> Result<Tensor> {
    match path {
        Path::Fused => Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?),
        Path::Differentiable | Path::Train => {
            let cos = Tensor::cat(&[cos, cos], D::Minus1)?
                .unsqueeze(0)?
                .unsqueeze(0)?;
            let sin = Tensor::cat(&[sin, sin], D::Minus1)?
                .unsqueeze(0)?
                .unsqueeze(0)?;
            Ok((x.broadcast_mul(&cos)? + rotate_half(x)?.broadcast_mul(&sin)?)?)
        }
    }
}

fn softmax(x: &Tensor, path: Path) -> Result<Tensor> {
    match path {
        Path::Fused => Ok(candle_nn::ops::softmax_last_dim(x)?),
        Path::Differentiable | Path::Train => Ok(candle_nn::ops::softmax(x, D::Minus1)?),
    }
}

/// Inverse RoPE frequencies `[head_dim/2]`, with the configured scaling applied.
pub fn inv_freq(cfg: &LlamaConfig) -> Result<Vec<f32>> {
    let hd = cfg.head_dim();
    let kind = cfg.rope_kind()?;
    let freqs = (0..hd / 2).map(|i| {
        let f = 1.0 / cfg.rope_theta.powf((2 * i) as f64 / hd as f64);
        match kind {
            RopeKind::Default => f,
            RopeKind::Linear { factor } => f / factor,
            RopeKind::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: orig,
            } => {
                // As transformers' _compute_llama3_parameters.
                let low_wavelen = orig / low_freq_factor;
                let high_wavelen = orig / high_freq_factor;
                let wavelen = 2.0 * std::f64::consts::PI / f;
                if wavelen < high_wavelen {
                    f
                } else if wavelen > low_wavelen {
                    f / factor
                } else {
                    let smooth =
                        (orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * f / factor + smooth * f
                }
            }
        }
    });
    Ok(freqs.map(|f| f as f32).collect())
}

struct Attention {
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    o: LoraLinear,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
}

struct Mlp {
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
}

struct Layer {
    attn_norm: Tensor,
    attn: Attention,
    mlp_norm: Tensor,
    mlp: Mlp,
}

/// A Llama-family decoder whose every projection is a [`LoraLinear`].
pub struct Llama {
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: LoraLinear,
    inv_freq: Tensor,
    /// llama.cpp's RoPE divisors when the weights came with them (kept for export).
    rope_freqs: Option<Tensor>,
    device: Device,
}

/// Repeats each key/value head `n_rep` times so GQA attention is a plain batched matmul.
fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, n_kv, t, hd) = x.dims4()?;
    Ok(Tensor::cat(&vec![x; n_rep], 2)?.reshape((b, n_kv * n_rep, t, hd))?)
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        path: Path,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, self.head_dim))?.transpose(1, 2)?)
        };
        let q = heads(self.q.forward(x)?, self.n_head)?;
        let k = heads(self.k.forward(x)?, self.n_kv)?;
        let v = heads(self.v.forward(x)?, self.n_kv)?;
        let q = apply_rope(&q, cos, sin, path)?;
        let mut k = apply_rope(&k, cos, sin, path)?;
        let mut v = v.contiguous()?;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let rep = self.n_head / self.n_kv;
        let k = repeat_kv(&k, rep)?;
        let v = repeat_kv(&v, rep)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
        if let Some(m) = mask {
            scores = scores.broadcast_add(m)?;
        }
        let probs = softmax(&scores, path)?;
        let y = probs.matmul(&v)?;
        let y = y
            .transpose(1, 2)?
            .reshape((b, t, self.n_head * self.head_dim))?;
        self.o.forward(&y)
    }
}

impl Attention {
    /// The training path on the CPU: fused RoPE that lays q/k out as `[b, heads, t, hd]`, GQA
    /// without copying K/V per query head (the query heads of one KV head are stacked as rows:
    /// `[b, n_kv, rep·t, hd]`), one fused causal softmax.
    fn forward_fused(&self, x: &Tensor, ctx: &TrainCtx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, hd) = (self.n_head, self.n_kv, self.head_dim);
        let rope = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, hd))?
                .contiguous()?
                .apply_op1(fused::Rope {
                    cos: ctx.cos.clone(),
                    sin: ctx.sin.clone(),
                })?)
        };
        let rep = nh / nkv;
        let q = rope(self.q.forward(x)?, nh)?.reshape((b, nkv, rep * t, hd))?;
        let k = rope(self.k.forward(x)?, nkv)?;
        let v = self
            .v
            .forward(x)?
            .reshape((b, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let scores = q.matmul(&k.t()?)?;
        let probs = scores.apply_op1(fused::CausalSoftmax {
            scale: (1.0 / (hd as f64).sqrt()) as f32,
        })?;
        let y = probs
            .matmul(&v)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, nh * hd))?;
        self.o.forward(&y)
    }
}

impl Mlp {
    fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        let u = self.up.forward(x)?;
        self.down.forward(&g.apply_op2(&u, fused::SwiGlu)?)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?.silu()?;
        self.down.forward(&(g * self.up.forward(x)?)?)
    }
}

impl Llama {
    /// Builds the model from HF-named weights. With `lora`, every targeted projection gets A/B
    /// vars in `varmap` (created from `seed`, or reused if already there); without, `varmap` is
    /// left untouched. Shapes are checked against `cfg` and errors name the tensor.
    pub fn new(
        cfg: &LlamaConfig,
        weights: &Weights,
        lora: Option<&LoraConfig>,
        varmap: &VarMap,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let (h, inter, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
        let (nh, nkv) = (cfg.num_attention_heads, cfg.num_kv_heads());
        let embed = weights
            .get_shaped("model.embed_tokens.weight", &[cfg.vocab_size, h])?
            .clone();
        let device = embed.device().clone();
        let bias = cfg.attention_bias();
        let proj = |layer: usize, group: &str, module: &str, out: usize, inp: usize, with_bias| {
            let base = format!("model.layers.{layer}.{group}.{module}");
            let w = weights
                .get_shaped(&format!("{base}.weight"), &[out, inp])?
                .clone();
            let b = if with_bias {
                Some(weights.get_shaped(&format!("{base}.bias"), &[out])?.clone())
            } else {
                None
            };
            match lora {
                Some(l) if l.targets(module) => {
                    LoraLinear::with_lora(w, b, l, &peft_prefix(layer, module), varmap, seed)
                }
                _ => LoraLinear::frozen(w, b),
            }
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let attn = Attention {
                q: proj(i, "self_attn", "q_proj", nh * hd, h, bias)?,
                k: proj(i, "self_attn", "k_proj", nkv * hd, h, bias)?,
                v: proj(i, "self_attn", "v_proj", nkv * hd, h, bias)?,
                o: proj(i, "self_attn", "o_proj", h, nh * hd, false)?,
                n_head: nh,
                n_kv: nkv,
                head_dim: hd,
            };
            let mlp = Mlp {
                gate: proj(i, "mlp", "gate_proj", inter, h, false)?,
                up: proj(i, "mlp", "up_proj", inter, h, false)?,
                down: proj(i, "mlp", "down_proj", h, inter, false)?,
            };
            layers.push(Layer {
                attn_norm: weights
                    .get_shaped(&format!("model.layers.{i}.input_layernorm.weight"), &[h])?
                    .clone(),
                attn,
                mlp_norm: weights
                    .get_shaped(
                        &format!("model.layers.{i}.post_attention_layernorm.weight"),
                        &[h],
                    )?
                    .clone(),
                mlp,
            });
        }
        let norm = weights.get_shaped("model.norm.weight", &[h])?.clone();
        // Tied models reuse the embedding matrix; untied ones must ship `lm_head.weight`.
        let head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            weights
                .get_shaped("lm_head.weight", &[cfg.vocab_size, h])?
                .clone()
        };
        let mut inv = inv_freq(cfg)?;
        let rope_freqs = match weights.get_opt(ROPE_FREQS) {
            Some(t) if cfg.rope_kind()? == RopeKind::Default => {
                let f: Vec<f32> = weights
                    .get_shaped(ROPE_FREQS, &[inv.len()])?
                    .to_dtype(DType::F32)?
                    .to_vec1()?;
                for (x, d) in inv.iter_mut().zip(&f) {
                    *x /= *d;
                }
                Some(t.clone())
            }
            _ => None,
        };
        let n = inv.len();
        Ok(Llama {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head: LoraLinear::frozen(head, None)?,
            inv_freq: Tensor::from_vec(inv, (1, n), &device)?,
            rope_freqs,
            device,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// `cos`, `sin` of shape `[t, head_dim/2]` for positions `start..start+t`.
    fn rope_tables(&self, start: usize, t: usize) -> Result<(Tensor, Tensor)> {
        let pos = Tensor::arange(start as u32, (start + t) as u32, &self.device)?
            .to_dtype(DType::F32)?
            .reshape((t, 1))?;
        let freqs = pos.matmul(&self.inv_freq)?;
        Ok((freqs.cos()?, freqs.sin()?))
    }

    /// Additive causal mask `[t, start+t]`: query i (absolute start+i) sees keys 0..=start+i.
    fn causal_mask(&self, start: usize, t: usize) -> Result<Option<Tensor>> {
        if t <= 1 {
            return Ok(None);
        }
        let total = start + t;
        let vals: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j > start + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        Ok(Some(Tensor::from_vec(vals, (t, total), &self.device)?))
    }

    /// Hidden states after the final norm, `[b, t, hidden]`.
    fn hidden(
        &self,
        ids: &Tensor,
        start: usize,
        mut cache: Option<&mut KvCache>,
        path: Path,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t == 0 {
            return Err(LlmError::Generate("forward called with no tokens".into()));
        }
        if let Some(c) = cache.as_deref() {
            if c.layers.len() != self.layers.len() {
                return Err(LlmError::Generate(format!(
                    "KV cache has {} layers, the model {}",
                    c.layers.len(),
                    self.layers.len()
                )));
            }
            if c.len() != start {
                return Err(LlmError::Generate(format!(
                    "start_pos {start} does not follow the {} cached positions",
                    c.len()
                )));
            }
        }
        let ids = ids.to_dtype(DType::U32)?;
        let max_id = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max_id as usize >= self.cfg.vocab_size {
            return Err(LlmError::Generate(format!(
                "token id {max_id} is outside the vocabulary of {}",
                self.cfg.vocab_size
            )));
        }
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            b,
            t,
            self.cfg.hidden_size,
        ))?;
        let (cos, sin) = self.rope_tables(start, t)?;
        let eps = self.cfg.rms_norm_eps;
        if path == Path::Train {
            let ctx = TrainCtx {
                cos: Arc::new(cos.flatten_all()?.to_vec1()?),
                sin: Arc::new(sin.flatten_all()?.to_vec1()?),
            };
            let norm = |x: &Tensor, w: &Tensor| -> Result<Tensor> {
                Ok(x.contiguous()?.apply_op1(fused::RmsNorm {
                    w: Arc::new(w.to_dtype(DType::F32)?.to_vec1()?),
                    eps: eps as f32,
                })?)
            };
            for layer in &self.layers {
                let a = layer
                    .attn
                    .forward_fused(&norm(&x, &layer.attn_norm)?, &ctx)?;
                x = (x + a)?;
                let m = layer.mlp.forward_fused(&norm(&x, &layer.mlp_norm)?)?;
                x = (x + m)?;
            }
            return norm(&x, &self.norm);
        }
        let mask = self.causal_mask(start, t)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = match cache.as_deref_mut() {
                Some(c) => c.layers.get_mut(i),
                None => None,
            };
            let hn = rms_norm(&x, &layer.attn_norm, eps, path)?;
            let a = layer
                .attn
                .forward(&hn, &cos, &sin, mask.as_ref(), slot, path)?;
            x = (x + a)?;
            let hn = rms_norm(&x, &layer.mlp_norm, eps, path)?;
            x = (&x + layer.mlp.forward(&hn)?)?;
        }
        rms_norm(&x, &self.norm, eps, path)
    }

    /// Inference forward: `ids [b, t]` (u32) at absolute positions `start_pos..`, appending to
    /// `cache` when given (then `start_pos` must equal the cached length). Returns logits
    /// `[b, t, vocab]`. Uses fused kernels: not differentiable.
    pub fn forward(
        &self,
        ids: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let h = self.hidden(ids, start_pos, cache, Path::Fused)?;
        self.lm_head.forward(&h)
    }

    /// Like [`Llama::forward`] but only the last position's logits, `[b, vocab]`: generation needs
    /// nothing else and the LM head is the largest matmul for small models.
    pub fn forward_last(
        &self,
        ids: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let h = self.hidden(ids, start_pos, cache, Path::Fused)?;
        let t = h.dim(1)?;
        let last = h.narrow(1, t - 1, 1)?;
        Ok(self.lm_head.forward(&last)?.squeeze(1)?)
    }

    /// Training forward from position 0 without cache: logits `[b, t, vocab]` through
    /// differentiable ops only, so `loss.backward()` reaches the LoRA vars.
    pub fn forward_train(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids, 0, None, self.train_path())?;
        self.lm_head.forward(&h)
    }

    /// Fused kernels on the CPU (f32), plain differentiable ops elsewhere.
    fn train_path(&self) -> Path {
        if self.device.is_cpu() && self.embed.dtype() == DType::F32 {
            Path::Train
        } else {
            Path::Differentiable
        }
    }

    /// [`Llama::forward_train`] through plain candle ops only (the reference for the fused path).
    pub fn forward_train_reference(&self, ids: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids, 0, None, Path::Differentiable)?;
        self.lm_head.forward_reference(&h)
    }

    /// The training loss: mean next-token cross-entropy over the positions whose `mask` (`[b, t]`,
    /// non-zero = target) is set, and their number; equal to
    /// [`crate::train::masked_loss`] over [`Llama::forward_train`]'s logits. Only target rows go
    /// through the LM head (the largest matmul of a small model), and the cross-entropy is one
    /// fused pass each way instead of a `[rows, vocab]` log-softmax graph.
    pub fn train_loss(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, usize)> {
        let (b, t) = ids.dims2()?;
        if t < 2 {
            return Err(LlmError::Generate(
                "a training row needs at least two tokens".into(),
            ));
        }
        let h = self.hidden(ids, 0, None, self.train_path())?;
        let id_rows: Vec<Vec<u32>> = ids.to_dtype(DType::U32)?.to_vec2()?;
        let mask_rows: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
        if mask_rows.len() != b || mask_rows.iter().any(|m| m.len() != t) {
            return Err(LlmError::Generate(format!(
                "loss mask {:?} does not match ids {:?}",
                mask.dims(),
                ids.dims()
            )));
        }
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for (bi, (ids, m)) in id_rows.iter().zip(&mask_rows).enumerate() {
            for p in 0..t - 1 {
                if m[p + 1] != 0.0 {
                    rows.push((bi * t + p) as u32);
                    targets.push(ids[p + 1]);
                }
            }
        }
        let n = rows.len();
        if n == 0 {
            return Ok((Tensor::zeros((), DType::F32, &self.device)?, 0));
        }
        let rows = Tensor::from_vec(rows, n, &self.device)?;
        let hsel = h
            .reshape((b * t, self.cfg.hidden_size))?
            .index_select(&rows, 0)?;
        let logits = self.lm_head.forward(&hsel)?;
        let nll = crate::train::nll_rows(&logits, &targets)?;
        Ok(((nll.sum_all()? / n as f64)?, n))
    }

    /// All weights under HF names with every adapter merged in (for export): the frozen model
    /// that computes what this one computes.
    pub fn merged_weights(&self) -> Result<Weights> {
        let mut w = Weights::new();
        w.insert("model.embed_tokens.weight", self.embed.clone());
        w.insert("model.norm.weight", self.norm.clone());
        if let Some(f) = &self.rope_freqs {
            w.insert(ROPE_FREQS, f.clone());
        }
        if !self.cfg.tie_word_embeddings {
            w.insert("lm_head.weight", self.lm_head.merge()?);
        }
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            w.insert(format!("{p}.input_layernorm.weight"), l.attn_norm.clone());
            w.insert(
                format!("{p}.post_attention_layernorm.weight"),
                l.mlp_norm.clone(),
            );
            for (name, lin) in [
                ("self_attn.q_proj", &l.attn.q),
                ("self_attn.k_proj", &l.attn.k),
                ("self_attn.v_proj", &l.attn.v),
                ("self_attn.o_proj", &l.attn.o),
                ("mlp.gate_proj", &l.mlp.gate),
                ("mlp.up_proj", &l.mlp.up),
                ("mlp.down_proj", &l.mlp.down),
            ] {
                w.insert(format!("{p}.{name}.weight"), lin.merge()?);
                if let Some(b) = lin.bias() {
                    w.insert(format!("{p}.{name}.bias"), b.clone());
                }
            }
        }
        Ok(w)
    }
}

/// What a generation session needs from a decoder with a KV cache: implemented by the f32
/// [`Llama`] and by the Q8_0 [`crate::qmodel::QLlama`], so one [`Session`] serves both.
pub trait CachedDecoder {
    type Cache;
    fn new_cache(&self) -> Self::Cache;
    fn cached_tokens(cache: &Self::Cache) -> usize;
    fn clear_cache(cache: &mut Self::Cache);
    /// Logits `[b, vocab]` of the last position of `ids`, fed at `start` after the cached ones.
    fn forward_last(
        &self,
        ids: &Tensor,
        start: usize,
        cache: Option<&mut Self::Cache>,
    ) -> Result<Tensor>;
    fn config(&self) -> &LlamaConfig;
    fn device(&self) -> &Device;
}

impl CachedDecoder for Llama {
    type Cache = KvCache;
    fn new_cache(&self) -> KvCache {
        Llama::new_cache(self)
    }
    fn cached_tokens(cache: &KvCache) -> usize {
        cache.len()
    }
    fn clear_cache(cache: &mut KvCache) {
        cache.reset()
    }
    fn forward_last(
        &self,
        ids: &Tensor,
        start: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        Llama::forward_last(self, ids, start, cache)
    }
    fn config(&self) -> &LlamaConfig {
        Llama::config(self)
    }
    fn device(&self) -> &Device {
        Llama::device(self)
    }
}

/// A generation session: a decoder (borrowed `&M` or shared `Arc<M>`) plus its KV cache, fed
/// incrementally by the generation loop through [`crate::generate::StepModel`].
pub struct Session<M>
where
    M: std::ops::Deref,
    M::Target: CachedDecoder,
{
    model: M,
    cache: <M::Target as CachedDecoder>::Cache,
}

/// A session on the f32 [`Llama`].
pub type LlamaSession<M> = Session<M>;

impl<M> Session<M>
where
    M: std::ops::Deref,
    M::Target: CachedDecoder,
{
    pub fn new(model: M) -> Self {
        let cache = model.new_cache();
        Session { model, cache }
    }

    /// Tokens fed so far.
    pub fn position(&self) -> usize {
        <M::Target as CachedDecoder>::cached_tokens(&self.cache)
    }
}

impl<M> crate::generate::StepModel for Session<M>
where
    M: std::ops::Deref,
    M::Target: CachedDecoder,
{
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(LlmError::Generate("step called with no tokens".into()));
        }
        let start = self.position();
        let ctx = self.max_context();
        if start + tokens.len() > ctx {
            return Err(LlmError::Generate(format!(
                "{} tokens exceed the context of {ctx}",
                start + tokens.len()
            )));
        }
        let ids = Tensor::new(tokens, self.model.device())?.unsqueeze(0)?;
        let logits = self
            .model
            .forward_last(&ids, start, Some(&mut self.cache))?;
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?)
    }

    fn reset(&mut self) {
        <M::Target as CachedDecoder>::clear_cache(&mut self.cache);
    }

    fn max_context(&self) -> usize {
        self.model.config().max_position_embeddings
    }
}

/// Random weights for `cfg` (tests and smoke runs): projections uniform in ±1/sqrt(in), norms
/// near 1, deterministic in `seed`.
pub fn random_weights(cfg: &LlamaConfig, seed: u64) -> Result<Weights> {
    random_weights_on(cfg, seed, &Device::Cpu)
}

pub fn random_weights_on(cfg: &LlamaConfig, seed: u64, device: &Device) -> Result<Weights> {
    let (h, inter, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_kv_heads());
    let mut w = Weights::new();
    let mut put = |name: String, dims: &[usize], center: f32, bound: f32| -> Result<()> {
        let mut rng = SplitMix64::for_name(seed, &name);
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| center + rng.uniform(bound)).collect();
        w.insert(name, Tensor::from_vec(v, dims, device)?);
        Ok(())
    };
    let lin = |inp: usize| 1.0 / (inp as f32).sqrt();
    put(
        "model.embed_tokens.weight".into(),
        &[cfg.vocab_size, h],
        0.0,
        1.0,
    )?;
    put("model.norm.weight".into(), &[h], 1.0, 0.1)?;
    if !cfg.tie_word_embeddings {
        put("lm_head.weight".into(), &[cfg.vocab_size, h], 0.0, lin(h))?;
    }
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        put(format!("{p}.input_layernorm.weight"), &[h], 1.0, 0.1)?;
        put(
            format!("{p}.post_attention_layernorm.weight"),
            &[h],
            1.0,
            0.1,
        )?;
        for (name, out, inp) in [
            ("self_attn.q_proj", nh * hd, h),
            ("self_attn.k_proj", nkv * hd, h),
            ("self_attn.v_proj", nkv * hd, h),
            ("self_attn.o_proj", h, nh * hd),
            ("mlp.gate_proj", inter, h),
            ("mlp.up_proj", inter, h),
            ("mlp.down_proj", h, inter),
        ] {
            put(format!("{p}.{name}.weight"), &[out, inp], 0.0, lin(inp))?;
        }
        if cfg.attention_bias() {
            for (name, out) in [
                ("q_proj", nh * hd),
                ("k_proj", nkv * hd),
                ("v_proj", nkv * hd),
            ] {
                put(format!("{p}.self_attn.{name}.bias"), &[out], 0.0, 0.1)?;
            }
        }
    }
    Ok(w)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn ids(v: &[u32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
    }

    const PROMPT: [u32; 9] = [1, 17, 5, 42, 63, 8, 8, 30, 2];

    fn tiny_model(lora: Option<&LoraConfig>, vm: &VarMap) -> Llama {
        let cfg = LlamaConfig::tiny();
        let w = random_weights(&cfg, 11).unwrap();
        Llama::new(&cfg, &w, lora, vm, 5).unwrap()
    }

    #[test]
    fn train_path_equals_inference_path() {
        let m = tiny_model(None, &VarMap::new());
        let x = Tensor::new(&[PROMPT, [3, 4, 5, 6, 7, 8, 9, 10, 11]], &Device::Cpu).unwrap();
        let a = m.forward(&x, 0, None).unwrap();
        let b = m.forward_train(&x).unwrap();
        assert_eq!(a.dims(), &[2, 9, 64]);
        let d = max_abs(&a, &b);
        assert!(d < 1e-4, "fused vs differentiable: {d}");
        // Not a constant function: different rows give different logits.
        assert!(max_abs(&a.get(0).unwrap(), &a.get(1).unwrap()) > 1e-2);
    }

    #[test]
    fn kv_cache_decode_equals_full_forward() {
        let m = tiny_model(None, &VarMap::new());
        let full = m.forward(&ids(&PROMPT), 0, None).unwrap();
        let mut cache = m.new_cache();
        // Prefill 5 tokens, then one at a time.
        let mut parts = vec![m.forward(&ids(&PROMPT[..5]), 0, Some(&mut cache)).unwrap()];
        for (i, &tok) in PROMPT.iter().enumerate().skip(5) {
            parts.push(m.forward(&ids(&[tok]), i, Some(&mut cache)).unwrap());
        }
        assert_eq!(cache.len(), PROMPT.len());
        let inc = Tensor::cat(&parts, 1).unwrap();
        let d = max_abs(&full, &inc);
        assert!(d < 1e-4, "cached vs full: {d}");
        let last = m.forward_last(&ids(&PROMPT), 0, None).unwrap();
        assert!(
            max_abs(
                &last,
                &full.get(0).unwrap().get(8).unwrap().unsqueeze(0).unwrap()
            ) < 1e-5
        );
        // A start position that does not follow the cache is an error, not garbage.
        assert!(m.forward(&ids(&[1]), 3, Some(&mut cache)).is_err());
        cache.reset();
        assert!(cache.is_empty());
        assert!(m.forward(&ids(&[64]), 0, None).is_err(), "id out of vocab");
    }

    #[test]
    fn fresh_lora_equals_base_and_merge_matches() {
        let base = tiny_model(None, &VarMap::new());
        let vm = VarMap::new();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let m = tiny_model(Some(&lora), &vm);
        assert_eq!(vm.all_vars().len(), 2 * 7 * 2);
        let x = ids(&PROMPT);
        let y0 = base.forward(&x, 0, None).unwrap();
        assert!(max_abs(&y0, &m.forward(&x, 0, None).unwrap()) < 1e-6);
        // Set every B to non-zero values.
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.ends_with("lora_B.weight") {
                let (o, r) = var.as_tensor().dims2().unwrap();
                let mut rng = SplitMix64::for_name(3, name);
                let v: Vec<f32> = (0..o * r).map(|_| rng.uniform(0.2)).collect();
                var.set(&Tensor::from_vec(v, (o, r), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let y1 = m.forward(&x, 0, None).unwrap();
        assert!(max_abs(&y0, &y1) > 1e-2, "adapter changes the output");
        let merged = Llama::new(
            m.config(),
            &m.merged_weights().unwrap(),
            None,
            &VarMap::new(),
            0,
        )
        .unwrap();
        let d = max_abs(&y1, &merged.forward(&x, 0, None).unwrap());
        assert!(d < 1e-4, "merged vs LoRA forward: {d}");
    }

    fn loss(m: &Llama, x: &Tensor) -> Tensor {
        let (b, t) = x.dims2().unwrap();
        let logits = m.forward_train(&x.narrow(1, 0, t - 1).unwrap()).unwrap();
        let targets = x.narrow(1, 1, t - 1).unwrap().reshape(b * (t - 1)).unwrap();
        candle_nn::loss::cross_entropy(&logits.reshape((b * (t - 1), 64)).unwrap(), &targets)
            .unwrap()
    }

    #[test]
    fn gradients_reach_lora_and_adamw_lowers_loss() {
        let vm = VarMap::new();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let m = tiny_model(Some(&lora), &vm);
        let x = Tensor::new(&[PROMPT, [3, 4, 5, 6, 7, 8, 9, 10, 11]], &Device::Cpu).unwrap();
        let l0 = loss(&m, &x);
        let grads = l0.backward().unwrap();
        // B starts at zero, so B gets a gradient; A's gradient is zero until B moves.
        let mut nonzero_b = 0;
        for (name, var) in vm.data().lock().unwrap().iter() {
            let g = grads.get(var.as_tensor());
            if name.ends_with("lora_B.weight") {
                let g = g.unwrap_or_else(|| panic!("no grad for {name}"));
                let n: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
                assert!(n.is_finite());
                if n > 0.0 {
                    nonzero_b += 1;
                }
            }
        }
        assert_eq!(nonzero_b, 14, "every lora_B gets a gradient");
        let mut opt = AdamW::new(
            vm.all_vars(),
            ParamsAdamW {
                lr: 1e-2,
                weight_decay: 0.0,
                ..ParamsAdamW::default()
            },
        )
        .unwrap();
        opt.backward_step(&l0).unwrap();
        let l1 = loss(&m, &x);
        let (a, b) = (
            l0.to_scalar::<f32>().unwrap(),
            l1.to_scalar::<f32>().unwrap(),
        );
        assert!(b < a, "loss {a} → {b}");
        // After one step B ≠ 0, so A receives gradient too.
        let grads = loss(&m, &x).backward().unwrap();
        let data = vm.data().lock().unwrap();
        let a_var = &data["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
        let ga: f32 = grads
            .get(a_var.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(ga > 0.0);
    }

    /// The fused CPU training path (RoPE, causal softmax, RMSNorm, SwiGLU, LoRA matmuls,
    /// cross-entropy, each with a hand-written backward) against plain candle ops with candle's
    /// own autograd: same loss, same gradient for every LoRA var.
    #[test]
    fn fused_training_path_matches_plain_ops_in_loss_and_gradients() {
        let vm = VarMap::new();
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let m = tiny_model(Some(&lora), &vm);
        // Non-zero B, so that A gets a gradient and the adapters change the output.
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.ends_with("lora_B.weight") {
                let (o, r) = var.as_tensor().dims2().unwrap();
                let mut rng = SplitMix64::for_name(9, name);
                let v: Vec<f32> = (0..o * r).map(|_| rng.uniform(0.1)).collect();
                var.set(&Tensor::from_vec(v, (o, r), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let x = Tensor::new(&[PROMPT, [3, 4, 5, 6, 7, 8, 9, 10, 11]], &Device::Cpu).unwrap();
        let mask = Tensor::new(
            &[
                [0f32, 1., 1., 0., 1., 1., 1., 0., 1.],
                [1f32, 1., 1., 1., 1., 1., 1., 1., 1.],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let (fast, n) = m.train_loss(&x, &mask).unwrap();
        assert_eq!(n, 6 + 8);
        // Reference: full logits from plain ops, log-softmax + gather, masked mean.
        let logits = m.forward_train_reference(&x).unwrap();
        assert!(max_abs(&logits, &m.forward_train(&x).unwrap()) < 1e-4);
        let pred = logits.narrow(1, 0, 8).unwrap().reshape((16, 64)).unwrap();
        let tgt = x.narrow(1, 1, 8).unwrap().reshape((16, 1)).unwrap();
        let msk = mask.narrow(1, 1, 8).unwrap().reshape(16).unwrap();
        let logp = candle_nn::ops::log_softmax(&pred, D::Minus1).unwrap();
        let picked = logp.gather(&tgt, 1).unwrap().squeeze(1).unwrap();
        let slow = ((picked * &msk).unwrap().sum_all().unwrap().neg().unwrap() / 14.0).unwrap();
        let (lf, ls) = (
            fast.to_scalar::<f32>().unwrap(),
            slow.to_scalar::<f32>().unwrap(),
        );
        assert!((lf - ls).abs() < 1e-5, "loss {lf} vs {ls}");
        let gf = fast.backward().unwrap();
        let gs = slow.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert_eq!(data.len(), 28);
        for (name, var) in data.iter() {
            let s = gs.get(var.as_tensor()).unwrap();
            let f = gf
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no fused grad for {name}"));
            let scale = s
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(scale > 0.0, "{name} has a zero gradient");
            let d = max_abs(f, s);
            assert!(d <= 1e-4 * scale.max(1e-2), "{name}: {d} (scale {scale})");
        }
    }

    #[test]
    fn session_steps_like_forward_and_resets() {
        use crate::generate::StepModel;
        let m = tiny_model(None, &VarMap::new());
        let full = m.forward(&ids(&PROMPT), 0, None).unwrap();
        let mut s = LlamaSession::new(&m);
        s.step(&PROMPT[..4]).unwrap();
        let mut last = Vec::new();
        for &t in &PROMPT[4..] {
            last = s.step(&[t]).unwrap();
        }
        assert_eq!(s.position(), PROMPT.len());
        let want: Vec<f32> = full.get(0).unwrap().get(8).unwrap().to_vec1().unwrap();
        let d = last
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "session vs full: {d}");
        s.reset();
        assert_eq!(s.position(), 0);
        let again = s.step(&PROMPT).unwrap();
        assert_eq!(again.len(), 64);
        assert!(s.step(&[]).is_err());
        assert_eq!(s.max_context(), 128);
        assert!(s.step(&[1; 120]).is_err(), "past the context");
        let shared = LlamaSession::new(std::sync::Arc::new(tiny_model(None, &VarMap::new())));
        assert_eq!(shared.position(), 0);
    }

    #[test]
    fn missing_and_misshapen_weights_are_named() {
        let cfg = LlamaConfig::tiny();
        let mut w = random_weights(&cfg, 1).unwrap();
        let mut inner = w.clone().into_inner();
        inner.remove("model.layers.1.mlp.up_proj.weight");
        let err = Llama::new(&cfg, &Weights::from_map(inner), None, &VarMap::new(), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model.layers.1.mlp.up_proj.weight"), "{err}");
        w.insert(
            "model.norm.weight",
            Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap(),
        );
        let err = Llama::new(&cfg, &w, None, &VarMap::new(), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model.norm.weight") && err.contains("[5]"),
            "{err}"
        );
    }

    #[test]
    fn qwen2_bias_and_untied_head() {
        let mut cfg = LlamaConfig::tiny();
        cfg.model_type = "qwen2".into();
        cfg.tie_word_embeddings = false;
        let w = random_weights(&cfg, 2).unwrap();
        assert!(w.contains("model.layers.0.self_attn.q_proj.bias"));
        let m = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        let a = m.forward(&ids(&PROMPT), 0, None).unwrap();
        let b = m.forward_train(&ids(&PROMPT)).unwrap();
        assert!(max_abs(&a, &b) < 1e-4);
        // The bias matters: zeroing it changes the logits.
        let mut w0 = w.clone();
        w0.insert(
            "model.layers.0.self_attn.v_proj.bias",
            Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap(),
        );
        let m0 = Llama::new(&cfg, &w0, None, &VarMap::new(), 0).unwrap();
        assert!(max_abs(&a, &m0.forward(&ids(&PROMPT), 0, None).unwrap()) > 1e-4);
    }

    #[test]
    fn gguf_rope_freqs_divide_the_frequencies() {
        let cfg = LlamaConfig::tiny();
        let mut w = random_weights(&cfg, 11).unwrap();
        let base = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        let ones = Tensor::ones(4, DType::F32, &Device::Cpu).unwrap();
        w.insert(ROPE_FREQS, ones);
        let same = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        let x = ids(&PROMPT);
        let y0 = base.forward(&x, 0, None).unwrap();
        assert!(max_abs(&y0, &same.forward(&x, 0, None).unwrap()) < 1e-6);
        w.insert(
            ROPE_FREQS,
            Tensor::new(&[1f32, 2.0, 4.0, 8.0], &Device::Cpu).unwrap(),
        );
        let scaled = Llama::new(&cfg, &w, None, &VarMap::new(), 0).unwrap();
        assert!(max_abs(&y0, &scaled.forward(&x, 0, None).unwrap()) > 1e-4);
        assert!(scaled.merged_weights().unwrap().contains(ROPE_FREQS));
        w.insert(ROPE_FREQS, Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap());
        assert!(Llama::new(&cfg, &w, None, &VarMap::new(), 0).is_err());
    }

    #[test]
    fn llama3_rope_scaling_matches_transformers_rule() {
        let json = r#"{"hidden_size":256,"intermediate_size":8,"num_hidden_layers":1,
          "num_attention_heads":2,"vocab_size":8,"rope_theta":500000.0,
          "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
          "original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let cfg = LlamaConfig::from_json_str(json).unwrap();
        let f = inv_freq(&cfg).unwrap();
        let plain = |i: usize| 1.0 / 500000f64.powf(2.0 * i as f64 / 128.0);
        // High frequencies (short wavelength) unchanged; the lowest divided by the factor.
        assert!((f[0] as f64 - plain(0)).abs() < 1e-7);
        assert!((f[63] as f64 - plain(63) / 8.0).abs() < 1e-12);
        // In between, smoothly interpolated: strictly between the two.
        let mid = (0..64)
            .find(|&i| {
                let w = 2.0 * std::f64::consts::PI / plain(i);
                w > 2048.0 && w < 8192.0
            })
            .unwrap();
        let v = f[mid] as f64;
        assert!(v < plain(mid) && v > plain(mid) / 8.0);
    }
}
