//! LoRA training throughput: tokens per second of `avatar_llm::train::train` (candle, CPU, f32)
//! on SmolLM2-135M-Instruct against PyTorch + PEFT on the same GGUF, the same synthetic batches
//! and the same settings, in the same run (the issue asks for ≥ 1.0× PyTorch fp32).
//!
//! Run: `cargo bench -p avatar-llm --bench train`. Needs the GGUF (`infra/fetch-models.sh
//! smollm2`); the Python side comes from `infra/bench/setup.sh llm` (`AVATAR_BENCH_PYTHON` picks
//! another interpreter, `AVATAR_BENCH_NO_PYTHON=1` skips it). Settings mirror
//! infra/bench/llm_train_baseline.py: seq 256, batch 4, LoRA r16 alpha 32 on all seven
//! projections, AdamW, clip 1.0, token i of row b = (b·7919 + i·104729 + 13) % vocab, every
//! position a target. One warm-up step, then `AVATAR_BENCH_STEPS` (default 3) timed ones.
//! `AVATAR_BENCH_PROFILE=1` also times the phases of a step (forward, loss, backward, update).
//!
//! MFU counts 4·N·tokens model FLOPs per step (forward 2N, backward to the activations 2N; the
//! frozen weights need no gradient), N the base parameter count, against candle's f32 matmul
//! rate measured in the same run on a 2048² product.
//!
//! A plain `main` (harness = false) that does nothing unless cargo passes `--bench`, so
//! `cargo test --all-targets` does not spend minutes here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use avatar_llm::load::{default_model_path, load_gguf};
use avatar_llm::lora::LoraConfig;
use avatar_llm::model::Llama;
use avatar_llm::train::{masked_loss, train, Packed, TrainConfig, TrainableModel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

const SEQ: usize = 256;
const BATCH: usize = 4;
const RANK: usize = 16;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("train benchmark: run it with `cargo bench -p avatar-llm --bench train`");
        return;
    }
    if let Err(e) = run() {
        println!("train benchmark failed: {e}");
        std::process::exit(1);
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn run() -> avatar_llm::Result<()> {
    let steps = env_num("AVATAR_BENCH_STEPS", 3).max(1);
    let path = default_model_path();
    if !path.is_file() {
        println!(
            "train benchmark skipped: no model at {} (run infra/fetch-models.sh smollm2)",
            path.display()
        );
        return Ok(());
    }
    let device = Device::Cpu;
    let t = Instant::now();
    let (cfg, weights, _) = load_gguf(&path, &device)?;
    let n_params: usize = weights.iter().map(|(_, t)| t.elem_count()).sum();
    let lora = LoraConfig {
        r: RANK,
        alpha: 2.0 * RANK as f64,
        ..LoraConfig::default()
    };
    let varmap = VarMap::new();
    let model = Llama::new(&cfg, &weights, Some(&lora), &varmap, 0)?;
    drop(weights);
    let mut vars: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .map_err(|_| avatar_llm::LlmError::Model("VarMap lock poisoned".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let lora_params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    eprintln!(
        "model: {} base params, {} LoRA params, loaded in {:.1}s; {} threads",
        n_params,
        lora_params,
        t.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );

    let vocab = cfg.vocab_size;
    let rows: Vec<Packed> = (0..BATCH)
        .map(|b| Packed {
            ids: (0..SEQ)
                .map(|i| ((b * 7919 + i * 104729 + 13) % vocab) as u32)
                .collect(),
            loss_mask: vec![true; SEQ],
        })
        .collect();

    let peak = matmul_gflops(&device)?;
    println!("candle f32 matmul (2048²):       {peak:8.1} GFLOP/s");

    if std::env::var_os("AVATAR_BENCH_PROFILE").is_some() {
        profile(&model, &vars, &rows, &device)?;
    }

    let tcfg = TrainConfig {
        steps: steps + 1,
        learning_rate: 1e-4,
        warmup_steps: 0,
        weight_decay: 0.01,
        max_grad_norm: 1.0,
        seq_len: SEQ,
        batch_size: BATCH,
        grad_accum: 1,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let mut marks: Vec<(Instant, f64)> = Vec::new();
    let out = train(&model, vars, &rows, &tcfg, None, &device, |s| {
        marks.push((Instant::now(), s.loss));
        true
    })?;
    let (first, last) = match (marks.first(), marks.last()) {
        (Some(a), Some(b)) if marks.len() > 1 => (a.0, b.0),
        _ => return Err(avatar_llm::LlmError::Generate("no steps timed".into())),
    };
    let step_s = (last - first).as_secs_f64() / steps as f64;
    let tokens = (BATCH * SEQ) as f64;
    let rate = tokens / step_s;
    let flops = 4.0 * n_params as f64 * tokens;
    let mfu = flops / step_s / (peak * 1e9);
    println!(
        "candle f32 LoRA train:           {rate:8.1} tokens/s ({step_s:.2} s/step over {steps} steps, MFU {:.0}%, loss {:.3} → {:.3})",
        mfu * 100.0,
        out.losses.first().copied().unwrap_or(f64::NAN),
        out.losses.last().copied().unwrap_or(f64::NAN),
    );

    if std::env::var_os("AVATAR_BENCH_NO_PYTHON").is_some() {
        println!("pytorch baseline skipped (AVATAR_BENCH_NO_PYTHON)");
        return Ok(());
    }
    let Some(python) = python() else {
        return Ok(());
    };
    for bf16 in [false, true] {
        let name = if bf16 { "bf16 autocast" } else { "fp32" };
        match baseline(&python, &path, steps, bf16) {
            Some(py) => {
                let py_mfu = flops / py.step_s / (peak * 1e9);
                println!(
                    "pytorch+peft {name:14}     {:8.1} tokens/s ({:.2} s/step, MFU {:.0}% of candle's peak; torch f32 matmul {:.1} GFLOP/s, {} threads)",
                    py.rate,
                    py.step_s,
                    py_mfu * 100.0,
                    py.matmul,
                    py.threads
                );
                println!("ratio candle / pytorch {name}: {:.2}x", rate / py.rate);
            }
            None => println!("ratio candle / pytorch {name}: n/a (baseline failed; see above)"),
        }
    }
    Ok(())
}

/// candle's f32 matmul rate on a square product, the ceiling MFU is measured against.
fn matmul_gflops(device: &Device) -> avatar_llm::Result<f64> {
    let n = 2048;
    let a = Tensor::randn(0f32, 1.0, (n, n), device)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), device)?;
    a.matmul(&b)?;
    let reps = 10;
    let t = Instant::now();
    for _ in 0..reps {
        a.matmul(&b)?;
    }
    let dt = t.elapsed().as_secs_f64();
    Ok(2.0 * (n as f64).powi(3) * reps as f64 / dt / 1e9)
}

/// Times forward, loss, backward and the optimiser update separately (averaged over 2 steps).
fn profile(
    model: &Llama,
    vars: &[(String, candle_core::Var)],
    rows: &[Packed],
    device: &Device,
) -> avatar_llm::Result<()> {
    let ids: Vec<u32> = rows.iter().flat_map(|r| r.ids.iter().copied()).collect();
    let ids = Tensor::from_vec(ids, (BATCH, SEQ), device)?;
    let mask = Tensor::ones((BATCH, SEQ), DType::F32, device)?;
    let mut opt = avatar_llm::train::AdamW::new(vars.to_vec())?;
    let tcfg = TrainConfig::default();
    let reps = 2;
    let mut sums = [0f64; 3];
    for _ in 0..reps {
        let t0 = Instant::now();
        let (loss, _) = TrainableModel::loss(model, &ids, &mask)?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        let g: Vec<Tensor> = vars
            .iter()
            .map(|(_, v)| match grads.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => v.as_tensor().zeros_like(),
            })
            .collect::<candle_core::Result<_>>()?;
        opt.step(&g, 1e-4, &tcfg)?;
        let t3 = Instant::now();
        for (s, d) in sums.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
            *s += d.as_secs_f64() / reps as f64;
        }
    }
    println!(
        "phases (Llama::train_loss): forward+loss {:.2}s, backward {:.2}s, update {:.3}s",
        sums[0], sums[1], sums[2]
    );
    // The generic path for comparison: every position's logits, then masked_loss over them.
    let t0 = Instant::now();
    let logits = model.forward_train(&ids)?;
    let t1 = Instant::now();
    let (loss, _) = masked_loss(&logits, &ids, &mask)?;
    let t2 = Instant::now();
    drop(loss.backward()?);
    let t3 = Instant::now();
    println!(
        "phases (forward_train + masked_loss): forward {:.2}s, loss {:.2}s, backward {:.2}s",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64()
    );
    Ok(())
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AVATAR_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let setup = root.join("infra/bench/setup.sh");
    match Command::new("bash").arg(&setup).arg("llm").status() {
        Ok(s) if s.success() => {}
        other => {
            println!(
                "pytorch baseline skipped: {} llm failed ({other:?}); torch may not be installable here",
                setup.display()
            );
            return None;
        }
    }
    Some(
        std::env::var("AVATAR_BENCH_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                    .join(".cache/avatar/bench-venv")
            })
            .join("bin/python"),
    )
}

struct PyResult {
    rate: f64,
    step_s: f64,
    matmul: f64,
    threads: u64,
}

fn baseline(python: &Path, gguf: &Path, steps: usize, bf16: bool) -> Option<PyResult> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut cmd = Command::new(python);
    cmd.arg(root.join("infra/bench/llm_train_baseline.py"))
        .arg(gguf)
        .arg("--steps")
        .arg(steps.to_string())
        .arg("--seq")
        .arg(SEQ.to_string())
        .arg("--batch")
        .arg(BATCH.to_string())
        .arg("--rank")
        .arg(RANK.to_string());
    if bf16 {
        cmd.arg("--bf16");
    }
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "pytorch baseline failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return None;
        }
        Err(e) => {
            println!(
                "pytorch baseline skipped: cannot run {}: {e}",
                python.display()
            );
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(PyResult {
        rate: v["tokens_per_sec"].as_f64()?,
        step_s: v["step_seconds"].as_f64()?,
        matmul: v["matmul_gflops"].as_f64().unwrap_or(f64::NAN),
        threads: v["threads"].as_u64().unwrap_or(0),
    })
}
