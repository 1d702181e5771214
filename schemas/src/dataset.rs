//! The supervised fine-tuning (SFT) dataset: one [`SftExample`] per training conversation.
//!
//! These types are the contract between the dataset builder (`avatar-dataset`), the trainer
//! and anyone reading `avatar dataset show --json` or the Parquet file, so they live here with
//! the other cross-service types and get a JSON Schema.
//!
//! Loss convention: the trainer computes loss on the **last** `assistant` message only; every
//! earlier message (system, user, and earlier assistant turns kept as context) is masked. For
//! `text` examples (documents and code as continued-pretraining text) the whole content is one
//! assistant message, so the whole text is the target.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which part of the dataset an example belongs to. The split is by time: the latest examples
/// are held out, so evaluation asks the model about a period it has not trained on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SftSplit {
    Train,
    Heldout,
}

impl SftSplit {
    pub fn as_str(&self) -> &'static str {
        match self {
            SftSplit::Train => "train",
            SftSplit::Heldout => "heldout",
        }
    }

    /// The inverse of [`SftSplit::as_str`] (for reading Parquet files).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "train" => Some(SftSplit::Train),
            "heldout" => Some(SftSplit::Heldout),
            _ => None,
        }
    }
}

/// Where an example came from, which also says how its turns were built.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SftKind {
    /// A reply by the person in a chat, with the other side's recent messages as context.
    Chat,
    /// The person's reply to an email, with the mail they answered as the user turn.
    Email,
    /// A memory turned into a question and its answer.
    Memory,
    /// A piece of a document or code by the person: one assistant turn, all of it target.
    Text,
}

impl SftKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SftKind::Chat => "chat",
            SftKind::Email => "email",
            SftKind::Memory => "memory",
            SftKind::Text => "text",
        }
    }

    /// The inverse of [`SftKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "chat" => Some(SftKind::Chat),
            "email" => Some(SftKind::Email),
            "memory" => Some(SftKind::Memory),
            "text" => Some(SftKind::Text),
            _ => None,
        }
    }
}

/// The role of one message, as chat templates name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SftRole {
    System,
    User,
    /// The person (the avatar). Only the last assistant message of an example is a target.
    Assistant,
}

impl SftRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            SftRole::System => "system",
            SftRole::User => "user",
            SftRole::Assistant => "assistant",
        }
    }

    /// The inverse of [`SftRole::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "system" => Some(SftRole::System),
            "user" => Some(SftRole::User),
            "assistant" => Some(SftRole::Assistant),
            _ => None,
        }
    }
}

/// One message of a training conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SftMessage {
    pub role: SftRole,
    pub content: String,
}

/// One training conversation. Serialises with `id`, `split` and `messages` first (the shape of
/// `avatar dataset show --json`), then the provenance fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SftExample {
    /// Stable id: a hash of the kind and the target record ids (and the piece number for text),
    /// so rebuilding from the same log gives the same ids.
    pub id: String,
    pub split: SftSplit,
    /// Optional system message, then turns; the last message is the `assistant` target.
    pub messages: Vec<SftMessage>,
    pub kind: SftKind,
    /// Every record whose words appear in the messages (context and target), in order, so a
    /// `forget` of any of them can remove the example.
    pub source_records: Vec<String>,
    /// When the target was written (its latest record); `None` when the source has no date.
    pub timestamp: Option<DateTime<Utc>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_the_cli_shape() {
        let e = SftExample {
            id: "abc".into(),
            split: SftSplit::Heldout,
            messages: vec![
                SftMessage {
                    role: SftRole::User,
                    content: "hi".into(),
                },
                SftMessage {
                    role: SftRole::Assistant,
                    content: "hello".into(),
                },
            ],
            kind: SftKind::Chat,
            source_records: vec!["r1".into(), "r2".into()],
            timestamp: Some("2024-03-12T19:02:00Z".parse().unwrap()),
        };
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.starts_with(
                r#"{"id":"abc","split":"heldout","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],"kind":"chat""#
            ),
            "{json}"
        );
        let back: SftExample = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn names_round_trip() {
        for s in [SftSplit::Train, SftSplit::Heldout] {
            assert_eq!(SftSplit::parse(s.as_str()), Some(s));
        }
        for k in [
            SftKind::Chat,
            SftKind::Email,
            SftKind::Memory,
            SftKind::Text,
        ] {
            assert_eq!(SftKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for r in [SftRole::System, SftRole::User, SftRole::Assistant] {
            assert_eq!(SftRole::parse(r.as_str()), Some(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(SftKind::parse("Chat"), None);
    }
}
