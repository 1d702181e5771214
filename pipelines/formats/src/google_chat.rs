//! Google Chat and legacy Hangouts from Google Takeout.
//!
//! - Google Chat: `Google Chat/Groups/<DM or Space id>/messages.json`,
//!   `{"messages": [{"creator": {"name", "email", "user_type"}, "created_date", "text",
//!   "topic_id", "message_id", "attached_files", "annotations"}]}`. `created_date` is written
//!   for people, in the account's language: "Tuesday, March 7, 2023 at 2:05:12 PM UTC"
//!   (often with a narrow no-break space before PM) or "Tuesday, 7 March 2023 at 14:05:12 UTC".
//! - Hangouts: `Hangouts/Hangouts.json`, `{"conversations": [{"conversation": {
//!   "conversation": {"name", "participant_data": [{"id": {"gaia_id"}, "fallback_name"}]}},
//!   "events": [{"sender_id": {"gaia_id"}, "timestamp" (µs), "event_id", "event_type",
//!   "chat_message": {"message_content": {"segment": [{"type", "text"}]}}}]}]}`, and the
//!   pre-2018 layout with `conversation_state[].conversation_state.{conversation, event}`.
//!
//! Choices that a reader of the records should know about:
//! - Google Chat authors are `Name <email>` (like mail), so identity resolution can match the
//!   address; Hangouts authors are the participant's `fallback_name`, else their gaia id.
//! - In a threaded space every message of a topic after the first replies to the topic's
//!   first message (`in_reply_to`), which is how the Chat UI shows it.
//! - A date in a language or zone other than English/UTC is kept as `None` and counted in a
//!   warning, rather than guessed.
//! - Messages without text (files only), bot messages, and Hangouts events that are not
//!   chat messages (calls, renames, joins) are skipped and counted.

use std::collections::HashMap;

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::{json::Lenient, ErrorKind, FormatError, Item, Parsed};

/// Chat's `creator` + `created_date`, or Hangouts' conversations with `participant_data`.
pub fn looks_like(name: &str, head: &str) -> bool {
    if !head.starts_with('{') {
        return false;
    }
    let chat = head.contains("\"creator\"") && head.contains("\"created_date\"");
    let hangouts = (head.contains("\"conversations\"") || head.contains("\"conversation_state\""))
        && (head.contains("\"participant_data\"")
            || head.contains("\"chat_message\"")
            || name.to_ascii_lowercase().ends_with("hangouts.json"));
    chat || hangouts
}

/// Parse a Google Chat `messages.json` or a Hangouts `Hangouts.json`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; Takeout writes UTF-8 JSON, so the file was changed or is not an export", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let export: Export = serde_json::from_str(text).map_err(|e| json_error(name, &e, text))?;
    let mut b = Builder::default();
    if let Some(messages) = export.messages {
        b.chat(&chat_thread(name), messages);
    } else if export.conversations.is_some() || export.conversation_state.is_some() {
        for c in export.conversations.into_iter().flatten() {
            let meta = c
                .conversation
                .and_then(|c| c.conversation)
                .unwrap_or_default();
            b.hangout(meta, c.events);
        }
        for c in export.conversation_state.into_iter().flatten() {
            let state = c.conversation_state.unwrap_or_default();
            b.hangout(state.conversation.unwrap_or_default(), state.event);
        }
    } else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: JSON without `messages` (Google Chat) or `conversations` (Hangouts); take `Google Chat/Groups/*/messages.json` or `Hangouts/Hangouts.json` from the Takeout archive"),
        ));
    }
    Ok(b.finish(name))
}

/// The group folder (`DM 8lZ…`, `Space AAAA…`) of `Google Chat/Groups/<id>/messages.json`.
fn chat_thread(name: &str) -> String {
    let mut parts = name.rsplit(['/', '\\']);
    parts.next();
    parts
        .next()
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("Google Chat {p}"))
        .unwrap_or_else(|| "Google Chat".to_string())
}

#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    skipped: usize,
    no_dates: usize,
    unreadable: usize,
    first_error: Option<String>,
}

impl Builder {
    fn take<T>(&mut self, m: Lenient<T>) -> Option<T> {
        match m.0 {
            Ok(m) => Some(m),
            Err(e) => {
                self.unreadable += 1;
                self.first_error.get_or_insert(e);
                None
            }
        }
    }

    fn chat(&mut self, thread: &str, messages: Vec<Lenient<ChatMessage>>) {
        let mut topic_roots: HashMap<String, String> = HashMap::new();
        for m in messages {
            let Some(m) = self.take(m) else { continue };
            let creator = m.creator.unwrap_or_default();
            let text = m.text.unwrap_or_default();
            if text.trim().is_empty() || creator.user_type.as_deref() == Some("Bot") {
                self.skipped += 1;
                continue;
            }
            let timestamp = m.created_date.as_deref().and_then(chat_date);
            if timestamp.is_none() {
                self.no_dates += 1;
            }
            let in_reply_to = match (&m.topic_id, &m.message_id) {
                (Some(topic), Some(id)) => match topic_roots.get(topic) {
                    Some(root) => Some(root.clone()),
                    None => {
                        topic_roots.insert(topic.clone(), id.clone());
                        None
                    }
                },
                _ => None,
            };
            let author = match (creator.name.filter(|n| !n.trim().is_empty()), creator.email) {
                (Some(n), Some(e)) if !e.is_empty() => Some(format!("{n} <{e}>")),
                (Some(n), _) => Some(n),
                (None, e) => e.filter(|e| !e.is_empty()),
            };
            self.items.push(Item {
                kind: RecordKind::Message,
                thread: thread.to_string(),
                timestamp,
                author,
                text,
                title: None,
                message_id: m.message_id,
                in_reply_to,
                from_owner: false,
            });
        }
    }

    fn hangout(&mut self, meta: HangoutMeta, events: Vec<Lenient<Event>>) {
        let names: HashMap<String, String> = meta
            .participant_data
            .iter()
            .filter_map(|p| Some((p.id.as_ref()?.gaia_id.clone()?, p.fallback_name.clone()?)))
            .collect();
        let thread = meta
            .name
            .filter(|n| !n.trim().is_empty())
            .or_else(|| {
                let mut people: Vec<&str> = names.values().map(String::as_str).collect();
                people.sort_unstable();
                (!people.is_empty()).then(|| people.join(", "))
            })
            .or_else(|| {
                meta.id
                    .and_then(|i| i.id)
                    .map(|id| format!("Hangouts {id}"))
            })
            .unwrap_or_else(|| "Hangouts".to_string());
        for e in events {
            let Some(e) = self.take(e) else { continue };
            let segments = e
                .chat_message
                .and_then(|c| c.message_content)
                .map(|c| c.segment)
                .unwrap_or_default();
            let text: String = segments
                .iter()
                .map(|s| match (s.kind.as_deref(), s.text.as_deref()) {
                    (Some("LINE_BREAK"), t) => t.unwrap_or("\n"),
                    (_, t) => t.unwrap_or(""),
                })
                .collect();
            let regular = matches!(e.event_type.as_deref(), None | Some("REGULAR_CHAT_MESSAGE"));
            if !regular || text.trim().is_empty() {
                self.skipped += 1;
                continue;
            }
            let timestamp = e
                .timestamp
                .as_deref()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_micros);
            if timestamp.is_none() {
                self.no_dates += 1;
            }
            let gaia = e.sender_id.and_then(|s| s.gaia_id);
            let author = gaia.map(|g| names.get(&g).cloned().unwrap_or(g));
            self.items.push(Item {
                kind: RecordKind::Message,
                thread: thread.clone(),
                timestamp,
                author,
                text,
                title: None,
                message_id: e.event_id,
                in_reply_to: None,
                from_owner: false,
            });
        }
    }

    fn finish(self, name: &str) -> Parsed {
        let mut warnings = Vec::new();
        if self.unreadable > 0 {
            warnings.push(format!(
                "{name}: {} message(s) of an unexpected shape were left out (first: {})",
                self.unreadable,
                self.first_error.unwrap_or_default()
            ));
        }
        if self.no_dates > 0 {
            warnings.push(format!(
                "{name}: {} message(s) have a date Avatar cannot read (only English dates in UTC are understood; export Takeout with the account language set to English)",
                self.no_dates
            ));
        }
        Parsed {
            format: "google-chat",
            items: self.items,
            skipped: self.skipped,
            warnings,
        }
    }
}

/// "Tuesday, March 7, 2023 at 2:05:12 PM UTC" or "Tuesday, 7 March 2023 at 14:05:12 UTC".
fn chat_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.replace(['\u{202f}', '\u{a0}'], " ");
    let s = s.trim();
    let s = s.strip_suffix(" UTC").or_else(|| s.strip_suffix(" GMT"))?;
    let s = s.split_once(", ").map(|(_, rest)| rest).unwrap_or(s);
    [
        "%B %d, %Y at %I:%M:%S %p",
        "%d %B %Y at %H:%M:%S",
        "%B %d, %Y at %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|dt| dt.and_utc())
}

/// serde's error classes onto ours: EOF = cut off, syntax = damaged, data = another shape.
fn json_error(name: &str, e: &serde_json::Error, text: &str) -> FormatError {
    crate::json::object_error(
        name,
        e,
        text,
        &crate::json::Expected {
            cut_off: "the Takeout file was cut off; unpack it again",
            object: "a Google Chat or Hangouts file is a JSON object",
            layout: "a Google Chat/Hangouts export",
        },
    )
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Export {
    messages: Option<Vec<Lenient<ChatMessage>>>,
    conversations: Option<Vec<Conversation>>,
    conversation_state: Option<Vec<OldConversation>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatMessage {
    creator: Option<Creator>,
    created_date: Option<String>,
    text: Option<String>,
    topic_id: Option<String>,
    message_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Creator {
    name: Option<String>,
    email: Option<String>,
    user_type: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Conversation {
    conversation: Option<ConversationWrap>,
    events: Vec<Lenient<Event>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConversationWrap {
    conversation: Option<HangoutMeta>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OldConversation {
    conversation_state: Option<OldState>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OldState {
    conversation: Option<HangoutMeta>,
    event: Vec<Lenient<Event>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HangoutMeta {
    id: Option<ConversationId>,
    name: Option<String>,
    participant_data: Vec<Participant>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConversationId {
    id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Participant {
    id: Option<UserId>,
    fallback_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserId {
    gaia_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Event {
    sender_id: Option<UserId>,
    timestamp: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    chat_message: Option<ChatContent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatContent {
    message_content: Option<MessageContent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageContent {
    segment: Vec<Segment>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Segment {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // No real Takeout sample exists in ../shared/fixtures (its README says so): these are
    // written by hand in the shapes Takeout produces, as documented by Google's Takeout
    // help and read by open-source Takeout parsers (e.g. hangouts-reader, chat exporters).
    const CHAT: &str = include_str!(
        "../tests/samples/google_chat/Google Chat/Groups/Space AAAAq9zXk1E/messages.json"
    );
    const HANGOUTS: &str = include_str!("../tests/samples/google_chat/Hangouts/Hangouts.json");

    #[test]
    fn chat_space_with_topics() {
        let name = "Takeout/Google Chat/Groups/Space AAAAq9zXk1E/messages.json";
        let p = crate::parse(name, None, CHAT.as_bytes()).unwrap();
        assert_eq!(p.format, "google-chat");
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Priya Natarajan <priya@example.com>",
                    "Release notes draft is in the doc, can someone review?"
                ),
                ("Tom Becker <tom@example.com>", "On it. Two typos so far"),
                ("Priya Natarajan <priya@example.com>", "thanks!\nfixed both"),
                ("Tom Becker <tom@example.com>", "Unrelated: lunch at 12:30?"),
            ]
        );
        assert_eq!(p.skipped, 2, "file-only message and a bot");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.items[0].thread, "Google Chat Space AAAAq9zXk1E");
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2023, 3, 7, 14, 5, 12).unwrap()
        );
        // The day-first, 24-hour form of the same clock.
        assert_eq!(
            p.items[1].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2023, 3, 7, 14, 9, 40).unwrap()
        );
        assert_eq!(
            p.items[1].in_reply_to.as_deref(),
            Some("AAAAq9zXk1E/k3JzL9aWx1c/k3JzL9aWx1c")
        );
        assert_eq!(p.items[2].in_reply_to, p.items[1].in_reply_to);
        assert_eq!(p.items[3].in_reply_to, None);
    }

    #[test]
    fn hangouts_conversations() {
        let p = crate::parse("Takeout/Hangouts/Hangouts.json", None, HANGOUTS.as_bytes()).unwrap();
        assert_eq!(p.format, "google-chat");
        let got: Vec<(&str, &str, &str)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref().unwrap(),
                    i.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Lena Fischer, Sam Ortiz",
                    "Lena Fischer",
                    "did you see the game?"
                ),
                (
                    "Lena Fischer, Sam Ortiz",
                    "Sam Ortiz",
                    "yes!!\nwhat a finish https://example.com/highlights"
                ),
                ("Climbing crew", "Sam Ortiz", "gym at 7?"),
                ("Climbing crew", "110000000000000000003", "count me in"),
            ]
        );
        assert_eq!(p.skipped, 2, "a call and a rename");
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2017, 6, 1, 18, 30, 0).unwrap()
        );
        assert_eq!(p.items[0].message_id.as_deref(), Some("7-H0Z7-abc01"));
    }

    #[test]
    fn old_hangouts_layout_and_bad_dates() {
        let json = r#"{"conversation_state":[{"conversation_id":{"id":"c1"},"conversation_state":{
            "conversation":{"id":{"id":"c1"},"participant_data":[{"id":{"gaia_id":"1","chat_id":"1"},"fallback_name":"Ann"}]},
            "event":[{"sender_id":{"gaia_id":"1"},"timestamp":"1400000000000000","event_type":"REGULAR_CHAT_MESSAGE",
              "chat_message":{"message_content":{"segment":[{"type":"TEXT","text":"old days"}]}}}]}}]}"#;
        let p = parse("Hangouts.json", json.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].thread, "Ann");
        assert_eq!(
            p.items[0].timestamp,
            DateTime::from_timestamp(1_400_000_000, 0)
        );
        let json = r#"{"messages":[{"creator":{"name":"A"},"created_date":"Dienstag, 7. März 2023 um 14:05:12 UTC","text":"hallo"}]}"#;
        let p = parse("messages.json", json.as_bytes()).unwrap();
        assert_eq!(p.items[0].timestamp, None);
        assert_eq!(p.items[0].author.as_deref(), Some("A"));
        assert_eq!(p.items[0].thread, "Google Chat");
        assert!(p.warnings[0].contains("English"), "{:?}", p.warnings);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"\n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"{\"messages\":[\"\xc3\"]}").unwrap_err().kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", &CHAT.as_bytes()[..300]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            parse("x", b"{\"messages\":{}}").unwrap_err().kind,
            ErrorKind::Malformed
        );
        assert_eq!(
            parse("x", b"{\"name\":1}").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(parse("x", b"[]").unwrap_err().kind, ErrorKind::Unsupported);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("messages.json", &bytes);
            }

            #[test]
            fn dates_never_panic(s in "\\PC{0,60}") {
                let _ = chat_date(&s);
            }

            #[test]
            fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-z_ \n\\]{0,200}"#) {
                let _ = parse("Hangouts.json", format!("{{\"conversations\":[{s}").as_bytes());
            }
        }
    }
}
