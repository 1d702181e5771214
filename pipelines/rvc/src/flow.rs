//! `flow` (ResidualCouplingBlock) run in reverse: prior sample -> decoder latent.
//! Four mean-only affine coupling layers, each conditioned on the speaker through a WaveNet
//! stack, with channel flips between them. RVC fixes kernel 5, dilation rate 1, 3 WN layers.

use candle_core::{Tensor, D};

use crate::checkpoint::Weights;
use crate::config::SynthConfig;
use crate::error::Result;
use crate::nn::{Conv1d, ConvSpec};

const N_FLOWS: usize = 4;
const WN_KERNEL: usize = 5;
const WN_LAYERS: usize = 3;

/// `modules.WN` (dilation rate 1, so every layer is a plain kernel-5 conv).
#[derive(Debug, Clone)]
struct WaveNet {
    in_layers: Vec<Conv1d>,
    res_skip: Vec<Conv1d>,
    cond: Conv1d,
    hidden: usize,
}

impl WaveNet {
    fn load(w: &Weights, prefix: &str, hidden: usize, gin: usize) -> Result<Self> {
        let mut in_layers = Vec::new();
        let mut res_skip = Vec::new();
        for i in 0..WN_LAYERS {
            in_layers.push(Conv1d::load(
                w,
                &format!("{prefix}.in_layers.{i}"),
                hidden,
                2 * hidden,
                ConvSpec::same(WN_KERNEL),
            )?);
            let out = if i + 1 < WN_LAYERS {
                2 * hidden
            } else {
                hidden
            };
            res_skip.push(Conv1d::load(
                w,
                &format!("{prefix}.res_skip_layers.{i}"),
                hidden,
                out,
                ConvSpec::same(1),
            )?);
        }
        let cond = Conv1d::load(
            w,
            &format!("{prefix}.cond_layer"),
            gin,
            2 * hidden * WN_LAYERS,
            ConvSpec::same(1),
        )?;
        Ok(Self {
            in_layers,
            res_skip,
            cond,
            hidden,
        })
    }

    /// `x`: `[1, hidden, t]`, `g`: `[1, gin, 1]`.
    fn forward(&self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        let h = self.hidden;
        let g = self.cond.forward(g)?;
        let mut x = x.clone();
        let mut output: Option<Tensor> = None;
        for (i, (inl, rs)) in self.in_layers.iter().zip(&self.res_skip).enumerate() {
            let g_l = g.narrow(1, i * 2 * h, 2 * h)?;
            let a = inl.forward(&x)?.broadcast_add(&g_l)?;
            let acts =
                (a.narrow(1, 0, h)?.tanh()? * candle_nn::ops::sigmoid(&a.narrow(1, h, h)?)?)?;
            let rs = rs.forward(&acts)?;
            let skip = if i + 1 < WN_LAYERS {
                x = (x + rs.narrow(1, 0, h)?)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            output = Some(match output {
                Some(o) => (o + skip)?,
                None => skip,
            });
        }
        Ok(output.unwrap_or(x))
    }
}

/// `modules.ResidualCouplingLayer` with `mean_only=True`.
#[derive(Debug, Clone)]
struct Coupling {
    pre: Conv1d,
    enc: WaveNet,
    post: Conv1d,
    half: usize,
}

impl Coupling {
    fn load(w: &Weights, prefix: &str, channels: usize, hidden: usize, gin: usize) -> Result<Self> {
        let half = channels / 2;
        Ok(Self {
            pre: Conv1d::load(w, &format!("{prefix}.pre"), half, hidden, ConvSpec::same(1))?,
            enc: WaveNet::load(w, &format!("{prefix}.enc"), hidden, gin)?,
            post: Conv1d::load(
                w,
                &format!("{prefix}.post"),
                hidden,
                half,
                ConvSpec::same(1),
            )?,
            half,
        })
    }

    fn reverse(&self, x: &Tensor, g: &Tensor) -> Result<Tensor> {
        let x0 = x.narrow(1, 0, self.half)?;
        let x1 = x.narrow(1, self.half, self.half)?;
        let h = self.pre.forward(&x0)?;
        let h = self.enc.forward(&h, g)?;
        let m = self.post.forward(&h)?;
        Ok(Tensor::cat(&[&x0, &(x1 - m)?], 1)?)
    }
}

/// The reverse flow `z_p -> z`.
#[derive(Debug, Clone)]
pub struct Flow {
    couplings: Vec<Coupling>,
}

impl Flow {
    pub fn load(w: &Weights, cfg: &SynthConfig) -> Result<Self> {
        let couplings = (0..N_FLOWS)
            .map(|i| {
                Coupling::load(
                    w,
                    &format!("flow.flows.{}", 2 * i),
                    cfg.inter_channels,
                    cfg.hidden_channels,
                    cfg.gin_channels,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { couplings })
    }

    /// `z_p`: `[1, inter, t]`, `g`: `[1, gin, 1]`.
    pub fn reverse(&self, z_p: &Tensor, g: &Tensor) -> Result<Tensor> {
        let mut x = z_p.clone();
        for c in self.couplings.iter().rev() {
            x = flip_channels(&x)?;
            x = c.reverse(&x, g)?;
        }
        Ok(x)
    }
}

/// `torch.flip(x, [1])`.
fn flip_channels(x: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let idx: Vec<u32> = (0..c as u32).rev().collect();
    let idx = Tensor::from_vec(idx, c, x.device())?;
    Ok(x.index_select(&idx, D::Minus2)?)
}
