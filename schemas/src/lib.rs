//! The event envelope and the payloads that travel through the log.
//!
//! Every service reads and writes these types and nothing else, so that the log can be
//! replayed by any later version of Avatar: payloads carry a `schema_version`, and
//! [`upcast`] migrates old versions before they are deserialised. JSON Schema files for
//! every payload are generated into `schemas/json/` (`cargo run -p avatar-schemas --bin
//! gen-json-schemas`) and a test fails when they are stale.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub mod dataset;
mod upcast;
pub use dataset::{SftExample, SftKind, SftMessage, SftRole, SftSplit};
pub use upcast::{upcast, UpcastError};

/// Current schema version of every payload kind. Bump the kind's number and add an
/// upcaster in `upcast.rs` (plus a fixture under `schemas/fixtures/`) when a payload changes.
pub const SCHEMA_VERSION: u32 = 1;

/// One event in the log. Large bytes never travel here: artifacts are referenced by sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// UUIDv7: time-ordered, unique.
    pub id: Uuid,
    /// Whose event this is (the avatar id, a slug).
    pub avatar: String,
    pub schema_version: u32,
    pub occurred_at: DateTime<Utc>,
    /// Where the content came from: `file:///…`, `file:///x.zip#inner/path`, `memory:`, `imap://…`.
    pub source: String,
    /// The event that caused this one (e.g. the artifact a record was parsed from).
    pub causation_id: Option<Uuid>,
    #[serde(flatten)]
    pub payload: Payload,
}

/// Every payload kind, tagged by `kind` (which doubles as the topic name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "payload")]
pub enum Payload {
    #[serde(rename = "identity.avatar_created")]
    AvatarCreated(AvatarCreated),
    #[serde(rename = "raw.artifact")]
    ArtifactReceived(ArtifactReceived),
    #[serde(rename = "records.message")]
    Message(Record),
    #[serde(rename = "records.document")]
    Document(Record),
    #[serde(rename = "records.memory")]
    Memory(MemoryAdded),
    #[serde(rename = "deadletter")]
    DeadLetter(DeadLetter),
    #[serde(rename = "control.forget")]
    Forget(Forget),
    #[serde(rename = "identity.aliases")]
    AliasesLinked(AliasesLinked),
    #[serde(rename = "train.results")]
    TrainResult(TrainResult),
    #[serde(rename = "records.recording")]
    VoiceClip(VoiceClip),
    #[serde(rename = "identity.voice_reference")]
    VoiceReference(VoiceReference),
}

impl Payload {
    /// The topic/kind string, as serialised.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::AvatarCreated(_) => "identity.avatar_created",
            Payload::ArtifactReceived(_) => "raw.artifact",
            Payload::Message(_) => "records.message",
            Payload::Document(_) => "records.document",
            Payload::Memory(_) => "records.memory",
            Payload::DeadLetter(_) => "deadletter",
            Payload::Forget(_) => "control.forget",
            Payload::AliasesLinked(_) => "identity.aliases",
            Payload::TrainResult(_) => "train.results",
            Payload::VoiceClip(_) => "records.recording",
            Payload::VoiceReference(_) => "identity.voice_reference",
        }
    }

    /// Events that come from outside (users, sources). Everything else is derived from them by
    /// processors, so replay copies only these and recomputes the rest.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Payload::AvatarCreated(_)
                | Payload::ArtifactReceived(_)
                | Payload::Memory(_)
                | Payload::Forget(_)
                | Payload::AliasesLinked(_)
                | Payload::VoiceReference(_)
        )
    }
}

impl Envelope {
    /// A new event with a fresh UUIDv7 and the current time.
    pub fn new(avatar: impl Into<String>, source: impl Into<String>, payload: Payload) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            avatar: avatar.into(),
            schema_version: SCHEMA_VERSION,
            occurred_at: Utc::now(),
            source: source.into(),
            causation_id: None,
            payload,
        }
    }

    pub fn caused_by(mut self, cause: Uuid) -> Self {
        self.causation_id = Some(cause);
        self
    }

    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }

    /// The idempotency key: appending an event whose key is already in the log is a no-op.
    /// Same bytes for the same avatar are one artifact, whatever path they came from; a
    /// record id is written once.
    pub fn dedup_key(&self) -> Option<String> {
        match &self.payload {
            Payload::AvatarCreated(a) => Some(format!("avatar:{}", a.avatar_id)),
            Payload::ArtifactReceived(a) => Some(format!("artifact:{}:{}", self.avatar, a.sha256)),
            Payload::Message(r) | Payload::Document(r) => Some(format!("record:{}", r.id)),
            Payload::VoiceClip(c) => Some(format!("clip:{}", c.id)),
            // One dead letter per artifact; one per refused input (same name, same reason) for
            // inputs refused before they became artifacts, so re-ingesting does not repeat it.
            Payload::DeadLetter(d) => Some(match &d.artifact {
                Some(a) => format!("deadletter:{}:{a}", self.avatar),
                None => {
                    let mut h = Sha256::new();
                    h.update(d.name.as_bytes());
                    h.update(b"\n");
                    h.update(d.reason.as_bytes());
                    format!(
                        "deadletter:{}:refused:{}",
                        self.avatar,
                        hex::encode(&h.finalize()[..16])
                    )
                }
            }),
            Payload::Memory(_)
            | Payload::Forget(_)
            | Payload::AliasesLinked(_)
            | Payload::VoiceReference(_)
            | Payload::TrainResult(_) => None,
        }
    }

    /// Serialise to the JSON stored in the log.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Parse an event from the log, upcasting older payload versions first.
    pub fn from_json(text: &str) -> Result<Envelope, UpcastError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let value = upcast(value)?;
        Ok(serde_json::from_value(value)?)
    }
}

/// A person whose avatar is being built. Aliases decide `author_is_person` on every record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AvatarCreated {
    pub avatar_id: String,
    pub name: String,
    /// Names, email addresses, phone numbers and handles the person used.
    pub aliases: Vec<String>,
}

/// The user says these aliases are one participant (an email, a phone number, a Slack id…);
/// with `is_person`, that participant is the avatar's person, so their records count as theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AliasesLinked {
    pub aliases: Vec<String>,
    pub is_person: bool,
}

/// Bytes arrived from a source; they are in the blob store under `sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactReceived {
    pub sha256: String,
    pub size: u64,
    /// File name (or path inside an archive) as the source named it; used to sniff the format.
    pub name: String,
    /// A format the user forced, or that the source knows (e.g. `eml` for a Maildir entry).
    pub format_hint: Option<String>,
}

/// A clip of speech cut from a recording (voice note, video, phone call): the unit that voice
/// training, speaker clustering and transcription work on. The clip's own audio is a blob, so
/// training never decodes the whole recording again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VoiceClip {
    /// `artifact_record_id(avatar, recording sha256, ordinal)`: stable across replays.
    pub id: String,
    pub avatar: String,
    /// URI of the recording.
    pub source: String,
    /// sha256 of the recording.
    pub artifact: String,
    pub ordinal: u32,
    /// Where the clip is in the recording, in milliseconds from its start.
    pub start_ms: u64,
    pub end_ms: u64,
    /// sha256 of the clip's audio (mono 16-bit WAV, high-passed, loudness-normalised).
    pub audio: String,
    pub sample_rate: u32,
    /// Level before normalisation, dBFS RMS.
    pub rms_dbfs: f32,
}

/// The user says this clip is the person speaking: the clips of the same voice are theirs
/// (recordings hold family and friends too). The latest one counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VoiceReference {
    /// Id of a `records.recording` clip.
    pub clip: String,
}

/// What kind of thing a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A chat message.
    Message,
    /// An email.
    Email,
    /// A document or note.
    Document,
    /// A memory added by hand.
    Memory,
    /// Words spoken in a recording (a clip of a voice note or video), transcribed by Whisper.
    Transcript,
}

impl RecordKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordKind::Message => "message",
            RecordKind::Email => "email",
            RecordKind::Document => "document",
            RecordKind::Memory => "memory",
            RecordKind::Transcript => "transcript",
        }
    }
}

/// One normalised piece of writing: the row of the records dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// Stable id derived from content (artifact hash + position), so replay gives the same ids.
    pub id: String,
    pub avatar: String,
    /// URI of the file (or archive entry) the record came from.
    pub source: String,
    /// Parser that produced it: `mbox`, `eml`, `maildir`, `whatsapp`, `telegram`, `text`,
    /// `markdown`, `memory`.
    pub format: String,
    pub kind: RecordKind,
    /// Conversation, email thread or document the record belongs to.
    pub thread: String,
    /// When it was written, in UTC; `None` when the source has no date.
    pub timestamp: Option<DateTime<Utc>>,
    /// Who wrote it, as the source names them.
    pub author: Option<String>,
    /// Whether the avatar's person wrote it (matched against the aliases).
    pub author_is_person: bool,
    /// The text that counts as the author's writing (quotes and signatures removed for mail).
    pub text: String,
    pub title: Option<String>,
    /// Message-ID (mail) or message id (chat) within the source.
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    /// sha256 of the artifact it was parsed from (empty for memories).
    pub artifact: String,
    /// Position within the artifact.
    pub ordinal: u32,
}

/// The id of the `ordinal`-th record parsed from an artifact of `avatar`. The avatar is part
/// of it because two people may hold the same file (a family chat, a mailing list archive):
/// their records must not overwrite or deduplicate each other.
pub fn artifact_record_id(avatar: &str, artifact_sha256: &str, ordinal: u32) -> String {
    record_id(&format!("{avatar}/{artifact_sha256}"), ordinal)
}

/// Derive a record id from a unique key (an event id, or avatar/artifact hash) and a position.
pub fn record_id(artifact_sha256: &str, ordinal: u32) -> String {
    let mut h = Sha256::new();
    h.update(artifact_sha256.as_bytes());
    h.update(b":");
    h.update(ordinal.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A training run of one of the avatar's models ended (finished or stopped with a checkpoint).
/// Derived, not input: replay does not copy it; a rebuilt data directory retrains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrainResult {
    /// Which model: `llm` (the personal language model) or `voice`.
    pub model: String,
    /// The base model it was trained from (path or Hugging Face id).
    pub base: String,
    /// Optimiser steps done in total (resumed ones included).
    pub steps: u32,
    pub final_loss: Option<f64>,
    /// sha256 of the training examples: another hash later means the model is stale.
    pub dataset_sha256: String,
    /// Where the adapter was written, relative to the data directory.
    pub output: String,
    /// True when the run was stopped early (a checkpoint was kept to resume from).
    pub interrupted: bool,
}

/// A memory added by hand by the person or their family/colleagues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MemoryAdded {
    pub text: String,
    pub title: Option<String>,
    /// Who added it (free text; the person's own name makes it count as theirs).
    pub added_by: Option<String>,
}

/// Input that could not be processed, with the reason. Nothing is lost: the artifact stays in
/// the blob store and can be reprocessed when a parser learns the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeadLetter {
    /// sha256 of the artifact, when the input was one.
    pub artifact: Option<String>,
    pub name: String,
    /// A short machine-readable class: `empty`, `binary`, `encoding`, `malformed`, `unsupported`, `truncated`.
    pub error_kind: String,
    /// The clear human-readable reason.
    pub reason: String,
}

/// A tombstone: every store removes what it covers, and replay honours it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Forget {
    pub target: ForgetTarget,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForgetTarget {
    Source(String),
    Record(String),
    Before(DateTime<Utc>),
    Participant(String),
}

impl ForgetTarget {
    /// Whether this tombstone removes `record`.
    pub fn covers(&self, record: &Record) -> bool {
        match self {
            ForgetTarget::Source(s) => {
                record.source == *s || record.source.starts_with(&format!("{s}#"))
            }
            ForgetTarget::Record(id) => record.id == *id,
            ForgetTarget::Before(t) => record.timestamp.is_some_and(|ts| ts < *t),
            ForgetTarget::Participant(a) => record
                .author
                .as_deref()
                .is_some_and(|au| au.to_lowercase().contains(&a.to_lowercase())),
        }
    }
}

/// JSON Schemas of the envelope and every payload, by file name.
pub fn json_schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn s<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).unwrap_or(serde_json::Value::Null)
    }
    vec![
        ("envelope.json", s::<Envelope>()),
        ("avatar_created.json", s::<AvatarCreated>()),
        ("artifact_received.json", s::<ArtifactReceived>()),
        ("record.json", s::<Record>()),
        ("memory_added.json", s::<MemoryAdded>()),
        ("dead_letter.json", s::<DeadLetter>()),
        ("forget.json", s::<Forget>()),
        ("aliases_linked.json", s::<AliasesLinked>()),
        ("train_result.json", s::<TrainResult>()),
        ("voice_clip.json", s::<VoiceClip>()),
        ("voice_reference.json", s::<VoiceReference>()),
        ("sft_example.json", s::<SftExample>()),
    ]
}

/// Pretty JSON with sorted keys and a trailing newline, as written to `schemas/json/`.
/// Keys are sorted here because serde_json's key order depends on whether another crate in
/// the build enabled its `preserve_order` feature.
pub fn render_schema(value: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut s = serde_json::to_string_pretty(&sorted(value)).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_kind_and_payload() {
        let e = Envelope::new(
            "ada",
            "file:///tmp/x.txt",
            Payload::ArtifactReceived(ArtifactReceived {
                sha256: "ab".repeat(32),
                size: 3,
                name: "x.txt".into(),
                format_hint: None,
            }),
        );
        let json = e.to_json().unwrap();
        assert!(json.contains("\"kind\":\"raw.artifact\""), "{json}");
        let back = Envelope::from_json(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn record_ids_are_stable_and_distinct() {
        let a = record_id("abc", 0);
        assert_eq!(a, record_id("abc", 0));
        assert_ne!(a, record_id("abc", 1));
        assert_ne!(a, record_id("abd", 0));
        // The same file held by two people gives each their own records.
        assert_ne!(
            artifact_record_id("ada", "abc", 0),
            artifact_record_id("bob", "abc", 0)
        );
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn json_schemas_are_fresh() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
        for (name, value) in json_schemas() {
            let have = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            let have: serde_json::Value = serde_json::from_str(&have).unwrap_or_default();
            assert!(
                have == value,
                "schemas/json/{name} is stale: run `cargo run -p avatar-schemas --bin gen-json-schemas`"
            );
        }
    }

    #[test]
    fn every_past_fixture_still_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                Envelope::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 11, "expected a fixture per payload kind, found {n}");
    }

    #[test]
    fn forget_targets_cover_what_they_name() {
        let r = Record {
            id: "r1".into(),
            avatar: "ada".into(),
            source: "file:///x.zip".into(),
            format: "text".into(),
            kind: RecordKind::Document,
            thread: "t".into(),
            timestamp: Some("2020-01-01T00:00:00Z".parse().unwrap()),
            author: Some("Bob <bob@example.org>".into()),
            author_is_person: false,
            text: "hi".into(),
            title: None,
            message_id: None,
            in_reply_to: None,
            artifact: "a".into(),
            ordinal: 0,
        };
        assert!(ForgetTarget::Source("file:///x.zip".into()).covers(&r));
        assert!(!ForgetTarget::Source("file:///x".into()).covers(&r));
        assert!(ForgetTarget::Record("r1".into()).covers(&r));
        assert!(ForgetTarget::Before("2021-01-01T00:00:00Z".parse().unwrap()).covers(&r));
        assert!(!ForgetTarget::Before("2019-01-01T00:00:00Z".parse().unwrap()).covers(&r));
        assert!(ForgetTarget::Participant("bob@example.org".into()).covers(&r));
    }
}
