//! Discord channels exported by DiscordChatExporter (Tyrrrz) as JSON: one file per channel or
//! thread, `{"guild": {…}, "channel": {…}, "messages": [{…}], "messageCount": n}`. Each
//! message has `id`, `type`, `timestamp` (RFC 3339 with offset), `timestampEdited`,
//! `content`, `author{id,name,nickname,isBot}`, `attachments`, `stickers`, `embeds` and, for
//! replies, `reference.messageId`.
//!
//! Choices that a reader of the records should know about:
//! - Only `Default` and `Reply` messages are someone's writing. Joins, pins, "Started a
//!   thread", calls, renames and slash-command responses are skipped, as are bot accounts
//!   (`isBot`) and messages with no text (a sticker, an attachment or an embed alone).
//! - The author is `author.name`, the account's handle, not the per-server `nickname`: the
//!   handle is the same in every server and DM, so identity resolution can match it.
//! - An edited message carries its final text (`timestampEdited` is when); the export does
//!   not keep earlier versions.
//! - The thread is `guild / category / channel`, the way DiscordChatExporter names its files,
//!   so a thread (whose category is its parent channel) stays next to its channel.
//! - A message of an unexpected shape is counted in a warning and the rest still read.

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::{json::Lenient, ErrorKind, FormatError, Item, Parsed};

/// DiscordChatExporter JSON starts with `guild` and `channel` before `messages`.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with('{')
        && head.contains("\"guild\"")
        && head.contains("\"channel\"")
        && (head.contains("\"messages\"") || head.contains("\"dateRange\""))
}

/// Parse one DiscordChatExporter JSON file.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let text = utf8(name, bytes)?;
    let export: Export = serde_json::from_str(text).map_err(|e| json_error(name, &e, text))?;
    let Some(messages) = export.messages else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: JSON without `messages`; export the channel with DiscordChatExporter in the JSON format"),
        ));
    };
    let thread = thread_name(&export.guild, &export.channel);
    let mut out = Parsed {
        format: "discord",
        ..Parsed::default()
    };
    let (mut unreadable, mut first_error, mut no_date) = (0usize, None, 0usize);
    out.items.reserve(messages.len());
    for m in messages {
        let m = match m.0 {
            Ok(m) => m,
            Err(e) => {
                unreadable += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        let kind_ok = matches!(
            m.kind.as_deref(),
            None | Some("Default" | "Reply" | "0" | "19")
        );
        let author = m.author.unwrap_or_default();
        let text = m.content.unwrap_or_default();
        if !kind_ok || author.is_bot || text.trim().is_empty() {
            out.skipped += 1;
            continue;
        }
        let timestamp = m
            .timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        if timestamp.is_none() {
            no_date += 1;
        }
        let name = author
            .name
            .filter(|n| !n.trim().is_empty())
            .or(author.nickname.filter(|n| !n.trim().is_empty()));
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: thread.clone(),
            timestamp,
            author: name,
            text,
            title: None,
            message_id: m.id,
            in_reply_to: m.reference.and_then(|r| r.message_id),
            from_owner: false,
        });
    }
    if unreadable > 0 {
        out.warnings.push(format!(
            "{name}: {unreadable} message(s) of an unexpected shape were left out (first: {})",
            first_error.unwrap_or_default()
        ));
    }
    if no_date > 0 {
        out.warnings.push(format!(
            "{name}: {no_date} message(s) have no readable timestamp"
        ));
    }
    Ok(out)
}

fn thread_name(guild: &Option<Guild>, channel: &Option<Channel>) -> String {
    let guild = guild.as_ref().and_then(|g| g.name.clone());
    let (category, channel) = match channel {
        Some(c) => (c.category.clone(), c.name.clone().or_else(|| c.id.clone())),
        None => (None, None),
    };
    let parts: Vec<String> = [guild, category, channel]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if parts.is_empty() {
        "Discord channel".to_string()
    } else {
        parts.join(" / ")
    }
}

fn utf8<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!(
                "{name}: not valid UTF-8 at byte {}; DiscordChatExporter writes UTF-8, so the file was changed or is not an export",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    Ok(text)
}

/// serde's error classes onto ours: EOF = cut off, syntax = damaged, data = another shape.
fn json_error(name: &str, e: &serde_json::Error, text: &str) -> FormatError {
    crate::json::object_error(
        name,
        e,
        text,
        &crate::json::Expected {
            cut_off: "the export was cut off; export or copy it again",
            object: "a DiscordChatExporter export is a JSON object (`{…}`)",
            layout: "a DiscordChatExporter export",
        },
    )
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Export {
    guild: Option<Guild>,
    channel: Option<Channel>,
    messages: Option<Vec<Lenient<Message>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Guild {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Channel {
    id: Option<String>,
    name: Option<String>,
    category: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    id: Option<String>,
    #[serde(rename = "type", deserialize_with = "type_name")]
    kind: Option<String>,
    timestamp: Option<String>,
    content: Option<String>,
    author: Option<Author>,
    reference: Option<Reference>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Author {
    name: Option<String>,
    nickname: Option<String>,
    #[serde(rename = "isBot")]
    is_bot: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Reference {
    #[serde(rename = "messageId")]
    message_id: Option<String>,
}

/// `type` is a name (`"Default"`) in every DiscordChatExporter release; a number is accepted
/// too (Discord's own API value) so a converted dump still reads.
fn type_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/discord"
    );

    fn fixture(name: &str) -> Option<Vec<u8>> {
        let dir = std::path::Path::new(FIXTURES);
        if !dir.exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return None;
        }
        Some(std::fs::read(dir.join(name)).unwrap())
    }

    const SAMPLE: &str = include_str!("../tests/samples/discord/dm_kim_lee.json");

    #[test]
    fn general_channel_fixture() {
        let Some(bytes) = fixture("dcef__Text_Channels_-_general.json") else {
            return;
        };
        let p = parse("general.json", &bytes).unwrap();
        // 35 messages: 3 GuildMemberJoin, 1 ThreadCreated, 1 sticker alone, 2 attachments alone.
        assert_eq!(p.items.len(), 28);
        assert_eq!(p.skipped, 7);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let first = &p.items[0];
        assert_eq!(first.thread, "Example guild / Text Channels / general");
        assert_eq!(first.author.as_deref(), Some("Adam"));
        assert_eq!(
            first.text,
            "Welcome to the **DiscordChatExporter-frontend** example!"
        );
        assert_eq!(first.message_id.as_deref(), Some("1045178587575242772"));
        assert_eq!(
            first.timestamp.unwrap(),
            Utc.with_ymd_and_hms(2023, 1, 6, 14, 3, 3).unwrap()
                + chrono::Duration::milliseconds(853)
        );
        assert_eq!(p.items[1].text, "Hello 👏");
        assert_eq!(p.items[1].author.as_deref(), Some("Thomas"));
        // A Default-type message with a reference is a reply too.
        let kekw = p
            .items
            .iter()
            .find(|i| i.text == "You will understand it later :kekw:")
            .unwrap();
        assert_eq!(kekw.in_reply_to.as_deref(), Some("1060926317920538735"));
        // Text with an attachment keeps the text.
        assert!(p.items.iter().any(|i| i.text == "My computer right now"));
        assert!(!p
            .items
            .iter()
            .any(|i| i.text == "Joined the server." || i.text == "Started a thread."));
    }

    #[test]
    fn chill_talk_fixtures_with_and_without_deleted_message() {
        let Some(full) = fixture("dcef__Text_Channels_-_chill_talk.json") else {
            return;
        };
        let p = parse("chill.json", &full).unwrap();
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("Adam", "It's a little cold in here 🥶"),
                ("Patrick", "Yeah, it's winter :thisisfine:"),
                (
                    "aLittleSpammyBot",
                    "Free nitro giveaway! https://www.youtube.com/watch?v=dQw4w9WgXcQ"
                ),
                ("Thomas", "@Adam delete this please"),
                ("Adam", "Done"),
                ("Thomas", ":pepeheart:"),
            ]
        );
        assert_eq!(
            p.items[3].in_reply_to.as_deref(),
            Some("1060954094627463098")
        );
        assert_eq!(
            p.items[3].message_id.as_deref(),
            Some("1060954094627463198")
        );
        let without =
            fixture("dcef__Text_Channels_-_chill_talk_without_deleted_message.json").unwrap();
        let p = parse("chill.json", &without).unwrap();
        assert_eq!(p.items.len(), 5);
        assert!(!p.items.iter().any(|i| i.text.contains("nitro")));
    }

    #[test]
    fn thread_fixture() {
        let Some(bytes) = fixture("dcef__general_-_Thomas_is_Thomas.json") else {
            return;
        };
        let p = parse("thread.json", &bytes).unwrap();
        assert_eq!(p.items.len(), 5);
        assert_eq!(p.skipped, 0);
        assert!(p
            .items
            .iter()
            .all(|i| i.thread == "Example guild / general / Thomas is Thomas"));
        assert_eq!(p.items[4].text, "Thank you!");
        assert_eq!(p.items[4].author.as_deref(), Some("Patrick"));
        assert_eq!(
            p.items[4].in_reply_to.as_deref(),
            Some("1060927555093413928")
        );
    }

    #[test]
    fn sniffing_picks_discord_for_every_fixture_and_the_sample() {
        let dir = std::path::Path::new(FIXTURES);
        if dir.exists() {
            for e in std::fs::read_dir(dir).unwrap() {
                let path = e.unwrap().path();
                if path.extension().is_some_and(|x| x == "json") {
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    let p = crate::parse(&name, None, &std::fs::read(&path).unwrap()).unwrap();
                    assert_eq!(p.format, "discord", "{name}");
                }
            }
        } else {
            eprintln!("skipping: ../shared/fixtures not found");
        }
        let p = crate::parse("kim.json", None, SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.format, "discord");
    }

    /// The sample is a DM export in DiscordChatExporter's JSON shape (see its
    /// `JsonMessageWriter`), written by hand: offset timestamps, an edit, a bot, a pin.
    #[test]
    fn dm_sample_with_offsets_bots_and_pins() {
        let p = parse("kim.json", SAMPLE.as_bytes()).unwrap();
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("kim_lee", "are we still on for saturday?"),
                ("me.myself", "yes! 10am at the station\nbring the map"),
                ("kim_lee", "👍 perfect"),
            ]
        );
        assert_eq!(p.skipped, 3, "pin, bot, attachment-only");
        assert_eq!(p.items[0].thread, "Direct Messages / Private / kim_lee");
        // +02:00 is converted to UTC.
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2024, 5, 3, 16, 0, 0).unwrap()
        );
        assert_eq!(
            p.items[1].in_reply_to.as_deref(),
            Some("1236000000000000001")
        );
    }

    #[test]
    fn odd_messages_are_warned_about_not_fatal() {
        let json = r#"{"guild":{"name":"G"},"channel":{"name":"c"},"messages":[
            {"id":"1","type":"Default","timestamp":"2023-01-01T00:00:00+00:00","content":"ok","author":{"name":"a"}},
            {"id":"2","type":"Default","content":["not","text"],"author":{"name":"a"}},
            {"id":"3","type":"Default","timestamp":"yesterday","content":"no date","author":{"name":"b"}}]}"#;
        let p = parse("x.json", json.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("1 message(s)"));
        assert_eq!(p.items[1].timestamp, None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(parse("x", b"\xff{").unwrap_err().kind, ErrorKind::Encoding);
        assert_eq!(
            parse("x", b"{\"guild\": {").unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            parse("x", b"{\"guild\": }").unwrap_err().kind,
            ErrorKind::Malformed
        );
        assert_eq!(parse("x", b"[1]").unwrap_err().kind, ErrorKind::Unsupported);
        assert_eq!(
            parse("x", b"{\"guild\": {}}").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse("x", b"{\"messages\": 5}").unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("x.json", &bytes);
            }

            #[test]
            fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-zA-Z \n\\]{0,200}"#) {
                let _ = parse("x.json", format!("{{\"guild\":{{}},\"messages\":[{s}").as_bytes());
            }

            #[test]
            fn prefixes_are_errors_or_parse(cut in 0usize..SAMPLE.len()) {
                if let Some(bytes) = SAMPLE.as_bytes().get(..cut) {
                    let _ = parse("x.json", bytes);
                }
            }
        }
    }
}
