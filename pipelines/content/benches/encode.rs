//! 10 s of 16 kHz audio through a real-size (HuBERT-base) random encoder: candle here against
//! transformers' `HubertModel` in the project's benchmark venv, in the same run.
//!
//!     cargo bench -p avatar-content --bench encode
//!     (or `cargo bench --profile dev -p avatar-content --bench encode` to reuse test builds)
//!
//! The PyTorch side runs `$AVATAR_BENCH_PYTHON`, default `~/.cache/avatar/bench-venv/bin/python`,
//! and is skipped with a message when that is missing. Timings are printed, never asserted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use avatar_content::checkpoint::{Checkpoint, Hints};
use avatar_content::{ContentEncoder, Layout, RvcVersion};
use candle_core::{Device, Tensor};

const SECONDS: usize = 10;
const RUNS: usize = 3;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Random weights with HuBERT-base's shapes, in fairseq naming (pos-conv weight already folded).
fn random_base() -> Res<Checkpoint> {
    let mut t = HashMap::new();
    let mut put = |name: String, shape: &[usize], std: f64| -> Res<()> {
        let x = if name.ends_with("norm.weight") || name.ends_with(".2.weight") {
            Tensor::ones(shape, candle_core::DType::F32, &Device::Cpu)?
        } else {
            Tensor::randn(0f32, std as f32, shape, &Device::Cpu)?
        };
        t.insert(name, x);
        Ok(())
    };
    let (c, h, f) = (512, 768, 3072);
    for (i, k) in [10, 3, 3, 3, 3, 2, 2].into_iter().enumerate() {
        let inp = if i == 0 { 1 } else { c };
        put(
            format!("feature_extractor.conv_layers.{i}.0.weight"),
            &[c, inp, k],
            0.05,
        )?;
    }
    put("feature_extractor.conv_layers.0.2.weight".into(), &[c], 0.0)?;
    put("feature_extractor.conv_layers.0.2.bias".into(), &[c], 0.01)?;
    put("layer_norm.weight".into(), &[c], 0.0)?;
    put("layer_norm.bias".into(), &[c], 0.01)?;
    put("post_extract_proj.weight".into(), &[h, c], 0.04)?;
    put("post_extract_proj.bias".into(), &[h], 0.01)?;
    put("encoder.pos_conv.0.weight".into(), &[h, h / 16, 128], 0.01)?;
    put("encoder.pos_conv.0.bias".into(), &[h], 0.01)?;
    put("encoder.layer_norm.weight".into(), &[h], 0.0)?;
    put("encoder.layer_norm.bias".into(), &[h], 0.01)?;
    for n in 0..12 {
        let p = format!("encoder.layers.{n}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            put(format!("{p}.self_attn.{proj}.weight"), &[h, h], 0.03)?;
            put(format!("{p}.self_attn.{proj}.bias"), &[h], 0.01)?;
        }
        for norm in ["self_attn_layer_norm", "final_layer_norm"] {
            put(format!("{p}.{norm}.weight"), &[h], 0.0)?;
            put(format!("{p}.{norm}.bias"), &[h], 0.01)?;
        }
        put(format!("{p}.fc1.weight"), &[f, h], 0.03)?;
        put(format!("{p}.fc1.bias"), &[f], 0.01)?;
        put(format!("{p}.fc2.weight"), &[h, f], 0.02)?;
        put(format!("{p}.fc2.bias"), &[h], 0.01)?;
    }
    put("final_proj.weight".into(), &[256, h], 0.03)?;
    put("final_proj.bias".into(), &[256], 0.01)?;
    Ok(Checkpoint {
        path: PathBuf::from("<random HuBERT-base>"),
        layout: Layout::Fairseq,
        tensors: t,
        hints: Hints {
            heads: Some(12),
            ..Hints::default()
        },
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

const TORCH_SCRIPT: &str = r#"
import sys, time, statistics, torch
from transformers import HubertConfig, HubertModel
secs, runs = int(sys.argv[1]), int(sys.argv[2])
m = HubertModel(HubertConfig()).eval()
n = 16000 * secs
t = torch.arange(n, dtype=torch.float32) / 16000
x = (0.5 * torch.sin(2 * torch.pi * (120 * t + 40 * t * t)))[None]
with torch.inference_mode():
    m(x)
    ts = []
    for _ in range(runs):
        a = time.perf_counter(); m(x); ts.append(time.perf_counter() - a)
print(f"{statistics.median(ts) * 1000:.1f} {torch.get_num_threads()} {torch.__version__}")
"#;

fn torch_ms() -> Option<(f64, String)> {
    let python = std::env::var_os("AVATAR_BENCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/avatar/bench-venv/bin/python"))
        })?;
    if !python.is_file() {
        println!("pytorch: skipped ({} not found)", python.display());
        return None;
    }
    let out = std::process::Command::new(&python)
        .args(["-c", TORCH_SCRIPT, &SECONDS.to_string(), &RUNS.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        println!(
            "pytorch: skipped ({} failed: {})",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut it = text.split_whitespace();
    let ms = it.next()?.parse().ok()?;
    Some((ms, it.collect::<Vec<_>>().join(" ")))
}

fn main() -> Res<()> {
    let enc = ContentEncoder::from_checkpoint(random_base()?)?;
    let n = 16_000 * SECONDS;
    let wav: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.5 * (2.0 * std::f32::consts::PI * (120.0 * t + 40.0 * t * t)).sin()
        })
        .collect();
    let out = enc.encode(&wav, RvcVersion::V2)?; // warm-up
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let a = Instant::now();
        let out = enc.encode(&wav, RvcVersion::V2)?;
        times.push(a.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    let candle = median(times);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "candle : {candle:8.1} ms for {SECONDS} s of audio -> {:?} (v2, median of {RUNS}, {cores} cores)",
        out.dims()
    );
    match torch_ms() {
        Some((torch, info)) => {
            println!("pytorch: {torch:8.1} ms (transformers HubertModel, threads/version: {info})");
            println!("candle / pytorch = {:.2}", candle / torch);
        }
        None => println!("candle / pytorch: n/a"),
    }
    Ok(())
}
