//! `cargo bench -p avatar-rmvpe --bench f0`: 10 s of 16 kHz audio through a real-size RMVPE
//! (RVC's `E2E(4, 1, (2, 2))` shapes, random weights made here) in candle and through RVC's
//! PyTorch rmvpe.py (bench/bench_rvc_rmvpe.py) in the same run, both on the CPU with the same
//! thread count; prints both medians, the ratio and how far the two F0 tracks are apart.
//! RVC's side is skipped with a message when the venv (~/.cache/avatar/bench-venv), torch or
//! rvc-python's rmvpe.py (RVC_LIB) and librosa (RMVPE_PYDEPS) are missing.
//! Environment: RMVPE_BENCH_RUNS (default 3), RMVPE_BENCH_SECONDS (default 10), RMVPE_PYTHON,
//! RMVPE_PYDEPS, RVC_LIB.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use avatar_rmvpe::checkpoint::Weights;
use avatar_rmvpe::{Rmvpe, DEFAULT_THRESHOLD};
use candle_core::{DType, Device, Tensor};

/// Seconds of audio, unless RMVPE_BENCH_SECONDS says otherwise.
const SECONDS: usize = 10;

fn main() {
    if let Err(e) = run() {
        println!("FAIL: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs: usize = std::env::var("RMVPE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let seconds: usize = std::env::var("RMVPE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SECONDS)
        .max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;

    let tensors = random_e2e().map_err(|e| e.to_string())?;
    let weights_path = tmp.path().join("rmvpe_random.safetensors");
    candle_core::safetensors::save(&tensors, &weights_path).map_err(|e| e.to_string())?;
    let model = Rmvpe::from_weights(&Weights::from_tensors(tensors).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;

    let audio = glide(seconds * 16_000);
    // Linux: reset the peak-RSS mark so the figure below covers inference, not weight making.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let f0 = model
        .f0(&audio, DEFAULT_THRESHOLD)
        .map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        model
            .f0(&audio, DEFAULT_THRESHOLD)
            .map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let ours = times[times.len() / 2];
    println!(
        "avatar-rmvpe (candle, CPU, {threads} threads): {seconds} s of audio, {} frames: \
         median {ours:.3} s over {runs} runs ({:.1}x real time); peak RSS {}",
        f0.len(),
        seconds as f64 / ours,
        peak_rss().unwrap_or_else(|| "unknown".into())
    );

    let audio_path = tmp.path().join("audio.f32");
    let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&audio_path, bytes).map_err(|e| e.to_string())?;
    match rvc_side(dir, &weights_path, &audio_path, runs, threads) {
        Ok((theirs, their_f0)) => {
            println!(
                "RVC rmvpe.py (torch, CPU, {threads} threads): median {theirs:.3} s; \
                 candle / torch = {:.2}",
                ours / theirs
            );
            let (mut worst, mut voicing) = (0f64, 0usize);
            for (a, b) in f0.iter().zip(&their_f0) {
                if (*a > 0.0) != (*b > 0.0) {
                    voicing += 1;
                } else if *a > 0.0 {
                    worst = worst.max((f64::from(*a) / b).log2().abs() * 1200.0);
                }
            }
            println!(
                "F0 agreement: {} vs {} frames, max {worst:.2e} cents, {voicing} voicing \
                 differences",
                f0.len(),
                their_f0.len()
            );
        }
        Err(why) => println!("SKIP RVC's PyTorch RMVPE: {why}"),
    }
    Ok(())
}

/// VmHWM of this process (weights included), Linux only.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MB", kb / 1024.0))
}

/// A 110 → 330 Hz glide with five harmonics.
fn glide(n: usize) -> Vec<f32> {
    let mut phase = 0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / n as f64;
            phase += 2.0 * std::f64::consts::PI * 110.0 * 3f64.powf(t) / 16_000.0;
            (1..=5)
                .map(|k| 0.3 / k as f64 * (k as f64 * phase).sin())
                .sum::<f64>() as f32
        })
        .collect()
}

/// A state dict with the names and shapes of RVC's `E2E(4, 1, (2, 2))` (5 levels, 16 base
/// channels, 4 intermediate levels, 4 blocks each, BiGRU 384 → 256), random values.
fn random_e2e() -> candle_core::Result<HashMap<String, Tensor>> {
    let mut t = HashMap::new();
    let dev = Device::Cpu;
    let conv = |t: &mut HashMap<String, Tensor>, name: String, shape: &[usize], fan: usize| {
        let w = (Tensor::randn(0f32, 1.0, shape, &dev)? / (fan as f64).sqrt())?;
        t.insert(name, w);
        candle_core::Result::Ok(())
    };
    let bn = |t: &mut HashMap<String, Tensor>, p: &str, c: usize| {
        t.insert(format!("{p}.weight"), Tensor::rand(0.5f32, 1.5, c, &dev)?);
        t.insert(
            format!("{p}.bias"),
            (Tensor::randn(0f32, 1.0, c, &dev)? * 0.1)?,
        );
        t.insert(
            format!("{p}.running_mean"),
            (Tensor::randn(0f32, 1.0, c, &dev)? * 0.1)?,
        );
        t.insert(
            format!("{p}.running_var"),
            Tensor::rand(0.5f32, 1.5, c, &dev)?,
        );
        candle_core::Result::Ok(())
    };
    let block = |t: &mut HashMap<String, Tensor>, p: &str, cin: usize, cout: usize| {
        conv(t, format!("{p}.conv.0.weight"), &[cout, cin, 3, 3], 9 * cin)?;
        bn(t, &format!("{p}.conv.1"), cout)?;
        conv(
            t,
            format!("{p}.conv.3.weight"),
            &[cout, cout, 3, 3],
            9 * cout,
        )?;
        bn(t, &format!("{p}.conv.4"), cout)?;
        if cin != cout {
            conv(t, format!("{p}.shortcut.weight"), &[cout, cin, 1, 1], cin)?;
            t.insert(
                format!("{p}.shortcut.bias"),
                Tensor::zeros(cout, DType::F32, &dev)?,
            );
        }
        candle_core::Result::Ok(())
    };
    let (levels, blocks, inters, base) = (5, 4, 4, 16);
    bn(&mut t, "unet.encoder.bn", 1)?;
    let (mut cin, mut cout) = (1, base);
    for l in 0..levels {
        for b in 0..blocks {
            let from = if b == 0 { cin } else { cout };
            block(
                &mut t,
                &format!("unet.encoder.layers.{l}.conv.{b}"),
                from,
                cout,
            )?;
        }
        cin = cout;
        cout *= 2;
    }
    for l in 0..inters {
        for b in 0..blocks {
            let from = if l == 0 && b == 0 { cin } else { cout };
            block(
                &mut t,
                &format!("unet.intermediate.layers.{l}.conv.{b}"),
                from,
                cout,
            )?;
        }
    }
    let mut c = cout;
    for l in 0..levels {
        let p = format!("unet.decoder.layers.{l}");
        let weight = (Tensor::randn(0f32, 1.0, (c, c / 2, 3, 3), &dev)? / (9.0 * c as f64).sqrt())?;
        t.insert(format!("{p}.conv1.0.weight"), weight);
        bn(&mut t, &format!("{p}.conv1.1"), c / 2)?;
        for b in 0..blocks {
            let from = if b == 0 { c } else { c / 2 };
            block(&mut t, &format!("{p}.conv2.{b}"), from, c / 2)?;
        }
        c /= 2;
    }
    let small = |shape: &[usize], scale: f64| Tensor::randn(0f32, 1.0, shape, &dev)? * scale;
    t.insert(
        "cnn.weight".into(),
        small(&[3, base, 3, 3], 1.0 / (9.0 * base as f64).sqrt())?,
    );
    t.insert("cnn.bias".into(), small(&[3], 0.1)?);
    let h = 256;
    for suffix in ["l0", "l0_reverse"] {
        let g = 1.0 / (h as f64).sqrt();
        t.insert(
            format!("fc.0.gru.weight_ih_{suffix}"),
            small(&[3 * h, 384], g)?,
        );
        t.insert(
            format!("fc.0.gru.weight_hh_{suffix}"),
            small(&[3 * h, h], g)?,
        );
        t.insert(format!("fc.0.gru.bias_ih_{suffix}"), small(&[3 * h], g)?);
        t.insert(format!("fc.0.gru.bias_hh_{suffix}"), small(&[3 * h], g)?);
    }
    t.insert(
        "fc.1.weight".into(),
        small(&[360, 2 * h], 1.0 / (2.0 * h as f64).sqrt())?,
    );
    t.insert("fc.1.bias".into(), small(&[360], 0.1)?);
    Ok(t)
}

/// RVC's median seconds and F0 for the same weights and samples.
fn rvc_side(
    dir: &Path,
    weights: &Path,
    audio: &Path,
    runs: usize,
    threads: usize,
) -> Result<(f64, Vec<f64>), String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let python = std::env::var_os("RMVPE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/avatar/bench-venv/bin/python"));
    if !python.is_file() {
        return Err(format!("{} missing", python.display()));
    }
    let pydeps =
        std::env::var("RMVPE_PYDEPS").unwrap_or_else(|_| "/work/scratch/pydeps-rmvpe".into());
    let lib = std::env::var("RVC_LIB")
        .unwrap_or_else(|_| "/work/scratch/rmvpe-whl/unpacked/rvc_python/lib".into());
    if !Path::new(&lib).join("rmvpe.py").is_file() {
        return Err(format!(
            "{lib}/rmvpe.py missing (see reference/make_reference.py for how to unpack it)"
        ));
    }
    let out = Command::new(&python)
        .arg(dir.join("bench").join("bench_rvc_rmvpe.py"))
        .arg(weights)
        .arg(audio)
        .arg(runs.to_string())
        .arg(threads.to_string())
        .env("PYTHONPATH", &pydeps)
        .env("RVC_LIB", &lib)
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("");
        return Err(format!("bench_rvc_rmvpe.py failed: {last}"));
    }
    let line = stdout.lines().last().unwrap_or("");
    let median =
        json_number(line, "median_s").ok_or_else(|| format!("no median in {line:.200}"))?;
    let f0 = json_array(line, "f0").ok_or_else(|| format!("no f0 in {line:.200}"))?;
    Ok((median, f0))
}

fn json_number(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(&format!("\"{key}\": "))? + key.len() + 4..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn json_array(line: &str, key: &str) -> Option<Vec<f64>> {
    let rest = &line[line.find(&format!("\"{key}\": ["))? + key.len() + 5..];
    let end = rest.find(']')?;
    rest[..end]
        .split(',')
        .map(|v| v.trim().parse().ok())
        .collect()
}
