//! `avatar serve trainer`: retrains each avatar's personal model when enough new material has
//! arrived, when `forget` marked the model stale, or on a schedule — one job per avatar at a
//! time (a lock file beside the model), each run recorded as a `TrainResult` event by the same
//! code as `avatar train llm`.

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
        let Some(why) = due(person, last, stale, args.min_new, args.every, now()) else {
            continue;
        };
        drop(app);
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
        state.insert(
            id,
            Seen {
                person_records: person,
                at: started,
            },
        );
        save(&ctx.data, &state)?;
        trained += 1;
    }
    Ok(trained)
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
