//! Facebook Messenger and Instagram direct messages from Meta's "Download your information"
//! (JSON): `messages/inbox/<thread>/message_1.json` (Facebook) or
//! `your_instagram_activity/messages/inbox/<thread>/message_1.json` (Instagram), each
//! `{"participants": [{"name"}], "messages": [{"sender_name", "timestamp_ms", "content",
//! "photos"|"videos"|"audio_files"|"gifs"|"sticker"|"share", "type", "is_unsent"}], "title",
//! "thread_path"}`, newest message first. The newer end-to-end-encrypted Messenger export
//! (`{"participants": ["A"], "threadName", "messages": [{"senderName", "timestamp", "text"}]}`)
//! is read too.
//!
//! Choices that a reader of the records should know about:
//! - Meta writes UTF-8 text as if each byte were a Latin-1 character (`"Ã©"` for "é",
//!   `"\u00f0\u009f\u0098\u0082"` for an emoji). [`fix_mojibake`] undoes that, but only when
//!   every code point of the string is ≤ 0xFF and the bytes they make are valid UTF-8, so a
//!   correctly encoded export (or a name that really is "Ã©") is left alone. It is applied to
//!   sender names, titles, participants and content.
//! - Items come out oldest first (Meta lists newest first).
//! - Media-only messages (a photo, sticker, voice note, shared link without words), unsent
//!   messages, calls, joins/leaves and Meta's generated lines ("Liked a message",
//!   "X sent an attachment.", "Reacted 😂 to your message") are skipped and counted.
//! - The thread is the `title`, else the participants, else the folder name from the file's
//!   path; Meta gives no message ids or reply links, so those stay empty.

use std::borrow::Cow;

use avatar_schemas::RecordKind;
use chrono::DateTime;
use serde::{Deserialize, Deserializer};

use crate::{json::Lenient, ErrorKind, FormatError, Item, Parsed};

/// Meta's keys are distinctive: `sender_name` with `timestamp_ms` (or the E2EE export's
/// `senderName` with `threadName`).
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with('{')
        && ((head.contains("\"sender_name\"") && head.contains("\"timestamp_ms\""))
            || (head.contains("\"participants\"") && head.contains("\"thread_path\""))
            || (head.contains("\"senderName\"") && head.contains("\"threadName\"")))
}

/// Undo Meta's Latin-1 reading of UTF-8 bytes, only where that is certainly what happened:
/// every char ≤ U+00FF, at least one ≥ U+0080, and the bytes form valid UTF-8.
pub fn fix_mojibake(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || s.chars().any(|c| c as u32 > 0xFF) {
        return Cow::Borrowed(s);
    }
    let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
    match String::from_utf8(bytes) {
        Ok(fixed) => Cow::Owned(fixed),
        Err(_) => Cow::Borrowed(s),
    }
}

/// Parse one Messenger/Instagram `message_N.json`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; Meta writes UTF-8 JSON, so the file was changed or is not an export", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let export: Export = serde_json::from_str(text).map_err(|e| json_error(name, &e, text))?;
    let thread = thread_name(name, &export);
    let Some(messages) = export.messages else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: JSON without `messages`; request Messages in JSON format from Meta's \"Download your information\""),
        ));
    };
    let mut out = Parsed {
        format: "messenger",
        ..Parsed::default()
    };
    let (mut unreadable, mut first_error) = (0usize, None);
    for m in messages {
        let m = match m.0 {
            Ok(m) => m,
            Err(e) => {
                unreadable += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        let content = m.content.as_deref().map(fix_mojibake).unwrap_or_default();
        let system = !matches!(m.kind.as_deref(), None | Some("Generic" | "Share" | "text"));
        if m.is_unsent || system || content.trim().is_empty() || generated(&content) {
            out.skipped += 1;
            continue;
        }
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: thread.clone(),
            timestamp: m.timestamp_ms.and_then(DateTime::from_timestamp_millis),
            author: m
                .sender_name
                .as_deref()
                .map(|s| fix_mojibake(s).into_owned())
                .filter(|s| !s.trim().is_empty()),
            text: content.into_owned(),
            title: None,
            message_id: None,
            in_reply_to: None,
            from_owner: false,
        });
    }
    if out.items.len() > 1 && out.items[0].timestamp > out.items[out.items.len() - 1].timestamp {
        out.items.reverse();
    }
    if unreadable > 0 {
        out.warnings.push(format!(
            "{name}: {unreadable} message(s) of an unexpected shape were left out (first: {})",
            first_error.unwrap_or_default()
        ));
    }
    Ok(out)
}

/// Lines Meta writes itself in `content` (English exports): not anyone's words.
fn generated(content: &str) -> bool {
    let c = content.trim();
    c == "Liked a message"
        || (c.starts_with("Reacted ") && c.ends_with(" to your message"))
        || (c.ends_with(" sent an attachment.") && !c.contains('\n'))
        || (c.ends_with(" sent a photo.") && !c.contains('\n'))
        || c.ends_with(" unsent a message.")
        || c == "This message was unsent."
}

fn thread_name(name: &str, export: &Export) -> String {
    if let Some(t) = export.title.as_deref().filter(|t| !t.trim().is_empty()) {
        return fix_mojibake(t).into_owned();
    }
    let people: Vec<String> = export
        .participants
        .iter()
        .filter_map(|p| p.0.as_deref())
        .map(|p| fix_mojibake(p).into_owned())
        .filter(|p| !p.trim().is_empty())
        .collect();
    if !people.is_empty() {
        return people.join(", ");
    }
    let from_path = export.thread_path.clone().or_else(|| {
        let mut parts = name.rsplit(['/', '\\']);
        parts.next();
        parts.next().map(str::to_string)
    });
    from_path
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "Messenger chat".to_string())
}

/// serde's error classes onto ours: EOF = cut off, syntax = damaged, data = another shape.
fn json_error(name: &str, e: &serde_json::Error, text: &str) -> FormatError {
    crate::json::object_error(
        name,
        e,
        text,
        &crate::json::Expected {
            cut_off: "the download was cut off; unpack it again",
            object: "a Messenger/Instagram message file is a JSON object",
            layout: "a Messenger/Instagram message file",
        },
    )
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Export {
    participants: Vec<Participant>,
    messages: Option<Vec<Lenient<Message>>>,
    #[serde(alias = "threadName")]
    title: Option<String>,
    thread_path: Option<String>,
}

/// `{"name": "…"}` in the classic export, a bare string in the E2EE one.
struct Participant(Option<String>);

impl<'de> Deserialize<'de> for Participant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Participant(match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Object(o) => {
                o.get("name").and_then(|n| n.as_str()).map(str::to_string)
            }
            _ => None,
        }))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    #[serde(alias = "senderName")]
    sender_name: Option<String>,
    #[serde(alias = "timestamp")]
    timestamp_ms: Option<i64>,
    #[serde(alias = "text")]
    content: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(alias = "isUnsent")]
    is_unsent: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/instagram"
    );
    /// Written by hand in the shape Meta documents for Facebook's JSON download (and that
    /// the many open-source Messenger analysers read), with its Latin-1 mojibake.
    const FACEBOOK: &str =
        include_str!("../tests/samples/messenger/inbox/annaberg_4kx9/message_1.json");

    #[test]
    fn mojibake_is_undone_only_when_certain() {
        assert_eq!(fix_mojibake("CafÃ© Ã\u{a0} cÃ´tÃ©"), "Café à côté");
        assert_eq!(fix_mojibake("\u{f0}\u{9f}\u{98}\u{82}"), "😂");
        // Already correct text is untouched: "é" alone is not valid UTF-8 as a byte.
        assert_eq!(fix_mojibake("Café"), "Café");
        // A code point above 0xFF means the string is real Unicode.
        assert_eq!(fix_mojibake("Ã© ☃"), "Ã© ☃");
        assert_eq!(fix_mojibake("plain"), "plain");
        assert!(matches!(fix_mojibake("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn instagram_fixture() {
        let dir = std::path::Path::new(FIXTURES);
        if !dir.exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return;
        }
        let bytes = std::fs::read(dir.join("chatminer__test_export.json")).unwrap();
        let p = crate::parse("chatminer__test_export.json", None, &bytes).unwrap();
        assert_eq!(p.format, "messenger");
        let got: Vec<(&str, &str, i64)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.author.as_deref().unwrap(),
                    i.text.as_str(),
                    i.timestamp.unwrap().timestamp_millis(),
                )
            })
            .collect();
        // Oldest first: the file lists John's later message first.
        assert_eq!(
            got,
            [
                ("Jane Doe", "Hello John!", 1_577_186_580_000),
                ("John Doe", "Hello Jane!", 1_579_294_140_000)
            ]
        );
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2019, 12, 24, 11, 23, 0).unwrap()
        );
        assert_eq!(p.skipped, 0);
    }

    #[test]
    fn facebook_sample_with_mojibake_and_media() {
        let name = "messages/inbox/annaberg_4kx9/message_1.json";
        let p = crate::parse(name, None, FACEBOOK.as_bytes()).unwrap();
        assert_eq!(p.format, "messenger");
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Anna Bérg", "Salut ! On se voit au café ce soir ? 😊"),
                ("Jonas Müller", "Oui, à 19h. Ça marche"),
                ("Jonas Müller", "Look at this: https://example.org/menu"),
                ("Anna Bérg", "Parfait, à tout à l'heure"),
            ]
        );
        // photo, sticker, unsent, call, "Liked a message", generated attachment line
        assert_eq!(p.skipped, 6);
        assert!(p.items.iter().all(|i| i.thread == "Anna Bérg"));
        assert_eq!(
            p.items[0].timestamp,
            DateTime::from_timestamp_millis(1_700_000_000_000)
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn e2ee_export_and_thread_from_path() {
        let json = r#"{"participants":["Kim","Lee"],"threadName":"","messages":[
            {"isUnsent":false,"media":[],"reactions":[],"senderName":"Kim","text":"hey","timestamp":1700000000000,"type":"text"},
            {"isUnsent":true,"media":[],"reactions":[],"senderName":"Lee","text":"","timestamp":1700000001000,"type":"text"}]}"#;
        let p = parse("x/message_1.json", json.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].thread, "Kim, Lee");
        assert_eq!(p.skipped, 1);
        let p = parse(
            "inbox/kim_123/message_1.json",
            br#"{"messages":[{"sender_name":"K","timestamp_ms":1,"content":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(p.items[0].thread, "kim_123");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b" ").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"{\"messages\":[\xff]}").unwrap_err().kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", &FACEBOOK.as_bytes()[..200]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            parse("x", b"{\"messages\": 4}").unwrap_err().kind,
            ErrorKind::Malformed
        );
        assert_eq!(
            parse("x", b"{\"title\": \"x\"}").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        let p = parse(
            "x",
            br#"{"messages":[{"sender_name":5,"content":"x"},{"sender_name":"a","content":"ok"}]}"#,
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.warnings.len(), 1);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("message_1.json", &bytes);
            }

            #[test]
            fn mojibake_fix_is_lossless_on_real_unicode(s in "\\PC{0,40}") {
                let fixed = fix_mojibake(&s);
                // A change only ever happens to Latin-1-range strings and shortens them.
                if fixed != s.as_str() {
                    prop_assert!(s.chars().all(|c| (c as u32) <= 0xFF));
                    prop_assert!(fixed.chars().count() < s.chars().count());
                }
            }

            #[test]
            fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-z_ \n\\]{0,200}"#) {
                let _ = parse("m.json", format!("{{\"messages\":[{s}").as_bytes());
            }
        }
    }
}
