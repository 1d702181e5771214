//! avatar-rmvpe against RVC's PyTorch RMVPE (data from `reference/make_reference.py`).
//!
//! Tests panic on failure by design, so unwrapping here is the assertion.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use avatar_rmvpe::checkpoint::Weights;
use avatar_rmvpe::{Chunking, Rmvpe, RmvpeError};
use candle_core::Tensor;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

struct Reference {
    audio: Vec<f32>,
    mel: Vec<f32>,
    salience: Vec<f32>,
    f0: Vec<f32>,
    high_threshold: f32,
    f0_high: Vec<f32>,
}

fn flat(w: &Weights, name: &str) -> Vec<f32> {
    let t = w.tensors().get(name).unwrap_or_else(|| panic!("{name}"));
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn reference() -> Reference {
    let w = Weights::read(&testdata("reference.pt")).unwrap();
    Reference {
        audio: flat(&w, "audio"),
        mel: flat(&w, "mel"),
        salience: flat(&w, "salience"),
        f0: flat(&w, "f0"),
        high_threshold: flat(&w, "high_threshold")[0],
        f0_high: flat(&w, "f0_high"),
    }
}

fn tiny() -> Rmvpe {
    Rmvpe::load(testdata("tiny_rmvpe.pt")).unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Largest difference relative to the reference's largest magnitude.
fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f32::max);
    max_abs(a, b) / scale
}

#[test]
fn mel_matches_rvc() {
    let r = reference();
    let model = tiny();
    let mel = model.mel(&r.audio);
    let err = max_abs(&mel, &r.mel);
    eprintln!("mel max abs err (log domain) {err:e}");
    // Log-mel: an absolute error here is a relative error of the mel energy. torch's float32
    // FFT is good to ~1e-6 relative of the frame's peak; quiet bands (the 0.05-gain tail,
    // down to ~1e-4 of the peak) amplify that, so allow 1e-3 (0.1 % energy).
    assert!(err < 1e-3, "mel error {err}");
}

#[test]
fn salience_matches_rvc_from_its_mel() {
    let r = reference();
    let model = tiny();
    let frames = r.f0.len();
    let s = model.salience_from_mel(&r.mel, frames).unwrap();
    let err = max_rel(&s, &r.salience);
    eprintln!("salience (from RVC's mel) max rel err {err:e}");
    // Same input, float32 throughout: folding BatchNorm and a different summation order
    // through ~20 conv layers and the GRU leave ~1e-6; 1e-4 relative is the budget.
    assert!(err < 1e-4, "salience error {err}");
}

#[test]
fn salience_and_f0_match_rvc_from_audio() {
    let r = reference();
    let model = tiny();
    let s = model.salience(&r.audio).unwrap();
    let err = max_rel(&s, &r.salience);
    eprintln!("salience (from audio) max rel err {err:e}");
    // The mel's ~1e-5 log error passes through the network attenuated: 1e-4 relative.
    assert!(err < 1e-4, "salience error {err}");

    for (threshold, want) in [(0.03, &r.f0), (r.high_threshold, &r.f0_high)] {
        let f0 = model.f0(&r.audio, threshold).unwrap();
        assert_eq!(f0.len(), want.len());
        let mut worst = 0f32;
        for (i, (a, b)) in f0.iter().zip(want.iter()).enumerate() {
            // Voicing must agree exactly except for a frame whose peak sits within the
            // salience error of the threshold (none in this data, so it is not excused).
            assert_eq!(
                *a == 0.0,
                *b == 0.0,
                "voicing differs at frame {i}: {a} vs {b}"
            );
            if *b > 0.0 {
                worst = worst.max(((a / b).log2() * 1200.0).abs());
            }
        }
        eprintln!("f0 @ {threshold}: max err {worst:e} cents");
        // A 1e-4 relative salience error moves the 9-bin weighted mean by far less than a
        // cent (bins are 20 cents apart); 0.01 cent allows for that.
        assert!(worst < 0.01, "f0 error {worst} cents");
    }
    let voiced = r.f0_high.iter().filter(|f| **f > 0.0).count();
    assert!(
        voiced > 0 && voiced < r.f0_high.len(),
        "the high threshold must split frames"
    );
}

#[test]
fn safetensors_loads_the_same_model() {
    let r = reference();
    let w = Weights::read(&testdata("tiny_rmvpe.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rmvpe.safetensors");
    candle_core::safetensors::save(w.tensors(), &path).unwrap();
    let a = tiny().salience(&r.audio).unwrap();
    let b = Rmvpe::load(&path).unwrap().salience(&r.audio).unwrap();
    assert_eq!(a, b);
}

#[test]
fn chunked_equals_whole_within_tolerance() {
    // 6 s of the reference glide repeated: 601 frames, cut into 96-frame chunks with 64
    // frames of context.
    let r = reference();
    let audio: Vec<f32> = r.audio.iter().cycle().take(96_000).copied().collect();
    let whole = tiny().salience(&audio).unwrap();
    let chunked = tiny()
        .with_chunking(Chunking {
            core: 96,
            context: 64,
        })
        .salience(&audio)
        .unwrap();
    let err = max_rel(&chunked, &whole);
    eprintln!("chunked vs whole max rel err {err:e}");
    // The GRU and the U-Net see the whole input in a single run; with 64 frames of context
    // their influence from beyond the chunk has decayed below 1e-3 for this model.
    assert!(err < 1e-3, "chunked error {err}");
    let f0_whole = avatar_rmvpe::decode::decode(&whole, 0.03);
    let f0_chunked = avatar_rmvpe::decode::decode(&chunked, 0.03);
    assert_eq!(f0_whole.len(), 601);
    for (a, b) in f0_whole.iter().zip(&f0_chunked) {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn short_and_empty_inputs() {
    let model = tiny();
    assert!(model.f0(&[], 0.03).unwrap().is_empty());
    let f0 = model.f0(&[0.1; 100], 0.03).unwrap();
    assert_eq!(f0.len(), 1);
    assert!(f0[0].is_finite());
}

fn tiny_tensors() -> HashMap<String, Tensor> {
    Weights::read(&testdata("tiny_rmvpe.pt"))
        .unwrap()
        .tensors()
        .clone()
}

#[test]
fn missing_file_says_where_to_put_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rmvpe").join("rmvpe.pt");
    let err = Rmvpe::load(&path).err().unwrap();
    assert!(matches!(err, RmvpeError::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("rmvpe.pt"),
        "{msg}"
    );
    assert!(msg.contains("huggingface.co"), "{msg}");
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let bytes = std::fs::read(testdata("tiny_rmvpe.pt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("half.pt", &bytes[..bytes.len() / 2]),
        ("head.pt", &bytes[..100]),
        ("garbage.pt", &b"not a checkpoint at all"[..]),
        ("empty.pt", &[][..]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let err = Rmvpe::load(&path).err().unwrap();
        assert!(
            matches!(err, RmvpeError::Checkpoint { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn missing_tensor_is_named() {
    for name in [
        "fc.1.weight",
        "unet.decoder.layers.1.conv1.1.running_var",
        "fc.0.gru.bias_hh_l1_reverse",
        "cnn.bias",
        "unet.encoder.bn.weight",
    ] {
        let mut t = tiny_tensors();
        assert!(t.remove(name).is_some(), "{name}");
        let err = Rmvpe::from_weights(&Weights::from_tensors(t).unwrap())
            .err()
            .unwrap();
        assert!(
            matches!(&err, RmvpeError::MissingTensor(n) if n == name),
            "{name}: {err}"
        );
    }
}

#[test]
fn wrong_shape_is_named() {
    for name in [
        "unet.encoder.layers.1.conv.0.conv.3.weight",
        "fc.0.gru.weight_ih_l0",
        "unet.intermediate.layers.0.conv.0.shortcut.weight",
    ] {
        let mut t = tiny_tensors();
        let wrong =
            Tensor::zeros((2, 3), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        t.insert(name.to_string(), wrong);
        let err = Rmvpe::from_weights(&Weights::from_tensors(t).unwrap())
            .err()
            .unwrap();
        assert!(
            matches!(&err, RmvpeError::Shape { name: n, .. } if n == name),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn inconsistent_mel_is_an_error() {
    let err = tiny().salience_from_mel(&[0.0; 100], 3).err().unwrap();
    assert!(matches!(err, RmvpeError::Input(_)), "{err}");
}

#[test]
fn default_path_follows_avatar_models() {
    let p = Rmvpe::default_path();
    assert!(p.ends_with("rmvpe/rmvpe.pt"), "{}", p.display());
}

#[test]
fn model_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Rmvpe>();
}

#[test]
fn huge_chunking_runs_whole() {
    let r = reference();
    let huge = tiny()
        .with_chunking(Chunking {
            core: usize::MAX,
            context: usize::MAX,
        })
        .salience(&r.audio)
        .unwrap();
    assert_eq!(huge, tiny().salience(&r.audio).unwrap());
    // Chunks of one frame with no context still cover every frame once.
    let one = tiny()
        .with_chunking(Chunking {
            core: 0,
            context: 0,
        })
        .salience(&r.audio[..16_000])
        .unwrap();
    assert_eq!(one.len(), 101 * 360);
}
