//! RVC's `SynthesizerTrnMs{256,768}NSFsid` in its training direction: the text (content)
//! encoder gives the prior, the posterior encoder reads the linear spectrogram, the flow
//! maps the posterior sample into the prior's space (for the KL term), and the
//! NSF-HiFiGAN decoder renders a random slice of the posterior sample to audio.
//!
//! Names follow RVC's state dict, so `f0G40k.pth` loads and exports are RVC files. Batches
//! hold equal-length utterances (the trainer crops), so no masks are needed.

use candle_core::{Device, Tensor};

use avatar_rvc::checkpoint::fold_weight_norm;
use avatar_rvc::{Bands, ResBlockKind, SynthConfig, Version, WINDOW};

use crate::error::{Result, TrainError};
use crate::ops::{conv1d, conv_transpose1d, embedding, layer_norm_channels, leaky_relu};
use crate::params::{Init, Params};
use crate::rng::Rng;

const LRELU: f64 = 0.1;
const PITCH_BINS: usize = 256;
const FLOWS: usize = 4;
const FLOW_WN_LAYERS: usize = 3;
const FLOW_KERNEL: usize = 5;
const POSTERIOR_WN_LAYERS: usize = 16;
const POSTERIOR_KERNEL: usize = 5;

/// One batch of training utterances, all `frames` long (100 frames per second).
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[b, frames, feature_dim]` content features.
    pub phone: Tensor,
    /// `[b, frames]` u32 coarse pitch 1..=255.
    pub pitch: Tensor,
    /// Per item, `frames` F0 values in Hz (0 = unvoiced).
    pub pitchf: Vec<Vec<f32>>,
    /// `[b, spec_channels, frames]` linear magnitude spectrogram of `wav`.
    pub spec: Tensor,
    /// `[b, 1, frames * hop]` the target audio.
    pub wav: Tensor,
    /// `[b]` u32 speaker ids.
    pub sid: Tensor,
}

impl Batch {
    /// The real audio `[b, 1, segment * hop]` and spectrogram `[b, spec_channels, segment]`
    /// under each decoded slice, starting at frame `starts[i]` of item i.
    pub fn slices(&self, cfg: &SynthConfig, starts: &[usize]) -> Result<(Tensor, Tensor)> {
        let (seg, hop) = (cfg.segment_size, cfg.hop_length());
        let mut wav = Vec::new();
        let mut spec = Vec::new();
        for (i, &s) in starts.iter().enumerate() {
            wav.push(self.wav.narrow(0, i, 1)?.narrow(2, s * hop, seg * hop)?);
            spec.push(self.spec.narrow(0, i, 1)?.narrow(2, s, seg)?);
        }
        Ok((Tensor::cat(&wav, 0)?, Tensor::cat(&spec, 0)?))
    }
}

/// Everything random in one generator pass, passed in so runs repeat exactly.
#[derive(Debug, Clone)]
pub struct GenNoise {
    /// `[b, inter_channels, frames]` standard normal: the posterior sample's noise.
    pub posterior: Tensor,
    /// Start frame of each item's decoded slice.
    pub slice_starts: Vec<usize>,
    /// Per item, `segment_frames * hop` standard normal samples for the sine source.
    pub sine: Vec<Vec<f32>>,
}

impl GenNoise {
    pub fn draw(
        rng: &mut Rng,
        cfg: &SynthConfig,
        b: usize,
        frames: usize,
        device: &Device,
    ) -> Result<Self> {
        let seg = cfg.segment_size;
        if frames < seg {
            return Err(TrainError::Input(format!(
                "utterances of {frames} frames are shorter than the decoded segment ({seg})"
            )));
        }
        let posterior = Tensor::from_vec(
            rng.normals(b * cfg.inter_channels * frames, 1.0),
            (b, cfg.inter_channels, frames),
            device,
        )?;
        let slice_starts = (0..b).map(|_| rng.below(frames - seg + 1)).collect();
        let hop = cfg.hop_length();
        let sine = (0..b).map(|_| rng.normals(seg * hop, 1.0)).collect();
        Ok(Self {
            posterior,
            slice_starts,
            sine,
        })
    }
}

/// What one generator pass gives the losses.
#[derive(Debug, Clone)]
pub struct GenOut {
    /// `[b, 1, segment_frames * hop]`
    pub y_hat: Tensor,
    pub z_p: Tensor,
    pub m_p: Tensor,
    pub logs_p: Tensor,
    pub m_q: Tensor,
    pub logs_q: Tensor,
    pub slice_starts: Vec<usize>,
}

/// The synthesiser being trained.
#[derive(Debug, Clone)]
pub struct Generator {
    pub cfg: SynthConfig,
    pub version: Version,
    pub params: Params,
}

fn same(k: usize, d: usize) -> usize {
    (k * d - d) / 2
}

impl Generator {
    /// Fresh weights with PyTorch's default initialisations (the flow's output layers
    /// zero, so the flow starts as the identity, as in VITS).
    pub fn new(cfg: &SynthConfig, version: Version, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut params = Params::default();
        let mut init = Init {
            params: &mut params,
            rng: Rng::stream(seed, u64::MAX, 1),
            device: device.clone(),
        };
        let h = cfg.hidden_channels;
        let inter = cfg.inter_channels;
        let gin = cfg.gin_channels;
        let fdim = version.feature_dim();
        // enc_p
        init.conv("enc_p.emb_phone", &[h, fdim], true)?;
        init.normal("enc_p.emb_pitch.weight", &[PITCH_BINS, h], 1.0)?;
        let kc = h / cfg.n_heads;
        for i in 0..cfg.n_layers {
            let p = format!("enc_p.encoder.attn_layers.{i}");
            for n in ["conv_q", "conv_k", "conv_v"] {
                init.xavier_conv(&format!("{p}.{n}"), h, h)?;
            }
            init.conv(&format!("{p}.conv_o"), &[h, h, 1], true)?;
            init.normal(
                &format!("{p}.emb_rel_k"),
                &[1, 2 * WINDOW + 1, kc],
                (kc as f64).powf(-0.5),
            )?;
            init.normal(
                &format!("{p}.emb_rel_v"),
                &[1, 2 * WINDOW + 1, kc],
                (kc as f64).powf(-0.5),
            )?;
            for n in ["norm_layers_1", "norm_layers_2"] {
                init.ones(&format!("enc_p.encoder.{n}.{i}.gamma"), &[h])?;
                init.zeros(&format!("enc_p.encoder.{n}.{i}.beta"), &[h])?;
            }
            let f = format!("enc_p.encoder.ffn_layers.{i}");
            init.conv(
                &format!("{f}.conv_1"),
                &[cfg.filter_channels, h, cfg.kernel_size],
                true,
            )?;
            init.conv(
                &format!("{f}.conv_2"),
                &[h, cfg.filter_channels, cfg.kernel_size],
                true,
            )?;
        }
        init.conv("enc_p.proj", &[2 * inter, h, 1], true)?;
        // dec
        let c0 = cfg.upsample_initial_channel;
        init.conv("dec.m_source.l_linear", &[1, 1], true)?;
        init.conv("dec.conv_pre", &[c0, inter, 7], true)?;
        init.conv("dec.cond", &[c0, gin, 1], true)?;
        let n_up = cfg.upsample_rates.len();
        for i in 0..n_up {
            let (c_in, c_out) = (c0 >> i, c0 >> (i + 1));
            init.wn_conv_t(
                &format!("dec.ups.{i}"),
                c_in,
                c_out,
                cfg.upsample_kernel_sizes[i],
            )?;
            let stride_f0: usize = cfg.upsample_rates[i + 1..].iter().product();
            let k = if i + 1 < n_up { stride_f0 * 2 } else { 1 };
            init.conv(&format!("dec.noise_convs.{i}"), &[c_out, 1, k], true)?;
            for (j, (&k, dil)) in cfg
                .resblock_kernel_sizes
                .iter()
                .zip(&cfg.resblock_dilation_sizes)
                .enumerate()
            {
                let r = format!("dec.resblocks.{}", i * cfg.resblock_kernel_sizes.len() + j);
                for (n, _) in dil.iter().enumerate() {
                    match cfg.resblock {
                        ResBlockKind::One => {
                            init.wn_conv(&format!("{r}.convs1.{n}"), &[c_out, c_out, k], true)?;
                            init.wn_conv(&format!("{r}.convs2.{n}"), &[c_out, c_out, k], true)?;
                        }
                        ResBlockKind::Two => {
                            init.wn_conv(&format!("{r}.convs.{n}"), &[c_out, c_out, k], true)?;
                        }
                    }
                }
            }
        }
        init.conv("dec.conv_post", &[1, c0 >> n_up, 7], false)?;
        // flow
        for f in 0..FLOWS {
            let p = format!("flow.flows.{}", 2 * f);
            init.conv(&format!("{p}.pre"), &[h, inter / 2, 1], true)?;
            wn_init(
                &mut init,
                &format!("{p}.enc"),
                h,
                gin,
                FLOW_WN_LAYERS,
                FLOW_KERNEL,
            )?;
            init.zeros(&format!("{p}.post.weight"), &[inter / 2, h, 1])?;
            init.zeros(&format!("{p}.post.bias"), &[inter / 2])?;
        }
        // enc_q
        init.conv("enc_q.pre", &[h, cfg.spec_channels, 1], true)?;
        wn_init(
            &mut init,
            "enc_q.enc",
            h,
            gin,
            POSTERIOR_WN_LAYERS,
            POSTERIOR_KERNEL,
        )?;
        init.conv("enc_q.proj", &[2 * inter, h, 1], true)?;
        init.normal("emb_g.weight", &[cfg.spk_embed_dim, gin], 1.0)?;
        Ok(Self {
            cfg: cfg.clone(),
            version,
            params,
        })
    }

    /// A parameter, or the effective weight of a weight-normed layer.
    fn w(&self, name: &str) -> Result<Tensor> {
        if let Some(prefix) = name.strip_suffix(".weight") {
            if let Ok(g) = self.params.get(&format!("{prefix}.weight_g")) {
                return Ok(fold_weight_norm(
                    &g,
                    &self.params.get(&format!("{prefix}.weight_v"))?,
                )?);
            }
        }
        self.params.get(name)
    }

    fn conv(
        &self,
        x: &Tensor,
        p: &str,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Result<Tensor> {
        let b = self.params.get(&format!("{p}.bias")).ok();
        conv1d(
            x,
            &self.w(&format!("{p}.weight"))?,
            b.as_ref(),
            stride,
            padding,
            dilation,
            1,
        )
    }

    /// `modules.WN`: gated dilated convs conditioned on the speaker, with skip sums.
    fn wavenet(
        &self,
        x: &Tensor,
        g: &Tensor,
        p: &str,
        layers: usize,
        kernel: usize,
    ) -> Result<Tensor> {
        let h = self.cfg.hidden_channels;
        let g = self.conv(g, &format!("{p}.cond_layer"), 1, 0, 1)?;
        let mut x = x.clone();
        let mut out: Option<Tensor> = None;
        for i in 0..layers {
            let a = self
                .conv(&x, &format!("{p}.in_layers.{i}"), 1, same(kernel, 1), 1)?
                .broadcast_add(&g.narrow(1, i * 2 * h, 2 * h)?)?;
            let acts =
                (a.narrow(1, 0, h)?.tanh()? * candle_nn::ops::sigmoid(&a.narrow(1, h, h)?)?)?;
            let rs = self.conv(&acts, &format!("{p}.res_skip_layers.{i}"), 1, 0, 1)?;
            let skip = if i + 1 < layers {
                x = (x + rs.narrow(1, 0, h)?)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            out = Some(match out {
                Some(o) => (o + skip)?,
                None => skip,
            });
        }
        out.ok_or_else(|| TrainError::Shape("WaveNet with no layers".into()))
    }

    /// Prior statistics `(m_p, logs_p)`, each `[b, inter, frames]`.
    fn text_encoder(&self, phone: &Tensor, pitch: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.cfg.hidden_channels;
        let (b, t, fdim) = phone.dims3()?;
        let x = phone
            .reshape((b * t, fdim))?
            .matmul(&self.params.get("enc_p.emb_phone.weight")?.t()?)?
            .broadcast_add(&self.params.get("enc_p.emb_phone.bias")?)?
            .reshape((b, t, h))?;
        let x = (x + embedding(&self.params.get("enc_p.emb_pitch.weight")?, pitch)?)?;
        let x = leaky_relu(&(x * (h as f64).sqrt())?, LRELU)?;
        let mut x = x.transpose(1, 2)?.contiguous()?; // [b, h, t]
        let bands = Bands::new(t, x.device())?;
        for i in 0..self.cfg.n_layers {
            let y = self.attention(&x, i, &bands)?;
            let p = format!("enc_p.encoder.norm_layers_1.{i}");
            x = layer_norm_channels(
                &(x + y)?,
                &self.params.get(&format!("{p}.gamma"))?,
                &self.params.get(&format!("{p}.beta"))?,
            )?;
            let y = self.ffn(&x, i)?;
            let p = format!("enc_p.encoder.norm_layers_2.{i}");
            x = layer_norm_channels(
                &(x + y)?,
                &self.params.get(&format!("{p}.gamma"))?,
                &self.params.get(&format!("{p}.beta"))?,
            )?;
        }
        let stats = self.conv(&x, "enc_p.proj", 1, 0, 1)?;
        let inter = self.cfg.inter_channels;
        Ok((stats.narrow(1, 0, inter)?, stats.narrow(1, inter, inter)?))
    }

    fn ffn(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let k = self.cfg.kernel_size;
        let p = format!("enc_p.encoder.ffn_layers.{i}");
        let pad = |x: &Tensor| x.pad_with_zeros(2, (k - 1) / 2, k / 2);
        let hdn = self
            .conv(&pad(x)?, &format!("{p}.conv_1"), 1, 0, 1)?
            .relu()?;
        self.conv(&pad(&hdn)?, &format!("{p}.conv_2"), 1, 0, 1)
    }

    /// VITS multi-head self-attention with windowed relative position embeddings.
    fn attention(&self, x: &Tensor, i: usize, bands: &Bands) -> Result<Tensor> {
        let p = format!("enc_p.encoder.attn_layers.{i}");
        let (b, c, t) = x.dims3()?;
        let nh = self.cfg.n_heads;
        let kc = c / nh;
        let heads = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((b, nh, kc, t))?.transpose(2, 3)?.contiguous()?)
        };
        let q = heads((self.conv(x, &format!("{p}.conv_q"), 1, 0, 1)? / (kc as f64).sqrt())?)?;
        let k = heads(self.conv(x, &format!("{p}.conv_k"), 1, 0, 1)?)?;
        let v = heads(self.conv(x, &format!("{p}.conv_v"), 1, 0, 1)?)?;
        let rel_k = self
            .params
            .get(&format!("{p}.emb_rel_k"))?
            .reshape((2 * WINDOW + 1, kc))?;
        let rel_v = self
            .params
            .get(&format!("{p}.emb_rel_v"))?
            .reshape((2 * WINDOW + 1, kc))?;
        let scores = q.matmul(&k.transpose(2, 3)?.contiguous()?)?;
        let qe = q.broadcast_matmul(&rel_k.t()?)?; // [b, nh, t, 2w+1]
        let local = qe
            .gather(
                &bands.rel_of_abs.broadcast_as((b, nh, t, t))?.contiguous()?,
                3,
            )?
            .broadcast_mul(&bands.abs_mask)?;
        // Not `softmax_last_dim`: candle runs it without a backward pass, which would cut
        // every gradient through the attention scores (q, k, emb_rel_k).
        let probs = candle_nn::ops::softmax(&(scores + local)?, candle_core::D::Minus1)?;
        let out = probs.matmul(&v)?;
        let rw = probs
            .gather(
                &bands
                    .abs_of_rel
                    .broadcast_as((b, nh, t, 2 * WINDOW + 1))?
                    .contiguous()?,
                3,
            )?
            .broadcast_mul(&bands.rel_mask)?;
        let out = (out + rw.broadcast_matmul(&rel_v)?)?;
        let out = out.transpose(2, 3)?.contiguous()?.reshape((b, c, t))?;
        self.conv(&out, &format!("{p}.conv_o"), 1, 0, 1)
    }

    /// Posterior `(z, m_q, logs_q)` from the spectrogram.
    fn posterior(
        &self,
        spec: &Tensor,
        g: &Tensor,
        noise: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let x = self.conv(spec, "enc_q.pre", 1, 0, 1)?;
        let x = self.wavenet(&x, g, "enc_q.enc", POSTERIOR_WN_LAYERS, POSTERIOR_KERNEL)?;
        let stats = self.conv(&x, "enc_q.proj", 1, 0, 1)?;
        let inter = self.cfg.inter_channels;
        let m = stats.narrow(1, 0, inter)?;
        let logs = stats.narrow(1, inter, inter)?;
        let z = (&m + (noise * logs.exp()?)?)?;
        Ok((z, m, logs))
    }

    /// The flow forward (posterior → prior space): mean-only couplings and channel flips.
    fn flow(&self, z: &Tensor, g: &Tensor) -> Result<Tensor> {
        let half = self.cfg.inter_channels / 2;
        let mut x = z.clone();
        let flip: Vec<u32> = (0..2 * half as u32).rev().collect();
        let flip = Tensor::from_vec(flip, 2 * half, z.device())?;
        for f in 0..FLOWS {
            let p = format!("flow.flows.{}", 2 * f);
            let x0 = x.narrow(1, 0, half)?;
            let x1 = x.narrow(1, half, half)?;
            let h = self.conv(&x0, &format!("{p}.pre"), 1, 0, 1)?;
            let h = self.wavenet(&h, g, &format!("{p}.enc"), FLOW_WN_LAYERS, FLOW_KERNEL)?;
            let m = self.conv(&h, &format!("{p}.post"), 1, 0, 1)?;
            x = Tensor::cat(&[&x0, &(x1 + m)?], 1)?;
            x = x.index_select(&flip, 1)?;
        }
        Ok(x)
    }

    /// NSF-HiFiGAN: latent slice `[b, inter, seg]` and its F0 → audio `[b, 1, seg * hop]`.
    fn decoder(
        &self,
        z: &Tensor,
        f0: &[Vec<f32>],
        sine_noise: &[Vec<f32>],
        g: &Tensor,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let hop = cfg.hop_length();
        let (b, _, seg) = z.dims3()?;
        let mut excitation = Vec::with_capacity(b * seg * hop);
        for (f, n) in f0.iter().zip(sine_noise) {
            excitation.extend(avatar_rvc::nsf::sine_excitation(f, hop, cfg.sr, n, 0.0)?);
        }
        let sines = Tensor::from_vec(excitation, (b, seg * hop, 1), z.device())?;
        let har = sines
            .broadcast_mul(
                &self
                    .params
                    .get("dec.m_source.l_linear.weight")?
                    .reshape((1, 1, 1))?,
            )?
            .broadcast_add(
                &self
                    .params
                    .get("dec.m_source.l_linear.bias")?
                    .reshape((1, 1, 1))?,
            )?
            .tanh()?
            .transpose(1, 2)?
            .contiguous()?; // [b, 1, seg*hop]
        let mut x = self.conv(z, "dec.conv_pre", 1, 3, 1)?;
        x = x.broadcast_add(&self.conv(g, "dec.cond", 1, 0, 1)?)?;
        let n_up = cfg.upsample_rates.len();
        let nk = cfg.resblock_kernel_sizes.len();
        for i in 0..n_up {
            let (u, k) = (cfg.upsample_rates[i], cfg.upsample_kernel_sizes[i]);
            x = leaky_relu(&x, LRELU)?;
            let p = format!("dec.ups.{i}");
            x = conv_transpose1d(
                &x,
                &self.w(&format!("{p}.weight"))?,
                Some(&self.params.get(&format!("{p}.bias"))?),
                u,
                (k - u) / 2,
            )?;
            let src = if i + 1 < n_up {
                let s: usize = cfg.upsample_rates[i + 1..].iter().product();
                self.conv(&har, &format!("dec.noise_convs.{i}"), s, s / 2, 1)?
            } else {
                self.conv(&har, &format!("dec.noise_convs.{i}"), 1, 0, 1)?
            };
            x = (x + src)?;
            let mut xs: Option<Tensor> = None;
            for j in 0..nk {
                let y = self.resblock(&x, i * nk + j, j)?;
                xs = Some(match xs {
                    Some(s) => (s + y)?,
                    None => y,
                });
            }
            x = (xs.ok_or_else(|| TrainError::Shape("decoder stage without resblocks".into()))?
                / nk as f64)?;
        }
        let x = leaky_relu(&x, 0.01)?;
        let x = conv1d(&x, &self.w("dec.conv_post.weight")?, None, 1, 3, 1, 1)?;
        Ok(x.tanh()?)
    }

    fn resblock(&self, x: &Tensor, idx: usize, j: usize) -> Result<Tensor> {
        let k = self.cfg.resblock_kernel_sizes[j];
        let dils = &self.cfg.resblock_dilation_sizes[j];
        let r = format!("dec.resblocks.{idx}");
        let mut x = x.clone();
        for (n, &d) in dils.iter().enumerate() {
            let xt = match self.cfg.resblock {
                ResBlockKind::One => {
                    let xt = leaky_relu(&x, LRELU)?;
                    let xt = self.conv(&xt, &format!("{r}.convs1.{n}"), 1, same(k, d), d)?;
                    let xt = leaky_relu(&xt, LRELU)?;
                    self.conv(&xt, &format!("{r}.convs2.{n}"), 1, same(k, 1), 1)?
                }
                ResBlockKind::Two => {
                    let xt = leaky_relu(&x, LRELU)?;
                    self.conv(&xt, &format!("{r}.convs.{n}"), 1, same(k, d), d)?
                }
            };
            x = (xt + x)?;
        }
        Ok(x)
    }

    /// Speaker conditioning `[b, gin, 1]`.
    fn speaker(&self, sid: &Tensor) -> Result<Tensor> {
        let table = self.params.get("emb_g.weight")?;
        let n = table.dim(0)?;
        let ids = sid.to_vec1::<u32>()?;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= n) {
            return Err(TrainError::Input(format!(
                "speaker {bad} but the model has {n}"
            )));
        }
        Ok(table.index_select(sid, 0)?.unsqueeze(2)?)
    }

    /// The training forward pass (`SynthesizerTrnMs768NSFsid.forward`).
    pub fn forward(&self, batch: &Batch, noise: &GenNoise) -> Result<GenOut> {
        let g = self.speaker(&batch.sid)?;
        let (m_p, logs_p) = self.text_encoder(&batch.phone, &batch.pitch)?;
        let (z, m_q, logs_q) = self.posterior(&batch.spec, &g, &noise.posterior)?;
        let z_p = self.flow(&z, &g)?;
        let seg = self.cfg.segment_size;
        let slices = noise
            .slice_starts
            .iter()
            .enumerate()
            .map(|(i, &s)| z.narrow(0, i, 1)?.narrow(2, s, seg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let z_slice = Tensor::cat(&slices, 0)?;
        let f0: Vec<Vec<f32>> = batch
            .pitchf
            .iter()
            .zip(&noise.slice_starts)
            .map(|(f, &s)| f.get(s..s + seg).map(|x| x.to_vec()))
            .collect::<Option<_>>()
            .ok_or_else(|| TrainError::Shape("pitch shorter than the utterance".into()))?;
        let y_hat = self.decoder(&z_slice, &f0, &noise.sine, &g)?;
        Ok(GenOut {
            y_hat,
            z_p,
            m_p,
            logs_p,
            m_q,
            logs_q,
            slice_starts: noise.slice_starts.clone(),
        })
    }
}

fn wn_init(
    init: &mut Init,
    p: &str,
    h: usize,
    gin: usize,
    layers: usize,
    kernel: usize,
) -> Result<()> {
    init.wn_conv(&format!("{p}.cond_layer"), &[2 * h * layers, gin, 1], true)?;
    for i in 0..layers {
        init.wn_conv(&format!("{p}.in_layers.{i}"), &[2 * h, h, kernel], true)?;
        let out = if i + 1 < layers { 2 * h } else { h };
        init.wn_conv(&format!("{p}.res_skip_layers.{i}"), &[out, h, 1], true)?;
    }
    Ok(())
}
