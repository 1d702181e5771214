//! Loading RVC `.pth` files: metadata, weight-norm folding, and clear errors for bad input.

use std::path::PathBuf;

use avatar_rvc::{Checkpoint, ResBlockKind, RvcError, Synthesizer, Version};
use candle_core::{Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

#[test]
fn reads_webui_metadata_and_config() -> TestResult {
    let c = Checkpoint::load(testdata("v1_f0_48k.pth"))?;
    assert_eq!(c.version, Version::V1);
    assert!(c.f0);
    assert_eq!(c.sr_label.as_deref(), Some("48k"));
    assert_eq!(c.config.upsample_rates, vec![10, 6, 2, 2, 2]);
    assert_eq!(c.config.resblock, ResBlockKind::One);
    assert_eq!(c.config.resblock_dilation_sizes, vec![vec![1, 3, 5]; 3]);
    assert_eq!(c.config.hop_length(), 480);
    assert_eq!(c.config.spk_embed_dim, 3);
    // weight_g / weight_v were folded into plain weights.
    assert!(c.weights.contains("dec.ups.0.weight"));
    assert!(!c.weights.contains("dec.ups.0.weight_g"));
    let c = Checkpoint::load(testdata("v2_nono_32k.pth"))?;
    assert!(!c.f0);
    assert_eq!(c.config.resblock, ResBlockKind::Two);
    // Applio's parametrizations names fold the same way.
    assert!(c.weights.contains("flow.flows.0.enc.in_layers.0.weight"));
    assert!(!c
        .weights
        .names()
        .any(|n| n.contains("parametrizations") || n.ends_with("weight_v")));
    Ok(())
}

#[test]
fn weight_norm_fold_matches_definition() -> TestResult {
    // torch weight_norm(dim=0): w[o] = g[o] * v[o] / ||v[o]||.
    let v = Tensor::new(&[[[3f32, 4.0]], [[0.0, 2.0]]], &Device::Cpu)?;
    let g = Tensor::new(&[[[10f32]], [[0.5]]], &Device::Cpu)?;
    let w = avatar_rvc::checkpoint::fold_weight_norm(&g, &v)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let want = [6.0, 8.0, 0.0, 0.5];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?}");
    }
    Ok(())
}

#[test]
fn missing_weight_is_named() -> TestResult {
    let mut c = Checkpoint::load(testdata("v2_f0_40k.pth"))?;
    c.weights.remove("flow.flows.4.post.weight");
    match Synthesizer::new(&c) {
        Err(RvcError::MissingWeight(name)) => assert_eq!(name, "flow.flows.4.post.weight"),
        other => panic!("expected a missing-weight error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn wrong_shape_is_named() -> TestResult {
    let mut c = Checkpoint::load(testdata("v2_f0_40k.pth"))?;
    c.weights.insert(
        "enc_p.emb_phone.weight",
        Tensor::zeros((8, 256), candle_core::DType::F32, &Device::Cpu)?,
    );
    match Synthesizer::new(&c) {
        Err(RvcError::WeightShape {
            name,
            expected,
            actual,
        }) => {
            assert_eq!(name, "enc_p.emb_phone.weight");
            assert_eq!(expected, vec![8, 768]);
            assert_eq!(actual, vec![8, 256]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn unknown_version_and_garbage_files_are_errors() -> TestResult {
    assert!(matches!(
        Version::parse("v3"),
        Err(RvcError::Unsupported(_))
    ));
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("bad.pth");
    std::fs::write(&p, b"not a zip at all")?;
    assert!(matches!(
        Checkpoint::load(&p),
        Err(RvcError::Checkpoint { .. })
    ));
    assert!(matches!(
        Checkpoint::load(dir.path().join("absent.pth")),
        Err(RvcError::Io { .. })
    ));
    Ok(())
}

#[test]
fn inputs_are_checked() -> TestResult {
    let s = Synthesizer::load(testdata("v2_f0_40k.pth"))?;
    let feats = vec![0f32; 768 * 4];
    let f0 = vec![100f32; 4];
    let pitch = vec![50u32; 4];
    let nopitch = avatar_rvc::SynthInput {
        features: &feats,
        pitch: None,
        f0: None,
        speaker: 0,
    };
    assert!(matches!(s.infer(&nopitch), Err(RvcError::Input(_))));
    let bad_speaker = avatar_rvc::SynthInput {
        features: &feats,
        pitch: Some(&pitch),
        f0: Some(&f0),
        speaker: 9,
    };
    assert!(matches!(s.infer(&bad_speaker), Err(RvcError::Input(_))));
    let ok = avatar_rvc::SynthInput {
        speaker: 0,
        ..bad_speaker
    };
    let audio = s.infer(&ok)?;
    assert_eq!(audio.len(), 4 * 400);
    assert!(audio.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    Ok(())
}

#[test]
fn weight_shapes_list_exactly_what_checkpoints_hold() -> TestResult {
    for name in [
        "v2_f0_40k.pth",
        "v1_f0_48k.pth",
        "v2_nono_32k.pth",
        "v1_nono_32k.pth",
    ] {
        let c = Checkpoint::load(testdata(name))?;
        let mut want = avatar_rvc::shapes::weight_shapes(&c.config, c.version, c.f0);
        want.sort();
        let mut got: Vec<(String, Vec<usize>)> = c
            .weights
            .names()
            .map(|n| Ok((n.to_string(), c.weights.get_any(n)?.dims().to_vec())))
            .collect::<Result<_, avatar_rvc::RvcError>>()?;
        got.sort();
        assert_eq!(got, want, "{name}");
    }
    Ok(())
}

#[test]
fn truncated_or_wrong_files_are_errors_not_panics() -> TestResult {
    let good = std::fs::read(testdata("v2_f0_40k.pth"))?;
    let dir = tempfile::tempdir()?;
    for cut in [0, 100, good.len() / 3, good.len() / 2, good.len() - 30] {
        let p = dir.path().join(format!("cut{cut}.pth"));
        std::fs::write(&p, &good[..cut])?;
        assert!(Checkpoint::load(&p).is_err(), "cut at {cut} loaded");
    }
    // A feature index is not a checkpoint.
    assert!(Checkpoint::load(testdata("features.index")).is_err());
    Ok(())
}
