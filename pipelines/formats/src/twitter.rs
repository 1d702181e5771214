//! X/Twitter archive ("Download an archive of your data"): JavaScript files that assign one
//! JSON array each, `window.YTD.<kind>.part0 = [ … ]`.
//!
//! - `data/tweets.js` (`tweet.js` in 2019–2022 archives; `tweets-part1.js` for big ones):
//!   `[{"tweet": {"id_str", "full_text", "created_at": "Wed Oct 10 20:19:24 +0000 2018",
//!   "in_reply_to_status_id_str", "entities": {"urls", "media"}}}]` (very old archives have
//!   the tweet objects without the `tweet` wrapper). `deleted-tweets.js` has the same shape.
//! - `data/direct-messages.js` and `direct-messages-group.js`: `[{"dmConversation":
//!   {"conversationId", "messages": [{"messageCreate": {"senderId", "text", "createdAt",
//!   "id", "urls"}}]}}]`.
//!
//! Choices that a reader of the records should know about:
//! - Tweets are the archive owner's own writing: `from_owner: true`, author `None`. Retweets
//!   (`RT @…`) are someone else's words and are skipped.
//! - t.co links are replaced by the `expanded_url` the archive gives, and links to the
//!   tweet's own media removed, so the text reads as the person wrote it; `&amp;`, `&lt;`,
//!   `&gt;` (which the archive keeps escaped) are unescaped. Media-only tweets are skipped.
//! - A DM's author is its `senderId`, a number: the file does not name anyone, and the
//!   owner's own id lives in another file (`account.js`) this parser does not see, so the
//!   processor's identity step maps ids to people. Join/leave events are skipped.
//! - Tweets are threaded as "X posts" with `in_reply_to` the tweet answered; DMs as
//!   "X DM <conversationId>". Items come out oldest first.

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::{json::Lenient, ErrorKind, FormatError, Item, Parsed};

/// Every archive data file starts with `window.YTD.`.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with("window.YTD.")
}

/// Parse one archive data file (tweets or direct messages).
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; the X archive is UTF-8, so the file was changed", e.valid_up_to()),
        )
    })?;
    let text = text.trim_start();
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let (variable, json) = match text.strip_prefix("window.YTD.").and_then(|t| t.split_once('=')) {
        Some((var, json)) => (var.trim(), json.trim()),
        None if text.starts_with('[') => ("", text),
        None => {
            return Err(FormatError::new(
                ErrorKind::Unsupported,
                format!("{name}: not an X/Twitter archive data file (they start with `window.YTD.`); take data/tweets.js or data/direct-messages.js from the archive"),
            ))
        }
    };
    let json = json.strip_suffix(';').unwrap_or(json);
    let entries: Vec<Lenient<Entry>> =
        serde_json::from_str(json).map_err(|e| json_error(name, &e))?;
    let kind = variable.split('.').next().unwrap_or("");
    let mut out = Parsed {
        format: "twitter",
        ..Parsed::default()
    };
    let (mut unreadable, mut first_error) = (0usize, None);
    let mut other = 0usize;
    for entry in entries {
        let entry = match entry.0 {
            Ok(e) => e,
            Err(e) => {
                unreadable += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        if let Some(conv) = entry.dm_conversation {
            dm_conversation(conv, &mut out);
        } else if let Some(tweet) = entry.tweet.or(entry
            .bare
            .filter(|t| t.full_text.is_some() || t.text.is_some()))
        {
            tweet_item(tweet, &mut out);
        } else {
            other += 1;
        }
    }
    if out.items.is_empty() && other > 0 {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: `{kind}` holds no tweets or direct messages (only tweets.js, deleted-tweets.js and direct-messages*.js are read)"),
        ));
    }
    out.skipped += other;
    // The archive lists newest first; records read better in time order.
    out.items.sort_by_key(|i| i.timestamp);
    if unreadable > 0 {
        out.warnings.push(format!(
            "{name}: {unreadable} entr(y/ies) of an unexpected shape were left out (first: {})",
            first_error.unwrap_or_default()
        ));
    }
    Ok(out)
}

fn tweet_item(t: Tweet, out: &mut Parsed) {
    let raw = t.full_text.or(t.text).unwrap_or_default();
    if raw.starts_with("RT @") || t.retweeted_status.is_some() {
        out.skipped += 1;
        return;
    }
    let entities = t.entities.unwrap_or_default();
    let mut text = raw;
    for u in &entities.urls {
        if let (Some(short), Some(long)) = (&u.url, &u.expanded_url) {
            text = text.replace(short.as_str(), long);
        }
    }
    for m in entities
        .media
        .iter()
        .chain(t.extended_entities.unwrap_or_default().media.iter())
    {
        if let Some(short) = &m.url {
            text = text.replace(short.as_str(), "");
        }
    }
    let text = unescape(text.trim());
    if text.is_empty() {
        out.skipped += 1;
        return;
    }
    out.items.push(Item {
        kind: RecordKind::Message,
        thread: "X posts".to_string(),
        timestamp: t.created_at.as_deref().and_then(tweet_date),
        author: None,
        text,
        title: None,
        message_id: t.id_str.or(t.id.map(|n| n.to_string())),
        in_reply_to: t.in_reply_to_status_id_str,
        from_owner: true,
    });
}

fn dm_conversation(conv: DmConversation, out: &mut Parsed) {
    let thread = format!("X DM {}", conv.conversation_id.unwrap_or_default());
    for m in conv.messages {
        let Some(m) = m.message_create else {
            out.skipped += 1;
            continue;
        };
        let mut text = m.text.unwrap_or_default();
        for u in &m.urls {
            if let (Some(short), Some(long)) = (&u.url, &u.expanded) {
                text = text.replace(short.as_str(), long);
            }
        }
        for media in &m.media_urls {
            text = text.replace(media.as_str(), "");
        }
        let text = unescape(text.trim());
        if text.is_empty() {
            out.skipped += 1;
            continue;
        }
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: thread.clone(),
            timestamp: m
                .created_at
                .as_deref()
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.with_timezone(&Utc)),
            author: m.sender_id,
            text,
            title: None,
            message_id: m.id,
            in_reply_to: None,
            from_owner: false,
        });
    }
}

/// `Wed Oct 10 20:19:24 +0000 2018`.
fn tweet_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s.trim(), "%a %b %d %H:%M:%S %z %Y")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The archive keeps Twitter's HTML escaping of `&`, `<` and `>`.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn json_error(name: &str, e: &serde_json::Error) -> FormatError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => FormatError::new(
            ErrorKind::Truncated,
            format!("{name}: the data stops early at line {} column {}: the archive was cut off; unpack it again", e.line(), e.column()),
        ),
        Category::Syntax | Category::Io => FormatError::new(ErrorKind::Malformed, format!("{name}: invalid JSON after `=`: {e}")),
        Category::Data => FormatError::new(
            ErrorKind::Malformed,
            format!("{name}: an archive data file assigns a JSON array; this one has another shape: {e}"),
        ),
    }
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    tweet: Option<Tweet>,
    #[serde(rename = "dmConversation")]
    dm_conversation: Option<DmConversation>,
    /// Pre-2019 archives: the tweet object itself.
    #[serde(flatten)]
    bare: Option<Tweet>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tweet {
    id_str: Option<String>,
    #[serde(deserialize_with = "number_or_string")]
    id: Option<String>,
    full_text: Option<String>,
    text: Option<String>,
    created_at: Option<String>,
    in_reply_to_status_id_str: Option<String>,
    entities: Option<Entities>,
    extended_entities: Option<Entities>,
    retweeted_status: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entities {
    urls: Vec<Url>,
    media: Vec<Url>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Url {
    url: Option<String>,
    expanded_url: Option<String>,
    expanded: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DmConversation {
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
    messages: Vec<DmEvent>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DmEvent {
    #[serde(rename = "messageCreate")]
    message_create: Option<MessageCreate>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MessageCreate {
    sender_id: Option<String>,
    text: Option<String>,
    created_at: Option<String>,
    id: Option<String>,
    urls: Vec<Url>,
    media_urls: Vec<String>,
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

    // No real X archive is in ../shared/fixtures (its README says so). Both samples are
    // written by hand in the archive's layout (X's "How to download your X archive" help
    // and its bundled README describe these files and fields).
    const TWEETS: &str = include_str!("../tests/samples/twitter/data/tweets.js");
    const DMS: &str = include_str!("../tests/samples/twitter/data/direct-messages.js");

    #[test]
    fn own_tweets() {
        let p = crate::parse("twitter-2024-05-01/data/tweets.js", None, TWEETS.as_bytes()).unwrap();
        assert_eq!(p.format, "twitter");
        let texts: Vec<&str> = p.items.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Finally shipped the parser rewrite & it's 4x faster. Write-up: https://blog.example.com/parser-rewrite",
                "@sam_ortiz agreed, <noscript> tags are the worst",
            ]
        );
        assert_eq!(p.skipped, 2, "a retweet and a photo-only tweet");
        assert!(p
            .items
            .iter()
            .all(|i| i.from_owner && i.author.is_none() && i.thread == "X posts"));
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2018, 10, 10, 20, 19, 24).unwrap()
        );
        assert_eq!(
            p.items[0].message_id.as_deref(),
            Some("1050118621198921728")
        );
        assert_eq!(
            p.items[1].in_reply_to.as_deref(),
            Some("1050200000000000001")
        );
    }

    #[test]
    fn direct_messages() {
        let p = crate::parse("data/direct-messages.js", None, DMS.as_bytes()).unwrap();
        assert_eq!(p.format, "twitter");
        let got: Vec<(&str, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref().unwrap(), i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("2244994945", "hey, loved your post about the parser"),
                (
                    "783214",
                    "thanks! the code is at https://github.com/example/parser"
                ),
                ("2244994945", "nice"),
            ]
        );
        assert_eq!(p.skipped, 2, "a join event and an image-only message");
        assert_eq!(p.items[0].thread, "X DM 783214-2244994945");
        assert_eq!(
            p.items[0].message_id.as_deref(),
            Some("1123584931426123777")
        );
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2019, 5, 1, 14, 21, 37).unwrap()
                + chrono::Duration::milliseconds(938)
        );
        assert!(p.items.iter().all(|i| !i.from_owner));
    }

    #[test]
    fn old_archive_without_wrapper() {
        let js = r#"window.YTD.tweet.part0 = [ {"id_str":"1","full_text":"hello &amp; bye","created_at":"Mon Jan 02 03:04:05 +0000 2017"} ]"#;
        let p = parse("tweet.js", js.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].text, "hello & bye");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"   ").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"window.YTD.tweets.part0 = [\"\xff\"]")
                .unwrap_err()
                .kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", &TWEETS.as_bytes()[..120]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            parse("x", b"window.YTD.tweets.part0 = [}")
                .unwrap_err()
                .kind,
            ErrorKind::Malformed
        );
        assert_eq!(
            parse("x", b"var x = 1").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        let e = parse(
            "account.js",
            br#"window.YTD.account.part0 = [{"account":{"accountId":"1"}}]"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("account"), "{}", e.message);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("tweets.js", &bytes);
            }

            #[test]
            fn never_panics_on_json_like_text(s in r#"[{}\[\]",:0-9a-zA-Z_ \n\\]{0,200}"#) {
                let _ = parse("tweets.js", format!("window.YTD.tweets.part0 = [{s}").as_bytes());
            }
        }
    }
}
