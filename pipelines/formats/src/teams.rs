//! Microsoft Teams (free/personal) chats from "Export your data": `messages.json`, the same
//! shape Skype's export uses: `{ "userId", "exportDate", "conversations": [ { "id",
//! "displayName", "MessageList": [ { "id", "displayName" (sender), "originalarrivaltime"
//! (ISO 8601), "messagetype", "content" (HTML), "from" ("8:live:…"), "conversationid" } ] } ] }`.
//!
//! Choices:
//! - Messages of type `Text`, `RichText` and `RichText/Html` are [`RecordKind::Message`]s;
//!   `content` goes through [`avatar_text::html_to_text`] (it is HTML with entities, even for
//!   `Text`). thread = the conversation `displayName` (else its `id`), author = the sender's
//!   `displayName` (else `from`), message_id = `id`.
//! - Everything else carries no one's writing and is skipped and counted: system events
//!   (`ThreadActivity/*`, `Event/Call`, `SystemMessage`…), media and file cards
//!   (`RichText/Media_*`, `RichText/UriObject`…), and messages whose text is empty.
//! - The export lists each conversation newest first; items are put in time order per
//!   conversation so a reader sees the chat as it happened.
//! - `from_owner` is set when a message has no sender name and its `from` is the export's
//!   `userId`.

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{ErrorKind, FormatError, Item, Parsed};

/// Whether `head` looks like a Teams/Skype `messages.json`.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with('{') && head.contains("\"conversations\"") && head.contains("\"MessageList\"")
}

pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let kind = if e.is_eof() {
            ErrorKind::Truncated
        } else {
            ErrorKind::Malformed
        };
        FormatError::new(
            kind,
            format!(
                "{name}: not valid JSON ({e}); use messages.json from the Teams export unchanged"
            ),
        )
    })?;
    let Some(conversations) = value.get("conversations").and_then(Value::as_array) else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: JSON without a `conversations` list: not a Teams messages.json"),
        ));
    };
    let owner = str_at(&value, "userId");
    let mut out = Parsed {
        format: "teams",
        ..Parsed::default()
    };
    for (c, conv) in conversations.iter().enumerate() {
        let Some(list) = conv.get("MessageList").and_then(Value::as_array) else {
            out.warnings
                .push(format!("conversation {c}: no MessageList, ignored"));
            continue;
        };
        let thread = str_at(conv, "displayName")
            .or_else(|| str_at(conv, "id"))
            .unwrap_or("teams")
            .to_string();
        let start = out.items.len();
        for m in list {
            match message(m, &thread, owner) {
                Some(item) => out.items.push(item),
                None => out.skipped += 1,
            }
        }
        // Stable: messages without a time keep their place among equals.
        if let Some(conv_items) = out.items.get_mut(start..) {
            conv_items.sort_by_key(|i| i.timestamp);
        }
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn message(m: &Value, thread: &str, owner: Option<&str>) -> Option<Item> {
    let kind = str_at(m, "messagetype")?;
    if !matches!(kind, "Text" | "RichText" | "RichText/Html") {
        return None;
    }
    let text = avatar_text::html_to_text(str_at(m, "content")?)
        .trim()
        .to_string();
    if text.is_empty() {
        return None;
    }
    let from = str_at(m, "from");
    let name = str_at(m, "displayName");
    Some(Item {
        kind: RecordKind::Message,
        thread: thread.to_string(),
        timestamp: str_at(m, "originalarrivaltime")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc)),
        author: name.or(from).map(str::to_string),
        text,
        title: None,
        message_id: str_at(m, "id").map(str::to_string),
        in_reply_to: None,
        from_owner: name.is_none() && from.is_some() && from == owner,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Written for these tests from the documented shape of Teams (free) / Skype
    /// "Export your data" `messages.json` (no real export is in ../shared/fixtures).
    const SAMPLE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/samples/teams/messages.json"
    ));

    #[test]
    fn sample_export() {
        let p = parse("messages.json", SAMPLE).unwrap();
        assert_eq!(p.format, "teams");
        assert!(p.warnings.is_empty());
        // AddMember, a file card and a call event.
        assert_eq!(p.skipped, 3);
        let got: Vec<(&str, &str, &str)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref().unwrap(),
                    i.message_id.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Analytical Engine club", "Ada Lovelace", "1709285700331"),
                ("Analytical Engine club", "Charles Babbage", "1709286067512"),
                ("Charles Babbage", "Charles Babbage", "1709153000000"),
                ("Charles Babbage", "Ada Lovelace", "1709154165004"),
            ]
        );
        let html = &p.items[1];
        assert!(html
            .text
            .contains("Shall we meet at Dorset Street on Saturday?"));
        assert!(html
            .text
            .contains("I will bring the \"difference engine\" drawings."));
        assert!(!html.text.contains('<'));
        assert_eq!(
            html.timestamp,
            Some(
                Utc.with_ymd_and_hms(2024, 3, 1, 9, 41, 7).unwrap()
                    + chrono::Duration::milliseconds(512)
            )
        );
        assert_eq!(p.items[0].text, "Notes on the engine are nearly done");
        assert!(p.items[3]
            .text
            .contains("Bernoulli numbers & the corrections."));
        assert!(p.items.iter().all(|i| !i.from_owner));
    }

    #[test]
    fn sample_is_sniffed_as_teams() {
        for name in ["messages.json", "export (1).json"] {
            let p = crate::parse(name, None, SAMPLE).unwrap();
            assert_eq!(p.format, "teams", "{name}");
        }
    }

    #[test]
    fn unnamed_own_message_is_from_owner() {
        let b = br#"{"userId":"8:live:me","conversations":[{"id":"c","MessageList":[
            {"id":"1","messagetype":"Text","content":"hi","from":"8:live:me","originalarrivaltime":"2024-01-01T00:00:00Z"}]}]}"#;
        let p = parse("m.json", b).unwrap();
        assert!(p.items[0].from_owner);
        assert_eq!(p.items[0].author.as_deref(), Some("8:live:me"));
        assert_eq!(p.items[0].thread, "c");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(
            parse("x", b"{\"conversations\":[").unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(parse("x", b"nope").unwrap_err().kind, ErrorKind::Malformed);
        assert_eq!(parse("x", b"{}").unwrap_err().kind, ErrorKind::Unsupported);
        assert_eq!(parse("x", b" ").unwrap_err().kind, ErrorKind::Empty);
        let p = parse("x", b"{\"conversations\":[1,{\"MessageList\":[2]}]}").unwrap();
        assert_eq!((p.items.len(), p.skipped, p.warnings.len()), (0, 1, 1));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("x", &bytes);
            }
        }
    }
}
