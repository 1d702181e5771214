//! `avatar serve trainer`: retrains each avatar's personal model when enough new material has
//! arrived, when `forget` marked the model stale, or on a schedule, and their voice model when
//! enough new clips of them arrived — one job per avatar and model at a time (a lock file beside
//! the model), each run recorded as a `TrainResult` event by the same code as `avatar train
//! llm` / `avatar train voice`.

use crate::commands::Ctx;
use crate::distributed::parse_duration;
use anyhow::{Context, Result};
use avatar_runtime::RecordStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of `avatar serve trainer`.
#[derive(clap::Args, Debug)]
pub struct TrainerArgs {
    /// Train when at least this many new records written by the person arrived since the
    /// last run (the first run needs this many in all).
    #[arg(long, default_value_t = 50, env = "AVATAR_TRAINER_MIN_NEW")]
    pub min_new: usize,
    /// Also retrain after this long when anything new arrived (e.g. 24h); off by default.
    #[arg(long, value_parser = parse_duration, env = "AVATAR_TRAINER_EVERY")]
    pub every: Option<Duration>,
    /// How often to look.
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "AVATAR_TRAINER_INTERVAL")]
    pub interval: Duration,
    /// Optimiser steps per run (the other settings are `avatar train llm`'s defaults).
    #[arg(long, default_value_t = 60, env = "AVATAR_TRAINER_STEPS")]
    pub steps: usize,
    /// Tokens per packed training row.
    #[arg(long, default_value_t = 256, env = "AVATAR_TRAINER_SEQ_LEN")]
    pub seq_len: usize,
    /// Base model (GGUF file or folder; default: the installed demo model).
    #[arg(long, env = "AVATAR_TRAINER_BASE")]
    pub base: Option<String>,
    /// Retrain the voice model when at least this many new clips of the person arrived
    /// since its last run (the first run needs this many in all); 0 turns voice training off.
    #[arg(long, default_value_t = 20, env = "AVATAR_TRAINER_VOICE_MIN_NEW")]
    pub voice_min_new: usize,
    /// Steps per voice run (a standard step is about a minute of CPU: a GPU is the place).
    #[arg(long, default_value_t = 1000, env = "AVATAR_TRAINER_VOICE_STEPS")]
    pub voice_steps: u64,
    /// Voice model size (`standard`, or `tiny` to try the pipeline).
    #[arg(long, default_value = "standard", value_parser = ["standard", "tiny"], env = "AVATAR_TRAINER_VOICE_SIZE")]
    pub voice_size: String,
    /// RVC generation of the voice model (v2, or v1 for 256-dim content encoders).
    #[arg(long, default_value = "v2", value_parser = ["v1", "v2"], env = "AVATAR_TRAINER_VOICE_VERSION")]
    pub voice_version: String,
    /// One look at every avatar (training those due), then exit.
    #[arg(long)]
    pub once: bool,
}

/// What the trainer remembers per avatar.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
struct Seen {
    /// The person's records when the last run started.
    person_records: usize,
    /// Unix seconds of that start.
    at: u64,
    /// The person's voice clips when the last voice run started.
    #[serde(default)]
    voice_clips: usize,
}

fn state_path(data: &Path) -> PathBuf {
    data.join("trainer").join("state.json")
}

fn load(data: &Path) -> Result<BTreeMap<String, Seen>> {
    crate::json_file::read_or_default(&state_path(data))
}

fn save(data: &Path, s: &BTreeMap<String, Seen>) -> Result<()> {
    crate::json_file::write_atomic(&state_path(data), s)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why an avatar's model is due, if it is.
pub fn due(
    person_records: usize,
    last: Option<(usize, u64)>,
    stale: bool,
    min_new: usize,
    every: Option<Duration>,
    now: u64,
) -> Option<String> {
    if stale {
        return Some("the model is stale (something it learned from was forgotten)".into());
    }
    let (before, at) = last.unwrap_or((0, 0));
    let new = person_records.saturating_sub(before);
    if new >= min_new && new > 0 {
        return Some(format!("{new} new record(s) by the person"));
    }
    if let Some(e) = every {
        if new > 0 && at > 0 && now.saturating_sub(at) >= e.as_secs() {
            return Some(format!(
                "{new} new record(s) and the schedule ({e:?}) is due"
            ));
        }
    }
    None
}

/// Looks at every avatar once and trains those that are due. Returns how many were trained.
pub fn pass(ctx: &Ctx, args: &TrainerArgs) -> Result<usize> {
    let mut state = load(&ctx.data)?;
    let avatars = ctx.open()?.avatars()?;
    let mut trained = 0;
    for a in avatars {
        let id = a.avatar_id.clone();
        let actx = Ctx {
            data: ctx.data.clone(),
            avatar: Some(id.clone()),
            quiet: true,
            log: ctx.log.clone(),
        };
        let app = actx.open()?;
        let person = app
            .records
            .records(&id)?
            .iter()
            .filter(|r| r.author_is_person)
            .count();
        let model = crate::llm::model_dir(&app.dir, &id);
        let stale = model.join("stale.json").is_file();
        let last = state.get(&id).map(|s| (s.person_records, s.at));
        let voice_clips = if args.voice_min_new > 0 {
            let avatar = app.avatar(Some(&id))?;
            crate::voice::persons_clips(&app, &avatar, avatar_voice::speakers::DEFAULT_THRESHOLD)?
                .0
                .len()
        } else {
            0
        };
        drop(app);
        let before = state.get(&id).map_or(0, |s| s.voice_clips);
        // A voice model removed by `forget` is retrained from the clips that remain.
        let voice_dir = crate::voice_train::voice_dir(&ctx.data, &id);
        let voice_stale = voice_dir.join("stale.json").is_file();
        let new_clips = voice_clips.saturating_sub(before);
        if args.voice_min_new > 0
            && voice_clips > 0
            && (new_clips >= args.voice_min_new || voice_stale)
        {
            if voice_stale {
                println!(
                    "{id}: training the voice (the last one learned from forgotten recordings)"
                );
            } else {
                println!("{id}: training the voice ({new_clips} new clip(s))");
            }
            match train_voice(&actx, &voice_dir, args) {
                Ok(steps) => {
                    println!("{id}: voice trained to step {steps}");
                    state.entry(id.clone()).or_default().voice_clips = voice_clips;
                    save(&ctx.data, &state)?;
                    trained += 1;
                }
                // No HuBERT, too little speech…: say so and try again next time.
                Err(e) => eprintln!("{id}: voice not trained: {e:#}"),
            }
        }
        let Some(why) = due(person, last, stale, args.min_new, args.every, now()) else {
            continue;
        };
        std::fs::create_dir_all(&model)?;
        let lock = File::create(model.join(".trainer.lock"))?;
        if lock.try_lock().is_err() {
            println!("{id}: a training run is already going; skipped");
            continue;
        }
        println!("{id}: training ({why})");
        let started = now();
        crate::llm::train_llm(
            &actx,
            &crate::llm::TrainArgs {
                steps: args.steps,
                base: args.base.clone(),
                rank: 16,
                learning_rate: 1e-3,
                seq_len: args.seq_len,
                batch_size: 4,
                grad_accum: 1,
                seed: 42,
                checkpoint_every: 10,
                // New material: start from the base again, not from the last run's end.
                fresh: true,
                json: false,
            },
        )
        .with_context(|| format!("training {id}"))?;
        let _ = std::fs::remove_file(model.join("stale.json"));
        let seen = state.entry(id).or_default();
        seen.person_records = person;
        seen.at = started;
        save(&ctx.data, &state)?;
        trained += 1;
    }
    Ok(trained)
}

/// One voice run with `avatar train voice`'s defaults, under a lock beside the model.
fn train_voice(ctx: &Ctx, dir: &Path, args: &TrainerArgs) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let lock = File::create(dir.join(".trainer.lock"))?;
    if lock.try_lock().is_err() {
        anyhow::bail!("a voice training run is already going");
    }
    let r = crate::voice_train::train_voice(
        ctx,
        &crate::voice_train::VoiceTrainArgs {
            steps: args.voice_steps,
            batch: 4,
            frames: 370,
            version: args.voice_version.clone(),
            size: args.voice_size.clone(),
            pretrained_g: None,
            pretrained_d: None,
            lr: 1e-4,
            checkpoint_every: 100,
            seed: 1234,
            fresh: false,
            threshold: avatar_voice::speakers::DEFAULT_THRESHOLD,
            json: false,
        },
    )?;
    Ok(r.steps)
}

pub fn serve_trainer(ctx: &Ctx, args: &TrainerArgs) -> Result<()> {
    let stop = avatar_email::shutdown_flag();
    loop {
        match pass(ctx, args) {
            Ok(n) if args.once => {
                println!("{n} model(s) trained");
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if args.once => return Err(e),
            Err(e) => eprintln!("warning: {e:#}"),
        }
        if avatar_email::sleep_unless(&stop, args.interval) || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_when_enough_is_new_stale_or_scheduled() {
        assert!(
            due(10, None, false, 50, None, 100).is_none(),
            "not enough yet"
        );
        assert!(due(60, None, false, 50, None, 100).is_some(), "first run");
        assert!(
            due(60, Some((60, 50)), false, 50, None, 100).is_none(),
            "nothing new"
        );
        assert!(
            due(60, Some((60, 50)), true, 50, None, 100).is_some(),
            "stale"
        );
        assert!(due(70, Some((60, 50)), false, 50, None, 100).is_none());
        let day = Some(Duration::from_secs(86_400));
        assert!(
            due(70, Some((60, 50)), false, 50, day, 100).is_none(),
            "not yet a day"
        );
        assert!(
            due(70, Some((60, 50)), false, 50, day, 86_500).is_some(),
            "a day later"
        );
        assert!(
            due(60, Some((60, 50)), false, 50, day, 86_500).is_none(),
            "nothing new"
        );
    }
}
