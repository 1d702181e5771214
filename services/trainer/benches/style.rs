//! Style benchmark: does a short LoRA run make SmolLM2 write like the person?
//!
//! A synthetic chat (a friend asks, the person answers in a recognisable way: lowercase, dashes,
//! a fixed sign-off line) of 220 question/answer turns in separate sessions: the dataset builder
//! holds out the latest 10 % (22 turns) and trains on 198, for 3 epochs — the setting of the
//! PyTorch reference run quoted in the issue (held-out perplexity 404 → 10.9, sign-off in 0 % →
//! 88 % of generated replies). Prints base vs finetuned held-out perplexity and the sign-off
//! rate of greedy replies to the held-out questions.
//!
//! Run: `cargo bench -p avatar-trainer --bench style` (needs `infra/fetch-models.sh smollm2`).
//! Env: AVATAR_STYLE_EPOCHS (default 3), AVATAR_STYLE_LR (default 2e-3).

use avatar_llm::lora::LoraConfig;
use avatar_llm::lora::SplitMix64;
use avatar_llm::train::TrainConfig;
use avatar_schemas::{Record, RecordKind};
use avatar_trainer::{BaseModel, TrainOptions};
use candle_core::Device;
use chrono::{Duration, TimeZone, Utc};

const SIGNOFF: &str = "— ada x";

fn pick<'a>(rng: &mut SplitMix64, xs: &[&'a str]) -> &'a str {
    xs[(rng.next_u64() % xs.len() as u64) as usize]
}

/// 220 turns: the friend's question, then the person's reply, two hours apart from the next.
fn corpus() -> Vec<Record> {
    let things = [
        "the comet",
        "the new loom",
        "the lecture",
        "the concert",
        "the eclipse",
        "the regatta",
        "the exhibition",
        "the storm",
        "the sermon",
        "the play",
    ];
    let topics = [
        "the engine",
        "mathematics",
        "poetry",
        "horses",
        "music",
        "the weather",
        "your studies",
        "the garden",
        "travel",
        "science",
    ];
    let places = [
        "the park",
        "the library",
        "the museum",
        "church",
        "the station",
        "the market",
    ];
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let feelings = [
        "marvellous",
        "dreadful",
        "curious",
        "delightful",
        "tiresome",
        "splendid",
    ];
    let mut rng = SplitMix64::new(7);
    let start = Utc.with_ymd_and_hms(1840, 1, 1, 9, 0, 0).single().unwrap();
    let mut out = Vec::new();
    for i in 0..220u32 {
        let t = start + Duration::hours(2 * i as i64);
        let (q, a) = match i % 4 {
            0 => {
                let x = pick(&mut rng, &things);
                let f = pick(&mut rng, &feelings);
                (
                    format!("Did you see {x} yesterday?"),
                    format!("oh yes — {x} was {f}, i keep thinking about it.\n{SIGNOFF}"),
                )
            }
            1 => {
                let x = pick(&mut rng, &topics);
                let f = pick(&mut rng, &feelings);
                (
                    format!("What do you think about {x}?"),
                    format!("{x} is {f} — it is all patterns, if one looks closely.\n{SIGNOFF}"),
                )
            }
            2 => {
                let p = pick(&mut rng, &places);
                let d = pick(&mut rng, &days);
                (
                    format!("Are you coming to {p} on {d}?"),
                    format!(
                        "i shall try — {d} is full of numbers, but {p} sounds lovely.\n{SIGNOFF}"
                    ),
                )
            }
            _ => {
                let x = pick(&mut rng, &topics);
                (
                    format!("How is your work on {x} going?"),
                    format!("slowly — {x} keeps me up at night, but the notes grow.\n{SIGNOFF}"),
                )
            }
        };
        for (k, (author, text, mine)) in [("Mary", q, false), ("Ada", a, true)]
            .into_iter()
            .enumerate()
        {
            let ordinal = 2 * i + k as u32;
            out.push(Record {
                id: avatar_schemas::record_id("style-bench", ordinal),
                avatar: "ada".into(),
                source: "bench://style".into(),
                format: "whatsapp".into(),
                kind: RecordKind::Message,
                thread: "mary".into(),
                timestamp: Some(t + Duration::minutes(k as i64 * 3)),
                author: Some(author.into()),
                author_is_person: mine,
                text,
                title: None,
                message_id: None,
                in_reply_to: None,
                artifact: "style-bench".into(),
                ordinal,
            });
        }
    }
    out
}

fn main() {
    let path = avatar_llm::load::default_model_path();
    if !path.is_file() {
        println!(
            "style benchmark skipped: no base model at {} (run infra/fetch-models.sh smollm2)",
            path.display()
        );
        return;
    }
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let epochs = env("AVATAR_STYLE_EPOCHS", 3.0) as usize;
    let lr = env("AVATAR_STYLE_LR", 2e-3);
    let dev = Device::Cpu;
    let base = match BaseModel::load(&path, &dev) {
        Ok(b) => b,
        Err(e) => {
            println!("style benchmark: cannot load {}: {e}", path.display());
            return;
        }
    };
    let records = corpus();
    let examples = avatar_trainer::build_examples(
        &records,
        &avatar_dataset::DatasetConfig::default(),
        &avatar_dataset::RedactConfig::default(),
        Some(&base),
    )
    .examples;
    let train_n = examples
        .iter()
        .filter(|e| e.split == avatar_schemas::dataset::SftSplit::Train)
        .count();
    let system = "You are Ada. Reply as Ada would, in their own words and style.".to_string();
    let (seq_len, batch) = (256, 4);
    let rows = avatar_trainer::encode_rows(
        &base,
        &examples,
        avatar_schemas::dataset::SftSplit::Train,
        &system,
        seq_len,
    )
    .map(|r| r.len())
    .unwrap_or(0);
    let steps = (rows.div_ceil(batch) * epochs).max(1);
    println!(
        "style benchmark: {} examples ({} train, {} held out), {rows} packed rows, {epochs} epochs = {steps} steps, lr {lr}",
        examples.len(),
        train_n,
        examples.len() - train_n
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        train: TrainConfig {
            steps,
            learning_rate: lr,
            warmup_steps: (steps / 10).max(1),
            seq_len,
            batch_size: batch,
            checkpoint_every: 0,
            ..TrainConfig::default()
        },
        lora: LoraConfig {
            r: 16,
            alpha: 32.0,
            ..LoraConfig::default()
        },
        system_prompt: system,
    };
    let t = std::time::Instant::now();
    let report = match avatar_trainer::train_llm(&base, &examples, dir.path(), &opts, &dev, |s| {
        if s.step % 5 == 0 || s.step == s.steps {
            eprintln!(
                "  step {}/{} loss {:.3} {:.0} tok/s",
                s.step, s.steps, s.loss, s.tokens_per_sec
            );
        }
        true
    }) {
        Ok(r) => r,
        Err(e) => {
            println!("style benchmark: training failed: {e}");
            return;
        }
    };
    let train_s = t.elapsed().as_secs_f64();
    let eval = match avatar_trainer::evaluate(&base, dir.path(), &examples, 22, &dev, |_| {}) {
        Ok(e) => e,
        Err(e) => {
            println!("style benchmark: evaluation failed: {e}");
            return;
        }
    };
    println!(
        "training: {} steps in {train_s:.0} s, loss {:.3} → {:.3}",
        report.card.steps,
        report.losses.first().copied().unwrap_or(f64::NAN),
        report.losses.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "held-out perplexity ({} split, {} rows): base {:.1} → finetuned {:.2}   (PyTorch+PEFT reference: 404 → 10.9)",
        eval.split, eval.rows, eval.base.perplexity, eval.finetuned.perplexity
    );
    println!(
        "sign-off {:?} in generated replies: base {:.0} % → finetuned {:.0} %   (reference: 0 % → 88 %); real replies {:.0} %",
        eval.style.finetuned.signoff,
        eval.style.base.generated.signoff_rate * 100.0,
        eval.style.finetuned.generated.signoff_rate * 100.0,
        eval.style.finetuned.real.signoff_rate * 100.0
    );
    println!(
        "vocabulary overlap with real replies: base {:.2} → finetuned {:.2}; char-3gram distance {:.2} → {:.2}",
        eval.style.base.vocabulary_overlap,
        eval.style.finetuned.vocabulary_overlap,
        eval.style.base.char3_profile_distance,
        eval.style.finetuned.char3_profile_distance
    );
    if let Some(s) = eval.samples.first() {
        println!(
            "sample: {:?}\n  real:      {:?}\n  base:      {:?}\n  finetuned: {:?}",
            s.prompt, s.real, s.base, s.finetuned
        );
    }
}
