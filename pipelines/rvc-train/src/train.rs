//! The training loop: RVC's `train_and_evaluate` step (discriminator update, then
//! generator update against the updated discriminator), deterministic per step so a
//! resumed run repeats an uninterrupted one, with checkpoints that hold everything.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use avatar_rvc::SynthConfig;

use crate::adamw::{AdamW, AdamWConfig};
use crate::discriminator::Discriminator;
use crate::error::{io_err, Result, TrainError};
use crate::generator::{Batch, GenNoise, Generator};
use crate::loss::{discriminator_loss, feature_loss, generator_loss, kl_loss};
use crate::mel::{Mel, MelConfig};
use crate::ops::scalar;
use crate::rng::Rng;

/// One utterance ready for training (RVC's preprocessed slice plus its features).
#[derive(Debug, Clone)]
pub struct Example {
    /// `[frames, feature_dim]` content features at 100 Hz.
    pub features: Vec<f32>,
    /// `frames` F0 values in Hz.
    pub f0: Vec<f32>,
    /// `frames` coarse pitch 1..=255.
    pub f0_coarse: Vec<u32>,
    /// `frames * hop` samples at the model's rate.
    pub wav: Vec<f32>,
    pub frames: usize,
}

/// How to train; stored in checkpoints so a resume uses the same settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Utterances per step (RVC's default 4 on CPU-sized machines, 8+ on GPUs).
    pub batch: usize,
    /// Frames each utterance is cropped to (RVC uses whole 3.7 s slices: 370).
    pub frames: usize,
    pub seed: u64,
    pub optimizer: AdamWConfig,
    /// Learning-rate decay per epoch (RVC: 0.999875).
    pub lr_decay: f64,
    pub c_mel: f64,
    pub c_kl: f64,
    /// Speaker id the examples are trained as.
    pub speaker: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 4,
            frames: 370,
            seed: 1234,
            optimizer: AdamWConfig::rvc(),
            lr_decay: 0.999_875,
            c_mel: 45.0,
            c_kl: 1.0,
            speaker: 0,
        }
    }
}

/// The losses of one step (generator terms already weighted, as RVC logs them).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct Losses {
    pub disc: f32,
    pub gen: f32,
    pub fm: f32,
    pub mel: f32,
    pub kl: f32,
    pub gen_all: f32,
}

/// All the loss terms of a step, as tensors (for gradients and the reference tests).
pub struct LossTerms {
    pub disc: Tensor,
    pub gen: Tensor,
    pub fm: Tensor,
    pub mel: Tensor,
    pub kl: Tensor,
    pub y_hat: Tensor,
    pub mel_real: Tensor,
    pub mel_fake: Tensor,
}

impl LossTerms {
    /// RVC's `loss_gen_all`: adversarial + feature matching + mel + KL (weights applied).
    pub fn gen_all(&self) -> Result<Tensor> {
        Ok((((&self.gen + &self.fm)? + &self.mel)? + &self.kl)?)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    step: u64,
    config: TrainConfig,
    synth: serde_json::Value,
    version: String,
    losses: Vec<(u64, Losses)>,
}

pub struct Trainer {
    pub generator: Generator,
    pub discriminator: Discriminator,
    pub config: TrainConfig,
    pub step: u64,
    /// Loss history, one entry per step.
    pub history: Vec<(u64, Losses)>,
    opt_g: AdamW,
    opt_d: AdamW,
    mel: Mel,
    examples: Vec<Example>,
    /// Spectrogram of each example, `[bins, frames]`, computed once.
    specs: Vec<Tensor>,
    frames: usize,
    device: Device,
}

fn synth_to_json(cfg: &SynthConfig) -> Result<serde_json::Value> {
    serde_json::to_value(cfg).map_err(|e| TrainError::Input(format!("config: {e}")))
}

impl Trainer {
    pub fn new(
        generator: Generator,
        discriminator: Discriminator,
        examples: Vec<Example>,
        config: TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let cfg = &generator.cfg;
        let hop = cfg.hop_length();
        let mel = Mel::new(MelConfig::rvc(cfg.sr), device)?;
        if mel.cfg.hop != hop || mel.cfg.bins() != cfg.spec_channels {
            return Err(TrainError::Input(format!(
                "the model's hop {hop} / {} spectrogram channels do not match RVC's {} Hz data settings",
                cfg.spec_channels, cfg.sr
            )));
        }
        if examples.is_empty() {
            return Err(TrainError::Input("no training examples".into()));
        }
        if config.batch == 0 {
            return Err(TrainError::Input("batch size must be at least 1".into()));
        }
        let dim = generator.version.feature_dim();
        for (i, e) in examples.iter().enumerate() {
            if e.features.len() != e.frames * dim
                || e.f0.len() != e.frames
                || e.f0_coarse.len() != e.frames
                || e.wav.len() != e.frames * hop
            {
                return Err(TrainError::Input(format!(
                    "example {i}: features/pitch/audio do not cover its {} frames",
                    e.frames
                )));
            }
        }
        let shortest = examples.iter().map(|e| e.frames).min().unwrap_or(0);
        let frames = config.frames.min(shortest);
        if frames < cfg.segment_size {
            return Err(TrainError::Input(format!(
                "the shortest example has {shortest} frames; the decoder needs {}",
                cfg.segment_size
            )));
        }
        let specs = examples
            .iter()
            .map(|e| {
                let y = Tensor::from_slice(&e.wav, (1, e.wav.len()), device)?;
                Ok(mel.spectrogram(&y)?.squeeze(0)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            opt_g: AdamW::new(config.optimizer),
            opt_d: AdamW::new(config.optimizer),
            generator,
            discriminator,
            config,
            step: 0,
            history: Vec::new(),
            mel,
            examples,
            specs,
            frames,
            device: device.clone(),
        })
    }

    pub fn steps_per_epoch(&self) -> u64 {
        self.examples.len().div_ceil(self.config.batch) as u64
    }

    /// The learning rate at the current step (RVC decays once per epoch).
    pub fn learning_rate(&self) -> f64 {
        let epoch = self.step / self.steps_per_epoch();
        self.config.optimizer.lr * self.config.lr_decay.powi(epoch as i32)
    }

    /// The batch of step `step`: a per-epoch shuffle, random crops.
    pub fn batch(&self, step: u64) -> Result<Batch> {
        let per_epoch = self.steps_per_epoch();
        let epoch = step / per_epoch;
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        Rng::stream(self.config.seed, epoch, 10).shuffle(&mut order);
        let mut crop = Rng::stream(self.config.seed, step, 11);
        let b = self.config.batch;
        let t = self.frames;
        let hop = self.generator.cfg.hop_length();
        let dim = self.generator.version.feature_dim();
        let (mut phone, mut pitch, mut pitchf, mut specs, mut wav) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..b {
            let idx = order[((step % per_epoch) as usize * b + i) % order.len()];
            let e = &self.examples[idx];
            let s = crop.below(e.frames - t + 1);
            phone.extend_from_slice(&e.features[s * dim..(s + t) * dim]);
            pitch.extend_from_slice(&e.f0_coarse[s..s + t]);
            pitchf.push(e.f0[s..s + t].to_vec());
            specs.push(self.specs[idx].narrow(1, s, t)?);
            wav.extend_from_slice(&e.wav[s * hop..(s + t) * hop]);
        }
        let dev = &self.device;
        Ok(Batch {
            phone: Tensor::from_vec(phone, (b, t, dim), dev)?,
            pitch: Tensor::from_vec(pitch, (b, t), dev)?,
            pitchf,
            spec: Tensor::stack(&specs, 0)?,
            wav: Tensor::from_vec(wav, (b, 1, t * hop), dev)?,
            sid: Tensor::from_vec(vec![self.config.speaker; b], b, dev)?,
        })
    }

    /// All loss terms for one batch and noise draw, with the current weights.
    pub fn losses(&self, batch: &Batch, noise: &GenNoise) -> Result<LossTerms> {
        let (out, y, spec, disc) = self.discriminator_pass(batch, noise)?;
        self.generator_terms(&out, &y, &spec, disc)
    }

    /// The generator's pass, the real audio and spectrogram under its slices, and the
    /// discriminator's loss on (real, generated.detach()).
    pub fn discriminator_pass(
        &self,
        batch: &Batch,
        noise: &GenNoise,
    ) -> Result<(crate::generator::GenOut, Tensor, Tensor, Tensor)> {
        let out = self.generator.forward(batch, noise)?;
        let (y, spec) = batch.slices(&self.generator.cfg, &out.slice_starts)?;
        let d_real = self.discriminator.forward(&y, false)?;
        let d_fake = self.discriminator.forward(&out.y_hat.detach(), false)?;
        let disc = discriminator_loss(&d_real, &d_fake)?;
        Ok((out, y, spec, disc))
    }

    /// The generator's loss terms against the discriminator as it is now (its weights
    /// detached), for a generator pass from [`Trainer::discriminator_pass`].
    pub fn generator_terms(
        &self,
        out: &crate::generator::GenOut,
        y: &Tensor,
        spec: &Tensor,
        disc: Tensor,
    ) -> Result<LossTerms> {
        let d_real = self.discriminator.forward(y, true)?;
        let d_fake = self.discriminator.forward(&out.y_hat, true)?;
        let mel_real = self.mel.spec_to_mel(spec)?;
        let mel_fake = self.mel.mel(&out.y_hat.squeeze(1)?)?;
        let mel = ((&mel_real - &mel_fake)?.abs()?.mean_all()? * self.config.c_mel)?;
        let kl = (kl_loss(&out.z_p, &out.logs_q, &out.m_p, &out.logs_p)? * self.config.c_kl)?;
        Ok(LossTerms {
            disc,
            gen: generator_loss(&d_fake)?,
            fm: feature_loss(&d_real, &d_fake)?,
            mel,
            kl,
            y_hat: out.y_hat.clone(),
            mel_real,
            mel_fake,
        })
    }

    /// One RVC training step: D on (real, generated.detach()), AdamW; then the generator's
    /// losses against the updated D, AdamW. Everything random comes from (seed, step).
    pub fn train_step(&mut self) -> Result<Losses> {
        let batch = self.batch(self.step)?;
        let noise = self.noise(self.step)?;
        self.step_on(&batch, &noise)
    }

    /// The random draws of step `step` (posterior noise, slice starts, sine noise).
    pub fn noise(&self, step: u64) -> Result<GenNoise> {
        let mut rng = Rng::stream(self.config.seed, step, 12);
        GenNoise::draw(
            &mut rng,
            &self.generator.cfg,
            self.config.batch,
            self.frames,
            &self.device,
        )
    }

    /// One step on a given batch and noise (what [`Trainer::train_step`] does with the
    /// step's own draws; the reference tests pass RVC's).
    pub fn step_on(&mut self, batch: &Batch, noise: &GenNoise) -> Result<Losses> {
        let step = self.step;
        let lr = self.learning_rate();
        let (out, y, spec, disc) = self.discriminator_pass(batch, noise)?;
        let grads = disc.backward()?;
        self.opt_d.step(&self.discriminator.params, &grads, lr)?;
        drop(grads);
        let t = self.generator_terms(&out, &y, &spec, disc)?;
        let total = t.gen_all()?;
        let grads = total.backward()?;
        self.opt_g.step(&self.generator.params, &grads, lr)?;
        let losses = Losses {
            disc: scalar(&t.disc)?,
            gen: scalar(&t.gen)?,
            fm: scalar(&t.fm)?,
            mel: scalar(&t.mel)?,
            kl: scalar(&t.kl)?,
            gen_all: scalar(&total)?,
        };
        if !losses.gen_all.is_finite() || !losses.disc.is_finite() {
            return Err(TrainError::Input(format!(
                "step {step}: the losses are not finite ({losses:?}); lower the learning rate or check the data"
            )));
        }
        self.step += 1;
        self.history.push((step, losses));
        Ok(losses)
    }

    /// Save everything a resume needs into `dir` (written to a temporary folder first,
    /// then swapped in, so a kill mid-write leaves the previous checkpoint intact).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let tmp = dir.with_extension("partial");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        self.generator.params.save(&tmp.join("G.safetensors"))?;
        self.discriminator.params.save(&tmp.join("D.safetensors"))?;
        self.opt_g.save(&tmp.join("opt_G.safetensors"))?;
        self.opt_d.save(&tmp.join("opt_D.safetensors"))?;
        let state = State {
            step: self.step,
            config: self.config.clone(),
            synth: synth_to_json(&self.generator.cfg)?,
            version: self.generator.version.as_str().into(),
            losses: self.history.clone(),
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| TrainError::Input(format!("checkpoint state: {e}")))?;
        let sp = tmp.join("state.json");
        std::fs::write(&sp, json).map_err(io_err(&sp))?;
        let old = dir.with_extension("old");
        if dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
            }
            std::fs::rename(dir, &old).map_err(io_err(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io_err(dir))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
        }
        Ok(())
    }

    /// Continue from a checkpoint written by [`Trainer::save_checkpoint`]: weights,
    /// optimiser moments, step and loss history. The model shape must match.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let dir = checkpoint_dir(dir);
        let sp = dir.join("state.json");
        let bytes = std::fs::read(&sp).map_err(io_err(&sp))?;
        let state: State = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
            path: sp.display().to_string(),
            msg: e.to_string(),
        })?;
        if state.synth != synth_to_json(&self.generator.cfg)? {
            return Err(TrainError::Checkpoint {
                path: dir.display().to_string(),
                msg: "it was trained with a different model configuration".into(),
            });
        }
        self.generator
            .params
            .load(&dir.join("G.safetensors"), &self.device)?;
        self.discriminator
            .params
            .load(&dir.join("D.safetensors"), &self.device)?;
        self.opt_g = AdamW::load(
            state.config.optimizer,
            &dir.join("opt_G.safetensors"),
            &self.device,
        )?;
        self.opt_d = AdamW::load(
            state.config.optimizer,
            &dir.join("opt_D.safetensors"),
            &self.device,
        )?;
        self.config = state.config;
        self.step = state.step;
        self.history = state.losses;
        Ok(())
    }

    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    pub fn crop_frames(&self) -> usize {
        self.frames
    }
}

/// A checkpoint folder that survived a kill: `dir` itself, or the previous one kept as
/// `dir.old` if the kill came between the two renames.
fn checkpoint_dir(dir: &Path) -> PathBuf {
    if dir.join("state.json").exists() {
        dir.to_path_buf()
    } else {
        dir.with_extension("old")
    }
}

/// Whether `dir` holds a checkpoint [`Trainer::resume`] can read.
pub fn has_checkpoint(dir: &Path) -> bool {
    checkpoint_dir(dir).join("state.json").exists()
}

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod tests {
    use super::*;
    use avatar_rvc::Version;

    /// The tiny synthesiser the reference test also uses: 8 channels, one attention layer,
    /// decoder 32 → 2 channels, hop 400 at 40 kHz, 4-frame decoded segments.
    pub fn tiny_config() -> SynthConfig {
        let list: Vec<serde_json::Value> = serde_json::from_str(
            r#"[1025, 4, 8, 8, 16, 2, 1, 3, 0, "1", [3], [[1,3,5]], [10,10,2,2], 32, [16,16,4,4], 4, 8, 40000]"#,
        )
        .unwrap();
        SynthConfig::from_list(&list).unwrap()
    }

    /// Voiced "speech": a harmonic tone whose pitch glides, with features that follow it.
    pub fn synthetic_examples(n: usize, frames: usize) -> Vec<Example> {
        let hop = 400;
        (0..n)
            .map(|k| {
                let mut rng = Rng::new(k as u64);
                let f0: Vec<f32> = (0..frames)
                    .map(|i| 120.0 + 40.0 * k as f32 + 2.0 * i as f32)
                    .collect();
                let mut phase = 0f64;
                let wav: Vec<f32> = (0..frames * hop)
                    .map(|s| {
                        let f = f0[s / hop] as f64;
                        phase += f / 40_000.0;
                        let p = 2.0 * std::f64::consts::PI * phase;
                        (0.3 * p.sin() + 0.15 * (2.0 * p).sin() + 0.05 * (3.0 * p).sin()) as f32
                            + 0.01 * rng.normal() as f32
                    })
                    .collect();
                let features = (0..frames)
                    .flat_map(|i| {
                        let base = f0[i] / 100.0;
                        (0..768).map(move |d| ((d as f32 * 0.01 + base).sin()) * 0.5)
                    })
                    .collect();
                let f0_coarse = avatar_rvc::f0_to_coarse(&f0);
                Example {
                    features,
                    f0,
                    f0_coarse,
                    wav,
                    frames,
                }
            })
            .collect()
    }

    pub fn tiny_trainer(seed: u64) -> Trainer {
        let dev = Device::Cpu;
        let g = Generator::new(&tiny_config(), Version::V2, seed, &dev).unwrap();
        let d = Discriminator::new(seed, 16, &dev).unwrap();
        let cfg = TrainConfig {
            batch: 2,
            frames: 10,
            seed,
            optimizer: AdamWConfig {
                lr: 2e-3,
                ..AdamWConfig::rvc()
            },
            ..TrainConfig::default()
        };
        Trainer::new(g, d, synthetic_examples(3, 12), cfg, &dev).unwrap()
    }

    #[test]
    fn resumed_run_repeats_the_uninterrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ckpt");
        let mut a = tiny_trainer(5);
        a.train_step().unwrap();
        a.train_step().unwrap();
        a.save_checkpoint(&ck).unwrap();
        let next = a.train_step().unwrap();

        let mut b = tiny_trainer(99); // different initial weights: all must come from the checkpoint
        b.config.seed = 5;
        b.resume(&ck).unwrap();
        assert_eq!(b.step, 2);
        let again = b.train_step().unwrap();
        assert!(
            (next.gen_all - again.gen_all).abs() <= 1e-5 * next.gen_all.abs().max(1.0),
            "{next:?} vs {again:?}"
        );
        assert!((next.disc - again.disc).abs() <= 1e-5 * next.disc.abs().max(1.0));
    }
}

#[cfg(test)]
mod learning {
    use super::tests::tiny_trainer;

    /// A few dozen steps on synthetic voiced audio: the reconstruction (mel) and KL
    /// terms fall, as they do in the first minutes of any RVC run.
    #[test]
    fn losses_fall() {
        let mut t = tiny_trainer(3);
        let losses: Vec<_> = (0..60).map(|_| t.train_step().unwrap()).collect();
        let mean = |s: &[super::Losses], f: fn(&super::Losses) -> f32| {
            s.iter().map(f).sum::<f32>() / s.len() as f32
        };
        let (first, last) = (&losses[..10], &losses[50..]);
        eprintln!(
            "mel {} -> {}",
            mean(first, |l| l.mel),
            mean(last, |l| l.mel)
        );
        eprintln!("kl {} -> {}", mean(first, |l| l.kl), mean(last, |l| l.kl));
        eprintln!(
            "all {} -> {}",
            mean(first, |l| l.gen_all),
            mean(last, |l| l.gen_all)
        );
        assert!(mean(last, |l| l.mel) < 0.8 * mean(first, |l| l.mel));
        assert!(mean(last, |l| l.kl) < mean(first, |l| l.kl));
        assert!(mean(last, |l| l.gen_all) < mean(first, |l| l.gen_all));
    }
}
