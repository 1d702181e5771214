//! The synthesiser against RVC's own PyTorch code on the same random weights and noise.
//! Data: `reference/make_reference.py` (tiny models; float16 weights are widened to float32 on
//! both sides, so every config is held to the float32 tolerance).

use std::collections::HashMap;
use std::path::PathBuf;

use avatar_rvc::{Checkpoint, Noise, SynthInput, Synthesizer, Version};
use candle_core::{DType, Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Max abs error allowed on every compared tensor. Audio is tanh-bounded; fp32 reorderings
/// (conv accumulation order, softmax) through ~40 layers stay around 1e-5.
const TOL: f32 = 2e-4;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn load(name: &str) -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    Ok(candle_core::safetensors::load(
        testdata(name),
        &Device::Cpu,
    )?)
}

fn get(map: &HashMap<String, Tensor>, k: &str) -> Result<Tensor, Box<dyn std::error::Error>> {
    map.get(k)
        .cloned()
        .ok_or_else(|| format!("reference file lacks `{k}`").into())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32, Box<dyn std::error::Error>> {
    if a.dims() != b.dims() {
        return Err(format!("shape {:?} vs reference {:?}", a.dims(), b.dims()).into());
    }
    Ok(a.sub(b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn check_case(model: &str, case: &str, version: Version, f0: bool, sr: u32) -> TestResult {
    let ckpt = Checkpoint::load(testdata(&format!("{model}.pth")))?;
    assert_eq!(ckpt.version, version);
    assert_eq!(ckpt.f0, f0);
    assert_eq!(ckpt.config.sr, sr);
    let synth = Synthesizer::new(&ckpt)?;
    let r = load(&format!("{model}_{case}.safetensors"))?;
    let features = get(&r, "phone")?.flatten_all()?.to_vec1::<f32>()?;
    let pitch = if f0 {
        Some(get(&r, "pitch")?.to_dtype(DType::U32)?.to_vec1::<u32>()?)
    } else {
        None
    };
    let pitchf = if f0 {
        Some(get(&r, "pitchf")?.to_vec1::<f32>()?)
    } else {
        None
    };
    let noise = Noise {
        prior: get(&r, "noise_prior")?.flatten_all()?.to_vec1::<f32>()?,
        sine: if f0 {
            get(&r, "noise_sine")?.to_vec1::<f32>()?
        } else {
            Vec::new()
        },
    };
    let speaker = get(&r, "sid")?.to_dtype(DType::U32)?.to_vec1::<u32>()?[0] as usize;
    let input = SynthInput {
        features: &features,
        pitch: pitch.as_deref(),
        f0: pitchf.as_deref(),
        speaker,
    };
    let out = synth.infer_with_noise(&input, &noise)?;
    let audio_ref = get(&r, "audio")?;
    let audio = Tensor::from_slice(&out.audio, out.audio.len(), &Device::Cpu)?;
    let errs = [
        ("m_p", max_abs_diff(&out.m_p, &get(&r, "m_p")?)?),
        ("logs_p", max_abs_diff(&out.logs_p, &get(&r, "logs_p")?)?),
        ("z", max_abs_diff(&out.z, &get(&r, "z")?)?),
        ("audio", max_abs_diff(&audio, &audio_ref)?),
    ];
    println!("{model}/{case}: max abs err {errs:?}");
    for (name, e) in errs {
        assert!(
            e < TOL,
            "{model}/{case}: {name} differs from PyTorch by {e}"
        );
    }
    // The reference audio is not silence, so matching it means something.
    assert!(audio_ref.abs()?.max(0)?.to_scalar::<f32>()? > 0.3);
    Ok(())
}

#[test]
fn v2_pitch_40k_matches_pytorch() -> TestResult {
    check_case("v2_f0_40k", "long", Version::V2, true, 40000)
}

#[test]
fn v2_pitch_40k_short_input_matches_pytorch() -> TestResult {
    // 7 frames: shorter than the attention window, exercising the relative-embedding slice.
    check_case("v2_f0_40k", "short", Version::V2, true, 40000)
}

#[test]
fn v1_pitch_48k_fp16_checkpoint_matches_pytorch() -> TestResult {
    check_case("v1_f0_48k", "long", Version::V1, true, 48000)
}

#[test]
fn v2_nopitch_32k_applio_names_matches_pytorch() -> TestResult {
    check_case("v2_nono_32k", "long", Version::V2, false, 32000)
}

#[test]
fn v1_nopitch_32k_fp16_applio_names_matches_pytorch() -> TestResult {
    check_case("v1_nono_32k", "long", Version::V1, false, 32000)
}
