//! Transcription benchmark: avatar-transcribe (Whisper in candle) against faster-whisper
//! (CTranslate2) on the same `model.bin` and the same 16 kHz audio, in the same run.
//!
//! Run: `cargo bench -p avatar-transcribe --bench transcribe`. Needs the model
//! (`infra/fetch-models.sh whisper-tiny.en`; `AVATAR_BENCH_WHISPER=whisper-base` picks another)
//! and the reference speech in ../shared/reference; the baseline needs
//! `infra/bench/setup.sh whisper` (else it is skipped with a message).
//!
//! A plain `main` (harness = false) that does nothing unless cargo passes `--bench`.

use avatar_transcribe::{default_model_dir, Options, Whisper};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("transcribe benchmark: run it with `cargo bench -p avatar-transcribe --bench transcribe`");
        return;
    }
    let name = std::env::var("AVATAR_BENCH_WHISPER").unwrap_or_else(|_| "whisper-tiny.en".into());
    let dir = default_model_dir().join(&name);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wav = root.join("../shared/reference/speech_a.wav");
    let (Ok(whisper), Ok(bytes)) = (Whisper::load(&dir), std::fs::read(&wav)) else {
        println!(
            "transcribe benchmark skipped: needs {} and {}",
            dir.display(),
            wav.display()
        );
        return;
    };
    let audio = match avatar_voice::decode("speech_a.wav", &bytes)
        .map_err(|e| e.to_string())
        .and_then(|a| {
            avatar_voice::dsp::resample(&a.samples, a.sample_rate, 16_000)
                .map_err(|e| e.to_string())
        }) {
        Ok(a) => a,
        Err(e) => {
            println!("cannot read {}: {e}", wav.display());
            std::process::exit(1);
        }
    };
    let seconds = audio.len() as f64 / 16_000.0;
    let reps = 5;
    let run = || match whisper.transcribe(&audio, &Options::default()) {
        Ok(t) => t.text(),
        Err(e) => {
            println!("transcription failed: {e}");
            std::process::exit(1);
        }
    };
    run();
    let t = Instant::now();
    let mut text = String::new();
    for _ in 0..reps {
        text = run();
    }
    let ours = t.elapsed().as_secs_f64() / reps as f64;
    println!("{name}, {seconds:.1} s of speech ({reps} runs each)");
    println!(
        "candle:         {:.3} s per run, {:.1}x real time: {text}",
        ours,
        seconds / ours
    );

    let venv = std::env::var_os("AVATAR_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/avatar/bench-venv")
        });
    let python = venv.join("bin/python");
    let raw = std::env::temp_dir().join(format!("avatar-whisper-bench-{}.f32", std::process::id()));
    let le: Vec<u8> = audio.iter().flat_map(|x| x.to_le_bytes()).collect();
    if std::fs::write(&raw, le).is_err() {
        return;
    }
    let out = Command::new(&python)
        .arg(root.join("infra/bench/whisper_baseline.py"))
        .arg(&dir)
        .arg(&raw)
        .arg(reps.to_string())
        .output();
    let _ = std::fs::remove_file(&raw);
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let mut lines = s.lines();
            let theirs: f64 = lines
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(f64::NAN);
            println!(
                "faster-whisper: {:.3} s per run, {:.1}x real time: {}",
                theirs,
                seconds / theirs,
                lines.next().unwrap_or("")
            );
            println!(
                "ratio (faster-whisper time / candle time): {:.2}x",
                theirs / ours
            );
        }
        _ => println!("faster-whisper baseline skipped: run infra/bench/setup.sh whisper"),
    }
}
