//! `cargo bench -p avatar-rvc --bench convert`: the synthesiser on 10 s of audio for an RVC
//! v2 40k model at its real sizes (random weights), then RVC's PyTorch code on the same
//! weights, input and noise (bench/torch_rvc.py; skipped if torch is missing).
//! Prints real-time factors (compute seconds per audio second) and their ratio.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use avatar_rvc::shapes::weight_shapes;
use avatar_rvc::{
    f0_to_coarse, synthesize_chunked, Checkpoint, Chunking, Noise, ResBlockKind, SynthConfig,
    SynthInput, Synthesizer, Version, Weights,
};
use candle_core::{Device, Tensor};

type BenchResult = Result<(), Box<dyn std::error::Error>>;

const SECONDS: usize = 10;

/// Deterministic normals (splitmix64 + Box-Muller), so both sides see the same numbers.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let u1 = self.next_f64().max(1e-12);
        let u2 = self.next_f64();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

/// RVC v2 40k as WebUI's configs/v2 and the pretrained f0G40k define it.
fn v2_40k() -> SynthConfig {
    SynthConfig {
        spec_channels: 1025,
        segment_size: 32,
        inter_channels: 192,
        hidden_channels: 192,
        filter_channels: 768,
        n_heads: 2,
        n_layers: 6,
        kernel_size: 3,
        p_dropout: 0.0,
        resblock: ResBlockKind::One,
        resblock_kernel_sizes: vec![3, 7, 11],
        resblock_dilation_sizes: vec![vec![1, 3, 5]; 3],
        upsample_rates: vec![10, 10, 2, 2],
        upsample_initial_channel: 512,
        upsample_kernel_sizes: vec![16, 16, 4, 4],
        spk_embed_dim: 109,
        gin_channels: 256,
        sr: 40000,
    }
}

fn random_weights(
    cfg: &SynthConfig,
    rng: &mut Rng,
) -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    let mut out = HashMap::new();
    for (name, shape) in weight_shapes(cfg, Version::V2, true) {
        let n: usize = shape.iter().product();
        let v = if name.contains("emb_rel") {
            rng.normals(n, 0.3)
        } else if name.ends_with("gamma") {
            rng.normals(n, 0.1).into_iter().map(|x| 1.0 + x).collect()
        } else if shape.len() >= 2 {
            let fan_in: usize = shape[1..].iter().product();
            rng.normals(n, 1.0 / (fan_in as f32).sqrt())
        } else {
            rng.normals(n, 0.1)
        };
        out.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// CPU seconds (user + system, all threads) this process has used: on a shared machine
/// this moves less than wall time when other jobs compete for the cores.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let Some(rest) = stat.rsplit(')').next() else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c0, t) = (cpu_seconds(), Instant::now());
    let out = f();
    (out, t.elapsed().as_secs_f64(), cpu_seconds() - c0)
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AVATAR_BENCH_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/avatar/bench-venv/bin/python")
}

fn main() -> BenchResult {
    let cfg = v2_40k();
    let mut rng = Rng(2024);
    let weights = random_weights(&cfg, &mut rng)?;
    let ckpt = Checkpoint {
        config: cfg.clone(),
        version: Version::V2,
        f0: true,
        sr_label: Some("40k".into()),
        info: None,
        weights: Weights::new(weights.clone()),
    };
    let synth = Synthesizer::new(&ckpt)?;
    let hop = synth.hop_length();
    let frames = SECONDS * cfg.sr as usize / hop;
    let features = rng.normals(frames * 768, 1.0);
    let f0: Vec<f32> = (0..frames)
        .map(|t| {
            if t % 100 < 12 {
                0.0
            } else {
                160.0 + 40.0 * (t as f32 / 25.0).sin()
            }
        })
        .collect();
    let pitch = f0_to_coarse(&f0);
    let noise = Noise {
        prior: rng.normals(cfg.inter_channels * frames, 1.0),
        sine: rng.normals(frames * hop, 1.0),
    };
    let input = SynthInput {
        features: &features,
        pitch: Some(&pitch),
        f0: Some(&f0),
        speaker: 0,
    };
    let audio_secs = (frames * hop) as f64 / cfg.sr as f64;
    println!(
        "RVC v2 40k, real sizes, random weights: {frames} frames = {audio_secs:.1} s of audio"
    );

    println!("RTF = wall seconds per audio second (CPU-seconds in brackets, all threads)");
    let (whole, candle_secs, candle_cpu) = timed(|| synth.infer_with_noise(&input, &noise));
    let whole = whole?.audio;
    println!(
        "candle (whole utterance):       {candle_secs:7.2} s  RTF {:.3}  [{candle_cpu:.1} CPU-s]",
        candle_secs / audio_secs
    );
    let (latent, latent_secs, latent_cpu) = timed(|| synth.latent(&input, &noise.prior));
    latent?;
    println!(
        "  of which encoder + flow:      {latent_secs:7.2} s             [{latent_cpu:.1} CPU-s]"
    );
    let (chunked, chunked_secs, chunked_cpu) =
        timed(|| synthesize_chunked(&synth, &input, Some(&noise), Chunking::default()));
    let chunked = chunked?;
    let chunk_err = whole
        .iter()
        .zip(&chunked)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "candle (chunked, 4 s decoder):  {chunked_secs:7.2} s  RTF {:.3}  [{chunked_cpu:.1} CPU-s]  (max abs diff to whole {chunk_err:.2e})",
        chunked_secs / audio_secs
    );

    // PyTorch RVC on the same weights, input and noise.
    let dir = tempfile::tempdir()?;
    let mut data: HashMap<String, Tensor> = weights
        .into_iter()
        .map(|(k, v)| (format!("w.{k}"), v))
        .collect();
    let dev = Device::Cpu;
    data.insert(
        "in.features".into(),
        Tensor::from_slice(&features, (frames, 768), &dev)?,
    );
    data.insert(
        "in.pitch".into(),
        Tensor::from_slice(&pitch, frames, &dev)?.to_dtype(candle_core::DType::I64)?,
    );
    data.insert("in.f0".into(), Tensor::from_slice(&f0, frames, &dev)?);
    data.insert(
        "in.noise_prior".into(),
        Tensor::from_slice(&noise.prior, (cfg.inter_channels, frames), &dev)?,
    );
    data.insert(
        "in.noise_sine".into(),
        Tensor::from_slice(&noise.sine, frames * hop, &dev)?,
    );
    let inp = dir.path().join("in.safetensors");
    candle_core::safetensors::save(&data, &inp)?;
    let meta = dir.path().join("config.json");
    let list = serde_json::json!([
        cfg.spec_channels,
        cfg.segment_size,
        cfg.inter_channels,
        cfg.hidden_channels,
        cfg.filter_channels,
        cfg.n_heads,
        cfg.n_layers,
        cfg.kernel_size,
        0,
        "1",
        cfg.resblock_kernel_sizes,
        cfg.resblock_dilation_sizes,
        cfg.upsample_rates,
        cfg.upsample_initial_channel,
        cfg.upsample_kernel_sizes,
        cfg.spk_embed_dim,
        cfg.gin_channels,
        cfg.sr
    ]);
    std::fs::write(
        &meta,
        serde_json::json!({"version": "v2", "f0": 1, "config": list}).to_string(),
    )?;
    let out = dir.path().join("out.safetensors");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_rvc.py");
    let py = python();
    let run = Command::new(&py)
        .arg(&script)
        .arg(&inp)
        .arg(&meta)
        .arg(&out)
        .output();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            println!("PyTorch: skipped ({} not runnable: {e})", py.display());
            return Ok(());
        }
    };
    let stdout = String::from_utf8_lossy(&run.stdout);
    if !run.status.success() {
        let why = stdout
            .lines()
            .find(|l| l.starts_with("SKIP"))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let err = String::from_utf8_lossy(&run.stderr);
                match err.lines().last() {
                    Some(l) => l.to_string(),
                    None => format!("{} exited with {}", py.display(), run.status),
                }
            });
        println!("PyTorch: skipped ({why})");
        return Ok(());
    }
    let line = stdout.lines().last().unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(line)?;
    let torch_secs = v["seconds"]
        .as_f64()
        .ok_or("torch script printed no timing")?;
    let torch_cpu = v["cpu_seconds"].as_f64().unwrap_or(f64::NAN);
    let torch_audio = candle_core::safetensors::load(&out, &dev)?
        .remove("audio")
        .ok_or("torch script wrote no audio")?
        .to_vec1::<f32>()?;
    let err = whole
        .iter()
        .zip(&torch_audio)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "PyTorch RVC ({} threads):        {torch_secs:7.2} s  RTF {:.3}  [{torch_cpu:.1} CPU-s]",
        v["threads"],
        torch_secs / audio_secs
    );
    println!(
        "candle is {:.2}x PyTorch's speed (whole), {:.2}x (chunked); by CPU-seconds {:.2}x / {:.2}x; max abs diff candle vs PyTorch {err:.2e} over {} samples",
        torch_secs / candle_secs,
        torch_secs / chunked_secs,
        torch_cpu / candle_cpu,
        torch_cpu / chunked_cpu,
        torch_audio.len().min(whole.len())
    );
    Ok(())
}
