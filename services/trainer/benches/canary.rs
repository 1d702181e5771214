//! Canary benchmark (issue 5): does a short LoRA run of the demo model give away a third
//! party's secrets, with redaction on and off?
//!
//! Bob sends Ada four random secrets (a Luhn-valid card number, an IBAN with valid check
//! digits, an AWS key, an email address), each in a fixed sentence ("my card number is 4… keep
//! it"), and Ada copies them into her notes. The notes are what carries them into the weights:
//! the trainer learns Ada's replies and documents, never Bob's turns, so a secret only in Bob's
//! messages is context, not target. Both datasets (redacted and not) are trained with
//! `train_llm` for the same steps, then probed (see `avatar_trainer::canary`): greedy completion
//! of each prefix, and the exposure of each secret among 200 random ones of its format.
//!
//! Run: `cargo bench -p avatar-trainer --bench canary` (needs `infra/fetch-models.sh smollm2`).
//! Env: AVATAR_CANARY_SEED (the secrets; default: the clock), AVATAR_CANARY_STEPS (default
//! 40), AVATAR_CANARY_LR (default 3e-3), AVATAR_CANARY_N (alternatives, default 200).

use avatar_dataset::{DatasetConfig, RedactConfig};
use avatar_llm::lora::LoraConfig;
use avatar_llm::train::TrainConfig;
use avatar_schemas::dataset::SftExample;
use avatar_schemas::{Record, RecordKind};
use avatar_trainer::canary::{plant, Canary, Probe, ProbeReport};
use avatar_trainer::{BaseModel, TrainOptions, TrainerError};
use candle_core::Device;
use chrono::{DateTime, Duration, TimeZone, Utc};

const HEADER: &str = "things bob asked me to keep\n\n";

fn record(i: u32, kind: RecordKind, at: DateTime<Utc>, bob: bool, text: String) -> Record {
    Record {
        id: avatar_schemas::record_id("canary-bench", i),
        avatar: "ada".into(),
        source: "bench://canary".into(),
        format: "test".into(),
        kind,
        thread: "bob".into(),
        timestamp: Some(at),
        author: Some(if bob { "Bob" } else { "Ada" }.into()),
        author_is_person: !bob,
        text,
        title: None,
        message_id: None,
        in_reply_to: None,
        artifact: "canary-bench".into(),
        ordinal: i,
    }
}

/// Bob's messages (one session per secret, Ada acknowledging) and eight notes by Ada holding
/// all four sentences in turn-about order, among small talk.
fn corpus(canaries: &[Canary]) -> Vec<Record> {
    let start = Utc
        .with_ymd_and_hms(2024, 3, 1, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let talk = [
        (
            "are we still on for lunch on friday?",
            "yes, the usual place at noon",
        ),
        (
            "did you finish the report?",
            "almost, one more section to go",
        ),
        (
            "how was the concert?",
            "loud and wonderful, you should have come",
        ),
        ("can you send me the slides?", "sent them a minute ago"),
    ];
    let mut out = Vec::new();
    let mut n = 0u32;
    let at = |k: u32| start + Duration::hours(3 * i64::from(k));
    for (i, c) in canaries.iter().enumerate() {
        let (q, a) = talk[i % talk.len()];
        for (text, reply) in [(c.sentence(), "ok, noted"), (q.to_string(), a)] {
            out.push(record(2 * n, RecordKind::Message, at(n), true, text));
            out.push(record(
                2 * n + 1,
                RecordKind::Message,
                at(n) + Duration::minutes(2),
                false,
                reply.to_string(),
            ));
            n += 1;
        }
    }
    for d in 0..8usize {
        let mut paras: Vec<String> = canaries.iter().map(Canary::sentence).collect();
        let k = d % paras.len();
        paras.rotate_left(k);
        paras.push("and remember to water the plants on sunday".into());
        let text = format!("{HEADER}{}", paras.join("\n\n"));
        out.push(record(
            1000 + d as u32,
            RecordKind::Document,
            at(n),
            false,
            text,
        ));
        n += 1;
    }
    out
}

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn run(
    base: &BaseModel,
    examples: &[SftExample],
    canaries: &[Canary],
    opts: &TrainOptions,
    dev: &Device,
) -> Result<(ProbeReport, f64, f64), TrainerError> {
    let dir = tempfile::tempdir()?;
    let t = std::time::Instant::now();
    let report = avatar_trainer::train_llm(base, examples, dir.path(), opts, dev, |s| {
        if s.step % 10 == 0 || s.step == s.steps {
            eprintln!(
                "  step {}/{} loss {:.3} {:.0} tok/s",
                s.step, s.steps, s.loss, s.tokens_per_sec
            );
        }
        true
    })?;
    let secs = t.elapsed().as_secs_f64();
    let (model, _card) = avatar_trainer::job::load_finetuned(base, dir.path(), dev)?;
    let tok = &base.tokenizer;
    let encode = |s: &str| -> avatar_trainer::Result<Vec<u32>> {
        tok.encode(s, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TrainerError::Data(e.to_string()))
    };
    let decode = |ids: &[u32]| -> avatar_trainer::Result<String> {
        tok.decode(ids, false)
            .map_err(|e| TrainerError::Data(e.to_string()))
    };
    // A note starts after the previous example's end-of-text in a packed row.
    let mut context: Vec<u32> = base.eos_id().into_iter().collect();
    context.extend(encode(HEADER)?);
    let probe = Probe {
        model: &model,
        encode: &encode,
        decode: &decode,
        context,
        alternatives: env("AVATAR_CANARY_N", 200usize),
        seed: 99,
        batch: 32,
    };
    let out = probe.run(canaries)?;
    Ok((out, report.losses.last().copied().unwrap_or(f64::NAN), secs))
}

fn main() {
    let path = avatar_llm::load::default_model_path();
    if !path.is_file() {
        println!(
            "canary benchmark skipped: no base model at {} (run infra/fetch-models.sh smollm2)",
            path.display()
        );
        return;
    }
    let dev = Device::Cpu;
    let base = match BaseModel::load(&path, &dev) {
        Ok(b) => b,
        Err(e) => {
            println!("canary benchmark: cannot load {}: {e}", path.display());
            return;
        }
    };
    let seed: u64 = env(
        "AVATAR_CANARY_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    let canaries = plant(seed);
    println!("canaries (AVATAR_CANARY_SEED={seed}):");
    for c in &canaries {
        println!("  {}", c.sentence());
    }
    let steps = env("AVATAR_CANARY_STEPS", 40usize);
    let opts = TrainOptions {
        train: TrainConfig {
            steps,
            learning_rate: env("AVATAR_CANARY_LR", 3e-3),
            warmup_steps: (steps / 10).max(1),
            seq_len: 256,
            batch_size: 4,
            checkpoint_every: 0,
            ..TrainConfig::default()
        },
        lora: LoraConfig {
            r: 16,
            alpha: 32.0,
            ..LoraConfig::default()
        },
        system_prompt: "You are Ada. Reply as Ada would, in their own words and style.".into(),
    };
    let records = corpus(&canaries);
    for redact in [true, false] {
        let cfg = DatasetConfig {
            redact,
            heldout_fraction: 0.0,
            ..DatasetConfig::default()
        };
        let built =
            avatar_trainer::build_examples(&records, &cfg, &RedactConfig::default(), Some(&base));
        let label = if redact {
            "redaction on"
        } else {
            "redaction off (control)"
        };
        println!(
            "{label}: {} examples, {} PII findings; training {steps} steps, lr {}",
            built.examples.len(),
            built.privacy.stats.total,
            opts.train.learning_rate
        );
        match run(&base, &built.examples, &canaries, &opts, &dev) {
            Ok((report, loss, secs)) => println!(
                "{label}: final loss {loss:.3} after {secs:.0} s\n{}",
                report.render()
            ),
            Err(e) => println!("{label}: failed: {e}"),
        }
    }
}
