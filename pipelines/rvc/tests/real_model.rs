//! Opt-in check on a full-size voice file (not committed: ~55 MB):
//!
//!   AVATAR_RVC_MODEL=/path/model.pth [AVATAR_RVC_REFERENCE=/path/ref.safetensors] \
//!     cargo test -p avatar-rvc --test real_model -- --ignored --nocapture
//!
//! Loads the model and synthesises 2 s; with a reference file (same keys as
//! `testdata/*_long.safetensors`, e.g. written by RVC's PyTorch on that model) the audio
//! must match it to 1e-4.

use avatar_rvc::{Checkpoint, Noise, SynthInput, Synthesizer};
use candle_core::{DType, Device};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
#[ignore = "needs AVATAR_RVC_MODEL pointing at a full-size .pth"]
fn full_size_model_loads_and_matches_reference() -> TestResult {
    let Some(model) = std::env::var_os("AVATAR_RVC_MODEL") else {
        println!("AVATAR_RVC_MODEL not set; nothing to check");
        return Ok(());
    };
    let t = std::time::Instant::now();
    let ckpt = Checkpoint::load(&model)?;
    let synth = Synthesizer::new(&ckpt)?;
    println!(
        "loaded {:?} {:?} f0={} in {:.2} s: {:?}",
        model,
        ckpt.version,
        ckpt.f0,
        t.elapsed().as_secs_f64(),
        ckpt.config
    );
    let Some(reference) = std::env::var_os("AVATAR_RVC_REFERENCE") else {
        let frames = 200;
        let features = vec![0.1f32; frames * synth.feature_dim()];
        let f0 = vec![150f32; frames];
        let pitch = avatar_rvc::f0_to_coarse(&f0);
        let input = SynthInput {
            features: &features,
            pitch: synth.has_pitch().then_some(pitch.as_slice()),
            f0: synth.has_pitch().then_some(f0.as_slice()),
            speaker: 0,
        };
        let audio = synth.infer(&input)?;
        assert_eq!(audio.len(), frames * synth.hop_length());
        return Ok(());
    };
    let r = candle_core::safetensors::load(reference, &Device::Cpu)?;
    let get = |k: &str| {
        r.get(k)
            .cloned()
            .ok_or_else(|| format!("reference lacks `{k}`"))
    };
    let features = get("phone")?.flatten_all()?.to_vec1::<f32>()?;
    let pitch = get("pitch")?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let f0 = get("pitchf")?.to_vec1::<f32>()?;
    let speaker = get("sid")?.to_dtype(DType::U32)?.to_vec1::<u32>()?[0] as usize;
    let noise = Noise {
        prior: get("noise_prior")?.flatten_all()?.to_vec1::<f32>()?,
        sine: get("noise_sine")?.to_vec1::<f32>()?,
    };
    let input = SynthInput {
        features: &features,
        pitch: Some(&pitch),
        f0: Some(&f0),
        speaker,
    };
    let audio = synth.infer_with_noise(&input, &noise)?.audio;
    let want = get("audio")?.to_vec1::<f32>()?;
    assert_eq!(audio.len(), want.len());
    let err = audio
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("max abs err vs reference: {err:e}");
    assert!(err < 1e-4);
    Ok(())
}
