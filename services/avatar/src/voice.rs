//! `avatar voice …`: what the voice pipeline made of the person's recordings.

use crate::commands::Ctx;
use anyhow::{Context, Result};
use avatar_runtime::{BlobStore, EventLog, RecordStore};
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
    // What was said in each clip (its transcript record names the clip as its message id):
    // hearing the words helps to tell whose clip it is.
    let said: std::collections::HashMap<String, String> = app
        .records
        .records(&avatar.avatar_id)?
        .into_iter()
        .filter(|r| r.kind == avatar_schemas::RecordKind::Transcript)
        .filter_map(|r| r.message_id.map(|id| (id, r.text)))
        .collect();
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
            if let Some(text) = said.get(&c.id) {
                v["said"] = serde_json::json!(text);
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
            if let Some(text) = said.get(&c.id) {
                let short: String = text.chars().take(90).collect();
                let more = if text.chars().count() > 90 { "…" } else { "" };
                writeln!(out, "    “{short}{more}”")?;
            }
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

/// The clips taken as the person's voice, their embeddings (when the encoder is installed) and
/// whether the user confirmed the voice with `avatar voice person`.
type PersonsVoice = (Vec<VoiceClip>, Option<Vec<Vec<f32>>>, bool);

/// The person's clips: those in the voice of the clip named with `avatar voice person`, or
/// every clip (and a note) when none was named. Also says which.
pub(crate) fn persons_clips(
    app: &crate::app::App,
    avatar: &avatar_schemas::AvatarCreated,
    threshold: f32,
) -> Result<PersonsVoice> {
    let clips = avatar_clips(&app.log, &avatar.avatar_id)?;
    let embeddings = if clips.is_empty() {
        None
    } else {
        embeddings(app, &clips)?
    };
    let reference = reference(&app.log, &avatar.avatar_id, &clips)?;
    let (Some(e), Some(r)) = (&embeddings, reference) else {
        return Ok((clips, embeddings, false));
    };
    let labels = avatar_voice::speakers::cluster(e, threshold);
    let keep: Vec<bool> = labels.iter().map(|&l| l == labels[r]).collect();
    let clips = clips
        .into_iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(c, _)| c)
        .collect();
    let e = e
        .iter()
        .zip(&keep)
        .filter(|(_, &k)| k)
        .map(|(v, _)| v.clone())
        .collect();
    Ok((clips, Some(e), true))
}

/// Median F0 over (up to 30 of) the clips, in Hz.
fn median_pitch(app: &crate::app::App, clips: &[VoiceClip]) -> Result<Option<f32>> {
    let mut all = Vec::new();
    for c in clips.iter().take(30) {
        let bytes = app.blobs.get(&c.audio)?;
        let audio = avatar_voice::decode("clip.wav", &bytes)
            .with_context(|| format!("clip {}'s audio cannot be read", c.id))?;
        all.extend(avatar_voice::pitch::track(
            &audio.samples,
            audio.sample_rate,
        )?);
    }
    Ok(avatar_voice::pitch::median(&all))
}

/// The base TTS voice when none is named (`--tts-voice`, `tts_voice`).
pub const DEFAULT_TTS_VOICE: &str = "en-us";

/// `avatar speak`.
pub struct SpeakArgs {
    pub text: String,
    pub output: PathBuf,
    pub voice: Option<PathBuf>,
    pub index: Option<PathBuf>,
    pub index_rate: f32,
    /// auto, piper or espeak.
    pub tts: String,
    pub tts_voice: String,
    pub threshold: f32,
}

pub fn speak(ctx: &Ctx, args: SpeakArgs) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let espeak = avatar_voice::tts::Espeak::find()?;
    let model = match &args.voice {
        Some(p) => Some((p.clone(), args.index.clone())),
        None => avatars_voice_model(&app.dir, &avatar.avatar_id),
    };
    let speech = match model {
        Some((pth, index)) => {
            let (clips, _, _) = persons_clips(&app, &avatar, args.threshold)?;
            let target = median_pitch(&app, &clips)?;
            say_in_their_voice(
                &espeak,
                &args.tts,
                &args.text,
                &pth,
                index.as_deref(),
                args.index_rate,
                target,
                &avatar.name,
            )?
        }
        None => match base_voice(&args.tts)? {
            BaseVoice::Piper(piper) => say_piper(piper, &espeak, &args.text, &avatar.name)?,
            BaseVoice::Espeak => {
                let (pitch, pitch_note) =
                    base_voice_pitch(&app, &avatar, &espeak, &args.tts_voice, args.threshold)?;
                say(
                    &espeak,
                    &args.text,
                    &args.tts_voice,
                    pitch,
                    &pitch_note,
                    &avatar.name,
                )?
            }
        },
    };
    std::fs::write(&args.output, &speech.wav)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "wrote {} ({:.1} s): {}",
        args.output.display(),
        speech.seconds,
        speech.voice
    );
    Ok(())
}

/// The avatar's own voice model, where voice training (issue 10) is to put it
/// (DATA/models/AVATAR/voice/model.pth, with model.index beside it when there is one).
pub fn avatars_voice_model(data: &Path, avatar: &str) -> Option<(PathBuf, Option<PathBuf>)> {
    let dir = data.join("models").join(avatar).join("voice");
    let pth = dir.join("model.pth");
    let index = dir.join("model.index");
    pth.is_file()
        .then(|| (pth, index.is_file().then_some(index)))
}

/// The base voice says `text`, then the RVC model turns it into the person's voice (pitch
/// moved to `target_hz`, the median of their clips, when known).
#[allow(clippy::too_many_arguments)]
pub fn say_in_their_voice(
    espeak: &avatar_voice::tts::Espeak,
    tts: &str,
    text: &str,
    pth: &Path,
    index: Option<&Path>,
    index_rate: f32,
    target_hz: Option<f32>,
    name: &str,
) -> Result<Spoken> {
    let model = avatar_voice::conversion::VoiceModel::load(pth, index)
        .with_context(|| format!("cannot load the voice model {}", pth.display()))?;
    let (content, _) = avatar_content::ContentEncoder::load_default()
        .context("voice conversion needs the HuBERT content encoder")?;
    let pitch = avatar_voice::conversion::PitchTracker::best_available();
    let (base, base_name) = match base_voice(tts)? {
        BaseVoice::Piper(p) => (p.speak(espeak, text)?, format!("Piper {}", p.name())),
        BaseVoice::Espeak => (
            espeak.speak(text, DEFAULT_TTS_VOICE, 50)?,
            "espeak-ng".to_string(),
        ),
    };
    let params = avatar_rvc::ConvertParams {
        index_rate,
        ..Default::default()
    };
    let out = avatar_voice::conversion::convert(
        &content,
        &pitch,
        &model,
        &base.samples,
        base.sample_rate,
        target_hz,
        &params,
    )?;
    let voice = format!(
        "{name}'s voice model {} converting the base TTS voice ({base_name}), pitch {:+.1} \
             semitones ({}{}).",
        model.describe(),
        out.semitones,
        pitch.name(),
        match target_hz {
            Some(hz) => format!(", to their median {hz:.0} Hz"),
            None => ", no clips of theirs to match".to_string(),
        }
    );
    Ok(Spoken::new(out.audio, voice, true))
}

/// The base TTS front end.
pub enum BaseVoice {
    /// Piper's neural voice (loaded once per process).
    Piper(&'static avatar_voice::piper::PiperVoice),
    /// espeak-ng, its pitch matched to the person's.
    Espeak,
}

/// The Piper voice of the models directory, loaded on first use (63 MB; an ONNX session).
fn piper_voice() -> Result<&'static avatar_voice::piper::PiperVoice, String> {
    static VOICE: std::sync::OnceLock<Result<avatar_voice::piper::PiperVoice, String>> =
        std::sync::OnceLock::new();
    VOICE
        .get_or_init(|| {
            avatar_voice::piper::PiperVoice::load_default(&avatar_transcribe::default_model_dir())
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// `auto` (Piper when installed, else espeak-ng), `piper` or `espeak`.
pub fn base_voice(choice: &str) -> Result<BaseVoice> {
    match choice {
        "espeak" => Ok(BaseVoice::Espeak),
        "piper" => piper_voice()
            .map(BaseVoice::Piper)
            .map_err(|e| anyhow::anyhow!(e)),
        "auto" => Ok(piper_voice()
            .map(BaseVoice::Piper)
            .unwrap_or(BaseVoice::Espeak)),
        other => anyhow::bail!("unknown TTS front end {other:?}: expected auto, piper or espeak"),
    }
}

/// `text` in Piper's voice, loudness-normalised, as a WAV.
pub fn say_piper(
    piper: &avatar_voice::piper::PiperVoice,
    espeak: &avatar_voice::tts::Espeak,
    text: &str,
    name: &str,
) -> Result<Spoken> {
    let voice = format!(
        "the base TTS voice (Piper {}, its own pitch). No voice model is trained for {name} \
         yet, so this is not their voice.",
        piper.name()
    );
    Ok(Spoken::new(piper.speak(espeak, text)?, voice, false))
}

/// Speech for `avatar speak` and `/api/speak`.
pub struct Spoken {
    pub wav: Vec<u8>,
    pub seconds: f64,
    /// Which voice, in words.
    pub voice: String,
    pub their_voice: bool,
}

impl Spoken {
    /// Speech at −20 LUFS with a −1 dBFS ceiling (like the clips), as a WAV.
    fn new(mut audio: avatar_voice::Audio, voice: String, their_voice: bool) -> Spoken {
        avatar_voice::dsp::normalize_loudness(&mut audio.samples, audio.sample_rate, -20.0, 0.891);
        Spoken {
            wav: avatar_voice::wav::encode_wav(&audio.samples, audio.sample_rate),
            seconds: audio.duration_ms() as f64 / 1000.0,
            voice,
            their_voice,
        }
    }
}

impl From<Spoken> for avatar_query::Speech {
    fn from(s: Spoken) -> Self {
        avatar_query::Speech {
            wav: s.wav,
            voice: s.voice,
            their_voice: s.their_voice,
        }
    }
}

/// The base TTS voice's pitch for the avatar (matched to the median of their clips, espeak's
/// default without clips) and how it was chosen, in words. Reads the clips: hold the data
/// directory only for this, not for the synthesis.
pub fn base_voice_pitch(
    app: &crate::app::App,
    avatar: &avatar_schemas::AvatarCreated,
    espeak: &avatar_voice::tts::Espeak,
    tts_voice: &str,
    threshold: f32,
) -> Result<(u8, String)> {
    let (clips, _, confirmed) = persons_clips(app, avatar, threshold)?;
    let target = median_pitch(app, &clips)?;
    Ok(match target {
        Some(hz) => {
            let (p, got) = espeak.match_pitch(tts_voice, hz)?;
            (
                p,
                format!(
                    "pitch matched to {}'s median {hz:.0} Hz{} (espeak pitch {p}, {got:.0} Hz)",
                    avatar.name,
                    if confirmed {
                        ""
                    } else {
                        " (all clips: no `avatar voice person` yet)"
                    }
                ),
            )
        }
        None => (
            50,
            "espeak's default pitch (no clips of their voice yet)".to_string(),
        ),
    })
}

/// The median F0 of the person's clips (all clips until one is confirmed as theirs).
pub fn persons_median_pitch(
    app: &crate::app::App,
    avatar: &avatar_schemas::AvatarCreated,
    threshold: f32,
) -> Result<Option<f32>> {
    let (clips, _, _) = persons_clips(app, avatar, threshold)?;
    median_pitch(app, &clips)
}

/// `text` in the base TTS voice at `pitch`, loudness-normalised, as a WAV.
pub fn say(
    espeak: &avatar_voice::tts::Espeak,
    text: &str,
    tts_voice: &str,
    pitch: u8,
    pitch_note: &str,
    name: &str,
) -> Result<Spoken> {
    let voice = format!(
        "the base TTS voice (espeak-ng {tts_voice}), {pitch_note}. No voice model is trained \
         for {name} yet, so this is not their voice."
    );
    Ok(Spoken::new(
        espeak.speak(text, tts_voice, pitch)?,
        voice,
        false,
    ))
}

/// Sentences the base voice says for `voice eval`.
const EVAL_SENTENCES: &[&str] = &[
    "When I was a girl we walked to school along the river every morning.",
    "Always finish what you start, and tell the truth even when it costs you.",
    "The best bread is the one you bake for somebody else on a cold Sunday.",
];

fn centroid(vs: &[&Vec<f32>]) -> Vec<f32> {
    let dim = vs.first().map(|v| v.len()).unwrap_or(0);
    let mut c = vec![0f32; dim];
    for v in vs {
        for (a, b) in c.iter_mut().zip(v.iter()) {
            *a += b;
        }
    }
    let n = c.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    c.iter().map(|x| x / n).collect()
}

/// `avatar voice eval`: how close speech is to the person's real voice, with the figures that
/// keep similarity honest: pitch, and intelligibility (Whisper's word error rate on the
/// speech against the text it was asked to say).
pub fn eval(
    ctx: &Ctx,
    as_json: bool,
    tts: &str,
    tts_voice: &str,
    voice: Option<&Path>,
    threshold: f32,
) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let (clips, embeddings, confirmed) = persons_clips(&app, &avatar, threshold)?;
    let Some(embeddings) = embeddings else {
        anyhow::bail!(
            "voice eval needs clips of {}'s voice and the speaker encoder \
             (avatar ingest RECORDINGS; infra/fetch-models.sh resemblyzer)",
            avatar.name
        );
    };
    if clips.len() < 2 {
        anyhow::bail!(
            "voice eval needs at least 2 clips of {}'s voice (has {})",
            avatar.name,
            clips.len()
        );
    }
    // Ceiling: each real clip against the centroid of the others.
    let real: Vec<f32> = (0..embeddings.len())
        .map(|i| {
            let others: Vec<&Vec<f32>> = embeddings
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| v)
                .collect();
            avatar_voice::speaker::cosine(&embeddings[i], &centroid(&others))
        })
        .collect();
    let all: Vec<&Vec<f32>> = embeddings.iter().collect();
    let person = centroid(&all);
    let person_f0 = median_pitch(&app, &clips)?;

    let weights = avatar_voice::speaker::default_weights()
        .context("the speaker encoder is not installed (infra/fetch-models.sh resemblyzer)")?;
    let encoder = avatar_voice::speaker::SpeakerEncoder::load(&weights)?;
    let espeak = avatar_voice::tts::Espeak::find()?;
    let front = base_voice(tts)?;
    let pitch = match (&front, person_f0) {
        (BaseVoice::Espeak, Some(hz)) => espeak.match_pitch(tts_voice, hz)?.0,
        _ => 50,
    };
    let base_name = match &front {
        BaseVoice::Piper(p) => format!("Piper {}", p.name()),
        BaseVoice::Espeak => format!("espeak-ng {tts_voice}, pitch {pitch}"),
    };
    let whisper = crate::app::SpeechModel::load();
    let dnsmos = avatar_voice::mos::Dnsmos::load_default(&avatar_transcribe::default_model_dir());
    let rate_mos = |samples: &[f32], rate: u32| -> Result<Option<avatar_voice::mos::Mos>> {
        let Ok(d) = &dnsmos else { return Ok(None) };
        let at_16k = avatar_voice::dsp::resample(samples, rate, avatar_voice::mos::RATE)?;
        Ok(Some(d.rate(&at_16k)?))
    };
    let mut real_mos = Vec::new();
    if dnsmos.is_ok() {
        for c in clips.iter().take(5) {
            let bytes = app.blobs.get(&c.audio)?;
            let a = avatar_voice::decode("clip.wav", &bytes)?;
            real_mos.extend(rate_mos(&a.samples, a.sample_rate)?);
        }
    }
    let measure = |a: &avatar_voice::Audio, text: &str, fig: &mut Figures| -> Result<()> {
        fig.mos.extend(rate_mos(&a.samples, a.sample_rate)?);
        let e = avatar_voice::speakers::embed_clip(&encoder, &a.samples, a.sample_rate)?;
        fig.similarity
            .push(avatar_voice::speaker::cosine(&e, &person));
        let f0 = avatar_voice::pitch::track(&a.samples, a.sample_rate)?;
        fig.f0.extend(&f0);
        fig.tracks.push(f0);
        if let Ok(w) = &whisper {
            let heard = transcribe_samples(w, &a.samples, a.sample_rate)?;
            fig.errors += avatar_transcribe::word_errors(text, &heard);
        }
        Ok(())
    };
    // Their voice model, when there is one: the base voice's sentences converted.
    let model = match voice {
        Some(p) => Some((p.to_path_buf(), None)),
        None => avatars_voice_model(&app.dir, &avatar.avatar_id),
    };
    let converter = model
        .as_ref()
        .map(|(pth, index)| load_converter(pth, index.as_deref()).map_err(|e| format!("{e:#}")));
    let mut base = Figures::default();
    let mut generated = Figures::default();
    let mut f0_errors: Vec<(f32, f32)> = Vec::new();
    let mut semitones = None;
    for s in EVAL_SENTENCES {
        let a = match &front {
            BaseVoice::Piper(p) => p.speak(&espeak, s)?,
            BaseVoice::Espeak => espeak.speak(s, tts_voice, pitch)?,
        };
        measure(&a, s, &mut base)?;
        if let Some(Ok((m, content, tracker))) = &converter {
            let out = avatar_voice::conversion::convert(
                content,
                tracker,
                m,
                &a.samples,
                a.sample_rate,
                person_f0,
                &avatar_rvc::ConvertParams::default(),
            )?;
            semitones = Some(out.semitones);
            measure(&out.audio, s, &mut generated)?;
            // F0 error: the converted speech against the base speech's contour moved by the
            // same shift (what the conversion was asked to produce).
            if let (Some(src), Some(got)) = (base.tracks.last(), generated.tracks.last()) {
                let factor = 2f32.powf(out.semitones / 12.0);
                let wanted: Vec<f32> = src.iter().map(|f| f * factor).collect();
                f0_errors.extend(avatar_voice::pitch::f0_error(&wanted, got));
            }
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    let has_generated = !generated.similarity.is_empty();
    let wer = match &whisper {
        Ok(w) => serde_json::json!({
            "model": w.name(),
            "base_tts": base.errors.rate(),
            "generated": has_generated.then(|| generated.errors.rate()),
        }),
        Err(_) => serde_json::Value::Null,
    };
    let generated_note = match (&model, &converter) {
        (None, _) => Some("generated speech (no voice model for them yet)".to_string()),
        (_, Some(Err(e))) => Some(format!("generated speech ({e})")),
        _ => None,
    };
    let mut missing: Vec<String> = generated_note.into_iter().collect();
    if let Err(e) = &whisper {
        missing.push(format!("WER ({e:#})"));
    }
    if let Err(e) = &dnsmos {
        missing.push(format!("MOS ({e})"));
    }
    let mos_mean = |v: &[avatar_voice::mos::Mos]| {
        (!v.is_empty()).then(|| {
            let k = v.len() as f32;
            avatar_voice::mos::Mos {
                sig: v.iter().map(|m| m.sig).sum::<f32>() / k,
                bak: v.iter().map(|m| m.bak).sum::<f32>() / k,
                ovrl: v.iter().map(|m| m.ovrl).sum::<f32>() / k,
            }
        })
    };
    let mos = dnsmos.is_ok().then(|| {
        serde_json::json!({
            "model": "DNSMOS P.835",
            "real_clips": mos_mean(&real_mos),
            "base_tts": mos_mean(&base.mos),
            "generated": mos_mean(&generated.mos),
        })
    });
    let f0_error = (!f0_errors.is_empty()).then(|| {
        serde_json::json!({
            "cents": mean(&f0_errors.iter().map(|e| e.0).collect::<Vec<_>>()),
            "voicing_mismatch": mean(&f0_errors.iter().map(|e| e.1).collect::<Vec<_>>()),
        })
    });
    let base_median = avatar_voice::pitch::median(&base.f0);
    let generated_median = avatar_voice::pitch::median(&generated.f0);
    let report = serde_json::json!({
        "avatar": avatar.avatar_id,
        "clips": clips.len(),
        "voice_confirmed": confirmed,
        "speaker_similarity": {
            "real_clips": mean(&real),
            "base_tts": mean(&base.similarity),
            "generated": has_generated.then(|| mean(&generated.similarity)),
        },
        "median_f0_hz": {
            "real": person_f0,
            "base_tts": base_median,
            "generated": generated_median,
        },
        "f0_error_cents": f0_error,
        "pitch_shift_semitones": semitones,
        "wer": wer,
        "mos": mos,
        "base_tts": base_name,
        "voice_model": converter.as_ref().and_then(|c| c.as_ref().ok()).map(|(m, _, _)| m.describe()),
        "not_measured": missing.join("; "),
    });
    if as_json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{}'s voice: {} clip(s){}",
        avatar.name,
        clips.len(),
        if confirmed {
            ""
        } else {
            " (all voices: name theirs with `avatar voice person`)"
        }
    );
    let generated_line = |v: Option<f32>| match (v, &model) {
        (Some(v), _) => format!("{v:.3}"),
        (None, None) => "not trained yet".to_string(),
        (None, Some(_)) => "not measured (see below)".to_string(),
    };
    println!("speaker similarity (resemblyzer, cosine to their voice):");
    println!("  their real clips (each vs the rest)  {:.3}", mean(&real));
    println!(
        "  base TTS voice ({base_name})  {:.3}",
        mean(&base.similarity)
    );
    println!(
        "  generated (their voice model)        {}",
        generated_line(has_generated.then(|| mean(&generated.similarity)))
    );
    if let (Some(r), Some(b)) = (person_f0, base_median) {
        println!(
            "median pitch: theirs {r:.0} Hz, base TTS {b:.0} Hz ({:+.1} semitones){}",
            avatar_voice::pitch::semitones(r, b),
            generated_median
                .map(|g| format!(", generated {g:.0} Hz"))
                .unwrap_or_default()
        );
    }
    if let Some(e) = &f0_error {
        println!(
            "F0 error of the generated speech: {:.0} cents, voicing mismatch {:.0} %",
            e["cents"].as_f64().unwrap_or(0.0),
            100.0 * e["voicing_mismatch"].as_f64().unwrap_or(0.0)
        );
    }
    match &whisper {
        Ok(w) => println!(
            "intelligibility (WER of {} on the speech vs its text, lower is better):\n  \
             base TTS voice                       {:.3}\n  \
             generated (their voice model)        {}",
            w.name(),
            base.errors.rate(),
            generated_line(has_generated.then(|| generated.errors.rate() as f32))
        ),
        Err(e) => println!("intelligibility (WER) not measured: {e:#}"),
    }
    if dnsmos.is_ok() {
        let line = |m: Option<avatar_voice::mos::Mos>| match m {
            Some(m) => format!(
                "{:.2} (speech {:.2}, background {:.2})",
                m.ovrl, m.sig, m.bak
            ),
            None => "—".to_string(),
        };
        println!("predicted MOS (DNSMOS P.835 overall, 1–5):");
        println!(
            "  their real clips                     {}",
            line(mos_mean(&real_mos))
        );
        println!(
            "  base TTS voice                       {}",
            line(mos_mean(&base.mos))
        );
        println!(
            "  generated (their voice model)        {}",
            line(mos_mean(&generated.mos))
        );
    }
    if !missing.is_empty() {
        println!("not measured: {}", missing.join("; "));
    }
    Ok(())
}

/// What converting needs: the voice model, the content encoder and the best pitch tracker.
fn load_converter(
    pth: &Path,
    index: Option<&Path>,
) -> Result<(
    avatar_voice::conversion::VoiceModel,
    avatar_content::ContentEncoder,
    avatar_voice::conversion::PitchTracker,
)> {
    let model = avatar_voice::conversion::VoiceModel::load(pth, index)?;
    let (content, _) = avatar_content::ContentEncoder::load_default()
        .context("voice conversion needs the HuBERT content encoder")?;
    Ok((
        model,
        content,
        avatar_voice::conversion::PitchTracker::best_available(),
    ))
}

/// Similarity, pitch and word errors of a set of utterances.
#[derive(Default)]
struct Figures {
    mos: Vec<avatar_voice::mos::Mos>,
    similarity: Vec<f32>,
    f0: Vec<f32>,
    tracks: Vec<Vec<f32>>,
    errors: avatar_transcribe::WordErrors,
}

/// `avatar transcribe FILE…`: segments with their times, or JSON lines. A file that cannot
/// be read is reported and the others still transcribed; the exit status says whether all were.
pub fn transcribe(
    files: &[std::path::PathBuf],
    as_json: bool,
    language: Option<String>,
    model: Option<&std::path::Path>,
) -> Result<()> {
    let whisper = match model {
        Some(dir) => avatar_transcribe::Whisper::load(dir)
            .with_context(|| format!("cannot load the Whisper model in {}", dir.display()))?,
        None => crate::app::SpeechModel::load()?,
    };
    let options = avatar_transcribe::Options {
        language,
        ..Default::default()
    };
    let mut failed = 0;
    for file in files {
        let result = (|| -> Result<avatar_transcribe::Transcript> {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let audio = avatar_voice::decode(&file.to_string_lossy(), &bytes)
                .with_context(|| format!("{}", file.display()))?;
            let at_16k = avatar_voice::dsp::resample(
                &audio.samples,
                audio.sample_rate,
                avatar_transcribe::SAMPLE_RATE,
            )?;
            Ok(whisper.transcribe(&at_16k, &options)?)
        })();
        match result {
            Ok(t) if as_json => println!(
                "{}",
                serde_json::json!({
                    "file": file.display().to_string(),
                    "model": whisper.name(),
                    "language": t.language,
                    "segments": t.segments,
                })
            ),
            Ok(t) => {
                println!(
                    "{} ({}{}):",
                    file.display(),
                    whisper.name(),
                    t.language
                        .as_deref()
                        .map(|l| format!(", language {l}"))
                        .unwrap_or_default()
                );
                if t.segments.is_empty() {
                    println!("  (no words heard)");
                }
                for s in &t.segments {
                    let ms = |secs: f32| (secs.max(0.0) * 1000.0).round() as u64;
                    println!(
                        "  [{} → {}] {}",
                        clock(ms(s.start)),
                        clock(ms(s.end)),
                        s.text
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} file(s) could not be transcribed",
            files.len()
        );
    }
    Ok(())
}

/// Whisper's text of audio at any rate.
pub fn transcribe_samples(
    whisper: &avatar_transcribe::Whisper,
    samples: &[f32],
    rate: u32,
) -> Result<String> {
    let at_16k = avatar_voice::dsp::resample(samples, rate, avatar_transcribe::SAMPLE_RATE)?;
    let t = whisper.transcribe(&at_16k, &avatar_transcribe::Options::default())?;
    Ok(t.text())
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
