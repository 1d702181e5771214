//! `avatar forget`: a tombstone in the log, then every store removes what it covers — and the
//! bytes go, not just the rows.
//!
//! The tombstone alone makes the processors delete the covered records from the record store,
//! the full-text index and the vector store, and rewrite the records dataset; replay honours it.
//! That is not enough for "forget really removes": deleted rows linger in SQLite free pages and
//! WAL frames, tantivy only marks deleted documents, the log still holds the derived records
//! and memories, the raw artifact still holds the original, and a personal model trained on the
//! data can recite it. So after processing, [`forget`] also:
//! - removes the covered derived events (records, memories) from the log, and the artifacts
//!   (events, dead letters and blobs) all of whose records are covered — or, for `--source`,
//!   everything from that source. An artifact that still holds other records stays: replay
//!   re-parses it and the tombstone removes the covered records again;
//! - rewrites the SQLite files (secure_delete + VACUUM + WAL truncate) and merges the index;
//! - removes the training set (Parquet) when one was built (the next build has no covered data);
//! - deletes the personal model's adapter and checkpoints when the avatar had one (the card
//!   moves to `stale.json`, which says what to retrain): a model trained on forgotten data is
//!   not served;
//! - deletes the voice model (model, feature index, checkpoints, samples) when a forgotten
//!   recording's clips were the person's voice: the index holds their content features and the
//!   model their voice. `voice/stale.json` says why; `avatar train voice` makes a new one.

use crate::app::App;
use anyhow::{Context, Result};
use avatar_runtime::{EventLog, RecordStore};
use avatar_schemas::{record_id, Envelope, Forget, ForgetTarget, Payload};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What a forget removed, store by store.
#[derive(Debug, Default, Serialize)]
pub struct ForgetReport {
    /// Records the tombstone covered (gone from records, index, vectors, datasets).
    pub records: usize,
    /// Events physically removed from the log (derived records, memories, artifacts).
    pub events_removed: usize,
    /// Raw artifacts (blobs) deleted.
    pub blobs_removed: usize,
    /// Whether the training set that held them was removed (rebuilt by the next `dataset
    /// build` or `train llm`).
    pub training_set_removed: bool,
    /// Whether a personal model trained on them was removed (retrain with `avatar train llm`).
    pub model_removed: bool,
    /// Whether the voice model was removed because clips it may have learned from were forgotten
    /// (retrain with `avatar train voice`).
    #[serde(default)]
    pub voice_model_removed: bool,
}

/// Whether an event from `source` comes from the source a `--source` tombstone names.
fn source_covered(target: &ForgetTarget, source: &str) -> bool {
    match target {
        ForgetTarget::Source(s) => source == s || source.starts_with(&format!("{s}#")),
        _ => false,
    }
}

/// Forgets what `target` covers of `avatar`'s data, in every store. `reason` is kept in the
/// tombstone (never the forgotten content).
pub fn forget(
    app: &App,
    avatar: &str,
    target: ForgetTarget,
    reason: Option<String>,
    origin: &str,
) -> Result<ForgetReport> {
    // Physical deletion from the log is SQLite's; refuse before the tombstone, not halfway.
    app.log.sqlite("forget")?;
    // Everything pending first, so the covered set is complete.
    app.process(&mut |_| {})?;
    let all = app.records.records(avatar)?;
    let covered: HashSet<String> = all
        .iter()
        .filter(|r| target.covers(r))
        .map(|r| r.id.clone())
        .collect();
    // Artifacts (by sha) all of whose records are covered.
    let mut per_artifact: HashMap<&str, (usize, usize)> = HashMap::new();
    for r in all.iter().filter(|r| !r.artifact.is_empty()) {
        let e = per_artifact.entry(r.artifact.as_str()).or_default();
        e.0 += 1;
        if covered.contains(&r.id) {
            e.1 += 1;
        }
    }
    let dropped: HashSet<String> = per_artifact
        .into_iter()
        .filter(|(_, (total, gone))| total == gone)
        .map(|(sha, _)| sha.to_string())
        .collect();

    let tombstone = Envelope::new(avatar, origin, Payload::Forget(Forget { target, reason }));
    let Payload::Forget(Forget { target, .. }) = &tombstone.payload else {
        anyhow::bail!("a forget event without its target");
    };
    let target = target.clone();
    app.log.append(std::slice::from_ref(&tombstone))?;
    let processed = app.process(&mut |_| {})?;

    // The log: derived events of covered records, covered memories, dropped artifacts.
    let mut dropped_blobs: HashSet<String> = HashSet::new();
    let doomed = |e: &Envelope| -> bool {
        if e.avatar != avatar {
            return false;
        }
        match &e.payload {
            Payload::Message(r) | Payload::Document(r) => covered.contains(&r.id),
            Payload::Memory(_) => covered.contains(&record_id(&e.id.to_string(), 0)),
            Payload::ArtifactReceived(a) => {
                dropped.contains(&a.sha256) || source_covered(&target, &e.source)
            }
            Payload::DeadLetter(d) => {
                d.artifact.as_ref().is_some_and(|a| dropped.contains(a))
                    || source_covered(&target, &e.source)
            }
            // A recording has clips, not records: it goes with its source, or by clip id.
            Payload::VoiceClip(c) => {
                dropped.contains(&c.artifact)
                    || source_covered(&target, &e.source)
                    || matches!(&target, ForgetTarget::Record(id) if *id == c.id)
            }
            _ => false,
        }
    };
    // The blobs an event names: a raw artifact's bytes, a clip's audio.
    let blob_of = |e: &Envelope| match &e.payload {
        Payload::ArtifactReceived(a) => Some(a.sha256.clone()),
        Payload::VoiceClip(c) => Some(c.audio.clone()),
        _ => None,
    };
    const BLOB_KINDS: &[&str] = &["raw.artifact", "records.recording"];
    let mut clips_forgotten = false;
    for s in app.log.all_of_kinds(BLOB_KINDS)? {
        if doomed(&s.event) {
            dropped_blobs.extend(blob_of(&s.event));
            clips_forgotten |= matches!(s.event.payload, Payload::VoiceClip(_));
        }
    }
    let events_removed = app
        .log
        .sqlite("forget")?
        .purge(&doomed)
        .context("cannot remove the forgotten events from the log")?;
    // A blob another artifact or clip event (another avatar's, or a second name) still uses
    // stays.
    for s in app.log.all_of_kinds(BLOB_KINDS)? {
        if let Some(sha) = blob_of(&s.event) {
            dropped_blobs.remove(&sha);
        }
    }
    let mut blobs_removed = 0;
    for sha in &dropped_blobs {
        if app.blobs.delete(sha)? {
            blobs_removed += 1;
        }
    }
    app.records
        .scrub()
        .context("cannot rewrite the record store")?;
    app.index.compact().context("cannot compact the index")?;

    let (training_set_removed, model_removed) = if covered.is_empty() {
        (false, false)
    } else {
        (
            remove_training_set(app, avatar)?,
            remove_model(&app.dir, avatar, &tombstone)?,
        )
    };
    let voice_model_removed = clips_forgotten && remove_voice_model(&app.dir, avatar, &tombstone)?;
    Ok(ForgetReport {
        records: processed.forgotten.max(covered.len()),
        events_removed,
        blobs_removed,
        training_set_removed,
        model_removed,
        voice_model_removed,
    })
}

/// Why a model was removed, and by which forget, for its `stale.json`.
fn stale_note(reason: &str, tombstone: &Envelope) -> serde_json::Value {
    serde_json::json!({
        "reason": reason,
        "forget_event": tombstone.id.to_string(),
        "at": tombstone.occurred_at,
    })
}

/// Deletes the avatar's voice model and everything training left (checkpoints, samples, the
/// feature index) and writes `voice/stale.json`, when there is one.
fn remove_voice_model(data: &Path, avatar: &str, tombstone: &Envelope) -> Result<bool> {
    let dir = crate::voice_train::voice_dir(data, avatar);
    if !dir.is_dir() {
        return Ok(false);
    }
    let mut removed = false;
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
    {
        let p = entry?.path();
        if p.file_name().is_some_and(|n| n == "stale.json") {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("cannot remove {}", p.display()))?;
        removed = true;
    }
    if removed {
        let stale = stale_note(
            "trained on recordings since forgotten; retrain with `avatar train voice`",
            tombstone,
        );
        std::fs::write(dir.join("stale.json"), serde_json::to_vec_pretty(&stale)?)?;
    }
    Ok(removed)
}

/// Removes the training set (and its privacy report) when one was built: it holds the covered
/// records' text. `avatar dataset build` and `avatar train llm` build it again from the records
/// that remain.
fn remove_training_set(app: &App, avatar: &str) -> Result<bool> {
    let path = crate::llm::sft_path(&app.dir, avatar);
    let mut removed = false;
    for p in [path.clone(), path.with_file_name("privacy.json")] {
        if p.is_file() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            removed = true;
        }
    }
    Ok(removed)
}

/// Deletes the adapter and checkpoints of a personal model and moves its card to
/// `stale.json` (with the tombstone's id), so nothing serves or resumes it.
fn remove_model(data: &Path, avatar: &str, tombstone: &Envelope) -> Result<bool> {
    let dir = crate::llm::model_dir(data, avatar);
    let card = crate::llm::card_path(data, avatar);
    let mut removed = false;
    for sub in ["adapter", "checkpoints"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(&p)
                .with_context(|| format!("cannot remove {}", p.display()))?;
            removed = true;
        }
    }
    if card.is_file() {
        let mut value: serde_json::Value = std::fs::read(&card)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut value {
            m.insert(
                "stale".into(),
                stale_note(
                    "trained on data since forgotten; retrain with `avatar train llm`",
                    tombstone,
                ),
            );
        }
        std::fs::write(dir.join("stale.json"), serde_json::to_vec_pretty(&value)?)?;
        std::fs::remove_file(&card)?;
        removed = true;
    }
    Ok(removed)
}

/// Parses the CLI's choice of target (exactly one of them).
pub fn target(
    source: Option<String>,
    record: Option<String>,
    before: Option<String>,
    participant: Option<String>,
) -> Result<ForgetTarget> {
    let mut chosen = Vec::new();
    if let Some(s) = source {
        // A path on disk is named as ingest named it: the file:// URI of the canonical path,
        // percent-encoded (a space is %20); a file already deleted from disk by its absolute
        // path.
        let uri = if s.contains("://") {
            s
        } else {
            let p = std::fs::canonicalize(&s)
                .or_else(|_| std::path::absolute(Path::new(&s)))
                .with_context(|| format!("cannot resolve the path {s}"))?;
            avatar_ingest::file_uri(&p)
        };
        chosen.push(ForgetTarget::Source(uri));
    }
    if let Some(r) = record {
        chosen.push(ForgetTarget::Record(r));
    }
    if let Some(b) = before {
        chosen.push(ForgetTarget::Before(crate::serve::parse_date(&b, false)?));
    }
    if let Some(p) = participant {
        if p.trim().is_empty() {
            anyhow::bail!("--participant needs a name, address or handle");
        }
        chosen.push(ForgetTarget::Participant(p));
    }
    match chosen.len() {
        1 => Ok(chosen.remove(0)),
        0 => anyhow::bail!(
            "say what to forget: --source URI|PATH, --record ID, --before DATE or --participant ALIAS"
        ),
        _ => anyhow::bail!("forget one thing at a time: give only one of --source, --record, --before, --participant"),
    }
}

/// Trains the avatar's personal model again with the settings of the one a forget removed
/// (`stale.json`), on what remains; removes `stale.json` once a new model exists.
pub fn retrain(ctx: &crate::commands::Ctx, data: &Path, avatar: &str) -> Result<()> {
    let stale = crate::llm::model_dir(data, avatar).join("stale.json");
    let card: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&stale).with_context(|| format!("cannot read {}", stale.display()))?,
    )
    .with_context(|| format!("{} is not a model card", stale.display()))?;
    let train = &card["train"];
    let num = |v: &serde_json::Value, default: u64| v.as_u64().unwrap_or(default) as usize;
    let args = crate::llm::TrainArgs {
        steps: num(&card["steps"], 60).max(1),
        base: card["base"].as_str().map(str::to_string),
        rank: num(&card["lora"]["r"], 16).max(1),
        learning_rate: train["learning_rate"].as_f64().unwrap_or(1e-3),
        seq_len: num(&train["seq_len"], 256).max(8),
        batch_size: num(&train["batch_size"], 4).max(1),
        grad_accum: num(&train["grad_accum"], 1).max(1),
        seed: train["seed"].as_u64().unwrap_or(42),
        checkpoint_every: num(&train["checkpoint_every"], 10),
        fresh: true,
        json: false,
    };
    crate::llm::train_llm(ctx, &args).context("retraining the personal model failed")?;
    if crate::llm::card_path(data, avatar).is_file() {
        std::fs::remove_file(&stale)?;
    }
    Ok(())
}
