//! `avatar forget` end to end (issue 5): after a tombstone every store has removed what it
//! covers — records, full-text index, vectors, datasets, the log, raw files, the personal model —
//! down to the bytes on disk, and replay honours it.

mod common;

use common::{cmd, embed_model, files_containing, files_under, ok};
use std::path::{Path, PathBuf};

const CHAT: &str = "\
[01/02/2020, 10:00:00] Ada Lovelace: Good morning Bob, how is the loom?
[01/02/2020, 10:01:00] Bob Smith: The vault code is ZEBRAQUARTZ7781, keep it safe
[01/02/2020, 10:02:00] Ada Lovelace: I will remember the engine notes, Bob
[01/02/2020, 10:03:00] Bob Smith: Bring the punched cards on Sunday
";

fn avatar(data: &Path) -> std::process::Command {
    let mut c = cmd(data);
    // The vector store is one of the stores that must forget: use the model when installed.
    if let Some(m) = embed_model() {
        c.env("AVATAR_EMBED_MODEL", m);
    }
    c
}

fn run(data: &Path, args: &[&str]) -> String {
    let out = avatar(data).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "avatar {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_no_panic(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn records(data: &Path) -> Vec<serde_json::Value> {
    run(data, &["records", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The snippets `avatar search` returns (vector and hybrid need the embedding model).
fn hits(data: &Path, query: &str, mode: &str) -> Vec<String> {
    if mode != "bm25" && embed_model().is_none() {
        return Vec::new();
    }
    run(data, &["search", query, "--json", "--mode", mode])
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["snippet"].as_str().unwrap().replace("**", "")
        })
        .collect()
}

fn none_mention(snippets: &[String], marker: &str) -> bool {
    snippets.iter().all(|s| !s.contains(marker))
}

#[test]
fn forget_removes_from_every_store_down_to_the_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("chat.txt"), CHAT).unwrap();
    std::fs::write(
        inbox.join("notes.txt"),
        "Notes on the PELICANMARBLE engine, written by Ada in the library.",
    )
    .unwrap();
    run(&data, &["init", "--name", "Ada Lovelace"]);
    run(&data, &["ingest", inbox.to_str().unwrap()]);
    run(
        &data,
        &[
            "memory",
            "add",
            "Grandpa hid the key under the HERONSLATE stone",
        ],
    );
    let memory_id = records(&data)
        .iter()
        .find(|r| r["text"].as_str().unwrap().contains("HERONSLATE"))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(hits(&data, "ZEBRAQUARTZ7781", "bm25").len(), 1);
    // A training set and a personal model exist: both hold the data.
    run(&data, &["dataset", "build"]);
    let sft = data.join("datasets/ada-lovelace/sft.parquet");
    assert!(sft.is_file());
    let model = data.join("models/ada-lovelace/llm");
    std::fs::create_dir_all(model.join("adapter")).unwrap();
    std::fs::create_dir_all(model.join("checkpoints/step-10")).unwrap();
    std::fs::write(model.join("adapter/adapter_model.safetensors"), b"weights").unwrap();
    std::fs::write(
        model.join("card.json"),
        br#"{"base": "smollm2", "steps": 10}"#,
    )
    .unwrap();
    for marker in ["ZEBRAQUARTZ7781", "PELICANMARBLE", "HERONSLATE"] {
        assert!(
            files_containing(&data, marker).len() >= 3,
            "{marker} is in several stores before forgetting"
        );
    }

    // A dry run lists what a forget would remove and changes nothing.
    let dry = run(
        &data,
        &[
            "forget",
            "--participant",
            "Bob Smith",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry.lines().count(), 2, "{dry}");
    assert!(dry.lines().all(|l| l.contains("Bob Smith")), "{dry}");
    assert_eq!(
        hits(&data, "ZEBRAQUARTZ7781", "bm25").len(),
        1,
        "a dry run changed nothing"
    );

    // 1. A participant: their records go; the raw chat still holds Ada's part, so it stays.
    let out: serde_json::Value = serde_json::from_str(&run(
        &data,
        &[
            "forget",
            "--participant",
            "Bob Smith",
            "--reason",
            "Bob asked",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(out["records"], 2, "{out}");
    assert_eq!(out["model_removed"], true);
    assert_eq!(out["training_set_removed"], true);
    let left = records(&data);
    assert!(left
        .iter()
        .all(|r| !r["author"].as_str().unwrap_or("").contains("Bob")));
    assert_eq!(
        left.len(),
        4,
        "two of Ada's lines, the notes and the memory remain"
    );
    assert!(hits(&data, "ZEBRAQUARTZ7781", "bm25").is_empty());
    assert!(none_mention(
        &hits(&data, "vault code", "hybrid"),
        "ZEBRAQUARTZ"
    ));
    assert!(none_mention(
        &hits(&data, "vault code", "vector"),
        "ZEBRAQUARTZ"
    ));
    let chat_blob = avatar_runtime_sha(CHAT.as_bytes());
    // The audit log keeps what was asked (this test searched for the secret): it is the record
    // of who asked what, append-only by design, and forget does not rewrite it.
    let with_secret: Vec<PathBuf> = files_containing(&data, "ZEBRAQUARTZ7781")
        .into_iter()
        .filter(|p| !p.ends_with("audit.db"))
        .collect();
    assert_eq!(
        with_secret.len(),
        1,
        "only the raw chat (which also holds Ada's lines) may keep it: {with_secret:?}"
    );
    assert!(with_secret[0].ends_with(&chat_blob[2..]), "{with_secret:?}");
    assert!(!sft.exists(), "the training set held Bob's messages");
    assert!(!model.join("card.json").exists() && !model.join("adapter").exists());
    assert!(
        !model.join("checkpoints").exists(),
        "no resuming from stale weights"
    );
    let stale: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("stale.json")).unwrap()).unwrap();
    assert_eq!(stale["steps"], 10);
    assert!(stale["stale"]["reason"]
        .as_str()
        .unwrap()
        .contains("retrain"));
    let status = run(&data, &["status", "--json"]);
    assert!(!status.contains("ZEBRAQUARTZ7781"));

    // 2. A whole source: its raw file goes too.
    let blobs_before = files_under(&data.join("blobs")).len();
    let notes = inbox.join("notes.txt");
    let out: serde_json::Value = serde_json::from_str(&run(
        &data,
        &["forget", "--source", notes.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(out["records"], 1, "{out}");
    assert_eq!(out["blobs_removed"], 1, "{out}");
    assert_eq!(files_under(&data.join("blobs")).len(), blobs_before - 1);
    assert_eq!(
        files_containing(&data, "PELICANMARBLE"),
        Vec::<PathBuf>::new()
    );
    assert!(hits(&data, "PELICANMARBLE", "bm25").is_empty());
    assert!(none_mention(
        &hits(&data, "engine notes", "hybrid"),
        "PELICANMARBLE"
    ));

    // 3. One record (a memory, which lives in the log itself).
    run(&data, &["forget", "--record", &memory_id]);
    assert_eq!(
        files_containing(&data, "HERONSLATE"),
        Vec::<PathBuf>::new(),
        "no search asked for it"
    );
    assert_eq!(records(&data).len(), 2);
    assert!(none_mention(
        &hits(&data, "key under the stone", "vector"),
        "HERONSLATE"
    ));
    assert_eq!(
        hits(&data, "engine notes", "bm25").len(),
        1,
        "the rest is still found"
    );

    // Replay honours the tombstones: the same two records, nothing forgotten comes back.
    let replayed = tmp.path().join("replayed");
    run(&data, &["replay", "--into", replayed.to_str().unwrap()]);
    let texts = |d: &Path| {
        let mut t: Vec<String> = records(d)
            .iter()
            .map(|r| r["text"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(texts(&replayed), texts(&data));
    assert_eq!(
        files_containing(&replayed, "PELICANMARBLE"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&replayed, "HERONSLATE"),
        Vec::<PathBuf>::new()
    );
    assert!(hits(&replayed, "ZEBRAQUARTZ7781", "bm25").is_empty());
}

#[test]
fn forget_needs_exactly_one_target_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["init", "--name", "Ada Lovelace"]);
    for args in [
        vec!["forget"],
        vec!["forget", "--record", "a", "--participant", "b"],
        vec!["forget", "--before", "last tuesday"],
        vec!["forget", "--participant", " "],
    ] {
        let out = cmd(&data).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        common::assert_no_panic(&out);
    }
    // Nothing matched is not an error: the tombstone stays for replay.
    let out = ok(&data, &["forget", "--record", "no-such-record"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing matched"));
}

/// sha256 hex, as the blob store names files.
fn avatar_runtime_sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// `--retrain`: the removed model is trained again at once, with its settings, on what remains.
#[test]
fn forget_with_retrain_trains_the_model_again_without_the_data() {
    // The default base model (the card names none, so the default is used).
    if common::installed_model("SmolLM2-135M-Instruct", "smollm2").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("chat.txt"), CHAT).unwrap();
    std::fs::write(
        inbox.join("carol.txt"),
        "[02/02/2020, 09:00:00] Carol Jones: Did the loom cards arrive?\n\
         [02/02/2020, 09:05:00] Ada Lovelace: They did, and the pattern is lovely.\n\
         [02/02/2020, 09:06:00] Carol Jones: Shall we weave on Monday?\n\
         [02/02/2020, 09:10:00] Ada Lovelace: Monday suits me, bring the blue thread.\n",
    )
    .unwrap();
    run(&data, &["init", "--name", "Ada Lovelace"]);
    run(&data, &["ingest", inbox.to_str().unwrap()]);
    let model = data.join("models/ada-lovelace/llm");
    std::fs::create_dir_all(model.join("adapter")).unwrap();
    let card = serde_json::json!({
        "steps": 2, "lora": {"r": 4},
        "train": {"learning_rate": 0.001, "seq_len": 64, "batch_size": 1, "grad_accum": 1,
                  "seed": 7, "checkpoint_every": 0}
    });
    std::fs::write(model.join("card.json"), card.to_string()).unwrap();
    let stdout = run(
        &data,
        &[
            "forget",
            "--participant",
            "Bob Smith",
            "--retrain",
            "--json",
        ],
    );
    // The training prints its summary first; the forget report is the last line.
    let out: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(out["model_removed"], true, "{out}");
    assert_eq!(out["retrained"], true, "{out}");
    let new: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("card.json")).unwrap()).unwrap();
    assert_eq!(new["steps"], 2, "{new}");
    assert_eq!(new["lora"]["r"], 4, "{new}");
    assert!(model.join("adapter").is_dir());
    assert!(!model.join("stale.json").exists());
    let sft = std::fs::read(data.join("datasets/ada-lovelace/sft.parquet")).unwrap();
    assert!(!sft.windows(15).any(|w| w == b"ZEBRAQUARTZ7781"));
}
