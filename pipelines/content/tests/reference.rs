//! Candle against PyTorch: the committed random model, in both layouts, must give the numbers
//! `reference/make_reference.py` got from transformers' `HubertModel` on the same weights.

mod common;

use std::collections::HashMap;
use std::path::Path;

use avatar_content::{frame_count, ContentEncoder, Layout, RvcVersion};
use candle_core::{Device, Tensor};
use common::*;

/// Both sides compute in f32 but in different orders (im2col vs direct convolution, blocked
/// matmuls, fused LayerNorm): the script measures PyTorch-f32 against f64 at ~2e-6 on values of
/// magnitude < 5, so 1e-4 leaves ample room for candle's own rounding while any real mistake
/// (tanh instead of erf GELU, a wrong eps, weight norm over the wrong axis, an off-by-one frame)
/// moves the outputs by far more.
const TOL: f32 = 1e-4;

fn check_all(enc: &ContentEncoder, what: &str) -> TestResult {
    let r = reference()?;
    let wav = input(&r)?;
    let frames = frame_count(wav.len());
    assert_eq!(frames, 74);

    let feats = enc.conv_features(&wav)?;
    let e = max_abs_diff(&feats, get(&r, "features")?)?;
    println!("{what}: conv features max abs err {e:.2e}");
    assert!(e < TOL, "{what}: conv features differ by {e}");

    for layer in 0..=12 {
        let h = enc.hidden_state(&wav, layer)?;
        assert_eq!(h.dims(), &[frames, 32]);
        let e = max_abs_diff(&h, get(&r, &format!("hidden.{layer}"))?)?;
        println!("{what}: hidden.{layer} max abs err {e:.2e}");
        assert!(e < TOL, "{what}: hidden.{layer} differs by {e}");
    }

    let v1 = enc.encode(&wav, RvcVersion::V1)?;
    assert_eq!(v1.dims(), &[frames, 16]);
    let e = max_abs_diff(&v1, get(&r, "proj.9")?)?;
    println!("{what}: v1 (final_proj of layer 9) max abs err {e:.2e}");
    assert!(e < TOL, "{what}: v1 differs by {e}");

    let v2 = enc.encode(&wav, RvcVersion::V2)?;
    let e = max_abs_diff(&v2, get(&r, "hidden.12")?)?;
    println!("{what}: v2 (layer 12) max abs err {e:.2e}");
    assert!(e < TOL, "{what}: v2 differs by {e}");

    let p12 = enc.project(&v2)?;
    let e = max_abs_diff(&p12, get(&r, "proj.12")?)?;
    assert!(e < TOL, "{what}: final_proj of layer 12 differs by {e}");

    let rows = enc.encode_frames(&wav, RvcVersion::V2)?;
    assert_eq!(rows.len(), frames);
    assert!(rows.iter().all(|r| r.len() == 32));
    Ok(())
}

#[test]
fn fairseq_layout_matches_pytorch() -> TestResult {
    let enc = ContentEncoder::load(testdata().join("fairseq.pt"))?;
    assert_eq!(enc.layout(), Layout::Fairseq);
    let c = enc.config();
    // heads come from the pickled cfg (2), not the 64-wide default (which would give 0 -> 1)
    assert_eq!((c.hidden, c.heads, c.ffn, c.layers), (32, 2, 64, 12));
    assert_eq!(
        (c.conv_dim, c.pos_conv_kernel, c.pos_conv_groups),
        (16, 128, 16)
    );
    assert_eq!(c.final_proj_dim, Some(16));
    check_all(&enc, "fairseq f16 .pt")
}

#[test]
fn hugging_face_layout_matches_pytorch() -> TestResult {
    let enc = ContentEncoder::load(testdata().join("hf"))?;
    assert_eq!(enc.layout(), Layout::HuggingFace);
    assert_eq!(enc.config().heads, 2);
    check_all(&enc, "HF safetensors (parametrizations.weight.original0/1)")
}

#[test]
fn hugging_face_pytorch_model_bin_matches_pytorch() -> TestResult {
    // a bare (OrderedDict) state dict in f16, as ContentVec's HF port ships
    let enc = ContentEncoder::load(testdata().join("hf_bin"))?;
    assert_eq!(enc.layout(), Layout::HuggingFace);
    assert!(enc.path().ends_with("pytorch_model.bin"));
    check_all(&enc, "HF pytorch_model.bin f16")
}

/// Copy the HF model into `dir` with the tensors passed through `edit`.
fn hf_variant(
    dir: &Path,
    edit: impl FnOnce(&mut HashMap<String, Tensor>) -> TestResult,
) -> TestResult {
    let mut t = candle_core::safetensors::load(
        testdata().join("hf").join("model.safetensors"),
        &Device::Cpu,
    )?;
    edit(&mut t)?;
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    std::fs::copy(
        testdata().join("hf").join("config.json"),
        dir.join("config.json"),
    )?;
    Ok(())
}

fn rename(t: &mut HashMap<String, Tensor>, from: &str, to: &str) -> TestResult {
    let x = t.remove(from).ok_or(format!("no {from}"))?;
    t.insert(to.to_string(), x);
    Ok(())
}

#[test]
fn older_hf_weight_norm_names_and_folded_weights_load_alike() -> TestResult {
    let r = reference()?;
    let wav = input(&r)?;
    let base = "encoder.pos_conv_embed.conv";

    // transformers < 4.4x / torch.nn.utils.weight_norm: weight_g / weight_v
    let old = tempfile::tempdir()?;
    hf_variant(old.path(), |t| {
        rename(
            t,
            &format!("{base}.parametrizations.weight.original0"),
            &format!("{base}.weight_g"),
        )?;
        rename(
            t,
            &format!("{base}.parametrizations.weight.original1"),
            &format!("{base}.weight_v"),
        )
    })?;
    let enc = ContentEncoder::load(old.path())?;
    let e = max_abs_diff(&enc.encode(&wav, RvcVersion::V2)?, get(&r, "hidden.12")?)?;
    assert!(e < TOL, "weight_g/weight_v naming: {e}");

    // weight norm already removed (a plain `weight`), with a `hubert.` prefix as some ContentVec
    // ports have
    let folded_weight = avatar_content::checkpoint::read(&testdata().join("fairseq.pt"))?
        .tensors
        .get(avatar_content::checkpoint::POS_CONV_WEIGHT)
        .cloned()
        .ok_or("fairseq checkpoint lost its pos conv")?;
    let folded = tempfile::tempdir()?;
    hf_variant(folded.path(), |t| {
        t.remove(&format!("{base}.parametrizations.weight.original0"));
        t.remove(&format!("{base}.parametrizations.weight.original1"));
        t.insert(format!("{base}.weight"), folded_weight);
        let names: Vec<String> = t
            .keys()
            .filter(|k| !k.starts_with("final_proj"))
            .cloned()
            .collect();
        for n in names {
            rename(t, &n, &format!("hubert.{n}"))?;
        }
        Ok(())
    })?;
    let enc = ContentEncoder::load(folded.path().join("model.safetensors"))?;
    let e = max_abs_diff(&enc.encode(&wav, RvcVersion::V1)?, get(&r, "proj.9")?)?;
    assert!(e < TOL, "folded weight, hubert. prefix: {e}");
    Ok(())
}

#[test]
fn short_inputs_are_an_error_and_the_frame_rule_holds() -> TestResult {
    let enc = ContentEncoder::load(testdata().join("fairseq.pt"))?;
    let err = enc.encode(&[0.1; 399], RvcVersion::V2);
    assert!(
        matches!(
            err,
            Err(avatar_content::ContentError::InputTooShort {
                samples: 399,
                min: 400
            })
        ),
        "{err:?}"
    );
    assert!(enc.encode(&[], RvcVersion::V1).is_err());
    let wav: Vec<f32> = (0..1040).map(|i| (i as f32 * 0.05).sin()).collect();
    for n in [400, 719, 720, 1039, 1040] {
        let out = enc.encode(&wav[..n], RvcVersion::V2)?;
        assert_eq!(out.dims(), &[frame_count(n), 32], "{n} samples");
    }
    assert_eq!(frame_count(1040), 3);
    Ok(())
}

#[test]
fn layers_past_the_model_and_v1_without_final_proj_are_errors() -> TestResult {
    let enc = ContentEncoder::load(testdata().join("hf"))?;
    let wav = vec![0.01f32; 800];
    assert!(matches!(
        enc.hidden_state(&wav, 13),
        Err(avatar_content::ContentError::LayerOutOfRange {
            layer: 13,
            layers: 12
        })
    ));

    let dir = tempfile::tempdir()?;
    hf_variant(dir.path(), |t| {
        t.remove("final_proj.weight");
        t.remove("final_proj.bias");
        Ok(())
    })?;
    let enc = ContentEncoder::load(dir.path())?;
    assert_eq!(enc.config().final_proj_dim, None);
    assert!(matches!(
        enc.encode(&wav, RvcVersion::V1),
        Err(avatar_content::ContentError::NoFinalProj)
    ));
    assert_eq!(enc.encode(&wav, RvcVersion::V2)?.dims(), &[2, 32]);
    Ok(())
}
