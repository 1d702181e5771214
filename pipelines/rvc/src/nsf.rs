//! `dec`: the HiFiGAN decoder, with RVC's neural-source-filter excitation for pitch models
//! (GeneratorNSF + SourceModuleHnNSF) or without it (Generator, the `_nono` models).

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::{ResBlockKind, SynthConfig};
use crate::error::{Result, RvcError};
use crate::nn::ConvSpec;
use crate::timemajor::{leaky_relu_in_place, Conv, ConvTranspose, Seq};

/// Slope RVC's decoder uses between layers (`modules.LRELU_SLOPE`).
const LRELU_SLOPE: f32 = 0.1;
/// SineGen defaults RVC keeps: amplitude 0.1, voiced noise std 0.003, no overtones.
const SINE_AMP: f32 = 0.1;
const NOISE_STD: f32 = 0.003;

/// SineGen's excitation before the source module's linear+tanh, one value per output sample.
///
/// The phase is the running sum of `f0 / sr` over samples, with f0 held constant within
/// each frame (`nearest` upsampling); RVC's wrap bookkeeping only adds whole periods,
/// so the phase is kept modulo 1 here in f64. Voiced samples (f0 > 0) get
/// `0.1 * sin(2 pi phase) + 0.003 * noise`, unvoiced ones `0.1 / 3 * noise`.
/// `start_phase` (in periods) continues a signal from an earlier window (see [`phase_after`]).
pub fn sine_excitation(
    f0: &[f32],
    upp: usize,
    sr: u32,
    noise: &[f32],
    start_phase: f64,
) -> Result<Vec<f32>> {
    let n = f0.len() * upp;
    if noise.len() != n {
        return Err(RvcError::Input(format!(
            "sine noise has {} samples, expected {n} (frames x hop)",
            noise.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    let mut phase = start_phase.rem_euclid(1.0);
    for (i, &f) in f0.iter().enumerate() {
        let rad = phase_step(f, sr);
        let voiced = f > 0.0;
        for s in 0..upp {
            phase = (phase + rad).fract();
            let z = noise[i * upp + s];
            out.push(if voiced {
                SINE_AMP * (2.0 * std::f64::consts::PI * phase).sin() as f32 + NOISE_STD * z
            } else {
                SINE_AMP / 3.0 * z
            });
        }
    }
    Ok(out)
}

/// Phase advance per sample for f0 `f`; torch computes `f0 / sr % 1` in float32.
fn phase_step(f: f32, sr: u32) -> f64 {
    f64::from((f / sr as f32).rem_euclid(1.0))
}

/// The sine source's phase (in periods, modulo 1) after the frames `f0`, so a window
/// starting there continues the same waveform.
pub fn phase_after(f0: &[f32], upp: usize, sr: u32) -> f64 {
    f0.iter().fold(0f64, |p, &f| {
        (p + phase_step(f, sr) * upp as f64).rem_euclid(1.0)
    })
}

/// A time-major conv loaded from `prefix.weight` / `prefix.bias` with shapes checked.
fn load_conv(w: &Weights, prefix: &str, c_in: usize, c_out: usize, spec: ConvSpec) -> Result<Conv> {
    let weight = w.get(&format!("{prefix}.weight"), &[c_out, c_in, spec.kernel])?;
    let bias = if spec.bias {
        Some(w.get(&format!("{prefix}.bias"), &[c_out])?)
    } else {
        None
    };
    Conv::new(
        &weight,
        bias.as_ref(),
        spec.stride,
        spec.padding,
        spec.dilation,
    )
}

#[derive(Debug, Clone)]
enum ResBlock {
    /// Pairs of (dilated conv, plain conv).
    One(Vec<(Conv, Conv)>),
    Two(Vec<Conv>),
}

impl ResBlock {
    fn load(
        w: &Weights,
        prefix: &str,
        kind: ResBlockKind,
        ch: usize,
        k: usize,
        dil: &[usize],
    ) -> Result<Self> {
        let conv = |name: String, d: usize| {
            load_conv(
                w,
                &name,
                ch,
                ch,
                ConvSpec {
                    kernel: k,
                    stride: 1,
                    padding: (k * d - d) / 2,
                    dilation: d,
                    bias: true,
                },
            )
        };
        Ok(match kind {
            ResBlockKind::One => Self::One(
                dil.iter()
                    .enumerate()
                    .map(|(j, &d)| {
                        Ok((
                            conv(format!("{prefix}.convs1.{j}"), d)?,
                            conv(format!("{prefix}.convs2.{j}"), 1)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            ResBlockKind::Two => Self::Two(
                dil.iter()
                    .enumerate()
                    .map(|(j, &d)| conv(format!("{prefix}.convs.{j}"), d))
                    .collect::<Result<Vec<_>>>()?,
            ),
        })
    }

    fn forward(&self, x: &Seq) -> Result<Seq> {
        let mut x = x.clone();
        match self {
            Self::One(pairs) => {
                for (c1, c2) in pairs {
                    let xt = c1.forward_act(&x, Some(LRELU_SLOPE))?;
                    let xt = c2.forward_act(&xt, Some(LRELU_SLOPE))?;
                    x.add_assign(&xt)?;
                }
            }
            Self::Two(convs) => {
                for c in convs {
                    let xt = c.forward_act(&x, Some(LRELU_SLOPE))?;
                    x.add_assign(&xt)?;
                }
            }
        }
        Ok(x)
    }
}

/// Pitch excitation inputs for the NSF decoder.
pub struct Excitation<'a> {
    /// Frame-rate f0 in Hz (0 = unvoiced).
    pub f0: &'a [f32],
    /// Standard-normal noise, one value per output sample.
    pub noise: &'a [f32],
    /// Sine phase (periods) at the first sample; 0 for a whole utterance.
    pub start_phase: f64,
}

/// The NSF source: merges the sine excitation into one channel (`l_linear` + tanh), and
/// the strided convs that bring it to each upsampling stage's rate.
#[derive(Debug, Clone)]
struct Source {
    weight: f32,
    bias: f32,
    noise_convs: Vec<Conv>,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    conv_pre: Conv,
    /// `dec.cond` as `[c0, gin]` and bias: the speaker's constant offset after conv_pre.
    cond_w: Tensor,
    cond_b: Tensor,
    ups: Vec<ConvTranspose>,
    resblocks: Vec<Vec<ResBlock>>,
    conv_post: Conv,
    source: Option<Source>,
    hop: usize,
    sr: u32,
    /// Frames of context each side beyond which an output sample cannot see.
    receptive_frames: usize,
}

/// How far (in frames, rounded up) the decoder looks to either side of an output sample:
/// conv_pre, each transposed conv and the widest resblock of each stage, conv_post.
fn receptive_frames(cfg: &SynthConfig) -> usize {
    let mut rate = 1usize; // samples per frame at the current stage
    let mut frames = 3.0f64; // conv_pre, kernel 7
    for (&u, &k) in cfg.upsample_rates.iter().zip(&cfg.upsample_kernel_sizes) {
        frames += (k as f64 / u as f64).ceil() / rate as f64;
        rate *= u;
        let widest = cfg
            .resblock_kernel_sizes
            .iter()
            .zip(&cfg.resblock_dilation_sizes)
            .map(|(&rk, d)| {
                let half = (rk - 1) / 2;
                let plain = match cfg.resblock {
                    ResBlockKind::One => d.len(),
                    ResBlockKind::Two => 0,
                };
                half * (d.iter().sum::<usize>() + plain)
            })
            .max()
            .unwrap_or(0);
        // Noise convs read up to one stride of the excitation either side.
        frames += (widest as f64 + 2.0) / rate as f64;
    }
    frames += 3.0 / rate as f64; // conv_post, kernel 7
    frames.ceil() as usize
}

fn scalar(w: &Weights, name: &str, shape: &[usize]) -> Result<f32> {
    let v = w.get(name, shape)?.flatten_all()?.to_vec1::<f32>()?;
    v.first()
        .copied()
        .ok_or_else(|| RvcError::MissingWeight(name.to_string()))
}

impl Decoder {
    pub fn load(w: &Weights, cfg: &SynthConfig, nsf: bool) -> Result<Self> {
        let c0 = cfg.upsample_initial_channel;
        let n_up = cfg.upsample_rates.len();
        let mut ups = Vec::new();
        let mut resblocks = Vec::new();
        let mut noise_convs = Vec::new();
        for (i, (&u, &k)) in cfg
            .upsample_rates
            .iter()
            .zip(&cfg.upsample_kernel_sizes)
            .enumerate()
        {
            let c_in = c0 >> i;
            let c_out = c0 >> (i + 1);
            let up_w = w.get(&format!("dec.ups.{i}.weight"), &[c_in, c_out, k])?;
            let up_b = w.get(&format!("dec.ups.{i}.bias"), &[c_out])?;
            ups.push(ConvTranspose::new(&up_w, &up_b, u, (k - u) / 2)?);
            if nsf {
                let spec = if i + 1 < n_up {
                    let s: usize = cfg.upsample_rates[i + 1..].iter().product();
                    ConvSpec {
                        kernel: 2 * s,
                        stride: s,
                        padding: s / 2,
                        dilation: 1,
                        bias: true,
                    }
                } else {
                    ConvSpec::same(1)
                };
                noise_convs.push(load_conv(
                    w,
                    &format!("dec.noise_convs.{i}"),
                    1,
                    c_out,
                    spec,
                )?);
            }
            let nk = cfg.resblock_kernel_sizes.len();
            resblocks.push(
                cfg.resblock_kernel_sizes
                    .iter()
                    .zip(&cfg.resblock_dilation_sizes)
                    .enumerate()
                    .map(|(j, (&rk, d))| {
                        ResBlock::load(
                            w,
                            &format!("dec.resblocks.{}", i * nk + j),
                            cfg.resblock,
                            c_out,
                            rk,
                            d,
                        )
                    })
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let source = if nsf {
            Some(Source {
                weight: scalar(w, "dec.m_source.l_linear.weight", &[1, 1])?,
                bias: scalar(w, "dec.m_source.l_linear.bias", &[1])?,
                noise_convs,
            })
        } else {
            None
        };
        let post_spec = ConvSpec {
            bias: false,
            ..ConvSpec::same(7)
        };
        let gin = cfg.gin_channels;
        Ok(Self {
            conv_pre: load_conv(w, "dec.conv_pre", cfg.inter_channels, c0, ConvSpec::same(7))?,
            cond_w: w
                .get("dec.cond.weight", &[c0, gin, 1])?
                .reshape((c0, gin))?,
            cond_b: w.get("dec.cond.bias", &[c0])?,
            ups,
            resblocks,
            conv_post: load_conv(w, "dec.conv_post", c0 >> n_up, 1, post_spec)?,
            source,
            hop: cfg.hop_length(),
            sr: cfg.sr,
            receptive_frames: receptive_frames(cfg),
        })
    }

    /// Context (frames each side) that makes windowed decoding equal to whole decoding.
    pub fn receptive_frames(&self) -> usize {
        self.receptive_frames
    }

    /// `z`: `[1, inter, frames]`, `g`: `[1, gin, 1]`; returns `frames * hop` samples in [-1, 1].
    pub fn forward(
        &self,
        z: &Tensor,
        g: &Tensor,
        excitation: Option<&Excitation>,
    ) -> Result<Vec<f32>> {
        let frames = z.dim(2)?;
        let har = match (&self.source, excitation) {
            (Some(src), Some(ex)) => {
                if ex.f0.len() != frames {
                    return Err(RvcError::Input(format!(
                        "f0 has {} frames, features have {frames}",
                        ex.f0.len()
                    )));
                }
                let s = sine_excitation(ex.f0, self.hop, self.sr, ex.noise, ex.start_phase)?;
                let merged: Vec<f32> = s
                    .iter()
                    .map(|&v| (src.weight * v + src.bias).tanh())
                    .collect();
                let n = merged.len();
                Some(Seq::new(merged, n, 1)?)
            }
            (None, None) => None,
            (Some(_), None) => return Err(RvcError::Input("this model needs f0".into())),
            (None, Some(_)) => {
                return Err(RvcError::Input(
                    "this model was trained without pitch".into(),
                ))
            }
        };
        let cond = self
            .cond_w
            .matmul(&g.squeeze(0)?)?
            .squeeze(1)?
            .add(&self.cond_b)?
            .to_vec1::<f32>()?;
        let mut x = self
            .conv_pre
            .forward(&Seq::from_channel_major(&z.squeeze(0)?)?)?;
        x.add_row(&cond);
        for (i, (up, blocks)) in self.ups.iter().zip(&self.resblocks).enumerate() {
            leaky_relu_in_place(&mut x.data, LRELU_SLOPE);
            x = up.forward(&x)?;
            if let (Some(src), Some(har)) = (&self.source, &har) {
                let conv = src
                    .noise_convs
                    .get(i)
                    .ok_or_else(|| RvcError::MissingWeight(format!("dec.noise_convs.{i}")))?;
                x.add_assign(&conv.forward(har)?)?;
            }
            let mut xs: Option<Seq> = None;
            for b in blocks {
                let y = b.forward(&x)?;
                match xs.as_mut() {
                    Some(acc) => acc.add_assign(&y)?,
                    None => xs = Some(y),
                }
            }
            if let Some(mut xs) = xs {
                xs.scale(1.0 / blocks.len() as f32);
                x = xs;
            }
        }
        // The last activation is F.leaky_relu's default slope 0.01, not LRELU_SLOPE.
        let y = self.conv_post.forward_act(&x, Some(0.01))?;
        Ok(y.data.into_iter().map(f32::tanh).collect())
    }
}
