//! The CFNaiveMelPE network of torchfcpe in candle, in (time, channel) layout.
//!
//! mel → Conv1d(k3) → GroupNorm(4) → LeakyReLU → Conv1d(k3) → [optional Performer attention +
//! residual, conformer conv module + residual] × n_layers → LayerNorm → weight-normed Linear →
//! sigmoid: per frame, the activation of each of the `out_dims` cent bins. The bundled
//! `fcpe_c_v001` is conv-only; attention layers are ported for checkpoints trained with them. GroupNorm pools statistics over the whole utterance, so the stem is
//! split in two: [`Network::stem`] (first conv) and [`Network::rest`], which takes the group
//! statistics gathered over all frames. That keeps chunked runs equal to one long run.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};

use crate::config::FcpeConfig;
use crate::error::{FcpeError, Result};

/// torchfcpe hard-codes GroupNorm(4, hidden) in the input stack.
pub const GROUPS: usize = 4;
const EPS: f64 = 1e-5;
/// Depthwise kernel of the conformer convolution module.
pub const DW_KERNEL: usize = 31;
/// Frames of context on each side a frame's output depends on (two k3 convs, n × k31).
pub fn receptive_radius(n_layers: usize) -> usize {
    2 + n_layers * (DW_KERNEL / 2)
}

/// One conformer convolution module: LN → pointwise (×2 width) → GLU → depthwise → SiLU → pointwise.
#[derive(Debug)]
struct ConvModule {
    ln_w: Tensor,
    ln_b: Tensor,
    pw1_t: Tensor,
    pw1_b: Tensor,
    /// (kernel, inner) so a tap is one contiguous row.
    dw_w: Vec<f32>,
    dw_b: Vec<f32>,
    pw2_t: Tensor,
    pw2_b: Tensor,
    inner: usize,
}

/// torchfcpe's SelfAttention: Performer "FAVOR+" linear attention with the checkpoint's own
/// random-feature projection (`fast_attention.projection_matrix`), preceded by the layer's
/// LayerNorm; `use_norm` L2-normalises queries and keys first (`use_fa_norm`).
#[derive(Debug)]
struct Attention {
    norm_w: Tensor,
    norm_b: Tensor,
    q_t: Tensor,
    q_b: Tensor,
    k_t: Tensor,
    k_b: Tensor,
    v_t: Tensor,
    v_b: Tensor,
    out_t: Tensor,
    out_b: Tensor,
    /// (dim_head, features)
    proj_t: Tensor,
    heads: usize,
    dim_head: usize,
    features: usize,
    use_norm: bool,
}

/// One encoder layer.
#[derive(Debug)]
struct Layer {
    attn: Option<Attention>,
    conv: ConvModule,
}

/// Running sums of the first conv's output per GroupNorm group (f64 over long inputs).
#[derive(Debug, Clone, Default)]
pub struct GroupStats {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    count: usize,
}

impl GroupStats {
    /// Add frames (rows) of the stem output.
    pub fn add(&mut self, h: &Tensor) -> Result<()> {
        let (t, c) = h.dims2()?;
        if c % GROUPS != 0 {
            return Err(FcpeError::Format(format!(
                "{c} channels in {GROUPS} groups"
            )));
        }
        if self.sum.is_empty() {
            self.sum = vec![0.0; GROUPS];
            self.sum_sq = vec![0.0; GROUPS];
        }
        let per = c / GROUPS;
        let data = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for row in data.chunks_exact(c) {
            for (g, part) in row.chunks_exact(per).enumerate() {
                let (mut s, mut q) = (0f64, 0f64);
                for &v in part {
                    s += v as f64;
                    q += v as f64 * v as f64;
                }
                self.sum[g] += s;
                self.sum_sq[g] += q;
            }
        }
        self.count += t * per;
        Ok(())
    }

    /// (mean, biased variance) per group, as torch's GroupNorm uses.
    fn moments(&self) -> Result<Vec<(f64, f64)>> {
        if self.count == 0 {
            return Err(FcpeError::Input(
                "no frames for GroupNorm statistics".into(),
            ));
        }
        let n = self.count as f64;
        Ok(self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, q)| {
                let mean = s / n;
                (mean, (q / n - mean * mean).max(0.0))
            })
            .collect())
    }
}

/// The network with its weights, ready to run on CPU.
#[derive(Debug)]
pub struct Network {
    n_mels: usize,
    hidden: usize,
    out_dims: usize,
    stem1_t: Tensor,
    stem1_b: Tensor,
    gn_w: Vec<f32>,
    gn_b: Vec<f32>,
    stem2_t: Tensor,
    stem2_b: Tensor,
    harmonic: Option<Tensor>,
    layers: Vec<Layer>,
    norm_w: Tensor,
    norm_b: Tensor,
    out_t: Tensor,
    out_b: Tensor,
    /// Cent value of each output bin (the checkpoint's `cent_table`).
    pub cent_table: Vec<f32>,
}

/// State-dict access that names the missing or misshapen tensor.
struct Weights<'a>(&'a HashMap<String, Tensor>);

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .0
            .get(name)
            .ok_or_else(|| FcpeError::Format(format!("missing tensor {name}")))?;
        if t.dims() != shape {
            return Err(FcpeError::Format(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.0
            .get(name)
            .map(|t| t.dims().to_vec())
            .ok_or_else(|| FcpeError::Format(format!("missing tensor {name}")))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn vec(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        Ok(self.get(name, &[len])?.to_vec1::<f32>()?)
    }
}

/// A Conv1d weight (out, in, k) as the (in·k, out) matrix for unfolded input rows.
fn conv_matrix(w: &Tensor) -> Result<Tensor> {
    let (o, i, k) = w.dims3()?;
    Ok(w.reshape((o, i * k))?.t()?.contiguous()?)
}

impl Network {
    /// Build from a state dict; sizes come from the tensors and are checked against `cfg`.
    pub fn new(tensors: &HashMap<String, Tensor>, cfg: &FcpeConfig) -> Result<Self> {
        let w = Weights(tensors);
        if cfg.model.conv_only && tensors.keys().any(|k| k.contains(".attn.")) {
            // torchfcpe's strict load_state_dict refuses these too.
            return Err(FcpeError::Format(
                "attention weights in a checkpoint whose config says conv_only".into(),
            ));
        }
        let stem_shape = w.shape("input_stack.0.weight")?;
        let [hidden, n_mels, 3] = stem_shape[..] else {
            return Err(FcpeError::Format(format!(
                "input_stack.0.weight has shape {stem_shape:?}, expected (hidden, mels, 3)"
            )));
        };
        let m = &cfg.model;
        if hidden != m.hidden_dims || n_mels != cfg.mel.num_mels {
            return Err(FcpeError::Format(format!(
                "stem is {hidden}x{n_mels} but the config says hidden {} and {} mels",
                m.hidden_dims, cfg.mel.num_mels
            )));
        }
        if hidden == 0 || hidden % GROUPS != 0 {
            return Err(FcpeError::Format(format!(
                "hidden size {hidden} not divisible into {GROUPS} groups"
            )));
        }
        let n_layers = (0..)
            .take_while(|i| w.has(&format!("net.encoder_layers.{i}.conformer.net.0.weight")))
            .count();
        if n_layers != m.n_layers {
            return Err(FcpeError::Format(format!(
                "{n_layers} encoder layers in the state dict, config says {}",
                m.n_layers
            )));
        }
        let inner = 2 * hidden;
        let layers = (0..n_layers)
            .map(|i| {
                let p = format!("net.encoder_layers.{i}.conformer.net");
                let conv = ConvModule {
                    ln_w: w.get(&format!("{p}.0.weight"), &[hidden])?,
                    ln_b: w.get(&format!("{p}.0.bias"), &[hidden])?,
                    pw1_t: conv_matrix(&w.get(&format!("{p}.2.weight"), &[2 * inner, hidden, 1])?)?,
                    pw1_b: w.get(&format!("{p}.2.bias"), &[2 * inner])?,
                    dw_w: w
                        .get(&format!("{p}.4.conv.weight"), &[inner, 1, DW_KERNEL])?
                        .reshape((inner, DW_KERNEL))?
                        .t()?
                        .contiguous()?
                        .flatten_all()?
                        .to_vec1::<f32>()?,
                    dw_b: w.vec(&format!("{p}.4.conv.bias"), inner)?,
                    pw2_t: conv_matrix(&w.get(&format!("{p}.6.weight"), &[hidden, inner, 1])?)?,
                    pw2_b: w.get(&format!("{p}.6.bias"), &[hidden])?,
                    inner,
                };
                let attn = if m.conv_only {
                    None
                } else {
                    Some(Attention::new(&w, i, hidden, m.n_heads, m.use_fa_norm)?)
                };
                Ok(Layer { attn, conv })
            })
            .collect::<Result<Vec<_>>>()?;
        let out_dims = m.out_dims;
        let out_w = output_weight(&w, out_dims, hidden)?;
        let harmonic = if w.has("harmonic_emb.weight") {
            let e = w.shape("harmonic_emb.weight")?;
            let rows = e.first().copied().unwrap_or(0);
            // torchfcpe adds embedding 0 at inference.
            Some(
                w.get("harmonic_emb.weight", &[rows, hidden])?
                    .narrow(0, 0, 1)?,
            )
        } else if m.use_harmonic_emb {
            return Err(FcpeError::Format(
                "missing tensor harmonic_emb.weight".into(),
            ));
        } else {
            None
        };
        let cent_table = if w.has("cent_table") {
            w.vec("cent_table", out_dims)?
        } else {
            cent_table(m.f0_min, m.f0_max, out_dims)
        };
        Ok(Self {
            n_mels,
            hidden,
            out_dims,
            stem1_t: conv_matrix(&w.get("input_stack.0.weight", &[hidden, n_mels, 3])?)?,
            stem1_b: w.get("input_stack.0.bias", &[hidden])?,
            gn_w: w.vec("input_stack.1.weight", hidden)?,
            gn_b: w.vec("input_stack.1.bias", hidden)?,
            stem2_t: conv_matrix(&w.get("input_stack.3.weight", &[hidden, hidden, 3])?)?,
            stem2_b: w.get("input_stack.3.bias", &[hidden])?,
            harmonic,
            layers,
            norm_w: w.get("norm.weight", &[hidden])?,
            norm_b: w.get("norm.bias", &[hidden])?,
            out_t: out_w.t()?.contiguous()?,
            out_b: w.get("output_proj.bias", &[out_dims])?,
            cent_table,
        })
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    pub fn out_dims(&self) -> usize {
        self.out_dims
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// True when every output frame depends only on [`receptive_radius`] frames around it
    /// (no attention layers), so the input can be processed in chunks.
    pub fn is_local(&self) -> bool {
        self.layers.iter().all(|l| l.attn.is_none())
    }

    /// First convolution of the input stack: mel rows (T, n_mels) → (T, hidden).
    pub fn stem(&self, mel: &[f32], frames: usize) -> Result<Tensor> {
        if mel.len() != frames * self.n_mels || frames == 0 {
            return Err(FcpeError::Input(format!(
                "{} mel values for {frames} frames of {}",
                mel.len(),
                self.n_mels
            )));
        }
        let x = Tensor::from_slice(mel, (frames, self.n_mels), &Device::Cpu)?;
        conv_k3(&x, &self.stem1_t, &self.stem1_b)
    }

    /// Everything after the first conv, with GroupNorm statistics of the whole utterance.
    /// Returns the sigmoid activations (T, out_dims).
    pub fn rest(&self, h: &Tensor, stats: &GroupStats) -> Result<Tensor> {
        let (_, c) = h.dims2()?;
        let moments = stats.moments()?;
        if c != self.hidden || moments.len() != GROUPS {
            return Err(FcpeError::Input(format!("stem output with {c} channels")));
        }
        let per = c / GROUPS;
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
            .map(|ch| {
                let (mean, var) = moments[ch / per];
                let s = self.gn_w[ch] as f64 / (var + EPS).sqrt();
                (s as f32, (self.gn_b[ch] as f64 - mean * s) as f32)
            })
            .unzip();
        let scale = Tensor::from_vec(scale, (1, c), &Device::Cpu)?;
        let shift = Tensor::from_vec(shift, (1, c), &Device::Cpu)?;
        let x = h.broadcast_mul(&scale)?.broadcast_add(&shift)?;
        let x = x.maximum(&(&x * 0.01)?)?; // LeakyReLU(0.01)
        let mut x = conv_k3(&x, &self.stem2_t, &self.stem2_b)?;
        if let Some(e) = &self.harmonic {
            x = x.broadcast_add(e)?;
        }
        for layer in &self.layers {
            if let Some(attn) = &layer.attn {
                x = (&x + attn.forward(&x)?)?;
            }
            x = (&x + layer.conv.forward(&x)?)?;
        }
        let x = candle_nn::ops::layer_norm(&x, &self.norm_w, &self.norm_b, EPS as f32)?;
        let x = x.matmul(&self.out_t)?.broadcast_add(&self.out_b)?;
        Ok(candle_nn::ops::sigmoid(&x)?)
    }

    /// The whole network on one mel sequence (GroupNorm over exactly these frames).
    pub fn forward(&self, mel: &[f32], frames: usize) -> Result<Tensor> {
        let h = self.stem(mel, frames)?;
        let mut stats = GroupStats::default();
        stats.add(&h)?;
        self.rest(&h, &stats)
    }
}

/// `output_proj` weight: weight norm `g · v / ‖v‖` per output row, or a plain weight.
fn output_weight(w: &Weights, out_dims: usize, hidden: usize) -> Result<Tensor> {
    let (g, v) = if w.has("output_proj.weight_g") {
        ("output_proj.weight_g", "output_proj.weight_v")
    } else if w.has("output_proj.parametrizations.weight.original0") {
        (
            "output_proj.parametrizations.weight.original0",
            "output_proj.parametrizations.weight.original1",
        )
    } else {
        return w.get("output_proj.weight", &[out_dims, hidden]);
    };
    let g = w.get(g, &[out_dims, 1])?;
    let v = w.get(v, &[out_dims, hidden])?;
    let norm = v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(v.broadcast_mul(&g.broadcast_div(&norm)?)?)
}

/// torchfcpe's cent table when a checkpoint lacks the buffer: linspace over cents of f0_min..f0_max.
fn cent_table(f0_min: f64, f0_max: f64, n: usize) -> Vec<f32> {
    let (a, b) = (
        1200.0 * (f0_min / 10.0).log2(),
        1200.0 * (f0_max / 10.0).log2(),
    );
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1).max(1) as f64) as f32)
        .collect()
}

/// Conv1d, kernel 3, padding 1, on (T, C_in) rows: unfold to (T, C_in·3) and one matmul.
fn conv_k3(x: &Tensor, w_t: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (t, c) = x.dims2()?;
    let zero = Tensor::zeros((1, c), DType::F32, &Device::Cpu)?;
    let padded = Tensor::cat(&[&zero, x, &zero], 0)?;
    let unfolded = Tensor::stack(
        &[
            padded.narrow(0, 0, t)?,
            padded.narrow(0, 1, t)?,
            padded.narrow(0, 2, t)?,
        ],
        2,
    )?
    .reshape((t, c * 3))?;
    Ok(unfolded.matmul(w_t)?.broadcast_add(b)?)
}

impl Attention {
    fn new(w: &Weights, layer: usize, dim: usize, heads: usize, use_norm: bool) -> Result<Self> {
        let p = format!("net.encoder_layers.{layer}");
        let q_shape = w.shape(&format!("{p}.attn.to_q.weight"))?;
        let inner = q_shape.first().copied().unwrap_or(0);
        if heads == 0 || inner == 0 || inner % heads != 0 {
            return Err(FcpeError::Format(format!(
                "{p}.attn.to_q.weight has shape {q_shape:?}, not {heads} heads"
            )));
        }
        let dim_head = inner / heads;
        let proj_name = format!("{p}.attn.fast_attention.projection_matrix");
        let features = w.shape(&proj_name)?.first().copied().unwrap_or(0);
        if features == 0 {
            return Err(FcpeError::Format(format!("{proj_name} is empty")));
        }
        let linear = |name: &str, out: usize, inp: usize| -> Result<(Tensor, Tensor)> {
            let wt = w.get(&format!("{p}.attn.{name}.weight"), &[out, inp])?;
            let b = w.get(&format!("{p}.attn.{name}.bias"), &[out])?;
            Ok((wt.t()?.contiguous()?, b))
        };
        let (q_t, q_b) = linear("to_q", inner, dim)?;
        let (k_t, k_b) = linear("to_k", inner, dim)?;
        let (v_t, v_b) = linear("to_v", inner, dim)?;
        let (out_t, out_b) = linear("to_out", dim, inner)?;
        Ok(Self {
            norm_w: w.get(&format!("{p}.norm.weight"), &[dim])?,
            norm_b: w.get(&format!("{p}.norm.bias"), &[dim])?,
            q_t,
            q_b,
            k_t,
            k_b,
            v_t,
            v_b,
            out_t,
            out_b,
            proj_t: w
                .get(&proj_name, &[features, dim_head])?
                .t()?
                .contiguous()?,
            heads,
            dim_head,
            features,
            use_norm,
        })
    }

    /// (T, dim) → (T, dim), the residual branch `attn(norm(x))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, _) = x.dims2()?;
        let (h, d) = (self.heads, self.dim_head);
        let x = candle_nn::ops::layer_norm(x, &self.norm_w, &self.norm_b, EPS as f32)?;
        let split = |w: &Tensor, b: &Tensor| -> Result<Tensor> {
            Ok(x.matmul(w)?
                .broadcast_add(b)?
                .reshape((t, h, d))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let (mut q, mut k, v) = (
            split(&self.q_t, &self.q_b)?,
            split(&self.k_t, &self.k_b)?,
            split(&self.v_t, &self.v_b)?,
        );
        if self.use_norm {
            let l2 = |a: &Tensor| -> Result<Tensor> {
                Ok(a.broadcast_div(&(a.sqr()?.sum_keepdim(2)?.sqrt()? + 1e-8)?)?)
            };
            q = l2(&q)?;
            k = l2(&k)?;
        }
        let qf = self.features(&q, true)?; // (H, T, F)
        let kf = self.features(&k, false)?;
        let k_sum = kf.sum_keepdim(1)?; // (H, 1, F)
        let d_inv = (qf.broadcast_mul(&k_sum)?.sum_keepdim(2)? + 1e-8)?.recip()?; // (H, T, 1)
        let context = kf.transpose(1, 2)?.contiguous()?.matmul(&v)?; // (H, F, D)
        let out = qf.matmul(&context)?.broadcast_mul(&d_inv)?; // (H, T, D)
        let out = out.transpose(0, 1)?.contiguous()?.reshape((t, h * d))?;
        Ok(out.matmul(&self.out_t)?.broadcast_add(&self.out_b)?)
    }

    /// Performer's softmax kernel features of (H, T, D) queries or keys. As in torchfcpe, the
    /// query side subtracts its per-row max before `exp`, the key side adds its eps inside it.
    fn features(&self, data: &Tensor, is_query: bool) -> Result<Tensor> {
        const KERNEL_EPS: f64 = 1e-4;
        let (h, t, d) = data.dims3()?;
        let normalizer = (d as f64).powf(-0.25);
        let ratio = (self.features as f64).powf(-0.5);
        let dash = (data * normalizer)?
            .reshape((h * t, d))?
            .matmul(&self.proj_t)?
            .reshape((h, t, self.features))?;
        let diag = (data.sqr()?.sum_keepdim(2)? * (0.5 * normalizer * normalizer))?;
        let z = dash.broadcast_sub(&diag)?;
        let e = if is_query {
            (z.broadcast_sub(&dash.max_keepdim(2)?)?.exp()? + KERNEL_EPS)?
        } else {
            (z + KERNEL_EPS)?.exp()?
        };
        Ok((e * ratio)?)
    }
}

impl ConvModule {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, _) = x.dims2()?;
        let h = candle_nn::ops::layer_norm(x, &self.ln_w, &self.ln_b, EPS as f32)?;
        let h = h.matmul(&self.pw1_t)?.broadcast_add(&self.pw1_b)?;
        let h = h.flatten_all()?.to_vec1::<f32>()?;
        let y = glu_depthwise_silu(&h, t, self.inner, &self.dw_w, &self.dw_b);
        let y = Tensor::from_vec(y, (t, self.inner), &Device::Cpu)?;
        Ok(y.matmul(&self.pw2_t)?.broadcast_add(&self.pw2_b)?)
    }
}

/// GLU over channels, then the depthwise conv (zero padding K/2 in time), bias and SiLU.
/// `h` is (T, 2·C) rows; `w` is (K, C). A plain loop: per-channel taps vectorise well here, and
/// torch's grouped conv would be C tiny convolutions in candle.
fn glu_depthwise_silu(h: &[f32], t: usize, c: usize, w: &[f32], b: &[f32]) -> Vec<f32> {
    let k = w.len() / c;
    let pad = k / 2;
    let mut glu = vec![0f32; (t + k - 1) * c];
    for (row, out) in h
        .chunks_exact(2 * c)
        .zip(glu[pad * c..].chunks_exact_mut(c))
    {
        let (a, g) = row.split_at(c);
        for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
            *o = a / (1.0 + (-g).exp());
        }
    }
    let mut y = vec![0f32; t * c];
    for (ti, out) in y.chunks_exact_mut(c).enumerate() {
        out.copy_from_slice(b);
        for (tap, wk) in w.chunks_exact(c).enumerate() {
            let src = &glu[(ti + tap) * c..(ti + tap + 1) * c];
            for ((o, &s), &wv) in out.iter_mut().zip(src).zip(wk) {
                *o += s * wv;
            }
        }
        for o in out.iter_mut() {
            *o /= 1.0 + (-*o).exp();
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depthwise_matches_a_direct_sum() {
        // 2 channels, kernel 3 (pad 1), 4 frames.
        let (t, c) = (4, 2);
        let h: Vec<f32> = (0..t * 2 * c).map(|i| (i as f32 * 0.37).sin()).collect();
        let w = vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6]; // (K=3, C=2)
        let b = vec![0.05, -0.05];
        let y = glu_depthwise_silu(&h, t, c, &w, &b);
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let glu = |ti: isize, ch: usize| -> f32 {
            if ti < 0 || ti >= t as isize {
                return 0.0;
            }
            let r = &h[ti as usize * 2 * c..];
            r[ch] * sig(r[c + ch])
        };
        for ti in 0..t {
            for ch in 0..c {
                let mut s = b[ch];
                for k in 0..3 {
                    s += w[k * c + ch] * glu(ti as isize + k as isize - 1, ch);
                }
                let want = s * sig(s);
                assert!((y[ti * c + ch] - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn radius_covers_the_bundled_model() {
        assert_eq!(receptive_radius(6), 92);
    }
}
