//! LoRA training: packing, masked loss, AdamW with warmup + cosine, gradient accumulation and
//! clipping, checkpoints that a killed run resumes from bit-for-bit.
//!
//! The optimiser is written here rather than taken from candle-nn because a resumable run needs
//! its moments saved and restored, and accumulation/clipping need the gradients between
//! `backward` and the update — candle-nn's `AdamW` keeps both private.
//!
//! Determinism: the order of the packed sequences is a seeded permutation per epoch, computed
//! from (seed, epoch) alone, so step N sees the same batch whether or not the run was resumed.

use crate::lora::SplitMix64;
use crate::{LlmError, Result};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var, D};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// What the trainer needs from a model: logits for every position, through differentiable ops.
pub trait TrainableModel {
    /// `ids`: `[batch, seq]` u32 → logits `[batch, seq, vocab]` (f32).
    fn forward_train(&self, ids: &Tensor) -> Result<Tensor>;

    /// Mean next-token loss over the masked targets of `ids` and their number, as
    /// [`masked_loss`] computes it from [`TrainableModel::forward_train`]'s logits (the
    /// default). Models override it to skip work that the loss does not need.
    fn loss(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, usize)> {
        let logits = self.forward_train(ids)?;
        masked_loss(&logits, ids, mask)
    }
}

impl TrainableModel for crate::model::Llama {
    fn forward_train(&self, ids: &Tensor) -> Result<Tensor> {
        crate::model::Llama::forward_train(self, ids)
    }

    fn loss(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, usize)> {
        crate::model::Llama::train_loss(self, ids, mask)
    }
}

/// Hyper-parameters of one training run. Defaults suit a 135M model on a CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimiser updates to run (each over `grad_accum` micro-batches).
    pub steps: usize,
    pub learning_rate: f64,
    /// The cosine decays to `learning_rate * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Micro-batches whose gradients are summed before one update.
    pub grad_accum: usize,
    /// Global gradient-norm clip; 0 disables.
    pub max_grad_norm: f64,
    /// Tokens per packed sequence.
    pub seq_len: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    pub seed: u64,
    /// Save a checkpoint every N steps (0: only at the end).
    pub checkpoint_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            learning_rate: 2e-4,
            min_lr_ratio: 0.1,
            warmup_steps: 10,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_accum: 1,
            max_grad_norm: 1.0,
            seq_len: 256,
            batch_size: 4,
            seed: 42,
            checkpoint_every: 25,
        }
    }
}

/// Learning rate at `step` (0-based): linear warmup, then cosine down to the floor.
pub fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    let peak = cfg.learning_rate;
    if cfg.warmup_steps > 0 && step < cfg.warmup_steps {
        return peak * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    let decay_steps = cfg.steps.saturating_sub(cfg.warmup_steps).max(1);
    let progress = ((step - cfg.warmup_steps.min(step)) as f64 / decay_steps as f64).min(1.0);
    let floor = peak * cfg.min_lr_ratio;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// One tokenised example: ids and which positions the loss counts (the person's tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
}

/// A fixed-length training row made of one or more examples back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
}

impl Packed {
    pub fn target_tokens(&self) -> usize {
        // The first position is never a target (nothing predicts it).
        self.loss_mask.iter().skip(1).filter(|m| **m).count()
    }
}

/// Packs examples greedily into rows of exactly `seq_len` tokens (the rest padded with `pad_id`
/// and masked). An example longer than a row keeps its last `seq_len` tokens, where the
/// person's reply is; examples with nothing to learn are dropped.
pub fn pack(examples: &[Encoded], seq_len: usize, pad_id: u32) -> Vec<Packed> {
    let mut rows = Vec::new();
    let mut ids: Vec<u32> = Vec::with_capacity(seq_len);
    let mut mask: Vec<bool> = Vec::with_capacity(seq_len);
    let flush = |ids: &mut Vec<u32>, mask: &mut Vec<bool>, rows: &mut Vec<Packed>| {
        if mask.iter().skip(1).any(|m| *m) {
            ids.resize(seq_len, pad_id);
            mask.resize(seq_len, false);
            rows.push(Packed {
                ids: std::mem::take(ids),
                loss_mask: std::mem::take(mask),
            });
        } else {
            ids.clear();
            mask.clear();
        }
    };
    for ex in examples {
        if seq_len == 0 || ex.ids.is_empty() || ex.ids.len() != ex.loss_mask.len() {
            continue;
        }
        let start = ex.ids.len().saturating_sub(seq_len);
        let (e_ids, e_mask) = (&ex.ids[start..], &ex.loss_mask[start..]);
        if !e_mask.iter().skip(1).any(|m| *m) {
            continue;
        }
        if ids.len() + e_ids.len() > seq_len {
            flush(&mut ids, &mut mask, &mut rows);
        }
        ids.extend_from_slice(e_ids);
        // A row's first token has no predecessor in the row: never a target.
        let first = mask.is_empty();
        mask.extend(
            e_mask
                .iter()
                .enumerate()
                .map(|(i, m)| *m && !(first && i == 0)),
        );
    }
    flush(&mut ids, &mut mask, &mut rows);
    rows
}

/// Mean cross-entropy of next-token predictions over the masked target positions.
/// Returns the loss (a scalar tensor that carries gradients) and the number of target tokens.
pub fn masked_loss(logits: &Tensor, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, usize)> {
    let (b, t, v) = logits.dims3()?;
    if t < 2 {
        return Err(LlmError::Generate(
            "a training row needs at least two tokens".into(),
        ));
    }
    let pred = logits.narrow(1, 0, t - 1)?.reshape((b * (t - 1), v))?;
    let target = ids.narrow(1, 1, t - 1)?.reshape(b * (t - 1))?;
    let m = mask.narrow(1, 1, t - 1)?.reshape(b * (t - 1))?;
    let targets: Vec<u32> = target.to_dtype(DType::U32)?.to_vec1()?;
    let nll = nll_rows(&pred, &targets)?;
    let n = m.sum_all()?.to_scalar::<f32>()? as usize;
    let total = (nll * &m)?.sum_all()?;
    let loss = (total / n.max(1) as f64)?;
    Ok((loss, n))
}

/// Per-row negative log-likelihood `logsumexp(logits[r]) - logits[r, targets[r]]` of
/// `logits [rows, vocab]`: `[rows]`, differentiable. On the CPU one fused pass each way (the
/// softmax kept from the forward is the backward's buffer), instead of a log-softmax graph that
/// walks the `[rows, vocab]` matrix a dozen times; elsewhere plain ops.
pub fn nll_rows(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let (rows, vocab) = logits.dims2()?;
    if targets.len() != rows {
        return Err(LlmError::Generate(format!(
            "{} targets for {rows} rows of logits",
            targets.len()
        )));
    }
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        return Err(LlmError::Generate(format!(
            "target id {bad} is outside the vocabulary of {vocab}"
        )));
    }
    if logits.device().is_cpu() && logits.dtype() == DType::F32 {
        return Ok(logits.contiguous()?.apply_op1(NllOp {
            targets: targets.to_vec(),
            probs: Mutex::new(None),
        })?);
    }
    let t = Tensor::new(targets, logits.device())?.unsqueeze(1)?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(logp.gather(&t, 1)?.squeeze(1)?.neg()?)
}

/// The fused cross-entropy of [`nll_rows`]; the forward keeps the softmax for the backward.
struct NllOp {
    targets: Vec<u32>,
    probs: Mutex<Option<Vec<f32>>>,
}

/// Softmax of each row of `x` into `p` (same shape), returning each row's logsumexp.
fn softmax_rows(x: &[f32], p: &mut [f32], vocab: usize) -> Vec<f32> {
    p.par_chunks_mut(vocab)
        .zip(x.par_chunks(vocab))
        .map(|(p, x)| {
            let m = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let mut sum = 0f32;
            for (p, x) in p.iter_mut().zip(x) {
                *p = (x - m).exp();
                sum += *p;
            }
            let inv = 1.0 / sum;
            for p in p.iter_mut() {
                *p *= inv;
            }
            m + sum.ln()
        })
        .collect()
}

impl CustomOp1 for NllOp {
    fn name(&self) -> &'static str {
        "fused-nll"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, vocab) = l.shape().dims2()?;
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("fused nll: contiguous f32 logits expected"),
        };
        let mut p = vec![0f32; x.len()];
        let lse = softmax_rows(x, &mut p, vocab);
        let nll: Vec<f32> = (0..rows)
            .map(|r| lse[r] - x[r * vocab + self.targets[r] as usize])
            .collect();
        if let Ok(mut slot) = self.probs.lock() {
            *slot = Some(p);
        }
        Ok((CpuStorage::F32(nll), Shape::from(rows)))
    }

    fn bwd(&self, x: &Tensor, _: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, vocab) = x.dims2()?;
        let g: Vec<f32> = g.to_dtype(DType::F32)?.to_vec1()?;
        let kept = self.probs.lock().ok().and_then(|mut s| s.take());
        let mut p = match kept {
            Some(p) => p,
            // A second backward over the same graph: recompute.
            None => {
                let xs: Vec<f32> = x.detach().flatten_all()?.to_vec1()?;
                let mut p = vec![0f32; xs.len()];
                softmax_rows(&xs, &mut p, vocab);
                p
            }
        };
        // d nll_r / d x_rj = softmax_rj - [j = target_r].
        p.par_chunks_mut(vocab)
            .zip(g.par_iter().zip(self.targets.par_iter()))
            .for_each(|(p, (&g, &t))| {
                p[t as usize] -= 1.0;
                for v in p.iter_mut() {
                    *v *= g;
                }
            });
        Ok(Some(Tensor::from_vec(p, x.shape(), x.device())?))
    }
}

fn batch_tensors(rows: &[&Packed], device: &Device) -> Result<(Tensor, Tensor)> {
    let b = rows.len();
    let t = rows.first().map(|r| r.ids.len()).unwrap_or(0);
    let ids: Vec<u32> = rows.iter().flat_map(|r| r.ids.iter().copied()).collect();
    let mask: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.loss_mask.iter().map(|m| if *m { 1.0 } else { 0.0 }))
        .collect();
    Ok((
        Tensor::from_vec(ids, (b, t), device)?,
        Tensor::from_vec(mask, (b, t), device)?,
    ))
}

/// Perplexity (exp of the mean per-token NLL) over the masked positions of `rows`.
pub fn perplexity<M: TrainableModel>(
    model: &M,
    rows: &[Packed],
    batch_size: usize,
    device: &Device,
) -> Result<f64> {
    let mut nll = 0f64;
    let mut count = 0usize;
    for chunk in rows.chunks(batch_size.max(1)) {
        let refs: Vec<&Packed> = chunk.iter().collect();
        let (ids, mask) = batch_tensors(&refs, device)?;
        let (loss, n) = model.loss(&ids, &mask)?;
        nll += loss.to_scalar::<f32>()? as f64 * n as f64;
        count += n;
    }
    if count == 0 {
        return Err(LlmError::Generate(
            "no target tokens to measure perplexity on".into(),
        ));
    }
    Ok((nll / count as f64).exp())
}

/// The order of rows in `epoch`: a Fisher–Yates shuffle seeded by (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed ^ epoch.wrapping_mul(0xA076_1D64_78BD_642F));
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// AdamW with decoupled weight decay, over named variables, with state that can be saved.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates done so far (for bias correction).
    t: usize,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW { vars, m, v, t: 0 })
    }

    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update with gradients given in the order of `vars`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64, cfg: &TrainConfig) -> Result<()> {
        self.t += 1;
        let bc1 = 1.0 - cfg.beta1.powi(self.t as i32);
        let bc2 = 1.0 - cfg.beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let g = &grads[i];
            let m = ((&self.m[i] * cfg.beta1)? + (g * (1.0 - cfg.beta1))?)?;
            let v = ((&self.v[i] * cfg.beta2)? + (g.sqr()? * (1.0 - cfg.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + cfg.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * cfg.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, var)) in self.vars.iter().enumerate() {
            out.insert(name.clone(), var.as_tensor().clone());
            out.insert(format!("optimizer.m.{name}"), self.m[i].clone());
            out.insert(format!("optimizer.v.{name}"), self.v[i].clone());
        }
        out
    }

    fn restore(&mut self, state: &HashMap<String, Tensor>, t: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let get = |k: &str| {
                state
                    .get(k)
                    .ok_or_else(|| LlmError::Model(format!("checkpoint has no tensor {k}")))
            };
            var.set(get(name)?)?;
            self.m[i] = get(&format!("optimizer.m.{name}"))?.clone();
            self.v[i] = get(&format!("optimizer.v.{name}"))?.clone();
        }
        self.t = t;
        Ok(())
    }
}

/// What the progress display shows after each update.
#[derive(Debug, Clone, Serialize)]
pub struct StepStats {
    /// 1-based number of the update just done.
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_sec: f64,
    pub eta_seconds: f64,
}

/// The checkpoint's sidecar: where the run was.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    step: usize,
    config: TrainConfig,
    rows: usize,
    losses: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    /// Steps done in total (resumed ones included).
    pub steps: usize,
    /// Step at which this invocation started (0 for a fresh run).
    pub resumed_from: usize,
    /// Mean loss of every step, resumed ones included.
    pub losses: Vec<f64>,
    /// Tokens (every position of the rows) processed per second in this invocation.
    pub tokens_per_sec: f64,
    /// Whether `on_step` asked to stop early.
    pub interrupted: bool,
}

/// Runs (or resumes) training of `vars` on `rows`.
///
/// With `checkpoint_dir`, a checkpoint is written every `cfg.checkpoint_every` steps and at the
/// end, and an existing one (from a killed or shorter run with the same settings) is resumed.
/// `on_step` sees every update; returning `false` stops after a checkpoint.
pub fn train<M: TrainableModel>(
    model: &M,
    vars: Vec<(String, Var)>,
    rows: &[Packed],
    cfg: &TrainConfig,
    checkpoint_dir: Option<&Path>,
    device: &Device,
    mut on_step: impl FnMut(&StepStats) -> bool,
) -> Result<TrainOutcome> {
    if rows.is_empty() {
        return Err(LlmError::Generate(
            "the dataset has no training rows (nothing written by the person?)".into(),
        ));
    }
    let mut opt = AdamW::new(vars)?;
    let mut losses = Vec::new();
    let mut start = 0usize;
    if let Some(dir) = checkpoint_dir {
        if let Some((meta, state)) = load_checkpoint(dir, device)? {
            let mut saved = meta.config.clone();
            saved.steps = cfg.steps;
            saved.checkpoint_every = cfg.checkpoint_every;
            if saved != *cfg || meta.rows != rows.len() {
                return Err(LlmError::Config(format!(
                    "{} holds a checkpoint of a run with other settings or data; remove it to start over",
                    dir.display()
                )));
            }
            opt.restore(&state, meta.step)?;
            start = meta.step;
            losses = meta.losses;
        }
    }
    let accum = cfg.grad_accum.max(1);
    let bs = cfg.batch_size.max(1);
    let batches_per_epoch = rows.len().div_ceil(bs);
    let started = Instant::now();
    let mut tokens_done = 0usize;
    let mut interrupted = false;
    let mut step = start;
    let mut order_cache: Option<(u64, Vec<usize>)> = None;
    while step < cfg.steps {
        let lr = lr_at(cfg, step);
        let mut sum: Vec<Option<Tensor>> = vec![None; opt.vars.len()];
        let mut loss_sum = 0f64;
        for micro in 0..accum {
            let g = (step * accum + micro) as u64;
            let epoch = g / batches_per_epoch as u64;
            let within = (g % batches_per_epoch as u64) as usize;
            if order_cache.as_ref().map(|(e, _)| *e) != Some(epoch) {
                order_cache = Some((epoch, epoch_order(rows.len(), cfg.seed, epoch)));
            }
            let order = order_cache
                .as_ref()
                .map(|(_, o)| o.as_slice())
                .unwrap_or(&[]);
            let picked: Vec<&Packed> = order
                .iter()
                .skip(within * bs)
                .take(bs)
                .map(|&i| &rows[i])
                .collect();
            let (ids, mask) = batch_tensors(&picked, device)?;
            let (loss, _targets) = model.loss(&ids, &mask)?;
            // Throughput counts every position the model processed (as PyTorch benchmarks do),
            // not only the targets.
            tokens_done += picked.iter().map(|r| r.ids.len()).sum::<usize>();
            let loss = (loss / accum as f64)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let grads = loss.backward()?;
            for (i, (_, var)) in opt.vars.iter().enumerate() {
                if let Some(gr) = grads.get(var.as_tensor()) {
                    sum[i] = Some(match sum[i].take() {
                        Some(acc) => (acc + gr)?,
                        None => gr.clone(),
                    });
                }
            }
        }
        let grads: Vec<Tensor> = sum
            .into_iter()
            .zip(opt.vars.iter())
            .map(|(g, (_, v))| match g {
                Some(g) => Ok(g),
                None => v.as_tensor().zeros_like(),
            })
            .collect::<candle_core::Result<_>>()?;
        let mut norm_sq = 0f64;
        for g in &grads {
            norm_sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        let grad_norm = norm_sq.sqrt();
        let grads = if cfg.max_grad_norm > 0.0 && grad_norm > cfg.max_grad_norm {
            let s = cfg.max_grad_norm / (grad_norm + 1e-6);
            grads
                .iter()
                .map(|g| g * s)
                .collect::<candle_core::Result<Vec<_>>>()?
        } else {
            grads
        };
        opt.step(&grads, lr, cfg)?;
        step += 1;
        losses.push(loss_sum);
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let done_here = step - start;
        let stats = StepStats {
            step,
            steps: cfg.steps,
            loss: loss_sum,
            lr,
            grad_norm,
            tokens_per_sec: tokens_done as f64 / elapsed,
            eta_seconds: elapsed / done_here as f64 * (cfg.steps - step) as f64,
        };
        let keep_going = on_step(&stats);
        if let Some(dir) = checkpoint_dir {
            let due = cfg.checkpoint_every > 0 && step.is_multiple_of(cfg.checkpoint_every);
            if due || step == cfg.steps || !keep_going {
                save_checkpoint(dir, &opt, cfg, rows.len(), step, &losses)?;
            }
        }
        if !keep_going {
            interrupted = true;
            break;
        }
    }
    Ok(TrainOutcome {
        steps: step,
        resumed_from: start,
        losses,
        tokens_per_sec: tokens_done as f64 / started.elapsed().as_secs_f64().max(1e-9),
        interrupted,
    })
}

const LATEST: &str = "latest";

/// Writes `dir/step-N/{state.safetensors, meta.json}`, then points `dir/latest` at it with an
/// atomic rename, then removes older ones: a kill at any moment leaves a complete checkpoint.
fn save_checkpoint(
    dir: &Path,
    opt: &AdamW,
    cfg: &TrainConfig,
    rows: usize,
    step: usize,
    losses: &[f64],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("step-{step:08}");
    let target = dir.join(&name);
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    std::fs::create_dir_all(&target)?;
    let state = opt.state();
    candle_core::safetensors::save(&state, target.join("state.safetensors"))?;
    let meta = CheckpointMeta {
        step,
        config: cfg.clone(),
        rows,
        losses: losses.to_vec(),
    };
    std::fs::write(target.join("meta.json"), serde_json::to_vec_pretty(&meta)?)?;
    let tmp = dir.join(format!("{LATEST}.tmp"));
    std::fs::write(&tmp, name.as_bytes())?;
    std::fs::rename(&tmp, dir.join(LATEST))?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let n = entry.file_name().to_string_lossy().to_string();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// The newest complete checkpoint under `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(dir.join(LATEST)).ok()?;
    let p = dir.join(name.trim());
    p.join("meta.json").is_file().then_some(p)
}

#[allow(clippy::type_complexity)]
fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<Option<(CheckpointMeta, HashMap<String, Tensor>)>> {
    let Some(p) = latest_checkpoint(dir) else {
        return Ok(None);
    };
    let meta: CheckpointMeta = serde_json::from_slice(&std::fs::read(p.join("meta.json"))?)?;
    let state = candle_core::safetensors::load(p.join("state.safetensors"), device)?;
    Ok(Some((meta, state)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Module;

    /// A real (tiny) differentiable language model: embedding → linear, both trainable.
    struct Bigram {
        emb: Var,
        out: Var,
    }

    impl Bigram {
        fn new(vocab: usize, dim: usize, seed: u64) -> Bigram {
            let mut rng = SplitMix64::new(seed);
            let mut rand = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| (rng.next_u64() % 10_000) as f32 / 10_000.0 - 0.5)
                    .collect()
            };
            let dev = Device::Cpu;
            Bigram {
                emb: Var::from_tensor(
                    &Tensor::from_vec(rand(vocab * dim), (vocab, dim), &dev).unwrap(),
                )
                .unwrap(),
                out: Var::from_tensor(
                    &Tensor::from_vec(rand(vocab * dim), (vocab, dim), &dev).unwrap(),
                )
                .unwrap(),
            }
        }
        fn vars(&self) -> Vec<(String, Var)> {
            vec![
                ("emb".to_string(), self.emb.clone()),
                ("out".to_string(), self.out.clone()),
            ]
        }
    }

    impl TrainableModel for Bigram {
        fn forward_train(&self, ids: &Tensor) -> Result<Tensor> {
            let (b, t) = ids.dims2()?;
            let e = candle_nn::Embedding::new(self.emb.as_tensor().clone(), 8);
            let x = e.forward(ids)?; // [b,t,d]
            let logits = x
                .reshape((b * t, 8))?
                .matmul(&self.out.as_tensor().t()?)?
                .reshape((b, t, ()))?;
            Ok(logits)
        }
    }

    fn data() -> Vec<Packed> {
        let ex: Vec<Encoded> = (0..12u32)
            .map(|i| Encoded {
                ids: vec![1, 2 + i % 3, 5, 6, 7 + i % 2],
                loss_mask: vec![false, false, true, true, true],
            })
            .collect();
        pack(&ex, 10, 0)
    }

    fn cfg(steps: usize) -> TrainConfig {
        TrainConfig {
            steps,
            learning_rate: 0.05,
            warmup_steps: 2,
            seq_len: 10,
            batch_size: 2,
            grad_accum: 2,
            checkpoint_every: 2,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = TrainConfig {
            steps: 100,
            warmup_steps: 10,
            learning_rate: 1.0,
            min_lr_ratio: 0.1,
            ..TrainConfig::default()
        };
        assert!((lr_at(&c, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&c, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(&c, 10) - 1.0).abs() < 1e-12);
        assert!(lr_at(&c, 55) < 0.6 && lr_at(&c, 55) > 0.5);
        assert!((lr_at(&c, 100) - 0.1).abs() < 1e-9);
        for s in 10..100 {
            assert!(lr_at(&c, s + 1) <= lr_at(&c, s) + 1e-12);
        }
    }

    #[test]
    fn packing_fills_rows_and_masks_padding_and_row_starts() {
        let ex = vec![
            Encoded {
                ids: vec![1, 2, 3],
                loss_mask: vec![true, true, true],
            },
            Encoded {
                ids: vec![4, 5, 6, 7],
                loss_mask: vec![false, false, true, true],
            },
            Encoded {
                ids: vec![8, 9, 10, 11, 12, 13],
                loss_mask: vec![false, false, false, false, true, true],
            },
            Encoded {
                ids: vec![20, 21],
                loss_mask: vec![false, false],
            },
        ];
        let rows = pack(&ex, 8, 0);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].ids, vec![1, 2, 3, 4, 5, 6, 7, 0]);
        assert_eq!(
            rows[0].loss_mask,
            vec![false, true, true, false, false, true, true, false]
        );
        assert_eq!(rows[1].ids, vec![8, 9, 10, 11, 12, 13, 0, 0]);
        assert_eq!(rows[0].target_tokens(), 4);
        // Too long: the tail (the reply) is kept.
        let long = Encoded {
            ids: (0..20).collect(),
            loss_mask: (0..20).map(|i| i >= 15).collect(),
        };
        let rows = pack(&[long], 8, 0);
        assert_eq!(rows[0].ids, (12..20).collect::<Vec<u32>>());
    }

    #[test]
    fn masked_loss_counts_only_masked_targets() {
        let dev = Device::Cpu;
        // Uniform logits over 4 tokens: every target costs ln 4.
        let logits = Tensor::zeros((1, 3, 4), DType::F32, &dev).unwrap();
        let ids = Tensor::new(&[[0u32, 1, 2]], &dev).unwrap();
        let mask = Tensor::new(&[[0f32, 1., 0.]], &dev).unwrap();
        let (loss, n) = masked_loss(&logits, &ids, &mask).unwrap();
        assert_eq!(n, 1);
        assert!((loss.to_scalar::<f32>().unwrap() - 4f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn training_lowers_the_loss_and_perplexity() {
        let m = Bigram::new(16, 8, 1);
        let rows = data();
        let before = perplexity(&m, &rows, 4, &Device::Cpu).unwrap();
        let out = train(&m, m.vars(), &rows, &cfg(30), None, &Device::Cpu, |_| true).unwrap();
        let after = perplexity(&m, &rows, 4, &Device::Cpu).unwrap();
        assert_eq!(out.steps, 30);
        assert!(after < before * 0.5, "perplexity {before} -> {after}");
        assert!(out.losses.last().unwrap() < out.losses.first().unwrap());
    }

    #[test]
    fn a_killed_run_resumes_to_the_same_weights() {
        let rows = data();
        let straight = Bigram::new(16, 8, 7);
        let a = train(
            &straight,
            straight.vars(),
            &rows,
            &cfg(6),
            None,
            &Device::Cpu,
            |_| true,
        )
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let first = Bigram::new(16, 8, 7);
        // "Killed" after step 3: the callback stops the run (a checkpoint is written).
        let b1 = train(
            &first,
            first.vars(),
            &rows,
            &cfg(6),
            Some(dir.path()),
            &Device::Cpu,
            |s| s.step < 3,
        )
        .unwrap();
        assert!(b1.interrupted);
        assert_eq!(b1.steps, 3);
        // A new process: fresh model, same seed; it resumes from the checkpoint.
        let second = Bigram::new(16, 8, 7);
        let b2 = train(
            &second,
            second.vars(),
            &rows,
            &cfg(6),
            Some(dir.path()),
            &Device::Cpu,
            |_| true,
        )
        .unwrap();
        assert_eq!(b2.resumed_from, 3);
        assert_eq!(b2.losses, a.losses);
        let d = (straight.out.as_tensor() - second.out.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
        assert!(latest_checkpoint(dir.path()).is_some());
        // Other settings refuse to resume instead of mixing runs.
        let mut other = cfg(6);
        other.learning_rate = 0.5;
        let third = Bigram::new(16, 8, 7);
        assert!(train(
            &third,
            third.vars(),
            &rows,
            &other,
            Some(dir.path()),
            &Device::Cpu,
            |_| true
        )
        .is_err());
    }

    #[test]
    fn clipping_bounds_the_update() {
        let rows = data();
        let m = Bigram::new(16, 8, 3);
        let mut c = cfg(1);
        c.max_grad_norm = 1e-3;
        let mut seen = 0.0;
        train(&m, m.vars(), &rows, &c, None, &Device::Cpu, |s| {
            seen = s.grad_norm;
            true
        })
        .unwrap();
        assert!(seen > 1e-3, "the raw norm is reported: {seen}");
    }
}
