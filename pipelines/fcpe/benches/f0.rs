//! `cargo bench -p avatar-fcpe --bench f0`: 10 s of 16 kHz speech through avatar-fcpe and through
//! torchfcpe (bench/bench_torchfcpe.py) in the same run, both on the CPU with the same thread
//! count; prints both medians and the ratio. torchfcpe's side is skipped with a message when the
//! venv (~/.cache/avatar/bench-venv) or torchfcpe (PYTHONPATH, default /work/scratch/pydeps-fcpe)
//! is missing. Environment: FCPE_BENCH_RUNS (default 5), FCPE_PYDEPS, FCPE_PYTHON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use avatar_fcpe::Fcpe;

const SECONDS: usize = 10;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = Fcpe::default_path();
    if !path.is_file() {
        println!(
            "SKIP: {} missing (run infra/fetch-models.sh fcpe)",
            path.display()
        );
        return;
    }
    let fcpe = match Fcpe::load(&path) {
        Ok(f) => f,
        Err(e) => {
            println!("FAIL: loading {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let runs: usize = std::env::var("FCPE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);

    // 10 s of the reference speech (a then b) at 16 kHz, exactly as both sides see it.
    let mut s16: Vec<u8> = Vec::new();
    for name in ["speech_a_16k.s16", "speech_b_16k.s16"] {
        match std::fs::read(dir.join("testdata").join(name)) {
            Ok(b) => s16.extend(b),
            Err(e) => {
                println!("FAIL: testdata/{name}: {e}");
                std::process::exit(1);
            }
        }
    }
    s16.truncate(SECONDS * 16000 * 2);
    let audio: Vec<f32> = s16
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let run = || fcpe.f0(&audio, 16000);
    let f0 = match run() {
        Ok(f) => f,
        Err(e) => {
            println!("FAIL: {e}");
            std::process::exit(1);
        }
    };
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if let Err(e) = run() {
            println!("FAIL: {e}");
            std::process::exit(1);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let ours = times[times.len() / 2];
    println!(
        "avatar-fcpe (candle, CPU, {threads} threads): {SECONDS} s of audio, {} frames, {} voiced: \
         median {:.3} s over {runs} runs ({:.1}x real time)",
        f0.len(),
        f0.iter().filter(|f| **f > 0.0).count(),
        ours,
        SECONDS as f64 / ours
    );

    match torchfcpe(dir, &s16, runs, threads) {
        Ok(theirs) => println!(
            "torchfcpe 0.0.4 (torch, CPU, {threads} threads): median {theirs:.3} s; \
             candle / torch = {:.2}",
            ours / theirs
        ),
        Err(why) => println!("SKIP torchfcpe: {why}"),
    }
}

/// torchfcpe's median seconds for the same samples, from bench/bench_torchfcpe.py.
fn torchfcpe(dir: &Path, s16: &[u8], runs: usize, threads: usize) -> Result<f64, String> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let python = std::env::var_os("FCPE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/avatar/bench-venv/bin/python"));
    if !python.is_file() {
        return Err(format!("{} missing", python.display()));
    }
    let pydeps =
        std::env::var("FCPE_PYDEPS").unwrap_or_else(|_| "/work/scratch/pydeps-fcpe".into());
    let tmp = std::env::temp_dir().join(format!("avatar-fcpe-bench-{}.s16", std::process::id()));
    std::fs::write(&tmp, s16).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let out = Command::new(&python)
        .arg(dir.join("bench").join("bench_torchfcpe.py"))
        .arg(&tmp)
        .arg(runs.to_string())
        .arg(threads.to_string())
        .env("PYTHONPATH", &pydeps)
        .output();
    let _ = std::fs::remove_file(&tmp);
    let out = out.map_err(|e| format!("running {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_string();
        return Err(format!(
            "torchfcpe not runnable (PYTHONPATH={pydeps}): {last}"
        ));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no result line")?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    v["median_s"]
        .as_f64()
        .ok_or_else(|| "no median_s".to_string())
}
