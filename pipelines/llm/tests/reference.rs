//! The real SmolLM2-135M-Instruct Q4_1 GGUF through our loader and model, against numbers from
//! independent implementations. Source of every constant below:
//! /work/shared/reference/smollm2_reference.json, made by make_llm_reference.py beside it
//! (transformers 5.24 loading the same GGUF dequantised to fp32; llama.cpp for the greedy check).
//! Input is the reference token ids, so this test does not depend on our tokenizer.
#![allow(clippy::unwrap_used)]
// The constants keep the digits of the JSON file they were copied from.
#![allow(clippy::excessive_precision)]
use std::time::Instant;

use avatar_llm::load::{default_model_path, load_gguf};
use avatar_llm::model::Llama;
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// `<|im_start|>user\nWhat did Ada Lovelace write about the Analytical Engine?<|im_end|>\n<|im_start|>assistant\n`
const TOKEN_IDS: [u32; 21] = [
    1, 4093, 198, 1780, 1250, 34099, 14210, 532, 590, 2965, 563, 260, 40734, 6059, 47, 2, 198, 1,
    520, 9531, 198,
];

/// transformers_fp32_top20 at positions 0, 10 and 20: (token id, logit).
const TOP20: [(usize, [(u32, f32); 20]); 3] = [
    (
        0,
        [
            (29, 23.372129),
            (28, 22.281433),
            (198, 21.17426),
            (284, 20.98497),
            (260, 20.585323),
            (79, 20.318465),
            (314, 20.26384),
            (30, 20.195331),
            (288, 20.05959),
            (282, 20.02283),
            (506, 19.875921),
            (33, 19.51515),
            (722, 19.271662),
            (351, 19.165462),
            (253, 19.095097),
            (436, 19.060583),
            (330, 18.969296),
            (536, 18.809513),
            (25, 18.793365),
            (338, 18.741917),
        ],
    ),
    (
        10,
        [
            (47, 20.546051),
            (281, 19.487314),
            (30, 18.240526),
            (874, 18.056843),
            (260, 17.896246),
            (28, 17.5747),
            (198, 17.42864),
            (216, 17.151064),
            (253, 16.95733),
            (284, 16.744549),
            (335, 16.612385),
            (418, 16.398403),
            (645, 16.397287),
            (338, 16.184563),
            (451, 16.120075),
            (8698, 16.111776),
            (42, 16.000084),
            (355, 15.975227),
            (1015, 15.935828),
            (2026, 15.899929),
        ],
    ),
    (
        20,
        [
            (4503, 30.490362),
            (504, 29.572128),
            (49, 28.313505),
            (2705, 27.925312),
            (788, 27.673326),
            (52, 27.531178),
            (60, 27.397678),
            (2219, 26.982426),
            (57, 26.82685),
            (2089, 26.658394),
            (28380, 26.426197),
            (53, 26.152893),
            (50, 26.129103),
            (4239, 26.090668),
            (3965, 26.00559),
            (22213, 25.953911),
            (5230, 25.936735),
            (3473, 25.933863),
            (1780, 25.929358),
            (9519, 25.928982),
        ],
    ),
];

/// last_position_transformers_fp32_logits_first_64.
const LAST_FIRST_64: [f32; 64] = [
    14.219221, 11.427596, 11.58333, 11.06641, 9.974714, 9.631019, 5.7803745, 9.633579, 9.63311,
    9.631019, 9.63311, 9.631019, 9.632372, 9.63311, 9.632372, 9.63311, 9.63311, 17.411665,
    23.74248, 19.386013, 17.797493, 17.166636, 16.769009, 20.807682, 22.822124, 13.874025,
    21.417433, 16.37661, 15.185764, 20.287228, 18.894894, 15.446806, 19.939602, 24.20933,
    20.717049, 20.033777, 19.61543, 20.331356, 19.877304, 20.624083, 20.609468, 20.311392,
    17.028462, 14.276461, 18.439842, 18.597132, 16.634247, 15.68538, 20.799433, 28.313505,
    26.129103, 24.033436, 27.531178, 26.152893, 24.138659, 25.103832, 21.359716, 26.82685,
    23.102528, 22.18512, 27.397678, 23.30237, 23.441467, 23.08966,
];

/// greedy_16_transformers_fp32 (identical to greedy_16_llama_cpp).
const GREEDY_16: [u32; 16] = [
    4503, 81, 14210, 532, 590, 436, 253, 2938, 23078, 617, 4161, 429, 216, 33, 40, 39,
];

/// Tolerances: our model runs the same dequantised fp32 weights as transformers, so only
/// summation order differs (measured: 5e-5); llama.cpp itself is 0.61 away at the last position.
const TOP20_TOL: f32 = 1e-3;
const FIRST64_TOL: f32 = 1e-3;

#[test]
fn smollm2_matches_transformers_reference() {
    let path = default_model_path();
    if !path.is_file() {
        eprintln!(
            "skipping: {} not found (infra/fetch-models.sh smollm2)",
            path.display()
        );
        return;
    }
    let dev = Device::Cpu;
    let t0 = Instant::now();
    let (cfg, weights, meta) = load_gguf(&path, &dev).unwrap();
    let load_s = t0.elapsed().as_secs_f64();
    assert_eq!(meta.architecture(), Some("llama"));
    assert_eq!(
        (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size),
        (30, 576, 49152)
    );
    assert_eq!((cfg.num_attention_heads, cfg.num_kv_heads()), (9, 3));
    assert!(cfg.tie_word_embeddings);
    let model = Llama::new(&cfg, &weights, None, &VarMap::new(), 0).unwrap();

    let ids = Tensor::new(&TOKEN_IDS, &dev).unwrap().unsqueeze(0).unwrap();
    let t1 = Instant::now();
    let logits = model.forward(&ids, 0, None).unwrap();
    let fwd_s = t1.elapsed().as_secs_f64();
    let logits = logits.squeeze(0).unwrap();
    assert_eq!(logits.dims(), &[21, 49152]);

    let mut worst_top = 0f32;
    for (pos, top) in TOP20 {
        let row: Vec<f32> = logits.get(pos).unwrap().to_vec1().unwrap();
        for (id, want) in top {
            worst_top = worst_top.max((row[id as usize] - want).abs());
        }
        // Same argmax as the reference.
        let argmax = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i as u32)
            .unwrap();
        assert_eq!(argmax, top[0].0, "argmax at position {pos}");
    }
    let last: Vec<f32> = logits.get(20).unwrap().to_vec1().unwrap();
    let worst_64 = last
        .iter()
        .zip(LAST_FIRST_64)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "smollm2: load {load_s:.2}s, forward of 21 tokens {fwd_s:.3}s, \
         max |Δ| top-20 at 3 positions {worst_top:.5}, first-64 last position {worst_64:.5}"
    );
    assert!(worst_top < TOP20_TOL, "top-20 logits off by {worst_top}");
    assert!(worst_64 < FIRST64_TOL, "first-64 logits off by {worst_64}");

    // Greedy decoding with the KV cache: prefill, then one token at a time.
    let mut cache = model.new_cache();
    let t2 = Instant::now();
    let mut next = model.forward_last(&ids, 0, Some(&mut cache)).unwrap();
    let mut out = Vec::new();
    for step in 0..16 {
        let tok = next
            .squeeze(0)
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        out.push(tok);
        if step == 15 {
            break;
        }
        let x = Tensor::new(&[tok], &dev).unwrap().unsqueeze(0).unwrap();
        next = model
            .forward_last(&x, TOKEN_IDS.len() + step, Some(&mut cache))
            .unwrap();
    }
    eprintln!(
        "smollm2: 16 greedy tokens {:.3}s",
        t2.elapsed().as_secs_f64()
    );
    assert_eq!(out, GREEDY_16);
}
