//! The HuBERT-base encoder (fairseq `HubertModel`, post-norm, "default" extractor) in candle.
//!
//! waveform -> 7 convolutions (GroupNorm after the first, GELU after each) -> LayerNorm ->
//! projection -> + GELU(grouped positional convolution) -> LayerNorm -> post-norm transformer
//! layers. Dimensions come from the tensor shapes, so the same code runs HuBERT-base,
//! ContentVec and the small random model of the tests.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};

use crate::checkpoint::{Checkpoint, POS_CONV_WEIGHT};
use crate::error::{ContentError, Result};

/// Query frames per attention block: 10 s of audio (500 frames) is one block; an hour would need
/// 12 heads x 512 x 180000 x 4 bytes = 4.4 GB per block instead of 1.5 TB for the whole matrix.
const ATTENTION_BLOCK: usize = 512;

/// Kernel widths of the convolutional feature extractor (HuBERT/wav2vec 2.0 "base" stack).
pub const CONV_KERNELS: [usize; 7] = [10, 3, 3, 3, 3, 2, 2];
/// Strides of the convolutional feature extractor: 5 * 2^6 = 320 samples per frame.
pub const CONV_STRIDES: [usize; 7] = [5, 2, 2, 2, 2, 2, 2];
/// Samples per output frame: 20 ms at 16 kHz, 50 frames per second.
pub const SAMPLES_PER_FRAME: usize = 320;
/// Samples the first frame needs (25 ms at 16 kHz); shorter inputs give no frame at all.
pub const RECEPTIVE_FIELD: usize = 400;

/// Frames the encoder produces for `samples` samples of 16 kHz audio: each unpadded convolution
/// keeps `(len - kernel) / stride + 1` steps, which composes to `(samples - 400) / 320 + 1`, and
/// 0 below 400 samples. Every transformer layer keeps the frame count.
pub fn frame_count(samples: usize) -> usize {
    CONV_KERNELS
        .iter()
        .zip(CONV_STRIDES)
        .try_fold(samples, |len, (&k, s)| {
            len.checked_sub(k).map(|l| l / s + 1)
        })
        .unwrap_or(0)
}

/// The architecture as read from the weights (and, for the head count, the checkpoint's config).
#[derive(Debug, Clone, PartialEq)]
pub struct HubertConfig {
    /// Channels of the convolutional feature extractor (512 for base).
    pub conv_dim: usize,
    /// Transformer width (768 for base).
    pub hidden: usize,
    pub heads: usize,
    /// Feed-forward width (3072 for base).
    pub ffn: usize,
    /// Transformer layers (12 for base).
    pub layers: usize,
    pub pos_conv_kernel: usize,
    pub pos_conv_groups: usize,
    /// Output width of `final_proj` (256 for RVC's hubert_base / ContentVec), if present.
    pub final_proj_dim: Option<usize>,
    pub layer_norm_eps: f64,
}

struct Linear {
    /// Stored transposed, `(in, out)`, so the forward is one matmul.
    wt: Tensor,
    b: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.wt)?.broadcast_add(&self.b)?)
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl Norm {
    /// LayerNorm over the last axis.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)?)
    }
}

struct Conv {
    w: Tensor,
    b: Option<Tensor>,
    stride: usize,
    /// GroupNorm with one group per channel: each channel normalised over time (first layer).
    group_norm: Option<Norm>,
}

struct Layer {
    /// q, k and v projections in one `(hidden, 3 * hidden)` matmul.
    qkv: Linear,
    out: Linear,
    attn_norm: Norm,
    fc1: Linear,
    fc2: Linear,
    final_norm: Norm,
}

/// The encoder's weights, ready to run.
pub struct Hubert {
    config: HubertConfig,
    convs: Vec<Conv>,
    feature_norm: Norm,
    projection: Linear,
    pos_conv_w: Tensor,
    pos_conv_b: Tensor,
    encoder_norm: Norm,
    layers: Vec<Layer>,
    final_proj: Option<Linear>,
}

/// Shape-checked access to the checkpoint's tensors.
struct Weights<'a>(&'a HashMap<String, Tensor>);

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.any(name)?;
        if t.dims() != shape {
            return Err(ContentError::BadShape {
                name: name.into(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    fn any(&self, name: &str) -> Result<Tensor> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| ContentError::MissingTensor { name: name.into() })
    }

    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>> {
        let t = self.any(name)?;
        if t.rank() != rank {
            return Err(ContentError::BadShape {
                name: name.into(),
                expected: vec![0; rank],
                found: t.dims().to_vec(),
            });
        }
        Ok(t.dims().to_vec())
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize) -> Result<Linear> {
        Ok(Linear {
            wt: self
                .get(&format!("{prefix}.weight"), &[out, inp])?
                .t()?
                .contiguous()?,
            b: self.get(&format!("{prefix}.bias"), &[out])?,
        })
    }

    fn norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<Norm> {
        Ok(Norm {
            w: self.get(&format!("{prefix}.weight"), &[dim])?,
            b: self.get(&format!("{prefix}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }
}

impl Hubert {
    /// Build the model from a checkpoint, checking every shape; refuses HuBERT variants this
    /// forward pass does not implement (pre-norm "large" models, a layer-norm extractor, another
    /// conv stack) instead of computing wrong features.
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Self> {
        let hints = &ck.hints;
        if hints.layer_norm_first == Some(true) {
            return Err(ContentError::Unsupported(
                "pre-norm transformer (layer_norm_first / do_stable_layer_norm, e.g. HuBERT-large)"
                    .into(),
            ));
        }
        if hints.layer_norm_extractor == Some(true) {
            return Err(ContentError::Unsupported(
                "layer-norm feature extractor (extractor_mode=layer_norm); only the \"default\" \
                 GroupNorm extractor of HuBERT-base is implemented"
                    .into(),
            ));
        }
        if hints.normalize == Some(true) {
            return Err(ContentError::Unsupported(
                "checkpoint expects a standardised waveform (normalize=true); HuBERT-base and \
                 ContentVec take the raw waveform"
                    .into(),
            ));
        }
        for (what, got, want) in [
            ("conv_kernel", &hints.conv_kernels, &CONV_KERNELS),
            ("conv_stride", &hints.conv_strides, &CONV_STRIDES),
        ] {
            if let Some(got) = got {
                if got.as_slice() != want {
                    return Err(ContentError::Unsupported(format!(
                        "{what} {got:?}; only the HuBERT-base stack {want:?} is implemented"
                    )));
                }
            }
        }
        let w = Weights(&ck.tensors);
        let eps = hints.layer_norm_eps.unwrap_or(1e-5);

        let conv0 = w.dims("feature_extractor.conv_layers.0.0.weight", 3)?;
        let conv_dim = conv0[0];
        let mut convs = Vec::with_capacity(CONV_KERNELS.len());
        for (i, (&k, &s)) in CONV_KERNELS.iter().zip(&CONV_STRIDES).enumerate() {
            let inp = if i == 0 { 1 } else { conv_dim };
            let prefix = format!("feature_extractor.conv_layers.{i}");
            let group_norm = if i == 0 {
                Some(w.norm(&format!("{prefix}.2"), conv_dim, 1e-5)?)
            } else {
                if ck.tensors.contains_key(&format!("{prefix}.2.1.weight")) {
                    return Err(ContentError::Unsupported(
                        "layer-norm feature extractor (a norm after every conv layer)".into(),
                    ));
                }
                None
            };
            let bias_name = format!("{prefix}.0.bias");
            convs.push(Conv {
                w: w.get(&format!("{prefix}.0.weight"), &[conv_dim, inp, k])?,
                b: match ck.tensors.contains_key(&bias_name) {
                    true => Some(w.get(&bias_name, &[conv_dim])?),
                    false => None,
                },
                stride: s,
                group_norm,
            });
        }
        if ck.tensors.contains_key(&format!(
            "feature_extractor.conv_layers.{}.0.weight",
            CONV_KERNELS.len()
        )) {
            return Err(ContentError::Unsupported(
                "more than 7 feature-extractor convolutions".into(),
            ));
        }

        let hidden = w.dims("post_extract_proj.weight", 2)?[0];
        let projection = w.linear("post_extract_proj", hidden, conv_dim)?;
        let feature_norm = w.norm("layer_norm", conv_dim, eps)?;

        let pos = w.dims(POS_CONV_WEIGHT, 3)?;
        let (per_group, pos_conv_kernel) = (pos[1], pos[2]);
        if per_group == 0 || hidden % per_group != 0 {
            return Err(ContentError::BadShape {
                name: POS_CONV_WEIGHT.into(),
                expected: vec![hidden, hidden / 16, 128],
                found: pos,
            });
        }
        let pos_conv_groups = hidden / per_group;
        let pos_conv_w = w.get(POS_CONV_WEIGHT, &[hidden, per_group, pos_conv_kernel])?;
        let pos_conv_b = w.get("encoder.pos_conv.0.bias", &[hidden])?;
        let encoder_norm = w.norm("encoder.layer_norm", hidden, eps)?;

        let layers_n = (0..)
            .take_while(|n| {
                ck.tensors
                    .contains_key(&format!("encoder.layers.{n}.fc1.weight"))
            })
            .count();
        if layers_n == 0 {
            return Err(ContentError::MissingTensor {
                name: "encoder.layers.0.fc1.weight".into(),
            });
        }
        let ffn = w.dims("encoder.layers.0.fc1.weight", 2)?[0];
        // Every HuBERT/ContentVec release uses 64-wide heads; a config that says otherwise wins.
        let heads = hints.heads.unwrap_or(hidden / 64).max(1);
        if hidden % heads != 0 {
            return Err(ContentError::Unsupported(format!(
                "{heads} attention heads do not divide the width {hidden}"
            )));
        }
        let mut layers = Vec::with_capacity(layers_n);
        for n in 0..layers_n {
            let p = format!("encoder.layers.{n}");
            let q = w.linear(&format!("{p}.self_attn.q_proj"), hidden, hidden)?;
            let k = w.linear(&format!("{p}.self_attn.k_proj"), hidden, hidden)?;
            let v = w.linear(&format!("{p}.self_attn.v_proj"), hidden, hidden)?;
            layers.push(Layer {
                qkv: Linear {
                    wt: Tensor::cat(&[&q.wt, &k.wt, &v.wt], 1)?,
                    b: Tensor::cat(&[&q.b, &k.b, &v.b], 0)?,
                },
                out: w.linear(&format!("{p}.self_attn.out_proj"), hidden, hidden)?,
                attn_norm: w.norm(&format!("{p}.self_attn_layer_norm"), hidden, eps)?,
                fc1: w.linear(&format!("{p}.fc1"), ffn, hidden)?,
                fc2: w.linear(&format!("{p}.fc2"), hidden, ffn)?,
                final_norm: w.norm(&format!("{p}.final_layer_norm"), hidden, eps)?,
            });
        }

        let final_proj = match ck.tensors.contains_key("final_proj.weight") {
            true => {
                let out = w.dims("final_proj.weight", 2)?[0];
                Some(w.linear("final_proj", out, hidden)?)
            }
            false => None,
        };
        let config = HubertConfig {
            conv_dim,
            hidden,
            heads,
            ffn,
            layers: layers_n,
            pos_conv_kernel,
            pos_conv_groups,
            final_proj_dim: final_proj.as_ref().map(|p| p.b.dims1()).transpose()?,
            layer_norm_eps: eps,
        };
        Ok(Self {
            config,
            convs,
            feature_norm,
            projection,
            pos_conv_w,
            pos_conv_b,
            encoder_norm,
            layers,
            final_proj,
        })
    }

    pub fn config(&self) -> &HubertConfig {
        &self.config
    }

    /// Output of the convolutional feature extractor, `(frames, conv_dim)`.
    pub fn conv_features(&self, wav: &[f32]) -> Result<Tensor> {
        if wav.len() < RECEPTIVE_FIELD {
            return Err(ContentError::InputTooShort {
                samples: wav.len(),
                min: RECEPTIVE_FIELD,
            });
        }
        let mut x = Tensor::from_slice(wav, (1, 1, wav.len()), &Device::Cpu)?;
        for conv in &self.convs {
            x = x.conv1d(&conv.w, 0, conv.stride, 1, 1)?;
            if let Some(b) = &conv.b {
                x = x.broadcast_add(&b.reshape((1, (), 1))?)?;
            }
            if let Some(gn) = &conv.group_norm {
                x = group_norm_per_channel(&x, gn)?;
            }
            x = x.gelu_erf()?;
        }
        Ok(x.squeeze(0)?.t()?.contiguous()?)
    }

    /// Hidden state after transformer layer `layer` (1-based, as fairseq's `output_layer`; 0 is
    /// the input of the first layer), `(frames, hidden)`.
    pub fn hidden_state(&self, wav: &[f32], layer: usize) -> Result<Tensor> {
        if layer > self.layers.len() {
            return Err(ContentError::LayerOutOfRange {
                layer,
                layers: self.layers.len(),
            });
        }
        let feats = self.conv_features(wav)?;
        let x = self
            .projection
            .forward(&self.feature_norm.forward(&feats)?)?;
        let x = (&x + self.pos_conv(&x)?)?;
        let mut x = self.encoder_norm.forward(&x)?;
        for l in &self.layers[..layer] {
            x = self.layer(l, &x)?;
        }
        Ok(x)
    }

    /// `final_proj` applied to a hidden state (RVC v1's 256-wide features).
    pub fn project(&self, hidden: &Tensor) -> Result<Tensor> {
        self.final_proj
            .as_ref()
            .ok_or(ContentError::NoFinalProj)?
            .forward(hidden)
    }

    /// GELU(conv(x)) with "same" padding: pad by kernel/2 on both sides, and for an even kernel
    /// drop the one extra frame at the end (fairseq's SamePad).
    fn pos_conv(&self, x: &Tensor) -> Result<Tensor> {
        let frames = x.dim(0)?;
        let k = self.config.pos_conv_kernel;
        let y = x.t()?.unsqueeze(0)?.contiguous()?.conv1d(
            &self.pos_conv_w,
            k / 2,
            1,
            1,
            self.config.pos_conv_groups,
        )?;
        let y = y
            .broadcast_add(&self.pos_conv_b.reshape((1, (), 1))?)?
            .narrow(2, 0, frames)?
            .gelu_erf()?;
        Ok(y.squeeze(0)?.t()?.contiguous()?)
    }

    /// One post-norm layer: x = LN(x + attn(x)); x = LN(x + fc2(gelu(fc1(x)))).
    fn layer(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let (t, h) = x.dims2()?;
        let heads = self.config.heads;
        let d = h / heads;
        let qkv = l.qkv.forward(x)?;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(1, i * h, h)?
                .reshape((t, heads, d))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = (split(0)? * (d as f64).powf(-0.5))?;
        let (k, v) = (split(1)?, split(2)?);
        let attn = attention(&q, &k, &v, ATTENTION_BLOCK)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((t, h))?;
        let x = l.attn_norm.forward(&(x + l.out.forward(&attn)?)?)?;
        let ff = l.fc2.forward(&l.fc1.forward(&x)?.gelu_erf()?)?;
        l.final_norm.forward(&(x + ff)?)
    }
}

/// softmax(q k^T) v over `(heads, frames, head_dim)`, `block` query rows at a time: softmax is
/// per row, so this is exact, and the (heads, frames, frames) matrix of a long recording is
/// never held whole.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, block: usize) -> Result<Tensor> {
    let t = q.dim(1)?;
    let kt = k.t()?.contiguous()?;
    let block = block.max(1);
    let mut out = Vec::with_capacity(t.div_ceil(block));
    for start in (0..t).step_by(block) {
        let rows = block.min(t - start);
        let qb = q.narrow(1, start, rows)?.contiguous()?;
        let probs = candle_nn::ops::softmax_last_dim(&qb.matmul(&kt)?)?;
        out.push(probs.matmul(v)?);
    }
    Ok(Tensor::cat(&out, 1)?)
}

/// GroupNorm with as many groups as channels on `(1, channels, time)`: every channel scaled to
/// zero mean and unit variance over time (biased variance, as torch), then the affine map.
fn group_norm_per_channel(x: &Tensor, n: &Norm) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centred.broadcast_div(&(var + f64::from(n.eps))?.sqrt()?)?;
    Ok(normed
        .broadcast_mul(&n.w.reshape((1, (), 1))?)?
        .broadcast_add(&n.b.reshape((1, (), 1))?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_attention_equals_one_block() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1., (3, 50, 8), &dev)?;
        let k = Tensor::randn(0f32, 1., (3, 50, 8), &dev)?;
        let v = Tensor::randn(0f32, 1., (3, 50, 8), &dev)?;
        let whole = attention(&q, &k, &v, 512)?;
        let blocked = attention(&q, &k, &v, 7)?;
        assert_eq!(blocked.dims(), &[3, 50, 8]);
        let diff = (whole - blocked)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6, "{diff}");
        Ok(())
    }

    #[test]
    fn frame_count_follows_the_conv_stack() {
        assert_eq!(frame_count(0), 0);
        assert_eq!(frame_count(399), 0);
        assert_eq!(frame_count(400), 1);
        assert_eq!(frame_count(719), 1);
        assert_eq!(frame_count(720), 2);
        assert_eq!(frame_count(16000), 49);
        assert_eq!(frame_count(24000), 74);
        for n in 400..5000 {
            assert_eq!(
                frame_count(n),
                (n - RECEPTIVE_FIELD) / SAMPLES_PER_FRAME + 1,
                "{n}"
            );
        }
    }
}
