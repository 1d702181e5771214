//! The LLM jobs: dataset → rows → LoRA training → adapter + card; evaluation of base against
//! finetuned on the held-out replies.

use crate::base::BaseModel;
use crate::{Result, TrainerError};
use avatar_dataset::{build_dataset_with, BuiltDataset, DatasetConfig, RedactConfig};
use avatar_llm::eval::{compare, StyleComparison};
use avatar_llm::generate::{generate, SamplingParams};
use avatar_llm::lora::LoraConfig;
use avatar_llm::model::Llama;
use avatar_llm::peft::{load_adapter, save_adapter, AdapterConfig};
use avatar_llm::qmodel::{QLlama, QLlamaSession};
use avatar_llm::sft::SftEncoder;
use avatar_llm::train::{pack, perplexity, train, Packed, StepStats, TrainConfig};
use avatar_schemas::dataset::{SftExample, SftKind, SftRole, SftSplit};
use avatar_schemas::Record;
use candle_core::Device;
use candle_nn::VarMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Builds the avatar's examples, counting tokens with the base model's tokenizer when given.
/// Third parties' PII is redacted unless `cfg.redact` is off (`privacy` names the person's
/// aliases to keep and the participants for name placeholders); what was redacted comes back
/// with the examples. This is the one way the trainer gets examples from records.
pub fn build_examples(
    records: &[Record],
    cfg: &DatasetConfig,
    privacy: &RedactConfig,
    base: Option<&BaseModel>,
) -> BuiltDataset {
    match base {
        Some(b) => build_dataset_with(records, cfg, &|t: &str| b.count_tokens(t), privacy),
        None => build_dataset_with(records, cfg, &avatar_dataset::whitespace_tokens, privacy),
    }
}

/// The examples of `split`, tokenised with the base model's template and packed into rows.
pub fn encode_rows(
    base: &BaseModel,
    examples: &[SftExample],
    split: SftSplit,
    system_prompt: &str,
    seq_len: usize,
) -> Result<Vec<Packed>> {
    let enc = SftEncoder {
        template: &base.template,
        tokenizer: &base.tokenizer,
        eos_id: base.eos_id(),
        default_system: Some(system_prompt.to_string()),
    };
    let encoded = examples
        .iter()
        .filter(|e| e.split == split)
        .map(|e| enc.encode(e))
        .collect::<avatar_llm::Result<Vec<_>>>()?;
    Ok(pack(&encoded, seq_len, base.pad_id()))
}

/// What one training run needs besides the data.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub train: TrainConfig,
    pub lora: LoraConfig,
    /// The persona line used as system message in training and when answering.
    pub system_prompt: String,
}

/// What was trained, on what, and how it went (`card.json` beside the adapter).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub base: String,
    pub system_prompt: String,
    pub lora: LoraConfig,
    pub train: TrainConfig,
    pub steps: usize,
    pub final_loss: Option<f64>,
    pub train_examples: usize,
    pub train_rows: usize,
    /// sha256 of the training examples as JSON lines: a rebuilt dataset with another hash
    /// means the model is stale.
    pub dataset_sha256: String,
    pub tokens_per_sec: f64,
    pub trained_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub card: ModelCard,
    pub resumed_from: usize,
    pub losses: Vec<f64>,
    pub interrupted: bool,
}

/// sha256 over the JSON lines of the examples of `split`.
pub fn dataset_hash(examples: &[SftExample], split: SftSplit) -> String {
    let mut h = Sha256::new();
    for e in examples.iter().filter(|e| e.split == split) {
        if let Ok(line) = serde_json::to_vec(e) {
            h.update(&line);
            h.update(b"\n");
        }
    }
    hex::encode(h.finalize())
}

pub const CARD_FILE: &str = "card.json";

/// Trains (or resumes training) the avatar's adapter into `model_dir`.
pub fn train_llm(
    base: &BaseModel,
    examples: &[SftExample],
    model_dir: &Path,
    opts: &TrainOptions,
    device: &Device,
    on_step: impl FnMut(&StepStats) -> bool,
) -> Result<TrainReport> {
    let rows = encode_rows(
        base,
        examples,
        SftSplit::Train,
        &opts.system_prompt,
        opts.train.seq_len,
    )?;
    if rows.is_empty() {
        return Err(TrainerError::Data(
            "the dataset has no training examples with replies by the person: ingest their messages (and check `avatar identity` knows their aliases)".into(),
        ));
    }
    let varmap = VarMap::new();
    let model = Llama::new(
        &base.config,
        &base.weights,
        Some(&opts.lora),
        &varmap,
        opts.train.seed,
    )?;
    let vars: Vec<(String, candle_core::Var)> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| TrainerError::Data("adapter variables are poisoned".into()))?;
        let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    std::fs::create_dir_all(model_dir)?;
    let out = train(
        &model,
        vars,
        &rows,
        &opts.train,
        Some(&model_dir.join("checkpoints")),
        device,
        on_step,
    )?;
    let card = ModelCard {
        base: base.path.display().to_string(),
        system_prompt: opts.system_prompt.clone(),
        lora: opts.lora.clone(),
        train: opts.train.clone(),
        steps: out.steps,
        final_loss: out.losses.last().copied(),
        train_examples: examples
            .iter()
            .filter(|e| e.split == SftSplit::Train)
            .count(),
        train_rows: rows.len(),
        dataset_sha256: dataset_hash(examples, SftSplit::Train),
        tokens_per_sec: out.tokens_per_sec,
        trained_at: Utc::now(),
    };
    if !out.interrupted {
        save_adapter(
            &model_dir.join("adapter"),
            &varmap,
            &AdapterConfig::new(&opts.lora, Some(card.base.clone())),
        )?;
        let tmp = model_dir.join(format!("{CARD_FILE}.part"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&card)?)?;
        std::fs::rename(&tmp, model_dir.join(CARD_FILE))?;
    }
    Ok(TrainReport {
        card,
        resumed_from: out.resumed_from,
        losses: out.losses,
        interrupted: out.interrupted,
    })
}

/// The finetuned model of `model_dir` on top of `base`, with its card.
pub fn load_finetuned(
    base: &BaseModel,
    model_dir: &Path,
    device: &Device,
) -> Result<(Llama, ModelCard)> {
    let card_path = model_dir.join(CARD_FILE);
    let card: ModelCard = match std::fs::read(&card_path) {
        Ok(b) => serde_json::from_slice(&b)?,
        Err(_) => {
            return Err(TrainerError::NoModel(
                "this avatar has no trained model yet: run `avatar train llm`".into(),
            ))
        }
    };
    let (cfg, varmap) = load_adapter(&model_dir.join("adapter"), device)?;
    let model = Llama::new(
        &base.config,
        &base.weights,
        Some(&cfg.lora()),
        &varmap,
        card.train.seed,
    )?;
    Ok((model, card))
}

#[derive(Debug, Clone, Serialize)]
pub struct Perplexity {
    pub perplexity: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub prompt: String,
    pub real: String,
    pub base: String,
    pub finetuned: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub base: Perplexity,
    pub finetuned: Perplexity,
    /// Which examples were measured: `heldout`, or `train` when the dataset holds out none.
    pub split: String,
    pub rows: usize,
    pub style: StyleReport,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StyleReport {
    pub base: StyleComparison,
    pub finetuned: StyleComparison,
}

/// Perplexity of base and finetuned on the held-out replies, and style statistics of replies
/// generated by both for up to `samples` held-out conversations.
pub fn evaluate(
    base: &BaseModel,
    model_dir: &Path,
    examples: &[SftExample],
    samples: usize,
    device: &Device,
    mut progress: impl FnMut(&str),
) -> Result<EvalReport> {
    let (tuned, card) = load_finetuned(base, model_dir, device)?;
    let plain = Llama::new(&base.config, &base.weights, None, &VarMap::new(), 0)?;
    let mut split = SftSplit::Heldout;
    let mut rows = encode_rows(
        base,
        examples,
        split,
        &card.system_prompt,
        card.train.seq_len,
    )?;
    if rows.is_empty() {
        split = SftSplit::Train;
        rows = encode_rows(
            base,
            examples,
            split,
            &card.system_prompt,
            card.train.seq_len,
        )?;
    }
    if rows.is_empty() {
        return Err(TrainerError::Data("no examples to evaluate on".into()));
    }
    progress("perplexity of the base model");
    let base_ppl = perplexity(&plain, &rows, 4, device)?;
    progress("perplexity of the finetuned model");
    let tuned_ppl = perplexity(&tuned, &rows, 4, device)?;

    let enc = SftEncoder {
        template: &base.template,
        tokenizer: &base.tokenizer,
        eos_id: base.eos_id(),
        default_system: Some(card.system_prompt.clone()),
    };
    let convo: Vec<&SftExample> = examples
        .iter()
        .filter(|e| e.split == split && e.kind != SftKind::Text)
        .take(samples)
        .collect();
    let params = SamplingParams {
        max_new_tokens: 64,
        ..SamplingParams::greedy(64)
    };
    // Samples come from the Q8_0 serving models, as `ask` answers (adapter merged).
    let q_plain = QLlama::from_llama(&plain)?;
    let q_tuned = QLlama::from_llama(&tuned)?;
    let mut real = Vec::new();
    let mut gen_base = Vec::new();
    let mut gen_tuned = Vec::new();
    let mut out_samples = Vec::new();
    for (i, ex) in convo.iter().enumerate() {
        progress(&format!("generating sample {}/{}", i + 1, convo.len()));
        let msgs = enc.messages(ex);
        let Some(last) = msgs.iter().rposition(|m| m.role == "assistant") else {
            continue;
        };
        let prompt = base.template.render(&msgs[..last], true)?;
        let ids = base
            .tokenizer
            .encode(prompt.as_str(), false)
            .map_err(|e| TrainerError::Data(e.to_string()))?
            .get_ids()
            .to_vec();
        let mut s = QLlamaSession::new(&q_plain);
        let b = generate(
            &mut s,
            &base.tokenizer,
            &ids,
            &params,
            &base.eos_ids,
            |_| true,
        )?;
        let mut s = QLlamaSession::new(&q_tuned);
        let t = generate(
            &mut s,
            &base.tokenizer,
            &ids,
            &params,
            &base.eos_ids,
            |_| true,
        )?;
        let r = ex
            .messages
            .iter()
            .rev()
            .find(|m| m.role == SftRole::Assistant)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let prompt_text = ex
            .messages
            .iter()
            .rev()
            .find(|m| m.role == SftRole::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        real.push(r.clone());
        gen_base.push(b.text.clone());
        gen_tuned.push(t.text.clone());
        out_samples.push(Sample {
            prompt: prompt_text,
            real: r,
            base: b.text,
            finetuned: t.text,
        });
    }
    Ok(EvalReport {
        base: Perplexity {
            perplexity: base_ppl,
        },
        finetuned: Perplexity {
            perplexity: tuned_ppl,
        },
        split: split.as_str().to_string(),
        rows: rows.len(),
        style: StyleReport {
            base: compare(&real, &gen_base),
            finetuned: compare(&real, &gen_tuned),
        },
        samples: out_samples,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use avatar_schemas::RecordKind;

    fn msg(id: &str, at: &str, person: bool, text: &str) -> Record {
        Record {
            id: id.into(),
            avatar: "ada".into(),
            source: "file:///chat.txt".into(),
            format: "test".into(),
            kind: RecordKind::Message,
            thread: "t".into(),
            timestamp: Some(at.parse().unwrap()),
            author: Some(if person { "Ada" } else { "Bob" }.into()),
            author_is_person: person,
            text: text.into(),
            title: None,
            message_id: None,
            in_reply_to: None,
            artifact: "a".into(),
            ordinal: 0,
        }
    }

    #[test]
    fn examples_for_training_are_redacted_unless_the_user_keeps_pii() {
        let records = vec![
            msg(
                "1",
                "2024-01-01T10:00:00Z",
                false,
                "key AKIAIOSFODNN7EXAMPLE, card 4111111111111111",
            ),
            msg("2", "2024-01-01T10:01:00Z", true, "got it"),
        ];
        let built = build_examples(
            &records,
            &DatasetConfig::default(),
            &RedactConfig::default(),
            None,
        );
        let json = serde_json::to_string(&built.examples).unwrap();
        assert!(
            !json.contains("AKIAIOSFODNN7EXAMPLE") && !json.contains("4111111111111111"),
            "{json}"
        );
        assert_eq!(built.privacy.stats.total, 2);
        let keep = DatasetConfig {
            redact: false,
            ..DatasetConfig::default()
        };
        let raw = build_examples(&records, &keep, &RedactConfig::default(), None);
        assert!(serde_json::to_string(&raw.examples)
            .unwrap()
            .contains("4111111111111111"));
    }
}
