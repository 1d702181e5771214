//! Conversion helpers against RVC's pipeline numbers (`reference/make_reference.py`), the
//! faiss index reader against a file faiss wrote, and chunked against whole synthesis.

use std::collections::HashMap;
use std::path::PathBuf;

use avatar_rvc::{
    f0_to_coarse, protect, shift_pitch, synthesize_chunked, upsample_features_2x, Chunking,
    FeatureIndex, SynthInput, Synthesizer,
};
use candle_core::{DType, Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn helpers() -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    Ok(candle_core::safetensors::load(
        testdata("helpers.safetensors"),
        &Device::Cpu,
    )?)
}

fn vec_f32(m: &HashMap<String, Tensor>, k: &str) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let t = m.get(k).ok_or_else(|| format!("no `{k}` in helpers"))?;
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn vec_u32(m: &HashMap<String, Tensor>, k: &str) -> Result<Vec<u32>, Box<dyn std::error::Error>> {
    let t = m.get(k).ok_or_else(|| format!("no `{k}` in helpers"))?;
    Ok(t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn coarse_pitch_and_shift_match_rvc() -> TestResult {
    let h = helpers()?;
    let f0 = vec_f32(&h, "f0")?;
    assert_eq!(f0_to_coarse(&f0), vec_u32(&h, "coarse")?);
    let up = shift_pitch(&f0, 3.0);
    let want = vec_f32(&h, "f0_up3")?;
    for (a, b) in up.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    assert_eq!(f0_to_coarse(&up), vec_u32(&h, "coarse_up3")?);
    Ok(())
}

#[test]
fn faiss_ivf_flat_file_reads_and_searches_like_faiss() -> TestResult {
    let h = helpers()?;
    let index = FeatureIndex::read(testdata("features.index"))?;
    let dim = index.dim();
    assert_eq!(dim, 16);
    assert_eq!(index.len(), 400);
    // Same vectors by id as faiss' reconstruct_n.
    assert_eq!(index.vectors(), vec_f32(&h, "index_vectors")?.as_slice());
    let query = vec_f32(&h, "index_query")?;
    let ids = vec_u32(&h, "index_ids")?;
    let dists = vec_f32(&h, "index_dists")?;
    for (i, row) in query.chunks_exact(dim).enumerate() {
        let hits = index.search(row, 8)?;
        let got: Vec<u32> = hits.iter().map(|h| h.0 as u32).collect();
        assert_eq!(
            got,
            ids[i * 8..(i + 1) * 8],
            "frame {i}: ids differ from faiss (nprobe 1)"
        );
        let got_d: Vec<f32> = hits.iter().map(|h| h.1).collect();
        assert!(max_abs(&got_d, &dists[i * 8..(i + 1) * 8]) < 1e-4);
    }
    let blended = index.blend(&query, 0.75)?;
    let err = max_abs(&blended, &vec_f32(&h, "index_blended_075")?);
    println!("index blend max abs err {err}");
    assert!(err < 1e-5);
    // index_rate 0 leaves the features alone.
    assert!(max_abs(&index.blend(&query, 0.0)?, &query) < 1e-6);
    Ok(())
}

#[test]
fn bad_index_files_are_errors() -> TestResult {
    assert!(FeatureIndex::parse(b"IwFl\x10\x00").is_err());
    assert!(FeatureIndex::parse(b"IxPQ................................").is_err());
    assert!(FeatureIndex::from_vectors(vec![0.0; 10], 3).is_err());
    let good = std::fs::read(testdata("features.index"))?;
    // Truncated anywhere: an error, never a panic.
    for cut in [10, 60, 200, good.len() / 2, good.len() - 1] {
        assert!(FeatureIndex::parse(&good[..cut]).is_err(), "cut at {cut}");
    }
    // A header claiming 2^40 vectors must not be allocated.
    let mut huge = good.clone();
    huge[8..16].copy_from_slice(&(1i64 << 40).to_le_bytes());
    assert!(FeatureIndex::parse(&huge).is_err());
    Ok(())
}

#[test]
fn upsampling_and_protect_match_rvc() -> TestResult {
    let h = helpers()?;
    let blended = vec_f32(&h, "index_blended_075")?;
    let original = vec_f32(&h, "index_query")?;
    let up = upsample_features_2x(&blended, 16)?;
    assert_eq!(up, vec_f32(&h, "up")?);
    let up0 = upsample_features_2x(&original, 16)?;
    assert_eq!(up0, vec_f32(&h, "up0")?);
    let f0 = vec_f32(&h, "protect_pitchf")?;
    let p = protect(&up, &up0, &f0, 16, 0.33)?;
    let err = max_abs(&p, &vec_f32(&h, "protected_033")?);
    assert!(err < 1e-6, "protect differs by {err}");
    Ok(())
}

#[test]
fn chunked_synthesis_matches_whole() -> TestResult {
    let synth = Synthesizer::load(testdata("v2_f0_40k.pth"))?;
    let frames = 90;
    let dim = synth.feature_dim();
    let hop = synth.hop_length();
    // Smooth deterministic inputs.
    let features: Vec<f32> = (0..frames * dim)
        .map(|i| ((i % dim) as f32 * 0.37 + (i / dim) as f32 * 0.05).sin())
        .collect();
    let f0: Vec<f32> = (0..frames)
        .map(|t| {
            if t % 30 < 4 {
                0.0
            } else {
                140.0 + 30.0 * (t as f32 * 0.1).sin()
            }
        })
        .collect();
    let pitch = f0_to_coarse(&f0);
    let input = SynthInput {
        features: &features,
        pitch: Some(&pitch),
        f0: Some(&f0),
        speaker: 0,
    };
    let noise = synth.random_noise(frames)?;
    let whole = synth.infer_with_noise(&input, &noise)?.audio;
    assert_eq!(whole.len(), frames * hop);
    // Encoder sees everything, decoder in small windows: exact (decoder joins are seamless,
    // the sine source keeps its phase across windows).
    let exact = Chunking {
        encoder_frames: frames,
        encoder_context: 0,
        decoder_frames: 7,
        decoder_context: None,
    };
    let chunked = synthesize_chunked(&synth, &input, Some(&noise), exact)?;
    let err = max_abs(&chunked, &whole);
    println!(
        "decoder windows of 7 frames (context {}): max abs err {err}",
        synth.decoder_receptive_frames()
    );
    assert!(err < 1e-4, "windowed decoding differs by {err}");
    // Too little decoder context does show at the joins, so the check above can fail.
    let starved = Chunking {
        decoder_context: Some(0),
        ..exact
    };
    let err0 = max_abs(
        &synthesize_chunked(&synth, &input, Some(&noise), starved)?,
        &whole,
    );
    assert!(
        err0 > 1e-3,
        "no-context decoding unexpectedly exact ({err0})"
    );
    // Encoder windows too: only the attention's missing context differs (random weights
    // attend globally, so this is loose), and the output keeps its length.
    let both = Chunking {
        encoder_frames: 30,
        encoder_context: 30,
        ..exact
    };
    let out = synthesize_chunked(&synth, &input, Some(&noise), both)?;
    assert_eq!(out.len(), whole.len());
    assert!(out.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    // Without noise given it draws its own.
    let drawn = synthesize_chunked(&synth, &input, None, Chunking::default())?;
    assert_eq!(drawn.len(), whole.len());
    Ok(())
}
