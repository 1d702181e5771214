//! The one-call conversion: RVC's step order, lengths, and option handling.

use std::path::PathBuf;

use avatar_rvc::{
    convert, f0_to_coarse, prepare, protect, shift_pitch, upsample_features_2x, ConvertParams,
    FeatureIndex, RvcError, Synthesizer,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn pseudo(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 * 0.618 + seed) * 12.9898).sin())
        .collect()
}

#[test]
fn prepare_chains_rvc_steps_in_order() -> TestResult {
    let synth = Synthesizer::load(testdata("v2_f0_40k.pth"))?;
    let dim = synth.feature_dim();
    let n50 = 10;
    let features = pseudo(n50 * dim, 0.3);
    let index = FeatureIndex::from_vectors(pseudo(50 * dim, 1.7), dim)?;
    // One f0 frame short of 2 x 10: the output follows the f0.
    let f0: Vec<f32> = (0..19)
        .map(|t| if t % 6 == 0 { 0.0 } else { 120.0 + t as f32 })
        .collect();
    let params = ConvertParams {
        f0_up_key: 2.0,
        index_rate: 0.6,
        protect: 0.2,
        ..ConvertParams::default()
    };
    let p = prepare(&synth, Some(&index), &features, &f0, &params)?;
    assert_eq!(p.frames, 19);

    let blended = index.blend(&features, 0.6)?;
    let up = upsample_features_2x(&blended, dim)?;
    let up0 = upsample_features_2x(&features, dim)?;
    let shifted = shift_pitch(&f0, 2.0);
    let want = protect(&up[..19 * dim], &up0[..19 * dim], &shifted, dim, 0.2)?;
    assert_eq!(p.features, want);
    assert_eq!(p.f0.as_deref(), Some(shifted.as_slice()));
    assert_eq!(p.pitch, Some(f0_to_coarse(&shifted)));

    // protect >= 0.5 and index_rate 0 leave the features as upsampled.
    let plain = prepare(
        &synth,
        Some(&index),
        &features,
        &f0,
        &ConvertParams {
            index_rate: 0.0,
            protect: 0.5,
            ..params
        },
    )?;
    assert_eq!(plain.features, up0[..19 * dim].to_vec());
    Ok(())
}

#[test]
fn convert_produces_audio_and_checks_inputs() -> TestResult {
    let synth = Synthesizer::load(testdata("v2_f0_40k.pth"))?;
    let dim = synth.feature_dim();
    let features = pseudo(8 * dim, 0.9);
    let f0 = vec![150f32; 16];
    let audio = convert(
        &synth,
        None,
        &features,
        &f0,
        &ConvertParams::default(),
        None,
    )?;
    assert_eq!(audio.len(), 16 * synth.hop_length());
    assert!(audio.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    // A pitch model without f0, and an index of the wrong width, are errors.
    assert!(matches!(
        convert(
            &synth,
            None,
            &features,
            &[],
            &ConvertParams::default(),
            None
        ),
        Err(RvcError::Input(_))
    ));
    let narrow = FeatureIndex::from_vectors(vec![0.5; 32], 16)?;
    assert!(matches!(
        convert(
            &synth,
            Some(&narrow),
            &features,
            &f0,
            &ConvertParams::default(),
            None
        ),
        Err(RvcError::Index(_))
    ));
    // Models without pitch ignore f0.
    let nono = Synthesizer::load(testdata("v2_nono_32k.pth"))?;
    let audio = convert(&nono, None, &features, &[], &ConvertParams::default(), None)?;
    assert_eq!(audio.len(), 16 * nono.hop_length());
    Ok(())
}
