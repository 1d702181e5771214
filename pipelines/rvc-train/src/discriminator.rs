//! RVC v2's `MultiPeriodDiscriminatorV2`: one scale discriminator on the waveform and
//! period discriminators (2, 3, 5, 7, 11, 17, 23, 37) on the waveform folded by its period.
//! The period discriminators' `(k, 1)` Conv2d layers are 1-D convolutions over each
//! phase, so they run as conv1d with the period folded into the batch.

use avatar_rvc::checkpoint::fold_weight_norm;
use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::ops::{conv1d, leaky_relu, reflect_pad};
use crate::params::{Init, Params};
use crate::rng::Rng;

pub const PERIODS: [usize; 8] = [2, 3, 5, 7, 11, 17, 23, 37];
const LRELU: f64 = 0.1;

/// (c_in, c_out, kernel, stride, groups, padding) of DiscriminatorS.
const SCALE_LAYERS: [(usize, usize, usize, usize, usize, usize); 6] = [
    (1, 16, 15, 1, 1, 7),
    (16, 64, 41, 4, 4, 20),
    (64, 256, 41, 4, 16, 20),
    (256, 1024, 41, 4, 64, 20),
    (1024, 1024, 41, 4, 256, 20),
    (1024, 1024, 5, 1, 1, 2),
];
/// (c_in, c_out, stride) of DiscriminatorP, kernel (5, 1), padding (2, 0).
const PERIOD_LAYERS: [(usize, usize, usize); 5] = [
    (1, 32, 3),
    (32, 128, 3),
    (128, 512, 3),
    (512, 1024, 3),
    (1024, 1024, 1),
];

/// Scores and feature maps of every sub-discriminator.
pub struct DiscOut {
    pub scores: Vec<Tensor>,
    pub fmaps: Vec<Vec<Tensor>>,
}

#[derive(Debug, Clone)]
pub struct Discriminator {
    pub params: Params,
    /// Channel (and group) counts are RVC's divided by this; 1 is RVC's discriminator.
    pub narrow: usize,
}

impl Discriminator {
    /// RVC's discriminator when `narrow` is 1; tests use narrower ones (same layers, same
    /// names, channel and group counts divided by `narrow`), which train much faster.
    pub fn new(seed: u64, narrow: usize, device: &Device) -> Result<Self> {
        let narrow = narrow.max(1);
        let mut params = Params::default();
        let mut init = Init {
            params: &mut params,
            rng: Rng::stream(seed, u64::MAX, 2),
            device: device.clone(),
        };
        for (i, &(ci, co, k, _, g, _)) in SCALE_LAYERS.iter().enumerate() {
            let (ci, co) = (width(ci, narrow), width(co, narrow));
            let g = groups(g, ci, narrow);
            init.wn_conv(
                &format!("discriminators.0.convs.{i}"),
                &[co, ci / g, k],
                true,
            )?;
        }
        let last = width(1024, narrow);
        init.wn_conv("discriminators.0.conv_post", &[1, last, 3], true)?;
        for d in 1..=PERIODS.len() {
            for (i, &(ci, co, _)) in PERIOD_LAYERS.iter().enumerate() {
                let (ci, co) = (width(ci, narrow), width(co, narrow));
                init.wn_conv(
                    &format!("discriminators.{d}.convs.{i}"),
                    &[co, ci, 5, 1],
                    true,
                )?;
            }
            init.wn_conv(
                &format!("discriminators.{d}.conv_post"),
                &[1, last, 3, 1],
                true,
            )?;
        }
        Ok(Self { params, narrow })
    }

    /// Effective 1-D kernel (Conv2d `(k, 1)` kernels lose their last dim).
    fn kernel(&self, p: &str, detach: bool) -> Result<Tensor> {
        let (mut g, mut v) = (
            self.params.get(&format!("{p}.weight_g"))?,
            self.params.get(&format!("{p}.weight_v"))?,
        );
        if detach {
            (g, v) = (g.detach(), v.detach());
        }
        let w = fold_weight_norm(&g, &v)?;
        let d = w.dims().to_vec();
        Ok(w.reshape((d[0], d[1], d[2]))?)
    }

    fn bias(&self, p: &str, detach: bool) -> Result<Tensor> {
        let b = self.params.get(&format!("{p}.bias"))?;
        Ok(if detach { b.detach() } else { b })
    }

    /// `y`: `[b, 1, t]`. With `frozen`, the weights take no gradient (the generator's step).
    pub fn forward(&self, y: &Tensor, frozen: bool) -> Result<DiscOut> {
        let mut scores = Vec::new();
        let mut fmaps = Vec::new();
        // Scale discriminator.
        let mut x = y.clone();
        let mut fmap = Vec::new();
        for (i, &(ci, _, _, s, g, pad)) in SCALE_LAYERS.iter().enumerate() {
            let g = groups(g, width(ci, self.narrow), self.narrow);
            let p = format!("discriminators.0.convs.{i}");
            x = conv1d(
                &x,
                &self.kernel(&p, frozen)?,
                Some(&self.bias(&p, frozen)?),
                s,
                pad,
                1,
                g,
            )?;
            x = leaky_relu(&x, LRELU)?;
            fmap.push(x.clone());
        }
        let p = "discriminators.0.conv_post";
        x = conv1d(
            &x,
            &self.kernel(p, frozen)?,
            Some(&self.bias(p, frozen)?),
            1,
            1,
            1,
            1,
        )?;
        fmap.push(x.clone());
        scores.push(x);
        fmaps.push(fmap);
        // Period discriminators.
        let (b, _, t) = y.dims3()?;
        for (d, &period) in PERIODS.iter().enumerate() {
            let d = d + 1;
            let x = if t % period != 0 {
                reflect_pad(y, 0, period - t % period)?
            } else {
                y.clone()
            };
            let rows = x.dim(2)? / period;
            // [b, 1, rows*period] -> [b, 1, rows, period] -> [b*period, 1, rows]
            let mut x = x
                .reshape((b, 1, rows, period))?
                .permute((0, 3, 1, 2))?
                .contiguous()?
                .reshape((b * period, 1, rows))?;
            let mut fmap = Vec::new();
            for (i, &(_, _, s)) in PERIOD_LAYERS.iter().enumerate() {
                let p = format!("discriminators.{d}.convs.{i}");
                x = conv1d(
                    &x,
                    &self.kernel(&p, frozen)?,
                    Some(&self.bias(&p, frozen)?),
                    s,
                    2,
                    1,
                    1,
                )?;
                x = leaky_relu(&x, LRELU)?;
                fmap.push(x.clone());
            }
            let p = format!("discriminators.{d}.conv_post");
            x = conv1d(
                &x,
                &self.kernel(&p, frozen)?,
                Some(&self.bias(&p, frozen)?),
                1,
                1,
                1,
                1,
            )?;
            fmap.push(x.clone());
            scores.push(x);
            fmaps.push(fmap);
        }
        Ok(DiscOut { scores, fmaps })
    }
}

/// A layer's width in a narrowed discriminator (the single input channel stays 1).
fn width(c: usize, narrow: usize) -> usize {
    if c == 1 {
        1
    } else {
        (c / narrow).max(1)
    }
}

/// Groups of a narrowed grouped conv: divided like the channels, and dividing them.
fn groups(g: usize, c_in: usize, narrow: usize) -> usize {
    let mut g = (g / narrow).max(1);
    while !c_in.is_multiple_of(g) {
        g -= 1;
    }
    g
}
