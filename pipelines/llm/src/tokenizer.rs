//! Tokenizers for the decoder: from a Hugging Face `tokenizer.json`, or rebuilt from the
//! vocabulary that a GGUF file carries in its metadata.
//!
//! Why rebuild from GGUF: the demo model ships as a single `.gguf` (no `tokenizer.json` beside
//! it), and llama.cpp tokenises from exactly these keys. A GGUF "gpt2" vocabulary is a byte-level
//! BPE whose pre-tokenizer regexes are *not* stored, only named (`tokenizer.ggml.pre`); the regexes
//! below are the ones llama.cpp (`llama-vocab.cpp`) and the models' own `tokenizer.json` use for each
//! name, so that our ids match what the model was trained on. An unknown name is an error rather
//! than a silent fallback: a wrong split gives plausible-looking but different ids.
use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::{LlmError, Result};

/// GGUF token types (llama.cpp `llama_token_type`): 3 = control, 4 = user defined.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// GPT-2's split: contractions, letters, numbers, other symbols, whitespace.
const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's split (tiktoken cl100k style): numbers in groups of up to three digits.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: like Llama 3 but one digit per piece.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regexes, applied one after the other (each splits the pieces of the previous one, keeping
/// the matches as pieces), for a `tokenizer.ggml.pre` name; `None` for a name we do not know.
/// Returns also whether merges are ignored for words already in the vocabulary (Llama 3).
fn pre_tokenizer_regexes(pre: &str) -> Option<(Vec<&'static str>, bool)> {
    let r = match pre {
        // llama.cpp's default when a file names no pre-tokenizer.
        "default" => (
            vec![
                r"[\p{P}\$\+<=>\^~\|]+",
                GPT2_REGEX,
                r"\p{N}+",
                "[0-9][0-9][0-9]",
            ],
            false,
        ),
        "gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" | "phi-2" | "roberta-bpe" | "trillion" => {
            (vec![GPT2_REGEX], false)
        }
        // SmolLM/SmolLM2 (HF: Digits(individual) + ByteLevel), StarCoder and friends.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (vec![r"\p{N}", GPT2_REGEX], false)
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (vec![LLAMA3_REGEX], true),
        "qwen2" | "qwen2.5" | "qwen-2.5" | "deepseek-r1-qwen" | "stablelm2" | "megrez" => {
            (vec![QWEN2_REGEX], false)
        }
        _ => return None,
    };
    Some(r)
}

/// Loads a Hugging Face `tokenizer.json` (what safetensors checkpoints ship with).
pub fn load_tokenizer_json(path: impl AsRef<Path>) -> Result<Tokenizer> {
    let path = path.as_ref();
    Tokenizer::from_file(path)
        .map_err(|e| LlmError::Tokenizer(format!("cannot load {}: {e}", path.display())))
}

fn get<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    metadata
        .get(key)
        .ok_or_else(|| LlmError::Tokenizer(format!("GGUF metadata has no {key}")))
}

/// Any GGUF integer as i64: writers disagree on the width (u32 vs i32 vs u64).
fn as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

fn opt_id(metadata: &HashMap<String, Value>, key: &str) -> Option<u32> {
    metadata
        .get(key)
        .and_then(as_i64)
        .and_then(|v| u32::try_from(v).ok())
}

fn opt_bool(metadata: &HashMap<String, Value>, key: &str) -> Option<bool> {
    match metadata.get(key) {
        Some(Value::Bool(b)) => Some(*b),
        Some(v) => as_i64(v).map(|x| x != 0),
        None => None,
    }
}

fn string_array<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<Vec<&'a str>> {
    let values = get(metadata, key)?
        .to_vec()
        .map_err(|e| LlmError::Tokenizer(format!("{key}: {e}")))?;
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_str()),
            other => Err(LlmError::Tokenizer(format!(
                "{key}: expected strings, found {:?}",
                other.value_type()
            ))),
        })
        .collect()
}

/// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*` keys).
///
/// Supported: `tokenizer.ggml.model == "gpt2"` (byte-level BPE) with the pre-tokenizers listed in
/// `pre_tokenizer_regexes`. Control and user-defined tokens (token types 3 and 4) become special
/// added tokens so that `<|im_start|>` in a rendered chat prompt is one id. When the file says
/// `tokenizer.ggml.add_bos_token`, encoding with special tokens prepends BOS, as llama.cpp does.
pub fn tokenizer_from_gguf(metadata: &HashMap<String, Value>) -> Result<Tokenizer> {
    let model = get(metadata, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| LlmError::Tokenizer(format!("tokenizer.ggml.model: {e}")))?;
    match model.as_str() {
        "gpt2" => {}
        "llama" => {
            return Err(LlmError::Tokenizer(
                "SentencePiece vocabularies (tokenizer.ggml.model = \"llama\") are not supported \
                 from GGUF yet; load the model's tokenizer.json instead"
                    .into(),
            ))
        }
        other => {
            return Err(LlmError::Tokenizer(format!(
                "unsupported tokenizer.ggml.model {other:?} (supported: \"gpt2\" byte-level BPE)"
            )))
        }
    }

    let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
    let merges_raw = string_array(metadata, "tokenizer.ggml.merges")?;
    let pre = match metadata.get("tokenizer.ggml.pre") {
        Some(v) => v
            .to_string()
            .map_err(|e| LlmError::Tokenizer(format!("tokenizer.ggml.pre: {e}")))?
            .clone(),
        None => "default".to_string(),
    };
    let (regexes, ignore_merges) = pre_tokenizer_regexes(&pre).ok_or_else(|| {
        LlmError::Tokenizer(format!(
            "unknown pre-tokenizer tokenizer.ggml.pre = {pre:?} (supported: default, gpt2, \
             smollm, starcoder, llama-bpe/llama3, qwen2 and their aliases)"
        ))
    })?;

    let mut vocab = Vocab::default();
    for (id, token) in tokens.iter().enumerate() {
        let id = u32::try_from(id)
            .map_err(|_| LlmError::Tokenizer("vocabulary larger than u32".into()))?;
        // A duplicate keeps its first id, as llama.cpp's token_to_id map would keep the last;
        // either way the vocabulary is malformed, and first-wins keeps ids stable.
        vocab.entry((*token).to_string()).or_insert(id);
    }
    let mut merges = Vec::with_capacity(merges_raw.len());
    for m in &merges_raw {
        // Split at the first space after the first character (llama.cpp: find(' ', 1)), because
        // a byte-level token never contains a literal space but a merge part may start with one.
        let first_len = m.chars().next().map(char::len_utf8).unwrap_or(0);
        let pos = m
            .get(first_len..)
            .and_then(|rest| rest.find(' '))
            .map(|p| p + first_len)
            .ok_or_else(|| LlmError::Tokenizer(format!("malformed merge {m:?}")))?;
        merges.push((m[..pos].to_string(), m[pos + 1..].to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| LlmError::Tokenizer(format!("building BPE: {e}")))?;

    let mut pre_tokenizers: Vec<PreTokenizerWrapper> = Vec::with_capacity(regexes.len() + 1);
    for re in regexes {
        let split = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| LlmError::Tokenizer(format!("pre-tokenizer regex {re:?}: {e}")))?;
        pre_tokenizers.push(split.into());
    }
    // Regex splitting is done above; ByteLevel only maps bytes to its printable alphabet.
    pre_tokenizers.push(ByteLevel::new(false, true, false).into());

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(pre_tokenizers)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // Special tokens: matched whole in the input before pre-tokenisation.
    if let Some(types) = metadata.get("tokenizer.ggml.token_type") {
        let types = types
            .to_vec()
            .map_err(|e| LlmError::Tokenizer(format!("tokenizer.ggml.token_type: {e}")))?;
        let specials: Vec<AddedToken> = types
            .iter()
            .zip(tokens.iter())
            .filter(|(t, _)| {
                matches!(
                    as_i64(t),
                    Some(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
                )
            })
            .map(|(_, tok)| AddedToken::from(*tok, true).normalized(false))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| LlmError::Tokenizer(format!("special tokens: {e}")))?;
    }

    if opt_bool(metadata, "tokenizer.ggml.add_bos_token") == Some(true) {
        let bos_id = opt_id(metadata, "tokenizer.ggml.bos_token_id").ok_or_else(|| {
            LlmError::Tokenizer("add_bos_token is set but there is no bos_token_id".into())
        })?;
        let bos = tokens
            .get(bos_id as usize)
            .ok_or_else(|| LlmError::Tokenizer(format!("bos_token_id {bos_id} out of range")))?;
        let processor = TemplateProcessing::builder()
            .try_single(format!("{bos} $A"))
            .and_then(|b| b.try_pair(format!("{bos} $A {bos} $B:1")))
            .map_err(|e| LlmError::Tokenizer(format!("BOS template: {e}")))?
            .special_tokens(vec![(bos.to_string(), bos_id)])
            .build()
            .map_err(|e| LlmError::Tokenizer(format!("BOS template: {e}")))?;
        tokenizer.with_post_processor(Some(processor));
    }
    Ok(tokenizer)
}

/// The ids that frame text for a model, and whether encoding adds BOS/EOS itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// End of turn (Llama 3's `<|eot_id|>`), when the file names one apart from EOS.
    pub eot: Option<u32>,
    /// End of message (Llama 3.1's `<|eom_id|>`, tool calls).
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
}

/// Texts of tokens that end generation in the chat formats we know (llama.cpp adds the same
/// ones to its end-of-generation set): models often close a turn with one of these while the
/// file's `eos_token_id` names another.
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "<｜end▁of▁sentence｜>",
];

impl SpecialTokens {
    /// Reads `tokenizer.ggml.{bos,eos,eot,eom,unknown,padding}_token_id` and the add flags.
    pub fn from_gguf(metadata: &HashMap<String, Value>) -> Self {
        Self {
            bos: opt_id(metadata, "tokenizer.ggml.bos_token_id"),
            eos: opt_id(metadata, "tokenizer.ggml.eos_token_id"),
            eot: opt_id(metadata, "tokenizer.ggml.eot_token_id"),
            eom: opt_id(metadata, "tokenizer.ggml.eom_token_id"),
            unk: opt_id(metadata, "tokenizer.ggml.unknown_token_id"),
            pad: opt_id(metadata, "tokenizer.ggml.padding_token_id"),
            add_bos: opt_bool(metadata, "tokenizer.ggml.add_bos_token").unwrap_or(false),
            add_eos: opt_bool(metadata, "tokenizer.ggml.add_eos_token").unwrap_or(false),
        }
    }

    /// Reads a Hugging Face `tokenizer_config.json` (tokens given as strings or as
    /// `{"content": ...}` objects) and resolves them to ids with `tokenizer`.
    pub fn from_tokenizer_config(config: &serde_json::Value, tokenizer: &Tokenizer) -> Self {
        let id =
            |key: &str| token_text_from_config(config, key).and_then(|t| tokenizer.token_to_id(&t));
        let flag = |key: &str| config.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
        Self {
            bos: id("bos_token"),
            eos: id("eos_token"),
            eot: None,
            eom: None,
            unk: id("unk_token"),
            pad: id("pad_token"),
            add_bos: flag("add_bos_token"),
            add_eos: flag("add_eos_token"),
        }
    }

    /// Every id that should end generation: EOS, EOT, EOM, and the special tokens of the
    /// vocabulary whose text is a known end-of-turn marker.
    pub fn eos_token_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids: Vec<u32> = [self.eos, self.eot, self.eom]
            .into_iter()
            .flatten()
            .collect();
        let added = tokenizer.get_added_vocabulary();
        for text in END_OF_GENERATION_TEXTS {
            if added.is_special_token(text) {
                if let Some(id) = tokenizer.token_to_id(text) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// A token's text from a `tokenizer_config.json` entry: a string or an AddedToken object.
pub(crate) fn token_text_from_config(config: &serde_json::Value, key: &str) -> Option<String> {
    match config.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// The ids that end generation for a GGUF model (see [`SpecialTokens::eos_token_ids`]).
pub fn eos_token_ids(metadata: &HashMap<String, Value>, tokenizer: &Tokenizer) -> Vec<u32> {
    SpecialTokens::from_gguf(metadata).eos_token_ids(tokenizer)
}

/// Encodes `text`; `add_special_tokens` applies the post-processor (BOS where the model wants
/// it). Special-token texts in `text` (`<|im_start|>`) always become their single ids.
pub fn encode(tokenizer: &Tokenizer, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, add_special_tokens)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| LlmError::Tokenizer(format!("encode: {e}")))
}

/// Decodes ids to text (invalid UTF-8 from a partial character becomes U+FFFD).
pub fn decode(tokenizer: &Tokenizer, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
    tokenizer
        .decode(ids, skip_special_tokens)
        .map_err(|e| LlmError::Tokenizer(format!("decode: {e}")))
}

/// A tiny byte-level BPE vocabulary as GGUF metadata, for tests here and in `generate`: the three
/// ChatML specials (ids 0..=2), the 256 byte tokens (ids 3..=258, in byte order), then the
/// merges given.
#[cfg(test)]
pub(crate) fn tiny_gguf_metadata(merges: &[(&str, &str)]) -> HashMap<String, Value> {
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types: Vec<Value> = vec![Value::I32(3); 3];
    for b in 0u8..=255 {
        tokens.push(byte_char(b).to_string());
        types.push(Value::I32(1));
    }
    for (a, b) in merges {
        let merged = format!("{a}{b}");
        if !tokens.contains(&merged) {
            tokens.push(merged);
            types.push(Value::I32(1));
        }
    }
    let mut m = HashMap::new();
    m.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    m.insert("tokenizer.ggml.pre".into(), Value::String("smollm".into()));
    m.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(tokens.into_iter().map(Value::String).collect()),
    );
    m.insert("tokenizer.ggml.token_type".into(), Value::Array(types));
    m.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(
            merges
                .iter()
                .map(|(a, b)| Value::String(format!("{a} {b}")))
                .collect(),
        ),
    );
    m.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
    m.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
    m
}

/// GPT-2's byte-to-printable-character map (`bytes_to_unicode`), for building test vocabularies.
#[cfg(test)]
pub(crate) fn byte_char(b: u8) -> char {
    let printable = |x: u8| (b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || x >= 0xAE;
    if printable(b) {
        char::from(b)
    } else {
        let n = (0u8..b).filter(|x| !printable(*x)).count() as u32;
        char::from_u32(256 + n).unwrap_or('?')
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::Content;

    /// Token ids of the reference prompt, from /work/shared/reference/smollm2_reference.json
    /// (`token_ids`, made with llama-cpp-python on SmolLM2-135M-Instruct Q4_1).
    const REFERENCE_PROMPT: &str = "<|im_start|>user\nWhat did Ada Lovelace write about the Analytical Engine?<|im_end|>\n<|im_start|>assistant\n";
    const REFERENCE_IDS: [u32; 21] = [
        1, 4093, 198, 1780, 1250, 34099, 14210, 532, 590, 2965, 563, 260, 40734, 6059, 47, 2, 198,
        1, 520, 9531, 198,
    ];

    /// The demo model's GGUF metadata, or `None` (with a message) when it is not installed.
    pub(crate) fn smollm2_metadata() -> Option<HashMap<String, Value>> {
        let path = crate::load::default_model_path();
        let Ok(mut file) = std::fs::File::open(&path) else {
            println!(
                "skipping: {} not found (infra/fetch-models.sh smollm2)",
                path.display()
            );
            return None;
        };
        let content = Content::read(&mut file).unwrap();
        Some(content.metadata)
    }

    #[test]
    fn smollm2_reference_prompt_tokenises_exactly() {
        let Some(meta) = smollm2_metadata() else {
            return;
        };
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let ids = encode(&tok, REFERENCE_PROMPT, true).unwrap();
        assert_eq!(ids, REFERENCE_IDS);
        assert_eq!(decode(&tok, &ids, false).unwrap(), REFERENCE_PROMPT);
        // Without special tokens the markers disappear, the text stays.
        assert_eq!(
            decode(&tok, &ids, true).unwrap(),
            "user\nWhat did Ada Lovelace write about the Analytical Engine?\nassistant\n"
        );
    }

    #[test]
    fn smollm2_special_ids_and_eos_set() {
        let Some(meta) = smollm2_metadata() else {
            return;
        };
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let sp = SpecialTokens::from_gguf(&meta);
        assert_eq!(sp.bos, Some(1));
        assert_eq!(sp.eos, Some(2));
        assert!(!sp.add_bos);
        assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
        // <|im_end|> closes a turn; <|endoftext|> ends a document: both stop generation.
        assert_eq!(eos_token_ids(&meta, &tok), vec![0, 2]);
    }

    #[test]
    fn smollm2_splits_digits_and_round_trips_non_ascii() {
        let Some(meta) = smollm2_metadata() else {
            return;
        };
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let enc = tok.encode("In 2024", false).unwrap();
        assert_eq!(enc.get_tokens(), ["In", "Ġ", "2", "0", "2", "4"]);
        for text in [
            "Grüße aus Köln, señor Muñoz — naïve café",
            "東京で会いましょう 🙂👍🏽",
            "Привет, мир!\n\n\tTabs  and   spaces  ",
        ] {
            let ids = encode(&tok, text, true).unwrap();
            assert!(!ids.is_empty());
            assert_eq!(decode(&tok, &ids, false).unwrap(), text);
        }
    }

    #[test]
    fn tiny_vocabulary_merges_and_specials() {
        let meta = tiny_gguf_metadata(&[("h", "i"), ("Ġ", "t"), ("Ġt", "h")]);
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let enc = tok.encode("<|im_start|>hi th3", true).unwrap();
        assert_eq!(enc.get_tokens(), ["<|im_start|>", "hi", "Ġth", "3"]);
        assert_eq!(enc.get_ids()[0], 1);
        // Every byte has a token, so any text round-trips.
        let text = "é\u{0}\u{7f} ok";
        let ids = encode(&tok, text, false).unwrap();
        assert_eq!(decode(&tok, &ids, false).unwrap(), text);
        assert_eq!(
            SpecialTokens::from_gguf(&meta).eos_token_ids(&tok),
            vec![0, 2]
        );
    }

    #[test]
    fn add_bos_token_prepends_bos() {
        let mut meta = tiny_gguf_metadata(&[]);
        meta.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
        let tok = tokenizer_from_gguf(&meta).unwrap();
        assert_eq!(
            encode(&tok, "a", true).unwrap(),
            vec![1, 3 + u32::from(b'a')]
        );
        assert_eq!(encode(&tok, "a", false).unwrap(), vec![3 + u32::from(b'a')]);
    }

    #[test]
    fn unsupported_vocabularies_fail_clearly() {
        let mut meta = tiny_gguf_metadata(&[]);
        meta.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        let err = tokenizer_from_gguf(&meta).unwrap_err().to_string();
        assert!(err.contains("SentencePiece"), "{err}");

        let mut meta = tiny_gguf_metadata(&[]);
        meta.insert("tokenizer.ggml.pre".into(), Value::String("klingon".into()));
        let err = tokenizer_from_gguf(&meta).unwrap_err().to_string();
        assert!(err.contains("klingon"), "{err}");

        let mut meta = tiny_gguf_metadata(&[]);
        meta.remove("tokenizer.ggml.merges");
        assert!(tokenizer_from_gguf(&meta).is_err());
    }

    #[test]
    fn pre_tokenizer_names_resolve() {
        for pre in ["default", "gpt2", "smollm", "llama-bpe", "qwen2"] {
            let mut meta = tiny_gguf_metadata(&[]);
            meta.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
            let tok = tokenizer_from_gguf(&meta).unwrap();
            let text = "It's 12345 o'clock!\n\nok";
            let ids = encode(&tok, text, false).unwrap();
            assert_eq!(decode(&tok, &ids, false).unwrap(), text, "{pre}");
        }
        // Llama 3 groups digits by three; SmolLM2 one by one.
        let pieces = |pre: &str| {
            let mut meta = tiny_gguf_metadata(&[("1", "2"), ("12", "3")]);
            meta.insert("tokenizer.ggml.pre".into(), Value::String(pre.into()));
            let tok = tokenizer_from_gguf(&meta).unwrap();
            tok.encode("12345", false).unwrap().get_tokens().to_vec()
        };
        assert_eq!(pieces("llama-bpe"), ["123", "4", "5"]);
        assert_eq!(pieces("smollm"), ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn tokenizer_json_round_trip() {
        let meta = tiny_gguf_metadata(&[("h", "i")]);
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tok.save(&path, false).unwrap();
        let loaded = load_tokenizer_json(&path).unwrap();
        assert_eq!(
            encode(&loaded, "<|im_end|>hi!", false).unwrap(),
            encode(&tok, "<|im_end|>hi!", false).unwrap()
        );
        assert!(load_tokenizer_json(dir.path().join("missing.json")).is_err());

        let config = serde_json::json!({"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}});
        let sp = SpecialTokens::from_tokenizer_config(&config, &loaded);
        assert_eq!((sp.bos, sp.eos), (Some(1), Some(2)));
    }
}
