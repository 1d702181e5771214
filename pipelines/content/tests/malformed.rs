//! Broken or foreign files must give errors that say what is wrong, never a panic.

mod common;

use std::collections::HashMap;
use std::path::Path;

use avatar_content::{ContentEncoder, ContentError};
use candle_core::{DType, Device, Tensor};
use common::*;

fn hf_tensors() -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    Ok(candle_core::safetensors::load(
        testdata().join("hf").join("model.safetensors"),
        &Device::Cpu,
    )?)
}

fn write_hf(dir: &Path, t: &HashMap<String, Tensor>, config: Option<&str>) -> TestResult {
    candle_core::safetensors::save(t, dir.join("model.safetensors"))?;
    match config {
        Some(c) => std::fs::write(dir.join("config.json"), c)?,
        None => {
            std::fs::copy(
                testdata().join("hf").join("config.json"),
                dir.join("config.json"),
            )?;
        }
    }
    Ok(())
}

fn load_err(path: &Path) -> ContentError {
    match ContentEncoder::load(path) {
        Ok(_) => panic!("{} loaded but should not", path.display()),
        Err(e) => e,
    }
}

#[test]
fn wrong_shapes_are_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut t = hf_tensors()?;
    t.insert(
        "encoder.layers.3.feed_forward.intermediate_dense.weight".into(),
        Tensor::zeros((63, 32), DType::F32, &Device::Cpu)?,
    );
    write_hf(dir.path(), &t, None)?;
    match load_err(dir.path()) {
        ContentError::BadShape {
            name,
            expected,
            found,
        } => {
            assert_eq!(name, "encoder.layers.3.fc1.weight");
            assert_eq!((expected, found), (vec![64, 32], vec![63, 32]));
        }
        e => panic!("unexpected {e}"),
    }

    let mut t = hf_tensors()?;
    t.insert(
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0".into(),
        Tensor::ones((1, 2, 128), DType::F32, &Device::Cpu)?,
    );
    write_hf(dir.path(), &t, None)?;
    let e = load_err(dir.path());
    assert!(matches!(e, ContentError::BadShape { .. }), "{e}");

    let mut t = hf_tensors()?;
    t.insert(
        "feature_extractor.conv_layers.2.conv.weight".into(),
        Tensor::zeros((16, 16, 4), DType::F32, &Device::Cpu)?,
    );
    write_hf(dir.path(), &t, None)?;
    let e = load_err(dir.path());
    assert!(e.to_string().contains("conv_layers.2.0.weight"), "{e}");
    Ok(())
}

#[test]
fn missing_tensors_are_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    for (hf_name, fairseq_name) in [
        ("encoder.layer_norm.bias", "encoder.layer_norm.bias"),
        (
            "encoder.layers.5.attention.q_proj.weight",
            "encoder.layers.5.self_attn.q_proj.weight",
        ),
        (
            "feature_extractor.conv_layers.0.layer_norm.weight",
            "feature_extractor.conv_layers.0.2.weight",
        ),
        (
            "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
            "encoder.pos_conv.0.weight",
        ),
    ] {
        let mut t = hf_tensors()?;
        t.remove(hf_name);
        write_hf(dir.path(), &t, None)?;
        match load_err(dir.path()) {
            ContentError::MissingTensor { name } => assert_eq!(name, fairseq_name),
            e => panic!("removing {hf_name}: unexpected {e}"),
        }
    }
    Ok(())
}

#[test]
fn unsupported_variants_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let t = hf_tensors()?;
    write_hf(
        dir.path(),
        &t,
        Some(r#"{"num_attention_heads": 2, "do_stable_layer_norm": true}"#),
    )?;
    assert!(matches!(load_err(dir.path()), ContentError::Unsupported(_)));
    write_hf(
        dir.path(),
        &t,
        Some(r#"{"num_attention_heads": 2, "conv_stride": [5, 2, 2, 2, 2, 2, 1]}"#),
    )?;
    assert!(matches!(load_err(dir.path()), ContentError::Unsupported(_)));
    write_hf(dir.path(), &t, Some(r#"{"num_attention_heads": 3}"#))?;
    assert!(matches!(load_err(dir.path()), ContentError::Unsupported(_)));
    write_hf(dir.path(), &t, Some("{not json"))?;
    assert!(matches!(
        load_err(dir.path()),
        ContentError::NotACheckpoint { .. }
    ));
    Ok(())
}

#[test]
fn foreign_and_truncated_files_are_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n);

    std::fs::write(
        p("legacy.pt"),
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
    )?;
    let e = load_err(&p("legacy.pt"));
    assert!(matches!(e, ContentError::LegacyPickle { .. }), "{e}");
    assert!(e.to_string().contains("legacy"), "{e}");

    std::fs::write(p("text.pt"), "hello, not a model")?;
    assert!(matches!(
        load_err(&p("text.pt")),
        ContentError::NotACheckpoint { .. }
    ));
    std::fs::write(p("empty.pt"), b"")?;
    assert!(matches!(
        load_err(&p("empty.pt")),
        ContentError::NotACheckpoint { .. }
    ));
    assert!(matches!(
        load_err(&p("does-not-exist.pt")),
        ContentError::Io { .. }
    ));
    let empty_dir = tempfile::tempdir()?;
    assert!(matches!(
        load_err(empty_dir.path()),
        ContentError::NotACheckpoint { .. }
    ));

    let pt = std::fs::read(testdata().join("fairseq.pt"))?;
    for cut in [10, 1000, pt.len() / 2, pt.len() - 30] {
        std::fs::write(p("cut.pt"), &pt[..cut])?;
        let _ = load_err(&p("cut.pt"));
    }
    let st = std::fs::read(testdata().join("hf").join("model.safetensors"))?;
    for cut in [12, 2000, st.len() - 4] {
        std::fs::write(p("cut.safetensors"), &st[..cut])?;
        let _ = load_err(&p("cut.safetensors"));
    }

    // a zip that is not a torch.save file
    let mut z = zip::ZipWriter::new(std::fs::File::create(p("other.zip"))?);
    z.start_file("hello.txt", zip::write::SimpleFileOptions::default())?;
    std::io::Write::write_all(&mut z, b"hi")?;
    z.finish()?;
    let e = load_err(&p("other.zip"));
    assert!(e.to_string().contains("data.pkl"), "{e}");
    Ok(())
}

/// Older fairseq containers keep the hyper-parameters in an `argparse.Namespace` next to
/// optimizer history and other bookkeeping; the loader must walk past all of it.
#[test]
fn namespace_args_are_read_for_hints() -> TestResult {
    let ck = avatar_content::checkpoint::read(&testdata().join("fairseq_namespace.pt"))?;
    assert_eq!(ck.layout, avatar_content::Layout::Fairseq);
    assert_eq!(ck.hints.heads, Some(3));
    assert_eq!(ck.hints.layer_norm_first, Some(false));
    assert_eq!(ck.hints.layer_norm_extractor, Some(false));
    assert_eq!(ck.hints.normalize, Some(false));
    let w = ck
        .tensors
        .get("final_proj.weight")
        .ok_or("final_proj.weight not read")?;
    assert_eq!(w.dtype(), DType::F32);
    assert_eq!(
        w.to_vec2::<f32>()?,
        vec![vec![0., 1., 2.], vec![3., 4., 5.]]
    );
    // and it is not a whole model
    assert!(matches!(
        load_err(&testdata().join("fairseq_namespace.pt")),
        ContentError::MissingTensor { .. }
    ));
    Ok(())
}
