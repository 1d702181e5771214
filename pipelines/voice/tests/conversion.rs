#![allow(clippy::unwrap_used)]
//! The conversion chain with tiny random models (no real HuBERT or RVC weights ship on any
//! registry): avatar-content's small test HuBERT with a 256-wide `final_proj` (RVC v1's
//! feature width) feeding avatar-rvc's small v1 48 kHz test voice. The parts are checked
//! against PyTorch in their own crates; this checks they fit together: frame rates, feature
//! widths, the pitch shift from the ratio of medians, output rate and length.

use avatar_content::ContentEncoder;
use avatar_voice::conversion::{convert, ConversionError, PitchTracker, VoiceModel};
use candle_core::{Device, Tensor};
use std::path::PathBuf;

fn crate_dir(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The small HuBERT of avatar-content's tests, its projection widened to 256 (v1).
fn tiny_content() -> ContentEncoder {
    let mut ck = avatar_content::checkpoint::read(&crate_dir("../content/testdata/hf")).unwrap();
    let hidden = ck.tensors["final_proj.weight"].dims()[1];
    let w = Tensor::randn(0f32, 0.2, (256, hidden), &Device::Cpu).unwrap();
    let b = Tensor::zeros(256, candle_core::DType::F32, &Device::Cpu).unwrap();
    ck.tensors.insert("final_proj.weight".into(), w);
    ck.tensors.insert("final_proj.bias".into(), b);
    ContentEncoder::from_checkpoint(ck).unwrap()
}

/// 1.5 s of a voiced sound at 120 Hz with harmonics, at 22.05 kHz.
fn voiced(rate: u32) -> Vec<f32> {
    (0..(rate as f32 * 1.5) as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            (1..6)
                .map(|h| 0.15 / h as f32 * (std::f32::consts::TAU * 120.0 * h as f32 * t).sin())
                .sum()
        })
        .collect()
}

#[test]
fn speech_goes_through_content_pitch_and_synthesiser() {
    let content = tiny_content();
    let model = VoiceModel::load(&crate_dir("../rvc/testdata/v1_f0_48k.pth"), None).unwrap();
    assert!(
        model.describe().contains("RVC v1, 48 kHz, with pitch"),
        "{}",
        model.describe()
    );
    let input = voiced(22_050);
    let params = avatar_rvc::ConvertParams::default();
    // The person speaks an octave above the input: +12 semitones.
    let out = convert(
        &content,
        &PitchTracker::Yin,
        &model,
        &input,
        22_050,
        Some(240.0),
        &params,
    )
    .unwrap();
    let source = out.source_median_hz.unwrap();
    assert!((source - 120.0).abs() < 3.0, "{source}");
    assert!((out.semitones - 12.0).abs() < 0.5, "{}", out.semitones);
    assert_eq!(out.audio.sample_rate, 48_000);
    // 1.5 s in, about 1.5 s out (HuBERT frames: (24000 - 400) / 320 + 1 = 74 → 148 at 100 Hz).
    let seconds = out.audio.samples.len() as f32 / 48_000.0;
    assert!((seconds - 1.48).abs() < 0.05, "{seconds} s");
    assert!(out
        .audio
        .samples
        .iter()
        .all(|x| x.is_finite() && x.abs() <= 1.0));
    // Without a target the shift given is used.
    let given = avatar_rvc::ConvertParams {
        f0_up_key: -3.0,
        ..params
    };
    let out = convert(
        &content,
        &PitchTracker::Yin,
        &model,
        &input,
        22_050,
        None,
        &given,
    )
    .unwrap();
    assert_eq!(out.semitones, -3.0);
}

#[test]
fn mismatched_parts_and_short_input_are_clear_errors() {
    let content = tiny_content();
    // A v2 voice takes 768-wide layer-12 features; this HuBERT is 32 wide.
    let v2 = VoiceModel::load(&crate_dir("../rvc/testdata/v2_nono_32k.pth"), None).unwrap();
    let params = avatar_rvc::ConvertParams::default();
    match convert(
        &content,
        &PitchTracker::Yin,
        &v2,
        &voiced(16_000),
        16_000,
        None,
        &params,
    ) {
        Err(ConversionError::Mismatch {
            want: 768, got: 32, ..
        }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 32-wide encoder fed a 768-wide voice"),
    }
    let v1 = VoiceModel::load(&crate_dir("../rvc/testdata/v1_f0_48k.pth"), None).unwrap();
    assert!(matches!(
        convert(
            &content,
            &PitchTracker::Yin,
            &v1,
            &[0.0; 300],
            16_000,
            None,
            &params
        ),
        Err(ConversionError::TooShort(_))
    ));
    assert!(VoiceModel::load(&crate_dir("Cargo.toml"), None).is_err());
}

#[test]
fn fcpe_is_used_when_installed() {
    let tracker = PitchTracker::best_available();
    if matches!(tracker, PitchTracker::Yin) {
        eprintln!("FCPE weights not installed (infra/fetch-models.sh fcpe): YIN is the fallback");
        return;
    }
    assert_eq!(tracker.name(), "FCPE");
    let f0 = tracker.track(&voiced(16_000)).unwrap();
    let voiced_frames: Vec<f32> = f0.iter().copied().filter(|&f| f > 0.0).collect();
    let median = avatar_voice::pitch::median(&voiced_frames).unwrap();
    assert!((median - 120.0).abs() < 3.0, "{median}");
}
