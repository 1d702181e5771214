//! Speaker-embedding benchmark: resemblyzer's encoder in candle against resemblyzer's own
//! PyTorch module on the same weights and the same mel frames, in the same run, as a ratio.
//!
//! Run: `cargo bench -p avatar-voice --bench speaker`. Needs the weights
//! (`infra/fetch-models.sh resemblyzer`) and, for the baseline, a Python with torch
//! (`infra/bench/setup.sh embed` makes one; `AVATAR_BENCH_PYTHON` picks another). The audio is
//! 10 s of generated voiced sound (`AVATAR_BENCH_SECONDS`), so runs compare between machines.
//! The PyTorch side gets the mel frames from here (librosa is not installed), so the ratio is
//! for the encoder (LSTM + linear); the mel stage is timed separately and printed.
//!
//! A plain `main` (harness = false) that does nothing unless cargo passes `--bench`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use avatar_voice::speaker::{cosine, default_weights, mel_frames, SpeakerEncoder, N_MELS};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("speaker benchmark: run it with `cargo bench -p avatar-voice --bench speaker`");
        return;
    }
    let Some(weights) = default_weights() else {
        println!("speaker benchmark skipped: no weights (run infra/fetch-models.sh resemblyzer)");
        return;
    };
    let encoder = match SpeakerEncoder::load(&weights) {
        Ok(e) => e,
        Err(e) => {
            println!("cannot load {}: {e}", weights.display());
            std::process::exit(1);
        }
    };
    let seconds: f64 = std::env::var("AVATAR_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let reps = 20;
    let wav = voiced(seconds);

    let embed = |w: &[f32]| match encoder.embed_utterance(w) {
        Ok(e) => e,
        Err(e) => {
            println!("embedding failed: {e}");
            std::process::exit(1);
        }
    };
    let ours = embed(&wav); // warm-up
    let t = Instant::now();
    for _ in 0..reps {
        embed(&wav);
    }
    let total = t.elapsed().as_secs_f64() / reps as f64;
    // The frames the encoder saw: padded to cover the last partial window, as embed_utterance does.
    let padded = {
        let mut p = wav.clone();
        p.resize(wav.len() + 160 * 160, 0.0);
        p
    };
    let t = Instant::now();
    let mut mels = Vec::new();
    for _ in 0..reps {
        mels = mel_frames(&padded);
    }
    let mel = t.elapsed().as_secs_f64() / reps as f64;
    let encoder_only = (total - mel).max(1e-9);
    println!(
        "candle: {:.1} ms per {seconds} s utterance ({:.1} ms mel, {:.1} ms encoder); {:.0}x real time",
        total * 1e3,
        mel * 1e3,
        encoder_only * 1e3,
        seconds / total
    );

    let Some(python) = python() else { return };
    let dir = std::env::temp_dir().join(format!("avatar-speaker-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mels_path = dir.join("mels.f32");
    let bytes: Vec<u8> = mels
        .iter()
        .flat_map(|f| f.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    if std::fs::write(&mels_path, bytes).is_err() {
        println!("cannot write {}", mels_path.display());
        return;
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = Command::new(&python)
        .arg(root.join("infra/bench/speaker_baseline.py"))
        .arg(&weights)
        .arg(&mels_path)
        .arg(mels.len().to_string())
        .arg(wav.len().to_string())
        .arg(reps.to_string())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "python baseline failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(e) => {
            println!(
                "python baseline skipped: cannot run {}: {e}",
                python.display()
            );
            return;
        }
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        println!("python baseline printed no JSON");
        return;
    };
    let theirs: Vec<f32> = v["embedding"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default();
    let py = v["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{} ({} threads, {} partials): {:.1} ms encoder; same embedding: cosine {:.6}",
        v["impl"].as_str().unwrap_or("python"),
        v["threads"],
        v["partials"],
        py * 1e3,
        cosine(&ours, &theirs)
    );
    println!(
        "ratio (encoder, PyTorch time / candle time): {:.2}x",
        py / encoder_only
    );
}

/// Deterministic voiced sound at 16 kHz: a gliding buzz with harmonics in syllables.
fn voiced(seconds: f64) -> Vec<f32> {
    let n = (seconds * 16_000.0) as usize;
    let mut phase = 0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            phase += 2.0 * std::f64::consts::PI * (130.0 + 30.0 * (t * 0.7).sin()) / 16_000.0;
            let syllable = ((t * 4.0).fract() * std::f64::consts::PI).sin().powi(2);
            let v: f64 = (1..10).map(|h| (phase * h as f64).sin() / h as f64).sum();
            (0.1 * syllable * v) as f32
        })
        .collect()
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AVATAR_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let setup = root.join("infra/bench/setup.sh");
    match Command::new("bash").arg(&setup).arg("embed").status() {
        Ok(s) if s.success() => {}
        other => {
            println!(
                "python baseline skipped: {} embed failed ({other:?})",
                setup.display()
            );
            return None;
        }
    }
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()));
    Some(
        std::env::var("AVATAR_BENCH_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| home.join(".cache/avatar/bench-venv"))
            .join("bin/python"),
    )
}

const _: () = assert!(N_MELS == 40);
