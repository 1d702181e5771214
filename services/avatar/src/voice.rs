//! `avatar voice …`: what the voice pipeline made of the person's recordings.

use crate::commands::Ctx;
use anyhow::{Context, Result};
use avatar_runtime::{BlobStore, EventLog};
use avatar_schemas::{Envelope, Payload, VoiceClip, VoiceReference};
use std::collections::BTreeMap;
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

/// The clip the user last named as the person's voice, if it still exists.
fn reference(log: &dyn EventLog, avatar: &str, clips: &[VoiceClip]) -> Result<Option<usize>> {
    let mut chosen = None;
    for s in log.all_of_kinds(&["identity.voice_reference"])? {
        if let Payload::VoiceReference(r) = s.event.payload {
            if s.event.avatar == avatar {
                chosen = Some(r.clip);
            }
        }
    }
    Ok(chosen.and_then(|id| clips.iter().position(|c| c.id == id)))
}

/// Speaker embeddings of `clips` (cached by clip audio in DIR/voice/embeddings.json: they
/// cost ~0.1 s per clip), or `None` when the speaker encoder's weights are not installed.
fn embeddings(app: &crate::app::App, clips: &[VoiceClip]) -> Result<Option<Vec<Vec<f32>>>> {
    let Some(weights) = avatar_voice::speaker::default_weights() else {
        return Ok(None);
    };
    let cache_path = app.dir.join("voice").join("embeddings.json");
    let mut cache: BTreeMap<String, Vec<f32>> = crate::json_file::read_or_default(&cache_path)?;
    let mut encoder = None;
    let mut out = Vec::with_capacity(clips.len());
    let mut added = false;
    for c in clips {
        if let Some(e) = cache.get(&c.audio) {
            out.push(e.clone());
            continue;
        }
        let enc = match &encoder {
            Some(e) => e,
            None => encoder.insert(
                avatar_voice::speaker::SpeakerEncoder::load(&weights).with_context(|| {
                    format!("cannot load the speaker encoder {}", weights.display())
                })?,
            ),
        };
        let bytes = app
            .blobs
            .get(&c.audio)
            .with_context(|| format!("clip {} has no audio in the blob store", c.id))?;
        let audio = avatar_voice::decode("clip.wav", &bytes)
            .with_context(|| format!("clip {}'s audio cannot be read", c.id))?;
        let e = avatar_voice::speakers::embed_clip(enc, &audio.samples, audio.sample_rate)
            .with_context(|| format!("cannot embed clip {}", c.id))?;
        cache.insert(c.audio.clone(), e.clone());
        out.push(e);
        added = true;
    }
    if added {
        crate::json_file::write_atomic(&cache_path, &cache)?;
    }
    Ok(Some(out))
}

/// `avatar voice clips`.
pub struct ClipsArgs {
    pub json: bool,
    pub export: Option<PathBuf>,
    pub all: bool,
    pub threshold: f32,
}

pub fn clips(ctx: &Ctx, args: ClipsArgs) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let clips = avatar_clips(&app.log, &avatar.avatar_id)?;
    let embeddings = if clips.is_empty() {
        None
    } else {
        embeddings(&app, &clips)?
    };
    let labels = embeddings
        .as_ref()
        .map(|e| avatar_voice::speakers::cluster(e, args.threshold));
    let reference = reference(&app.log, &avatar.avatar_id, &clips)?;
    let person_label = match (&labels, reference) {
        (Some(l), Some(r)) => Some(l[r]),
        _ => None,
    };
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut out = std::io::stdout().lock();
    let (mut shown, mut total_ms) = (0, 0);
    for (i, c) in clips.iter().enumerate() {
        let speaker = labels.as_ref().map(|l| l[i]);
        let is_person = person_label.is_some() && speaker == person_label;
        if person_label.is_some() && !is_person && !args.all {
            continue;
        }
        shown += 1;
        total_ms += c.end_ms - c.start_ms;
        let exported = match &args.export {
            Some(dir) => Some(export_clip(&app.blobs, dir, c)?),
            None => None,
        };
        if args.json {
            let mut v = serde_json::to_value(c)?;
            if let Some(p) = &exported {
                v["file"] = serde_json::json!(p);
            }
            if let Some(s) = speaker {
                v["speaker"] = serde_json::json!(s + 1);
                v["person"] = serde_json::json!(is_person);
            }
            writeln!(out, "{v}")?;
        } else {
            let who = match speaker {
                Some(s) if is_person => format!("S{} (them)", s + 1),
                Some(s) => format!("S{}", s + 1),
                None => "-".into(),
            };
            writeln!(
                out,
                "{}  {:>8} – {:<8} {:>5.1} s  {:<10} {:>6.1} dBFS  {}",
                c.id,
                clock(c.start_ms),
                clock(c.end_ms),
                (c.end_ms - c.start_ms) as f64 / 1000.0,
                who,
                c.rms_dbfs,
                c.source
            )?;
        }
    }
    if !args.json {
        if clips.is_empty() {
            writeln!(
                out,
                "no clips yet: ingest recordings (voice notes, videos) with `avatar ingest FILE…`"
            )?;
        } else {
            let voices = labels
                .as_ref()
                .map(|l| l.iter().max().map(|m| m + 1).unwrap_or(0));
            writeln!(
                out,
                "{shown} clip(s), {:.1} minutes of speech{}{}",
                total_ms as f64 / 60_000.0,
                match (voices, person_label) {
                    (Some(v), Some(_)) if !args.all => format!(
                        " in {}'s voice ({} voice(s) in all; --all lists every clip)",
                        avatar.name, v
                    ),
                    (Some(v), _) => format!(", {v} voice(s)"),
                    (None, _) => String::new(),
                },
                args.export
                    .as_ref()
                    .map(|d| format!(", written to {}", d.display()))
                    .unwrap_or_default()
            )?;
            match (voices, person_label) {
                (None, _) => writeln!(
                    out,
                    "voices are not told apart: the speaker encoder is not installed \
                     (infra/fetch-models.sh resemblyzer)"
                )?,
                (Some(_), None) => writeln!(
                    out,
                    "which voice is {}'s? name one of their clips: avatar voice person CLIP_ID",
                    avatar.name
                )?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// `avatar voice person CLIP`: the user confirms whose voice a clip is.
pub fn person(ctx: &Ctx, clip: &str, threshold: f32) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let clips = avatar_clips(&app.log, &avatar.avatar_id)?;
    let Some(index) = clips.iter().position(|c| c.id == clip) else {
        anyhow::bail!(
            "no clip `{clip}` for {}; `avatar voice clips` lists them",
            avatar.name
        );
    };
    app.log.append(&[Envelope::new(
        avatar.avatar_id.clone(),
        "cli:voice",
        Payload::VoiceReference(VoiceReference {
            clip: clip.to_string(),
        }),
    )])?;
    match embeddings(&app, &clips)? {
        Some(e) => {
            let labels = avatar_voice::speakers::cluster(&e, threshold);
            let theirs: Vec<&VoiceClip> = clips
                .iter()
                .zip(&labels)
                .filter(|(_, &l)| l == labels[index])
                .map(|(c, _)| c)
                .collect();
            let ms: u64 = theirs.iter().map(|c| c.end_ms - c.start_ms).sum();
            println!(
                "{}'s voice: {} clip(s) sound like {clip}, {:.1} minutes of speech",
                avatar.name,
                theirs.len(),
                ms as f64 / 60_000.0
            );
        }
        None => println!(
            "{clip} is {}'s voice; install the speaker encoder (infra/fetch-models.sh \
             resemblyzer) to find their other clips",
            avatar.name
        ),
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
