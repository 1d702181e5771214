//! Signal Desktop chats exported by `signal-export` (carderne/sigexport), the tool
//! chat-miner points Signal users to (Signal itself has no export). It writes one folder
//! per conversation with a Markdown file (`chat.md`; `index.md` in old releases) of lines
//! `[2019-12-24 12:23] Sender: body` — `[YYYY-MM-DD, HH:MM]` in early releases and
//! `[YYYY-MM-DD HH:MM:SS]` in current ones — with continuation lines for multi-line
//! messages, a trailing two-space Markdown line break, quotes as `> …` lines before the
//! body, reactions as `(- Name: 👍 -)`, stickers as `(( 😀 ))` and attachments as
//! `![file](./media/file)` links.
//!
//! Choices that a reader of the records should know about:
//! - Sender `Me` is the exporting owner (`from_owner: true`, author `None`); `No-Sender` is
//!   kept with author `None`.
//! - Quoted lines, reactions, stickers and attachment links are removed from the text (a
//!   quote is someone else's words); a message left empty is skipped, as are deleted
//!   messages and call notices ("Incoming voice call …").
//! - The times are the exporting computer's local wall clock with no zone; they are read as
//!   UTC and a warning says so.
//! - The thread is the conversation folder (`Jane Doe/chat.md` -> "Jane Doe").

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::{ErrorKind, FormatError, Item, Parsed};

/// A first line `[YYYY-MM-DD HH:MM] Name: ` (minutes only: WhatsApp's bracketed form always
/// has seconds), or the seconds form with signal-export's file name or its trailing
/// two-space Markdown line break.
pub fn looks_like(name: &str, head: &str) -> bool {
    let Some(first) = head.lines().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    let Some((stamp, rest)) = header(first) else {
        return false;
    };
    if !rest.contains(": ") && !rest.ends_with(':') {
        return false;
    }
    if stamp.seconds {
        let lower = name.to_ascii_lowercase();
        !stamp.comma
            && (lower.ends_with("chat.md") || lower.ends_with("index.md") || first.ends_with("  "))
    } else {
        true
    }
}

struct Stamp {
    at: Option<DateTime<Utc>>,
    seconds: bool,
    comma: bool,
}

/// `[YYYY-MM-DD[,] HH:MM[:SS]] ` at the start of a line, and what follows it.
fn header(line: &str) -> Option<(Stamp, &str)> {
    let inner_end = line.find("] ")?;
    let inner = line.get(1..inner_end).filter(|_| line.starts_with('['))?;
    let rest = &line[inner_end + 2..];
    let b = inner.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10))
    {
        return None;
    }
    let (comma, time) = match inner.get(10..)? {
        t if t.starts_with(", ") => (true, &t[2..]),
        t if t.starts_with(' ') => (false, &t[1..]),
        _ => return None,
    };
    let tb = time.as_bytes();
    let tdig =
        |r: std::ops::Range<usize>| tb.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let seconds = match tb.len() {
        5 if tdig(0..2) && tb[2] == b':' && tdig(3..5) => false,
        8 if tdig(0..2) && tb[2] == b':' && tdig(3..5) && tb[5] == b':' && tdig(6..8) => true,
        _ => return None,
    };
    let date = &inner[..10];
    let fmt = if seconds {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M"
    };
    let at = NaiveDateTime::parse_from_str(&format!("{date} {time}"), fmt)
        .ok()
        .map(|d| d.and_utc());
    Some((Stamp { at, seconds, comma }, rest))
}

/// Parse a signal-export `chat.md`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; signal-export writes UTF-8, so the file was changed", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let thread = thread_name(name);
    let mut out = Parsed {
        format: "signal",
        ..Parsed::default()
    };
    let mut current: Option<Pending<'_>> = None;
    let mut orphan_lines = 0usize;
    let mut bad_dates = 0usize;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some((stamp, rest)) = header(line) {
            if let Some(done) = current.take() {
                finish(done, &thread, &mut out);
            }
            if stamp.at.is_none() {
                bad_dates += 1;
            }
            let (sender, body) = match rest.split_once(": ") {
                Some((s, b)) => (s.to_string(), b),
                None => (rest.trim_end_matches(':').to_string(), ""),
            };
            current = Some(Pending {
                at: stamp.at,
                sender,
                lines: vec![body],
            });
        } else if let Some(p) = current.as_mut() {
            p.lines.push(line);
        } else if !line.trim().is_empty() {
            orphan_lines += 1;
        }
    }
    if let Some(done) = current.take() {
        finish(done, &thread, &mut out);
    }
    if out.items.is_empty() && out.skipped == 0 {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: no `[YYYY-MM-DD HH:MM] Sender: text` lines; this is not a signal-export chat.md"),
        ));
    }
    if orphan_lines > 0 {
        out.warnings.push(format!(
            "{name}: {orphan_lines} line(s) before the first message were left out"
        ));
    }
    if bad_dates > 0 {
        out.warnings.push(format!(
            "{name}: {bad_dates} message(s) have an impossible date"
        ));
    }
    if out.items.iter().any(|i| i.timestamp.is_some()) {
        out.warnings.push(format!(
            "{name}: signal-export writes the exporting computer's local time without a zone; it was read as UTC, so times may be off by that computer's UTC offset"
        ));
    }
    Ok(out)
}

/// A message whose header was read, with its lines so far.
struct Pending<'a> {
    at: Option<DateTime<Utc>>,
    sender: String,
    lines: Vec<&'a str>,
}

fn finish(Pending { at, sender, lines }: Pending<'_>, thread: &str, out: &mut Parsed) {
    let text = clean(&lines);
    let deleted = text == "(This message was deleted)";
    if text.is_empty() || deleted || is_call(&text) {
        out.skipped += 1;
        return;
    }
    let sender = sender.trim();
    let (author, from_owner) = match sender {
        "Me" => (None, true),
        "No-Sender" | "" => (None, false),
        s => (Some(s.to_string()), false),
    };
    out.items.push(Item {
        kind: RecordKind::Message,
        thread: thread.to_string(),
        timestamp: at,
        author,
        text,
        title: None,
        message_id: None,
        in_reply_to: None,
        from_owner,
    });
}

/// The body without signal-export's Markdown additions: quote lines, reaction and sticker
/// lines, attachment links and trailing line-break spaces.
fn clean(lines: &[&str]) -> String {
    // Attachment links come after the reaction line in signal-export's output, so links go
    // first and the line tests after.
    let kept: Vec<String> = lines
        .iter()
        .filter(|l| !l.starts_with("> ") && l.trim_end() != ">")
        .map(|l| strip_links(l.trim_end()))
        .filter(|l| !(l.starts_with("(- ") && l.ends_with(" -)")))
        .filter(|l| !(l.starts_with("(( ") && l.ends_with(" ))")))
        .collect();
    kept.join("\n").trim().to_string()
}

/// Drops `[name](./media/…)` and `![name](./media/…)` (and sticker `](../exported_stickers/…)`).
fn strip_links(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open..];
        let link = after
            .find("](./media/")
            .or_else(|| after.find("](../exported_stickers/"));
        let close = link.and_then(|l| after[l..].find(')').map(|c| l + c));
        match (link, close) {
            (Some(l), Some(c)) if !after[1..l].contains(']') => {
                let keep = rest[..open].strip_suffix('!').unwrap_or(&rest[..open]);
                out.push_str(keep);
                rest = &after[c + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 1]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out.trim_end().to_string()
}

/// signal-export's call lines ("Incoming voice call (accepted, 2m 3s)", "Missed video call").
fn is_call(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with("Incoming ") || t.starts_with("Outgoing ") || t.starts_with("Missed "))
        && (t.contains(" call") || t.ends_with("call"))
        && !t.contains('\n')
        && t.len() < 60
}

fn thread_name(name: &str) -> String {
    let mut parts = name.rsplit(['/', '\\']);
    let file = parts.next().unwrap_or("");
    let lower = file.to_ascii_lowercase();
    if lower == "chat.md" || lower == "index.md" {
        if let Some(dir) = parts.next().filter(|d| !d.trim().is_empty()) {
            return dir.to_string();
        }
    }
    "Signal chat".to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/signal"
    );
    /// Written by hand in the layout of signal-export's `Message.to_md` (sigexport/models.py):
    /// seconds, quotes, reactions, attachments, a deleted message and a call.
    const SAMPLE: &str = include_str!("../tests/samples/signal/Jane Doe/chat.md");

    #[test]
    fn chatminer_fixture() {
        let dir = std::path::Path::new(FIXTURES);
        if !dir.exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return;
        }
        let bytes = std::fs::read(dir.join("chatminer__test_export.txt")).unwrap();
        let p = crate::parse("chatminer__test_export.txt", None, &bytes).unwrap();
        assert_eq!(p.format, "signal");
        let got: Vec<(&str, &str, DateTime<Utc>)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.author.as_deref().unwrap(),
                    i.text.as_str(),
                    i.timestamp.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Jane Doe",
                    "Hello John!",
                    Utc.with_ymd_and_hms(2019, 12, 24, 12, 23, 0).unwrap()
                ),
                (
                    "John Doe",
                    "Hello\nJane!",
                    Utc.with_ymd_and_hms(2020, 1, 17, 21, 49, 0).unwrap()
                ),
            ]
        );
        // chat-miner's target.json joins continuation lines with a space; the file has a
        // line break there, which is kept.
        assert_eq!(p.items[1].text.replace('\n', " "), "Hello Jane!");
        assert_eq!(p.skipped, 0);
        assert_eq!(p.items[0].thread, "Signal chat");
    }

    #[test]
    fn current_signal_export_markdown() {
        let p = crate::parse("signal-chats/Jane Doe/chat.md", None, SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.format, "signal");
        let got: Vec<(Option<&str>, bool, &str)> = p
            .items
            .iter()
            .map(|i| (i.author.as_deref(), i.from_owner, i.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("Jane Doe"), false, "Are you free on Saturday?"),
                (None, true, "Yes! Hiking?\nI can drive"),
                (Some("Jane Doe"), false, "Perfect, here is the trail"),
                (None, true, "looks great"),
            ]
        );
        assert_eq!(p.skipped, 3, "a photo alone, a deleted message, a call");
        assert_eq!(p.items[0].thread, "Jane Doe");
        assert_eq!(
            p.items[3].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2024, 3, 2, 9, 15, 42).unwrap()
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("UTC"));
    }

    #[test]
    fn sniffing_does_not_steal_whatsapp() {
        // WhatsApp's bracketed iOS lines carry seconds; without signal-export's name or
        // Markdown line breaks they are not Signal.
        assert!(!looks_like("_chat.txt", "[2019-12-24 12:23:45] Jane: hi\n"));
        assert!(!looks_like("_chat.txt", "[24.12.19, 12:23:45] Jane: hi\n"));
        assert!(looks_like(
            "Jane/chat.md",
            "[2019-12-24 12:23:45] Jane: hi  \n"
        ));
        assert!(looks_like("x.txt", "[2019-12-24, 12:23] Jane: hi\n"));
        assert!(!looks_like(
            "x.txt",
            "# notes\n[2019-12-24, 12:23] Jane: hi\n"
        ));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"\n\n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"[2019-12-24 12:23] A: \xff").unwrap_err().kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", b"hello there").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        let p = parse("x", b"[2019-02-30 12:23] A: odd date").unwrap();
        assert_eq!(p.items[0].timestamp, None);
        assert!(
            p.warnings[0].contains("impossible date"),
            "{:?}",
            p.warnings
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("chat.md", &bytes);
            }

            #[test]
            fn never_panics_on_chat_like_text(s in r"[\[\]()!:./a-z0-9 ,\n>-]{0,200}") {
                let _ = parse("chat.md", format!("[2020-01-01 10:00] A: {s}").as_bytes());
                let _ = looks_like("chat.md", &s);
                let _ = strip_links(&s);
            }
        }
    }
}
