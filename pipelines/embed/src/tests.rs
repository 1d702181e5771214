//! Unit tests on a tiny random BERT written to a temp dir, so they run in milliseconds with no
//! downloaded weights; the real-model check lives in `tests/reference.rs`.

use super::*;
use candle_nn::VarMap;
use serde_json::json;

const WORDS: &[&str] = &[
    "the", "a", "cat", "dog", "sat", "on", "mat", "ran", "to", "park", "and", "then", "slept",
    "engine", "loom", "weaves", "flowers", "leaves", "dinner", "is", "at", "six", "do", "not",
    "bring", "mill", "oil", "first", "never", "above", "always", "carriage", "ok", "hello",
    "world", ".", ",", "!", "?", "##s", "##ing", "##ed", "run", "walk", "talk",
];

/// Writes a tiny BERT (random weights) in the sentence-transformers layout. `pooling` is the
/// 1_Pooling/config.json content, `None` to leave the sentence-transformers files out.
fn tiny_model(dir: &Path, max_seq_length: usize, pooling: Option<serde_json::Value>) {
    let mut vocab = serde_json::Map::new();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    for (i, w) in specials.iter().chain(WORDS.iter()).enumerate() {
        vocab.insert((*w).to_string(), json!(i));
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    // Like MiniLM's, this tokenizer.json pads and truncates at a fixed length (here 16): the
    // embedder must override both.
    let tokenizer = json!({
        "version": "1.0",
        "truncation": {"max_length": 16, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let config = json!({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab.len(),
        "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let cfg: BertConfig = serde_json::from_value(config).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &cfg).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
    if let Some(pooling) = pooling {
        std::fs::write(
            dir.join("sentence_bert_config.json"),
            json!({"max_seq_length": max_seq_length, "do_lower_case": false}).to_string(),
        )
        .unwrap();
        let modules = json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]);
        std::fs::write(dir.join("modules.json"), modules.to_string()).unwrap();
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        std::fs::write(dir.join("1_Pooling/config.json"), pooling.to_string()).unwrap();
    }
}

fn mean_pooling() -> serde_json::Value {
    json!({"word_embedding_dimension": 16, "pooling_mode_cls_token": false,
           "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
           "pooling_mode_mean_sqrt_len_tokens": false})
}

fn tiny(max_seq_length: usize) -> (tempfile::TempDir, Embedder) {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), max_seq_length, Some(mean_pooling()));
    let e = Embedder::load(dir.path()).unwrap();
    (dir, e)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const TEXTS: &[&str] = &[
    "the cat sat on the mat.",
    "ok",
    "the dog ran to the park and then slept, and the cat walked to the mill.",
    "dinner is at six! do not bring the engine.",
    "never oil the carriage",
    "hello world?",
    "the loom weaves flowers and leaves",
];

#[test]
fn loads_metadata_from_the_directory() {
    let (dir, e) = tiny(32);
    assert_eq!(e.dim(), 16);
    assert_eq!(e.max_tokens(), 32);
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(e.batch_size(), DEFAULT_BATCH_SIZE);
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(e.model_id(), name);
}

#[test]
fn vectors_are_unit_length_and_distinct() {
    let (_d, e) = tiny(32);
    let v = e.embed(TEXTS).unwrap();
    assert_eq!(v.len(), TEXTS.len());
    for x in &v {
        assert_eq!(x.len(), 16);
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    assert!(
        max_diff(&v[0], &v[1]) > 1e-3,
        "different texts gave the same vector"
    );
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn batched_equals_unbatched_and_keeps_input_order() {
    let (_d, e) = tiny(32);
    let e = e.with_batch_size(3);
    let batched = e.embed(TEXTS).unwrap();
    for (text, b) in TEXTS.iter().zip(&batched) {
        let alone = e.embed(&[text]).unwrap();
        let d = max_diff(&alone[0], b);
        assert!(d < 1e-5, "{text:?}: batched differs by {d}");
    }
    let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
    let r = e.embed(&reversed).unwrap();
    for (i, v) in r.iter().enumerate() {
        assert!(max_diff(v, &batched[TEXTS.len() - 1 - i]) < 1e-5);
    }
}

#[test]
fn padding_does_not_change_a_vector() {
    let (_d, e) = tiny(32);
    let short = "the cat sat";
    let long = "the dog ran to the park and then slept and the cat walked to the mill and oil";
    let alone = e.embed(&[short]).unwrap().remove(0);
    // One batch (default size 32): `short` is padded to `long`'s length.
    let both = e.embed(&[long, short]).unwrap();
    let d = max_diff(&alone, &both[1]);
    assert!(d < 1e-5, "padding changed the vector by {d}");
}

#[test]
fn mean_pooling_matches_a_hand_computed_mean() {
    let (_d, e) = tiny(32);
    let text = "the cat sat on the mat";
    let ids = e.input_ids(text).unwrap();
    let n = ids.len();
    let t = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
    let h = e
        .model
        .forward(&t, &t.zeros_like().unwrap(), None)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut mean = [0f32; 16];
    for row in &h {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / n as f32;
        }
    }
    let norm = mean.iter().map(|a| a * a).sum::<f32>().sqrt();
    let expected: Vec<f32> = mean.iter().map(|m| m / norm).collect();
    let got = e.embed(&[text]).unwrap().remove(0);
    assert!(max_diff(&expected, &got) < 1e-5);
}

#[test]
fn truncates_at_max_seq_length_but_counts_every_token() {
    let (_d, e) = tiny(8);
    let long = "the cat sat on the mat and then the dog ran to the park and slept";
    let ids = e.input_ids(long).unwrap();
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[0], 2, "[CLS] first");
    assert_eq!(ids[7], 3, "[SEP] kept last after truncation");
    // 16 words + [CLS] + [SEP]: more than tokenizer.json's own truncation at 16.
    assert_eq!(e.count_tokens(long), 18);
    assert_eq!(e.count_tokens(""), 2);
    let head = "the cat sat on the mat";
    let d = max_diff(&e.embed(&[long]).unwrap()[0], &e.embed(&[head]).unwrap()[0]);
    assert!(
        d < 1e-5,
        "truncated text should embed as its first 6 words, diff {d}"
    );
}

#[test]
fn ignores_the_padding_in_tokenizer_json() {
    let (_d, e) = tiny(32);
    // tokenizer.json says pad to 16; we pad per batch instead.
    assert_eq!(e.input_ids("cat").unwrap(), vec![2, 7, 3]);
    assert_eq!(e.input_ids("cats").unwrap(), vec![2, 7, 44, 3]);
}

#[test]
fn cls_pooling_and_plain_transformers_layout() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(
        dir.path(),
        32,
        Some(json!({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})),
    );
    let cls = Embedder::load(dir.path()).unwrap();
    assert_eq!(cls.pooling(), Pooling::Cls);

    let plain = tempfile::tempdir().unwrap();
    tiny_model(plain.path(), 32, None);
    let e = Embedder::load(plain.path()).unwrap();
    assert_eq!(e.pooling(), Pooling::Mean);
    assert_eq!(
        e.max_tokens(),
        64,
        "no sentence_bert_config: max_position_embeddings"
    );
    // Same weights? No (random), but CLS and mean must differ on one model: compare on `cls`.
    let text = ["the cat sat on the mat"];
    let v_cls = cls.embed(&text).unwrap().remove(0);
    let norm: f32 = v_cls.iter().map(|a| a * a).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn rejects_what_it_cannot_compute() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(
        dir.path(),
        32,
        Some(json!({"pooling_mode_max_tokens": true, "pooling_mode_mean_tokens": false})),
    );
    let err = Embedder::load(dir.path()).unwrap_err();
    assert!(matches!(err, EmbedError::Unsupported(_)), "{err}");

    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 32, Some(mean_pooling()));
    let cfg = dir.path().join("config.json");
    let s = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, s.replace("\"bert\"", "\"roberta\"")).unwrap();
    let err = Embedder::load(dir.path()).unwrap_err();
    assert!(matches!(err, EmbedError::Unsupported(_)), "{err}");
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    tiny_model(dir.path(), 32, Some(mean_pooling()));
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = Embedder::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = Embedder::load(empty.path()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[test]
fn default_dir_follows_avatar_models() {
    // Only reads the variable when set by the environment; do not mutate it (tests run in
    // parallel). Either way the path must end where fetch-models.sh writes.
    let d = default_model_dir();
    match std::env::var_os("AVATAR_MODELS") {
        Some(v) if !v.is_empty() => assert_eq!(d, PathBuf::from(v)),
        _ => assert!(d.ends_with("avatar/models"), "{}", d.display()),
    }
}

#[test]
fn parallel_batches_give_the_same_vectors_in_order() {
    let (_d, e) = tiny(32);
    let serial = e.embed(TEXTS).unwrap();
    let e = e.with_batch_size(2).with_threads(3);
    assert_eq!(e.threads(), 3);
    let parallel = e.embed(TEXTS).unwrap();
    for (a, b) in serial.iter().zip(&parallel) {
        assert!(max_diff(a, b) < 1e-5);
    }
}

#[test]
fn run_parallel_returns_results_in_batch_order() {
    let items: Vec<usize> = (0..10).collect();
    let batches: Vec<&[usize]> = items.chunks(3).collect();
    let got = run_parallel(&batches, 4, |b| b.iter().sum::<usize>());
    assert_eq!(got, vec![3, 12, 21, 9]);
}
