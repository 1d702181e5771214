//! WhatsApp chat exports (`WhatsApp Chat with X.txt`, `_chat.txt`): one line per message,
//! `date, time - Name: text` on Android and `[date, time] Name: text` on iOS, in whatever
//! date, clock, digit and calendar style the phone's locale uses.
//!
//! Choices that a reader of the records should know about:
//! - **Time zone.** Exports carry none: the phone's local wall-clock time is stored as if it
//!   were UTC. Downstream code must not compare these instants with other sources' true UTC.
//! - **Day/month order** is decided once per file, not per line (a line alone cannot tell
//!   `03/04/21` apart): the order under which the fewest dates are impossible wins (a field
//!   above 12 cannot be a month; a 4-digit or era field is the year), then the order under
//!   which the chat runs backwards in time the fewest times, then locale hints (see
//!   `header::choose_order`). Buddhist years (`2565`, `2565 BE`) lose 543; Japanese era years
//!   (`R4`, `令和4`) and Solar Hijri years (`1398`) are converted.
//! - **Multi-line messages:** lines that do not start a message are joined to it with `\n`.
//! - **Never glued:** a line shaped like a header (a three-part date, a time, `]` or ` - `)
//!   that cannot be read is not appended to the previous message. It and its own continuation
//!   lines are left out and reported in `warnings` with the line number and content, because
//!   gluing would attribute someone else's words to the previous author.
//! - **Not items, counted in `skipped`:** system lines (no `Name: ` part, or a text that starts
//!   with a direction mark, as iOS writes them), media placeholders in any language, deleted-
//!   message notices, missed calls, location pins. A media placeholder followed by caption
//!   lines keeps the caption as the message text.
//! - Names and times lose the invisible marks WhatsApp puts around them (U+200E, U+200F,
//!   U+202A…U+202C, U+2068/9, U+FEFF) and their no-break spaces (U+00A0, U+202F).

mod header;
mod skip;

use chrono::NaiveDateTime;

use avatar_schemas::RecordKind;

use crate::{ErrorKind, FormatError, Item, Parsed};
use header::{Order, Scan};

/// At most this many warnings are kept; the last one says how many more there were, so a
/// file forced through this parser by mistake does not produce a warning per line.
const MAX_WARNINGS: usize = 100;

/// Cheap check used by format sniffing: do the first lines look like a WhatsApp export?
/// True when one of the first three non-blank lines is a readable message header.
pub fn looks_like(text: &str) -> bool {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .any(|line| match header::scan(line.trim_end_matches('\r')) {
            Scan::Header(h) => Order::ALL
                .iter()
                .any(|&o| header::datetime(&h, o).is_some()),
            _ => false,
        })
}

/// Parse a WhatsApp .txt export. `name` is the file name (used for the thread name:
/// "WhatsApp Chat with Jane Doe.txt" -> "Jane Doe", "WhatsApp Chat - Group X.txt" ->
/// "Group X", `_chat.txt` -> "WhatsApp chat").
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!(
                "{name}: not valid UTF-8 at byte {} (WhatsApp exports are UTF-8)",
                e.valid_up_to()
            ),
        )
    })?;
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);

    // Pass 1: classify every line, so the date order can be chosen from all headers. The
    // lines are kept (sized up front) so pass 2 does not split the text again.
    let line_count = text.as_bytes().iter().filter(|&&b| b == b'\n').count() + 1;
    let mut scanned: Vec<(&str, Scan)> = Vec::with_capacity(line_count);
    let mut header_count = 0;
    for line in lines(text) {
        let scan = header::scan(line);
        header_count += usize::from(matches!(scan, Scan::Header(_)));
        scanned.push((line, scan));
    }
    if header_count == 0 {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!("{name}: no WhatsApp message lines found"),
        ));
    }
    let order = header::choose_order(scanned.iter().filter_map(|(_, s)| match s {
        Scan::Header(h) => Some(h),
        _ => None,
    }));

    // Pass 2: build the messages.
    let mut b = Builder {
        thread: skip::thread_name(name),
        parsed: Parsed {
            format: "whatsapp",
            items: Vec::with_capacity(header_count),
            ..Parsed::default()
        },
        dropped_warnings: 0,
    };
    let mut cur = Current::Start;
    for (i, &(line, scan)) in scanned.iter().enumerate() {
        let line_no = i + 1;
        match scan {
            Scan::Header(h) => {
                b.finish(std::mem::replace(&mut cur, Current::Start));
                let body = line.get(h.body_start..).unwrap_or("");
                cur = match header::datetime(&h, order) {
                    None => Current::Unreadable {
                        line_no,
                        line,
                        reason: order.name(),
                        extra: 0,
                    },
                    Some(ts) => match skip::split_author(body) {
                        None => Current::System,
                        Some((author, text)) => Current::Message {
                            ts,
                            author,
                            text: text.to_string(),
                        },
                    },
                };
            }
            Scan::Unreadable(reason) => {
                b.finish(std::mem::replace(&mut cur, Current::Start));
                cur = Current::Unreadable {
                    line_no,
                    line,
                    reason,
                    extra: 0,
                };
            }
            Scan::NotHeader => match &mut cur {
                Current::Message { text, .. } => {
                    text.push('\n');
                    text.push_str(line);
                }
                Current::Unreadable { extra, .. } => *extra += 1,
                Current::System => {}
                Current::Start => {
                    if !line.trim().is_empty() {
                        b.warn(format!(
                            "line {line_no}: text before the first message header, left out: {}",
                            excerpt(line)
                        ));
                    }
                }
            },
        }
    }
    b.finish(cur);
    if b.dropped_warnings > 0 {
        let n = b.dropped_warnings;
        b.parsed.warnings.push(format!("… and {n} more warnings"));
    }
    Ok(b.parsed)
}

/// Lines without their `\r` (iOS exports use CRLF).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// The message being read.
enum Current<'a> {
    /// Before the first header.
    Start,
    Message {
        ts: NaiveDateTime,
        author: String,
        text: String,
    },
    /// A system line; its continuation lines (if any) belong to it and are skipped with it.
    System,
    /// A header that could not be read, with the count of continuation lines after it.
    Unreadable {
        line_no: usize,
        line: &'a str,
        reason: &'static str,
        extra: usize,
    },
}

struct Builder {
    thread: String,
    parsed: Parsed,
    dropped_warnings: usize,
}

impl Builder {
    fn warn(&mut self, w: String) {
        if self.parsed.warnings.len() < MAX_WARNINGS {
            self.parsed.warnings.push(w);
        } else {
            self.dropped_warnings += 1;
        }
    }

    fn finish(&mut self, cur: Current) {
        match cur {
            Current::Start => {}
            Current::System => self.parsed.skipped += 1,
            Current::Unreadable {
                line_no,
                line,
                reason,
                extra,
            } => {
                let more = match extra {
                    0 => String::new(),
                    n => format!(" (and the {n} line(s) after it)"),
                };
                self.warn(format!(
                    "line {line_no}: looks like a message header but could not be read ({reason}), left out{more}: {}",
                    excerpt(line)
                ));
            }
            Current::Message {
                ts,
                author,
                mut text,
            } => {
                let kept = skip::strip_edited(text.trim_end()).len();
                text.truncate(kept);
                let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                let body = if skip::is_placeholder(first) {
                    // A media placeholder's following lines are its caption, unless they are
                    // only the shared document's file name.
                    let caption = rest.trim_start_matches(['\n', '\r']);
                    if caption.trim().is_empty() || skip::is_file_name(caption) {
                        self.parsed.skipped += 1;
                        return;
                    }
                    caption.to_string()
                } else if text.trim().is_empty() {
                    self.parsed.skipped += 1;
                    return;
                } else {
                    text
                };
                self.parsed.items.push(Item {
                    kind: RecordKind::Message,
                    thread: self.thread.clone(),
                    timestamp: Some(ts.and_utc()),
                    author: Some(author),
                    text: body,
                    title: None,
                    message_id: None,
                    in_reply_to: None,
                    from_owner: false,
                });
            }
        }
    }
}

/// The start of a line for a warning, at most 120 chars.
fn excerpt(line: &str) -> String {
    let mut s: String = line.chars().take(120).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(text: &str) -> Parsed {
        parse("WhatsApp Chat with Jane Doe.txt", text.as_bytes()).unwrap()
    }

    /// (timestamp, author, text) of every item.
    fn rows(parsed: &Parsed) -> Vec<(String, String, String)> {
        parsed
            .items
            .iter()
            .map(|i| {
                (
                    i.timestamp
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    i.author.clone().unwrap_or_default(),
                    i.text.clone(),
                )
            })
            .collect()
    }

    fn row(ts: &str, author: &str, text: &str) -> (String, String, String) {
        (ts.to_string(), author.to_string(), text.to_string())
    }

    #[test]
    fn android_12h() {
        let out =
            p("12/31/19, 10:02 PM - Jane Doe: Happy new year\n1/1/20, 9:15 AM - Bob: You too\n");
        assert_eq!(out.format, "whatsapp");
        assert_eq!(
            rows(&out),
            vec![
                row("2019-12-31 22:02:00", "Jane Doe", "Happy new year"),
                row("2020-01-01 09:15:00", "Bob", "You too"),
            ]
        );
        assert_eq!(out.items[0].thread, "Jane Doe");
        assert_eq!(out.items[0].kind, RecordKind::Message);
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn android_24h_dots_and_slashes() {
        let out = p("31.12.19, 22:02 - Jane: a\n01.01.20, 00:05 - Bob: b\n");
        assert_eq!(rows(&out)[0], row("2019-12-31 22:02:00", "Jane", "a"));
        assert_eq!(rows(&out)[1], row("2020-01-01 00:05:00", "Bob", "b"));
        let out = p("02/01/2020, 22:02 - Jane: a\n13/01/2020, 08:00 - Bob: b\n");
        assert_eq!(
            rows(&out)[0].0,
            "2020-01-02 22:02:00",
            "day-first because of the 13"
        );
    }

    #[test]
    fn ios_brackets_with_marks_and_crlf() {
        let out = p("[31/12/2019, 22:02:05] Jane: hi\r\n\u{200E}[01/01/2020, 10:02:05\u{202F}AM] Bob: yo\r\n");
        assert_eq!(
            rows(&out),
            vec![
                row("2019-12-31 22:02:05", "Jane", "hi"),
                row("2020-01-01 10:02:05", "Bob", "yo")
            ]
        );
    }

    #[test]
    fn multi_line_messages_are_joined_with_newlines() {
        let out = p(
            "12/31/19, 10:02 PM - Jane: first\nsecond\n\nfourth\n12/31/19, 10:03 PM - Bob: ok\n",
        );
        assert_eq!(out.items[0].text, "first\nsecond\n\nfourth");
        assert_eq!(out.items[1].text, "ok");
    }

    #[test]
    fn media_and_system_lines_are_skipped_and_counted() {
        let text = "\
12/31/19, 10:00 PM - Messages and calls are end-to-end encrypted. Tap to learn more.
12/31/19, 10:00 PM - Jane created group \"Fun: times\"
12/31/19, 10:01 PM - Jane added Bob
12/31/19, 10:01 PM - Jane changed the subject from \"a\" to \"b: c\"
12/31/19, 10:02 PM - Jane: <Media omitted>
12/31/19, 10:02 PM - Jane: <Medien ausgeschlossen>
12/31/19, 10:03 PM - Jane: This message was deleted
12/31/19, 10:03 PM - Bob: You deleted this message
12/31/19, 10:04 PM - Bob: IMG-20191231-WA0001.jpg (file attached)
12/31/19, 10:05 PM - Bob: <Media omitted>
look at this
12/31/19, 10:06 PM - Bob: real words
";
        let out = p(text);
        assert_eq!(
            rows(&out),
            vec![
                row("2019-12-31 22:05:00", "Bob", "look at this"),
                row("2019-12-31 22:06:00", "Bob", "real words"),
            ]
        );
        assert_eq!(out.skipped, 9);
        let ios = "[31/12/2019, 22:02:05] Jane: \u{200E}Messages and calls are end-to-end encrypted.\r\n\
            \u{200E}[31/12/2019, 22:02:06] Jane: \u{200E}<attached: 00000012-PHOTO-2019-12-31-22-02-06.jpg>\r\n\
            \u{200E}[31/12/2019, 22:02:07] Jane: notes.pdf \u{200E}document omitted\r\n\
            [31/12/2019, 22:02:08] \u{200E}You created group “G”\r\n\
            [31/12/2019, 22:02:09] Jane: \u{200E}This message was deleted.\r\n\
            [31/12/2019, 22:02:10] Jane: kept\r\n";
        let out = p(ios);
        assert_eq!(rows(&out), vec![row("2019-12-31 22:02:10", "Jane", "kept")]);
        assert_eq!(out.skipped, 5);
    }

    #[test]
    fn rtl_marks_and_arabic_digits() {
        let text = "[١٨\u{200F}/٣\u{200F}/٢٠٢٢، ٢:٥٦:٠٠\u{00A0}م] \u{202A}+40\u{00A0}521\u{00A0}028\u{202C}: مرحبا\r\n\
            [\u{200F}27\u{200F}/3\u{200F}/2022، 21:41:35] Dmitry S: Hello\r\n";
        let out = p(text);
        assert_eq!(
            rows(&out),
            vec![
                row("2022-03-18 14:56:00", "+40 521 028", "مرحبا"),
                row("2022-03-27 21:41:35", "Dmitry S", "Hello"),
            ]
        );
    }

    #[test]
    fn spanish_a_m_p_m() {
        let out =
            p("01/30/2019, 08:49 p. m. - Jahn: hola\n01/31/2019, 12:10 a. m. - Jahn: adiós\n");
        assert_eq!(rows(&out)[0].0, "2019-01-30 20:49:00");
        assert_eq!(rows(&out)[1].0, "2019-01-31 00:10:00");
    }

    #[test]
    fn buddhist_and_japanese_calendars() {
        let out = p("31/12/2562 22:02 - Som: สวัสดี\n");
        assert_eq!(rows(&out)[0].0, "2019-12-31 22:02:00");
        let out = p("[3/27/2565 BE, 21:41:35] Dmitry S: Hello World\r\n");
        assert_eq!(rows(&out)[0].0, "2022-03-27 21:41:35");
        let out =
            p("[3/27/R4, 21:41:35] Dmitry S: Hello\r\n[1/7/R5, 23:32:30] Dmitry S: Again\r\n");
        assert_eq!(rows(&out)[0].0, "2022-03-27 21:41:35");
        assert_eq!(rows(&out)[1].0, "2023-01-07 23:32:30");
        let out = p("R1/12/31 22:02 - Aki: こんにちは\n");
        assert_eq!(rows(&out)[0].0, "2019-12-31 22:02:00");
    }

    #[test]
    fn vietnamese_time_first() {
        let out = p("22:02, 31/12/2019 - Lan: Chào\n");
        assert_eq!(rows(&out)[0], row("2019-12-31 22:02:00", "Lan", "Chào"));
        let out = p("[21:41:35, 3/27/22] Dmitry S: Hello\r\n[10:02 CH, 3/28/22] Dmitry S: Bye\r\n");
        assert_eq!(rows(&out)[1].0, "2022-03-28 22:02:00");
    }

    #[test]
    fn unreadable_headers_are_reported_not_glued() {
        let text = "31/12/2019, 22:02 - Jane: first\n31/12/2019, 27:99 - Bob: impossible time\nits second line\n31/12/2019, 22:04 - Jane: last\n";
        let out = p(text);
        assert_eq!(
            rows(&out),
            vec![
                row("2019-12-31 22:02:00", "Jane", "first"),
                row("2019-12-31 22:04:00", "Jane", "last")
            ]
        );
        assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
        assert!(out.warnings[0]
            .starts_with("line 2: looks like a message header but could not be read"));
        assert!(
            out.warnings[0].contains("impossible time")
                && out.warnings[0].contains("1 line(s) after it")
        );
        // Dates alone in a message are text, not headers.
        let out = p("31/12/2019, 22:02 - Jane: plans\n2020-01-01 party\n12.30 - 13.30 lunch\n");
        assert_eq!(
            out.items[0].text,
            "plans\n2020-01-01 party\n12.30 - 13.30 lunch"
        );
        assert!(out.warnings.is_empty());
        // An impossible date under the file's order is reported too.
        let out = p("31/12/2019, 22:02 - Jane: a\n30/02/2020, 22:02 - Jane: b\n");
        assert_eq!(out.items.len(), 1);
        assert!(out.warnings[0].starts_with("line 2:"), "{:?}", out.warnings);
    }

    #[test]
    fn errors() {
        let e = parse("x.txt", b"12/31/19, 10:02 PM - Jane: caf\xe9\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Encoding);
        assert!(e.message.contains("byte 30"), "{}", e.message);
        let e = parse("x.txt", b"just some notes\nno headers\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.message.contains("no WhatsApp message lines found"));
        assert_eq!(parse("x.txt", b"").unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn sniffing() {
        assert!(looks_like("\u{FEFF}12/31/19, 10:02 PM - Jane: hi\n"));
        assert!(looks_like(
            "\u{200E}[3/27/22, 21:41:55] Dmitry S: \u{200E}image omitted\r\n"
        ));
        assert!(!looks_like("Dear Jane,\nsee you at 10:02.\n"));
        assert!(!looks_like("99/99/99, 10:02 - x: y\n"));
        assert_eq!(
            crate::sniff::sniff(
                "_chat.txt",
                "[3/27/22, 21:41:35] Dmitry S: Hello\r\n".as_bytes()
            )
            .unwrap(),
            crate::sniff::Format::WhatsApp
        );
    }

    #[test]
    fn warnings_are_capped() {
        let mut text = String::from("31/12/2019, 22:02 - Jane: a\n");
        for _ in 0..300 {
            text.push_str("31/12/2019, 99:02 - Jane: b\n");
        }
        let out = p(&text);
        assert_eq!(out.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(out.warnings[MAX_WARNINGS], "… and 200 more warnings");
    }

    // ---- Real exports in ../shared/fixtures/whatsapp ----

    fn fixtures() -> Option<std::path::PathBuf> {
        let dir = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/whatsapp"
        ));
        if dir.is_dir() {
            Some(dir)
        } else {
            println!("skipping: ../shared/fixtures not found");
            None
        }
    }

    fn fixture(dir: &std::path::Path, file: &str) -> Parsed {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        parse(file, &bytes).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// Independent, loose check that a text line is a message header (`date, time - Name:` or
    /// `[date, time] Name:`): if one is inside an item's text, two messages were glued.
    fn embedded_header(line: &str) -> bool {
        let l: String = line.chars().filter(|c| !header::is_mark(*c)).collect();
        let l = l.trim_start_matches('[');
        let head: String = l.chars().take(60).collect();
        let starts_numeric = l.chars().next().is_some_and(|c| c.is_numeric());
        let seps = head
            .chars()
            .take(12)
            .filter(|c| matches!(c, '/' | '.' | '-'))
            .count();
        let has_time = head
            .chars()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w[0].is_numeric() && w[1] == ':' && w[2].is_numeric());
        let delim = ["] ", " - "]
            .iter()
            .find_map(|d| head.find(d).map(|p| &l[p..]));
        starts_numeric && seps >= 2 && has_time && delim.is_some_and(|rest| rest.contains(": "))
    }

    #[test]
    fn every_fixture_parses_without_gluing() {
        let Some(dir) = fixtures() else { return };
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".txt"))
            .collect();
        files.sort();
        assert!(
            files.len() >= 50,
            "expected the 55 exports, found {}",
            files.len()
        );
        for f in &files {
            let out = fixture(&dir, f);
            println!(
                "{f}: {} messages, {} skipped, {} warnings",
                out.items.len(),
                out.skipped,
                out.warnings.len()
            );
            assert!(!out.items.is_empty(), "{f}: no messages");
            assert!(out.warnings.is_empty(), "{f}: {:?}", out.warnings);
            for it in &out.items {
                for line in it.text.lines() {
                    assert!(
                        !embedded_header(line),
                        "{f}: glued header inside {:?}",
                        it.text
                    );
                }
                assert!(it
                    .author
                    .as_deref()
                    .is_some_and(|a| !a.is_empty() && !a.contains('\u{200E}')));
                assert!(
                    !it.text.starts_with('\u{200E}') && !it.text.starts_with('\u{200F}'),
                    "{f}: {:?}",
                    it.text
                );
            }
            // Every export in the folder is from 2016-2023.
            for it in &out.items {
                let y = it.timestamp.unwrap().format("%Y").to_string();
                assert!(("2016".."2024").contains(&y.as_str()), "{f}: {y}");
            }
            let sniffed = crate::sniff::sniff(f, &std::fs::read(dir.join(f)).unwrap()).unwrap();
            assert_eq!(sniffed, crate::sniff::Format::WhatsApp, "{f}");
        }
        assert!(
            embedded_header("12/31/19, 10:02 PM - Jane: hi"),
            "the gluing check itself works"
        );
        assert!(embedded_header("\u{200E}[3/27/22, 21:41:55] Dmitry S: x"));
    }

    #[test]
    fn fixture_contents_match_what_a_reader_sees() {
        let Some(dir) = fixtures() else { return };
        // iOS English: 25 lines, 5 people's messages, the rest system/media/deleted/location.
        let out = fixture(&dir, "whats_json__ios__WhatsApp_Chat_-_Elon_Musk_(EN).txt");
        assert_eq!(out.items.len(), 5);
        assert_eq!(out.skipped, 20);
        assert_eq!(
            rows(&out)[0],
            row("2022-03-27 21:41:35", "Dmitry S", "Hello World")
        );
        // Every localisation of the same chat gives the same 5 messages.
        for f in [
            "CZ", "FR", "German", "IT", "Portugal", "RU", "Spanish", "UKR", "Arabic",
        ] {
            let out = fixture(
                &dir,
                &format!("whats_json__ios__WhatsApp_Chat_-_Elon_Musk_({f}).txt"),
            );
            let texts: Vec<_> = out.items.iter().map(|i| i.text.as_str()).collect();
            assert_eq!(texts.len(), 5, "{f}: {texts:?}");
            assert_eq!(texts[4], "Hello World", "{f}");
            assert_eq!(
                out.items[0]
                    .timestamp
                    .unwrap()
                    .format("%Y-%m-%d")
                    .to_string(),
                "2022-03-27",
                "{f}"
            );
        }
        // Arabic digits + 12-hour `م` + an RTL-wrapped phone number.
        let out = fixture(&dir, "whats_json__languages__arabic_ios.txt");
        assert_eq!(
            rows(&out)[0],
            row("2022-03-27 21:41:35", "Dmitry S", "Hello World")
        );
        // Calendars.
        for f in [
            "whats_json__calendars__Buddhist_iOS.txt",
            "whats_json__calendars__Japanese_iOS.txt",
        ] {
            let out = fixture(&dir, f);
            assert_eq!(
                rows(&out)[0],
                row("2022-03-27 21:41:35", "Dmitry S", "Hello World"),
                "{f}"
            );
        }
        // Vietnamese time-first with the author "Musk Elon".
        let out = fixture(&dir, "whats_json__ios__iOS_Vietnamese.txt");
        assert_eq!(
            rows(&out)[0],
            row("2022-03-27 21:41:35", "Dmitry S", "Hello World")
        );
        // Android with captions after media placeholders, multi-line venue shares.
        let out = fixture(&dir, "whats_json__languages__english_android_media.txt");
        let texts: Vec<_> = out.items.iter().map(|i| i.text.as_str()).collect();
        assert!(
            texts.contains(&"Caption") && texts.contains(&"Image with caption"),
            "{texts:?}"
        );
        assert!(
            !texts.contains(&"Template.docx") && texts.contains(&"Template"),
            "{texts:?}"
        );
        assert!(texts.contains(&"Pimlico Gardens\nLondon, United Kingdom\nhttps://foursquare.com/v/4e89af95e5fa82ad4c0aa03b"));
        assert!(
            !texts
                .iter()
                .any(|t| t.contains("(file attached)") || t.contains("<Media omitted>")),
            "{texts:?}"
        );
        // 12-hour English with day periods, day-first by the UK hint.
        let out = fixture(&dir, "whats_json__unique__wolfschuh_whatsapp-chat-history-viewer_WhatsApp%20Chat%20with%20Jane%20Doe.txt");
        assert_eq!(out.items.len(), 4);
        assert_eq!(
            out.items[0]
                .timestamp
                .unwrap()
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            "2021-01-03 09:15"
        );
        assert_eq!(
            out.items[2].timestamp.unwrap().format("%H:%M").to_string(),
            "15:07"
        );
        assert_eq!(out.items[0].text.lines().count(), 3);
        // Out-of-order dates (a 2020 line after 2022 lines) still read day-first.
        let out = fixture(&dir, "sodascience__chat_file5.txt");
        assert_eq!(
            out.items.last().map(|i| i.timestamp.unwrap().to_string()),
            Some("2020-07-14 22:05:54 UTC".into())
        );
        assert_eq!(out.items[0].text, "Hi \n\nshiva!");
        // Group system lines without a `Name:` part.
        let out = fixture(
            &dir,
            "whats_json__unique__WhatsApp_Chat_-_Group_Chat_XXX.txt",
        );
        assert_eq!(out.items.len(), 2);
        assert_eq!(out.skipped, 15);
    }

    /// chat-miner ships the messages its five `test_*` exports must give (newest first,
    /// multi-line texts joined with a space): authors, timestamps and texts must match.
    #[test]
    fn chatminer_expected_output() {
        let Some(dir) = fixtures() else { return };
        let target: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("chatminer__target.json")).unwrap())
                .unwrap();
        let mut want: Vec<(String, String, String)> = target
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["timestamp"].as_str().unwrap().replace('T', " "),
                    m["author"].as_str().unwrap().to_string(),
                    m["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        want.reverse();
        assert_eq!(want.len(), 6);
        for f in [
            "chatminer__test_bracketed_mmddyy_24hrs.txt",
            "chatminer__test_ddmmyy_24hrs.txt",
            "chatminer__test_mmddyy_24hrs.txt",
            "chatminer__test_mmddyyyy_12hrs.txt",
            "chatminer__test_yyyymmdd_24hrs.txt",
        ] {
            let out = fixture(&dir, f);
            let got: Vec<_> = rows(&out)
                .into_iter()
                .map(|(t, a, m)| (t, a, m.replace('\n', " ")))
                .collect();
            assert_eq!(got, want, "{f}");
            assert!(out.warnings.is_empty(), "{f}");
        }
    }

    /// whatstk lists the header formats it supports. Each is rendered here for four known
    /// moments (chosen so that only one field order is both valid and chronological) and
    /// must read back exactly.
    #[test]
    fn whatstk_header_formats() {
        let Some(dir) = fixtures() else { return };
        let spec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join("whatstk__header_format_support.json")).unwrap(),
        )
        .unwrap();
        let moments = [
            "2019-12-25 09:05:07",
            "2020-01-13 13:30:00",
            "2020-02-14 00:45:59",
            "2021-11-30 23:59:01",
        ];
        let moments: Vec<NaiveDateTime> = moments
            .iter()
            .map(|m| NaiveDateTime::parse_from_str(m, "%Y-%m-%d %H:%M:%S").unwrap())
            .collect();
        let formats: Vec<&str> = spec
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["format"].as_str().unwrap())
            .collect();
        assert_eq!(formats.len(), 96);
        for fmt in formats {
            let chrono_fmt = fmt.replace("%name", "{name}");
            let mut text = String::new();
            for (k, m) in moments.iter().enumerate() {
                let line = m
                    .format(&chrono_fmt)
                    .to_string()
                    .replace("{name}", &format!("Person {k}"));
                text.push_str(&format!("{line} message {k}\n"));
            }
            let out = p(&text);
            let with_seconds = fmt.contains("%S");
            let got: Vec<_> = rows(&out);
            assert_eq!(got.len(), 4, "{fmt}\n{text}");
            for (k, (g, m)) in got.iter().zip(&moments).enumerate() {
                let want = if with_seconds {
                    *m
                } else {
                    m.with_second(0).unwrap()
                };
                assert_eq!(
                    g.0,
                    want.format("%Y-%m-%d %H:%M:%S").to_string(),
                    "{fmt}\n{text}"
                );
                assert_eq!(g.1, format!("Person {k}"));
                assert_eq!(g.2, format!("message {k}"));
            }
        }
    }

    use chrono::Timelike;

    /// Throughput on a big export: `WA_BENCH_FILE=/path/chat.txt cargo test -p avatar-formats
    /// --release whatsapp_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn whatsapp_throughput() {
        let Ok(path) = std::env::var("WA_BENCH_FILE") else {
            return;
        };
        let bytes = std::fs::read(&path).unwrap();
        let start = std::time::Instant::now();
        let runs = 5;
        let mut n = 0;
        for _ in 0..runs {
            n = parse(&path, &bytes).unwrap().items.len();
        }
        let secs = start.elapsed().as_secs_f64() / runs as f64;
        println!(
            "{n} messages, {:.1} MB in {secs:.3} s = {:.0} MB/s",
            bytes.len() as f64 / 1e6,
            bytes.len() as f64 / 1e6 / secs
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("x.txt", &bytes);
            let _ = looks_like(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn never_panics_on_header_like_text(
            lines in proptest::collection::vec(
                "(\u{200E}|\u{200F})?\\[?[0-9٠-٩RH]{0,5}[/.-]?[0-9 ]{0,3}[/.-]?[0-9]{0,4}( BE)?,? ?[0-9]{0,2}[:.]?[0-9]{0,3}( ?[ap]\\. ?m\\.| PM|\u{202F}AM| م| at night)?(\\]| - |: )?[^\n]{0,20}",
                0..12,
            )
        ) {
            let text = lines.join("\n");
            if let Ok(out) = parse("x.txt", text.as_bytes()) {
                for it in &out.items {
                    prop_assert!(it.timestamp.is_some() && it.author.is_some());
                }
            }
            let _ = looks_like(&text);
        }
    }
}
