//! `avatar voice …`: what the voice pipeline made of the person's recordings.

use crate::commands::Ctx;
use anyhow::{Context, Result};
use avatar_runtime::{BlobStore, EventLog};
use avatar_schemas::{Payload, VoiceClip};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The avatar's clips, in log order (the log is their only store: they are few and small).
pub fn avatar_clips(log: &dyn EventLog, avatar: &str) -> Result<Vec<VoiceClip>> {
    let mut out: Vec<VoiceClip> = Vec::new();
    for s in log.all_of_kinds(&["records.recording"])? {
        if let Payload::VoiceClip(c) = s.event.payload {
            if c.avatar == avatar && !out.iter().any(|o| o.id == c.id) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn file_name_of(source: &str) -> String {
    let last = source.rsplit(['/', '\\']).next().unwrap_or(source);
    let stem = last.rsplit_once('.').map(|(s, _)| s).unwrap_or(last);
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn clips(ctx: &Ctx, as_json: bool, export: Option<PathBuf>) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let clips = avatar_clips(&app.log, &avatar.avatar_id)?;
    if let Some(dir) = &export {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = std::io::stdout().lock();
    let mut total_ms = 0;
    for c in &clips {
        total_ms += c.end_ms - c.start_ms;
        let exported = match &export {
            Some(dir) => Some(export_clip(&app.blobs, dir, c)?),
            None => None,
        };
        if as_json {
            let mut v = serde_json::to_value(c)?;
            if let Some(p) = &exported {
                v["file"] = serde_json::json!(p);
            }
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{}  {:>8} – {:<8} {:>5.1} s  {:>5} Hz  {:>6.1} dBFS  {}",
                c.id,
                clock(c.start_ms),
                clock(c.end_ms),
                (c.end_ms - c.start_ms) as f64 / 1000.0,
                c.sample_rate,
                c.rms_dbfs,
                c.source
            )?;
        }
    }
    if !as_json {
        if clips.is_empty() {
            writeln!(
                out,
                "no clips yet: ingest recordings (voice notes, videos) with `avatar ingest FILE…`"
            )?;
        } else {
            writeln!(
                out,
                "{} clip(s), {:.1} minutes of speech{}",
                clips.len(),
                total_ms as f64 / 60_000.0,
                export
                    .as_ref()
                    .map(|d| format!(", written to {}", d.display()))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// `mm:ss.t` (or `h:mm:ss.t` past an hour).
fn clock(ms: u64) -> String {
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    if h > 0 {
        format!("{h}:{m:02}:{:04.1}", s as f64 / 1000.0)
    } else {
        format!("{m:02}:{:04.1}", s as f64 / 1000.0)
    }
}

fn export_clip(blobs: &dyn BlobStore, dir: &Path, c: &VoiceClip) -> Result<PathBuf> {
    let bytes = blobs
        .get(&c.audio)
        .with_context(|| format!("clip {} has no audio in the blob store", c.id))?;
    let path = dir.join(format!(
        "{}_{:07}-{:07}.wav",
        file_name_of(&c.source),
        c.start_ms,
        c.end_ms
    ));
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_names() {
        assert_eq!(clock(1_850), "00:01.9");
        assert_eq!(clock(61_000), "01:01.0");
        assert_eq!(clock(3_725_500), "1:02:05.5");
        assert_eq!(
            file_name_of("file:///home/x/Voice note 2019.m4a"),
            "Voice_note_2019"
        );
        assert_eq!(file_name_of("file:///a/b.tar.gz#in/x.wav"), "x");
    }
}
