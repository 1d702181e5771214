//! Telegram exports: Telegram Desktop's `result.json` (one chat, or the whole account with
//! `chats.list` and `left_chats.list`), and the Bot API's `getUpdates` answer
//! (`{"ok":true,"result":[…]}`), which is what people who archive a group with a bot have.
//!
//! Choices that a reader of the records should know about:
//! - Time comes from `date_unixtime`. Desktop's `date` is the exporting machine's local wall
//!   clock with no zone, so it is read as UTC only for old exports that lack `date_unixtime`,
//!   and a warning says how many messages that affected.
//! - `from: null` (a deleted account) gives `author: None`, not a "Deleted Account" label: the
//!   label would merge every deleted person into one identity downstream.
//! - Service messages, media without a caption and other entries with no text are skipped
//!   and counted. Forwarded messages are skipped too: their text was written by someone
//!   outside the chat, and attributing it to the forwarder would teach the avatar words that
//!   are not theirs.
//! - The structs below accept numbers where strings are expected and the reverse, because
//!   Desktop versions disagree (`date_unixtime` is a string, ids are numbers); unknown fields
//!   are ignored so new Telegram versions keep parsing.

use std::fmt;

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::{ErrorKind, FormatError, Item, Parsed};

/// Parse a Telegram export (Desktop `result.json` or a Bot API `getUpdates` dump).
pub fn parse(bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(FormatError::new(
            ErrorKind::Encoding,
            format!(
                "telegram: not valid UTF-8 at byte {}; Telegram writes UTF-8, so the file was changed or is not an export",
                e.valid_up_to()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            "telegram: the file has no content",
        ));
    }
    let export: Export = serde_json::from_slice(bytes).map_err(|e| json_error(&e, bytes))?;

    let mut out = Builder::default();
    if let Some(updates) = export.result {
        for update in updates {
            out.bot_update(update);
        }
    } else if export.messages.is_some() || export.chats.is_some() || export.left_chats.is_some() {
        if let Some(messages) = export.messages {
            let thread = thread_name(export.name, export.kind.as_deref(), export.id.as_deref());
            out.chat(&thread, messages);
        }
        for list in [export.chats, export.left_chats].into_iter().flatten() {
            for chat in list.list {
                let thread = thread_name(chat.name, chat.kind.as_deref(), chat.id.as_deref());
                out.chat(&thread, chat.messages);
            }
        }
    } else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            "telegram: JSON without `messages`, `chats` or a Bot API `result`; export the chat from Telegram Desktop as JSON (Settings > Advanced > Export Telegram data)",
        ));
    }
    Ok(out.finish())
}

/// Maps serde's error classes onto ours: EOF means the file was cut off (re-copy it), a
/// syntax error means it was edited or damaged, a data error means valid JSON of another shape.
fn json_error(e: &serde_json::Error, bytes: &[u8]) -> FormatError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => FormatError::new(
            ErrorKind::Truncated,
            format!(
                "telegram: the JSON stops early at line {} column {}: the export was cut off; copy or export it again",
                e.line(),
                e.column()
            ),
        ),
        Category::Syntax | Category::Io => {
            FormatError::new(ErrorKind::Malformed, format!("telegram: invalid JSON: {e}"))
        }
        Category::Data => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
            if first != Some(b'{') {
                FormatError::new(
                    ErrorKind::Unsupported,
                    "telegram: a Telegram export is a JSON object (`{…}`); this JSON is something else",
                )
            } else {
                FormatError::new(
                    ErrorKind::Malformed,
                    format!("telegram: JSON that does not have the layout of a Telegram export: {e}"),
                )
            }
        }
    }
}

/// A chat's thread name: its title, "Saved Messages" for the self-chat (which has no name),
/// and the chat id for chats whose other side was deleted.
fn thread_name(name: Option<String>, kind: Option<&str>, id: Option<&str>) -> String {
    match name.filter(|n| !n.trim().is_empty()) {
        Some(n) => n,
        None if kind == Some("saved_messages") => "Saved Messages".to_string(),
        None => match id {
            Some(id) => format!("Telegram chat {id}"),
            None => "Telegram chat".to_string(),
        },
    }
}

/// Collects items and the per-artifact counts that become one warning each (a warning per
/// message would flood the dead-letter view for a 100k-message export).
#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    skipped: usize,
    local_dates: usize,
    no_dates: usize,
}

impl Builder {
    fn chat(&mut self, thread: &str, messages: Vec<DesktopMessage>) {
        self.items.reserve(messages.len());
        for m in messages {
            if m.kind.as_deref() != Some("message") || m.forwarded {
                self.skipped += 1;
                continue;
            }
            let text = match (m.text.0.trim().is_empty(), m.text_entities) {
                (false, _) => m.text.0,
                (true, Some(entities)) if !entities.0.trim().is_empty() => entities.0,
                _ => {
                    self.skipped += 1;
                    continue;
                }
            };
            let timestamp = match (m.date_unixtime.as_deref(), m.date.as_deref()) {
                (Some(unix), _) => unix_time(unix),
                (None, Some(local)) => {
                    self.local_dates += 1;
                    local_as_utc(local)
                }
                (None, None) => None,
            };
            if timestamp.is_none() {
                self.no_dates += 1;
            }
            self.items.push(Item {
                kind: RecordKind::Message,
                thread: thread.to_string(),
                timestamp,
                author: m.from.filter(|f| !f.is_empty()),
                text,
                title: None,
                message_id: m.id,
                in_reply_to: m.reply_to_message_id,
                from_owner: false,
            });
        }
    }

    fn bot_update(&mut self, update: Update) {
        let Some(m) = update.message.or(update.channel_post) else {
            // Edits, callback queries, joins: nothing new that someone wrote.
            self.skipped += 1;
            return;
        };
        if m.forward_origin || m.forward_date {
            self.skipped += 1;
            return;
        }
        let text = match m.text.or(m.caption) {
            Some(t) if !t.trim().is_empty() => t,
            _ => {
                self.skipped += 1;
                return;
            }
        };
        let timestamp = m.date.as_deref().and_then(unix_time);
        if timestamp.is_none() {
            self.no_dates += 1;
        }
        let chat = m.chat.unwrap_or_default();
        let thread = chat
            .title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                person_name(
                    chat.first_name.as_deref(),
                    chat.last_name.as_deref(),
                    chat.username.as_deref(),
                )
            })
            .unwrap_or_else(|| thread_name(None, chat.kind.as_deref(), chat.id.as_deref()));
        let author = match &m.from {
            Some(u) => person_name(
                u.first_name.as_deref(),
                u.last_name.as_deref(),
                u.username.as_deref(),
            ),
            None => m
                .author_signature
                .clone()
                .or_else(|| m.sender_chat.and_then(|c| c.title)),
        };
        self.items.push(Item {
            kind: RecordKind::Message,
            thread,
            timestamp,
            author,
            text,
            title: None,
            message_id: m.message_id,
            in_reply_to: m.reply_to_message.and_then(|r| r.message_id),
            from_owner: false,
        });
    }

    fn finish(self) -> Parsed {
        let mut warnings = Vec::new();
        if self.local_dates > 0 {
            warnings.push(format!(
                "telegram: {} message(s) have no `date_unixtime` (an export from an old Telegram Desktop); their `date` is the exporting computer's local time and was read as UTC, so it may be off by that computer's UTC offset",
                self.local_dates
            ));
        }
        if self.no_dates > 0 {
            warnings.push(format!(
                "telegram: {} message(s) have no readable date",
                self.no_dates
            ));
        }
        Parsed {
            format: "telegram",
            items: self.items,
            skipped: self.skipped,
            warnings,
        }
    }
}

/// "First Last", or "@username" when the account has no name.
fn person_name(first: Option<&str>, last: Option<&str>, username: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        Some(name)
    } else {
        username.filter(|u| !u.is_empty()).map(|u| format!("@{u}"))
    }
}

fn unix_time(s: &str) -> Option<DateTime<Utc>> {
    let secs: i64 = s.trim().parse().ok()?;
    DateTime::from_timestamp(secs, 0)
}

/// Desktop's zone-less `date` (`2018-12-05T11:39:10`), read as UTC; an RFC 3339 value keeps
/// its offset.
fn local_as_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
        .ok()
        .map(|dt| dt.and_utc())
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Export {
    // Single-chat export.
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    messages: Option<Vec<DesktopMessage>>,
    // Whole-account export.
    chats: Option<ChatList>,
    left_chats: Option<ChatList>,
    // Bot API getUpdates.
    result: Option<Vec<Update>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChatList {
    list: Vec<Chat>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Chat {
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    messages: Vec<DesktopMessage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DesktopMessage {
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "scalar")]
    date: Option<String>,
    #[serde(deserialize_with = "scalar")]
    date_unixtime: Option<String>,
    #[serde(deserialize_with = "scalar")]
    from: Option<String>,
    #[serde(deserialize_with = "scalar")]
    reply_to_message_id: Option<String>,
    #[serde(rename = "forwarded_from", deserialize_with = "present")]
    forwarded: bool,
    text: Text,
    text_entities: Option<Text>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Update {
    message: Option<BotMessage>,
    channel_post: Option<BotMessage>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BotMessage {
    #[serde(deserialize_with = "scalar")]
    message_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    date: Option<String>,
    chat: Option<BotChat>,
    from: Option<BotUser>,
    sender_chat: Option<BotChat>,
    #[serde(deserialize_with = "scalar")]
    author_signature: Option<String>,
    #[serde(deserialize_with = "scalar")]
    text: Option<String>,
    #[serde(deserialize_with = "scalar")]
    caption: Option<String>,
    reply_to_message: Option<BotReply>,
    // `forward_origin` since Bot API 7.0, `forward_date` before it (kept apart: a message
    // carrying both must not fail as a duplicate field).
    #[serde(deserialize_with = "present")]
    forward_origin: bool,
    #[serde(deserialize_with = "present")]
    forward_date: bool,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct BotChat {
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "scalar")]
    title: Option<String>,
    #[serde(deserialize_with = "scalar")]
    first_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    last_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    username: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BotUser {
    #[serde(deserialize_with = "scalar")]
    first_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    last_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    username: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BotReply {
    #[serde(deserialize_with = "scalar")]
    message_id: Option<String>,
}

/// True whenever the key is there, whatever its value (even `null`): `forwarded_from` is
/// null for a forward from an account that was since deleted.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// A string, number or bool as a string; null, objects and arrays as `None`. Desktop writes
/// ids as numbers and `date_unixtime` as a string; being lenient here costs nothing.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Desktop's `text`: a plain string, or an array of strings and entity objects
/// (`{"type":"bold","text":"…"}`) whose `text`s, concatenated, are what the person typed.
#[derive(Default)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or an array of strings and {\"text\": …} objects")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
                Ok(v)
            }
            fn visit_unit<E: de::Error>(self) -> Result<String, E> {
                Ok(String::new())
            }
            fn visit_none<E: de::Error>(self) -> Result<String, E> {
                Ok(String::new())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
                Ok(String::new())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
                let mut out = String::new();
                while let Some(Text(part)) = seq.next_element::<Text>()? {
                    out.push_str(&part);
                }
                Ok(out)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
                let mut out = String::new();
                while let Some(key) = map.next_key::<EntityField>()? {
                    match key {
                        EntityField::Text => out = map.next_value::<Text>()?.0,
                        EntityField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V).map(Text)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum EntityField {
    Text,
    #[serde(other)]
    Other,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/telegram"
    );

    fn fixture(name: &str) -> Option<Vec<u8>> {
        let dir = std::path::Path::new(FIXTURES);
        if !dir.exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return None;
        }
        Some(std::fs::read(dir.join(name)).unwrap())
    }

    /// A single-chat export as Telegram Desktop 4.x writes it (written by hand).
    const SINGLE: &str = r#"{
 "name": "Anna Berg",
 "type": "personal_chat",
 "id": 4711,
 "messages": [
  {"id": 1, "type": "service", "date": "2023-03-01T09:00:00", "date_unixtime": "1677661200",
   "actor": "Anna Berg", "action": "phone_call", "text": "", "text_entities": []},
  {"id": 2, "type": "message", "date": "2023-03-01T10:00:00", "date_unixtime": "1677664800",
   "from": "Anna Berg", "from_id": "user1", "text": "Hi! Are you coming on *Friday*?",
   "text_entities": [{"type": "plain", "text": "Hi! Are you coming on *Friday*?"}]},
  {"id": 3, "type": "message", "date": "2023-03-01T10:05:00", "date_unixtime": "1677665100",
   "from": "Me Myself", "from_id": "user2", "reply_to_message_id": 2,
   "text": ["Yes, ", {"type": "bold", "text": "of course"}, " - see ",
            {"type": "text_link", "text": "the map", "href": "https://example.org/map"}, "\nbring snacks"],
   "text_entities": []},
  {"id": 4, "type": "message", "date_unixtime": "1677665200", "from": "Anna Berg",
   "photo": "photos/photo_1.jpg", "width": 800, "height": 600, "text": "", "text_entities": []},
  {"id": 5, "type": "message", "date_unixtime": "1677665300", "from": "Anna Berg",
   "file": "stickers/sticker.webp", "media_type": "sticker", "sticker_emoji": "👍", "text": ""},
  {"id": 6, "type": "message", "date_unixtime": "1677665400", "from": null, "from_id": "user3",
   "text": "message from an account deleted since"},
  {"id": 7, "type": "message", "date_unixtime": "1677665500", "from": "Anna Berg",
   "forwarded_from": "Some Channel", "text": "a forwarded post"},
  {"id": 8, "type": "message", "date_unixtime": "1677665600", "from": "Anna Berg",
   "photo": "photos/photo_2.jpg", "text": "caption of a photo"}
 ]
}"#;

    #[test]
    fn single_chat_export() {
        let p = parse(SINGLE.as_bytes()).unwrap();
        assert_eq!(p.format, "telegram");
        let texts: Vec<&str> = p.items.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Hi! Are you coming on *Friday*?",
                "Yes, of course - see the map\nbring snacks",
                "message from an account deleted since",
                "caption of a photo",
            ]
        );
        // service, photo, sticker, forward
        assert_eq!(p.skipped, 4);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let reply = &p.items[1];
        assert_eq!(reply.kind, RecordKind::Message);
        assert_eq!(reply.thread, "Anna Berg");
        assert_eq!(reply.author.as_deref(), Some("Me Myself"));
        assert_eq!(reply.message_id.as_deref(), Some("3"));
        assert_eq!(reply.in_reply_to.as_deref(), Some("2"));
        assert_eq!(
            reply.timestamp,
            Some(Utc.with_ymd_and_hms(2023, 3, 1, 10, 5, 0).unwrap())
        );
        assert_eq!(p.items[2].author, None, "deleted account has no name");
        assert_eq!(p.items[0].in_reply_to, None);
    }

    #[test]
    fn full_export_with_left_chats_and_saved_messages() {
        let json = r#"{
          "about": "Here is the data you requested.",
          "personal_information": {"first_name": "Me", "last_name": "Myself"},
          "chats": {"about": "…", "list": [
            {"type": "saved_messages", "id": 10, "messages": [
              {"id": 1, "type": "message", "date_unixtime": "1600000000", "from": "Me Myself", "text": "note to self"}]},
            {"name": null, "type": "personal_chat", "id": 11, "messages": [
              {"id": 1, "type": "message", "date_unixtime": "1600000100", "from": null, "text": "hello?"}]},
            {"name": "Book club", "type": "private_group", "id": 12, "messages": [
              {"id": 1, "type": "service", "date_unixtime": "1600000200", "actor": "Me Myself", "action": "create_group", "text": ""},
              {"id": 2, "type": "message", "date_unixtime": "1600000300", "from": "Ola", "text": "chapter 3 tonight"}]}
          ]},
          "left_chats": {"about": "…", "list": [
            {"name": "Old group", "type": "private_supergroup", "id": 13, "messages": [
              {"id": 9, "type": "message", "date_unixtime": 1600000400, "from": "Me Myself", "text": ["bye ", {"type": "italic", "text": "all"}]}]}
          ]}
        }"#;
        let p = parse(json.as_bytes()).unwrap();
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.thread.as_str(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Saved Messages", "note to self"),
                ("Telegram chat 11", "hello?"),
                ("Book club", "chapter 3 tonight"),
                ("Old group", "bye all"),
            ]
        );
        assert_eq!(p.skipped, 1);
        assert_eq!(
            p.items[3].timestamp,
            DateTime::from_timestamp(1_600_000_400, 0)
        );
    }

    #[test]
    fn old_export_without_unixtime_falls_back_with_a_warning() {
        let json = r#"{"name": "x", "messages": [
            {"id": 1, "type": "message", "date": "2019-01-02T03:04:05", "from": "A", "text": "old"},
            {"id": 2, "type": "message", "from": "A", "text": "no date at all"}]}"#;
        let p = parse(json.as_bytes()).unwrap();
        assert_eq!(
            p.items[0].timestamp,
            Some(Utc.with_ymd_and_hms(2019, 1, 2, 3, 4, 5).unwrap())
        );
        assert_eq!(p.items[1].timestamp, None);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("1 message(s)") && p.warnings[0].contains("UTC"));
        assert!(p.warnings[1].contains("no readable date"));
    }

    #[test]
    fn text_entities_are_used_when_text_is_missing() {
        let json = r#"{"messages": [{"id": 1, "type": "message", "date_unixtime": "1", "from": "A",
            "text_entities": [{"type": "plain", "text": "from "}, {"type": "code", "text": "entities"}]}]}"#;
        let p = parse(json.as_bytes()).unwrap();
        assert_eq!(p.items[0].text, "from entities");
        assert_eq!(p.items[0].thread, "Telegram chat");
    }

    #[test]
    fn invalid_json_is_malformed_with_position() {
        let e = parse(b"{\"messages\": [\n  {\"type\": \"message\",, }\n]}").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.message.contains("line 2"), "{}", e.message);
    }

    #[test]
    fn cut_off_json_is_truncated() {
        let cut = &SINGLE.as_bytes()[..SINGLE.len() / 2];
        let e = parse(cut).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated, "{}", e.message);
        assert!(e.message.contains("line"));
    }

    #[test]
    fn other_json_and_other_bytes_are_refused() {
        assert_eq!(
            parse(b"{\"foo\": 1}").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(parse(b"[1, 2]").unwrap_err().kind, ErrorKind::Unsupported);
        assert_eq!(
            parse(b"{\"messages\": 3}").unwrap_err().kind,
            ErrorKind::Malformed
        );
        assert_eq!(parse(b"  \n ").unwrap_err().kind, ErrorKind::Empty);
        let e = parse(b"{\"messages\": [\"\xff\"]}").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Encoding);
        assert!(e.message.contains("byte 15"), "{}", e.message);
        assert_eq!(
            parse(b"{\"messages\": []} trailing").unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    #[test]
    fn bom_is_ignored() {
        let p = parse(b"\xEF\xBB\xBF{\"messages\": [{\"type\": \"message\", \"text\": \"x\"}]}")
            .unwrap();
        assert_eq!(p.items.len(), 1);
    }

    #[test]
    fn chatminer_single_export() {
        let Some(bytes) = fixture("chatminer__test_single_export.json") else {
            return;
        };
        let p = parse(&bytes).unwrap();
        // chat-miner's parser yields these two messages (author, text, unix time).
        let got: Vec<(Option<&str>, &str, i64)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.author.as_deref(),
                    i.text.as_str(),
                    i.timestamp.unwrap().timestamp(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some("Author 1"), "Minimal Message", 1_544_006_350),
                (
                    Some("Author 2"),
                    "Link:https://telegram.org/",
                    1_544_006_964
                ),
            ]
        );
        assert_eq!(
            p.items[0].timestamp,
            Some(Utc.with_ymd_and_hms(2018, 12, 5, 10, 39, 10).unwrap())
        );
        assert_eq!(p.skipped, 0);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn chatminer_batch_export() {
        let Some(bytes) = fixture("chatminer__test_batch_export.json") else {
            return;
        };
        let p = parse(&bytes).unwrap();
        assert_eq!(p.items.len(), 2);
        assert!(p.items.iter().all(|i| i.thread == "Chatname"));
        assert_eq!(p.items[1].text, "Link:https://telegram.org/");
        assert_eq!(p.items[1].author.as_deref(), Some("Author 2"));
    }

    #[test]
    fn perceval_bot_api_updates() {
        let Some(bytes) = fixture("perceval__telegram_bot_api_messages.json") else {
            return;
        };
        let p = parse(&bytes).unwrap();
        let got: Vec<(&str, &str, &str, &str)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref().unwrap(),
                    i.text.as_str(),
                    i.message_id.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Testing Telegram Bots", "Santi", "Testing, testing", "31"),
                ("A new group", "Santi", "Hi!", "32"),
                (
                    "Testing Telegram Bots",
                    "Alvaro",
                    "Hi, this is Alvaro!",
                    "33"
                ),
            ]
        );
        assert_eq!(
            p.items[0].timestamp,
            DateTime::from_timestamp(1_467_289_325, 0)
        );
    }

    #[test]
    fn bot_api_edits_forwards_and_replies() {
        let json = r#"{"ok": true, "result": [
          {"update_id": 1, "message": {"message_id": 5, "date": 1700000000,
             "chat": {"id": 42, "type": "private", "first_name": "Kim"},
             "from": {"id": 42, "first_name": "Kim", "last_name": "Lee"}, "text": "first",
             "reply_to_message": {"message_id": 4, "date": 1, "chat": {"id": 42}, "text": "earlier"}}},
          {"update_id": 2, "edited_message": {"message_id": 5, "date": 1700000000, "edit_date": 1700000100, "text": "first!"}},
          {"update_id": 3, "message": {"message_id": 6, "date": 1700000200, "chat": {"id": 42},
             "from": {"id": 42, "username": "kim"}, "forward_origin": {"type": "hidden_user"}, "text": "fwd"}},
          {"update_id": 4, "message": {"message_id": 7, "date": 1700000300, "chat": {"id": 42},
             "from": {"id": 42, "username": "kim"}, "photo": [], "caption": "look"}},
          {"update_id": 5, "channel_post": {"message_id": 8, "date": 1700000400,
             "chat": {"id": -100, "type": "channel", "title": "News"}, "sender_chat": {"id": -100, "title": "News"}, "text": "post"}}
        ]}"#;
        let p = parse(json.as_bytes()).unwrap();
        let got: Vec<(&str, Option<&str>, &str, Option<&str>)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref(),
                    i.text.as_str(),
                    i.in_reply_to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Kim", Some("Kim Lee"), "first", Some("4")),
                ("Telegram chat 42", Some("@kim"), "look", None),
                ("News", Some("News"), "post", None),
            ]
        );
        assert_eq!(p.skipped, 2);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&bytes);
            }

            #[test]
            fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-z \n\\]{0,200}"#) {
                let _ = parse(format!("{{\"messages\":[{s}").as_bytes());
                let _ = parse(s.as_bytes());
            }

            #[test]
            fn prefixes_of_a_valid_export_are_truncated_or_parse(cut in 0usize..SINGLE.len()) {
                let bytes = &SINGLE.as_bytes()[..cut];
                match parse(bytes) {
                    Ok(_) => {}
                    Err(e) => prop_assert!(
                        matches!(e.kind, ErrorKind::Truncated | ErrorKind::Empty | ErrorKind::Encoding),
                        "{:?}: {}", e.kind, e.message
                    ),
                }
            }
        }
    }
}
