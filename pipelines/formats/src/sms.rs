//! SMS Backup & Restore (SyncTech, Android) XML: `<smses count="n">` holding
//! `<sms address date type body contact_name …/>` and
//! `<mms date msg_box address contact_name …><parts><part ct text …/></parts>
//! <addrs><addr address type/></addrs></mms>`. `date` is Unix milliseconds.
//!
//! Choices that a reader of the records should know about:
//! - Sent messages (SMS `type="2"`, MMS `msg_box="2"`) are the phone owner's: `from_owner:
//!   true`, author `None`. Received ones (`1`) are by `contact_name`, or by the phone number
//!   when the app wrote `(Unknown)`; for a received group MMS the sender is the `addr` of
//!   type 137 (PduHeaders FROM), since `contact_name` then lists everyone.
//! - Drafts, outbox, failed and queued messages (types 3–6) were never delivered and are
//!   skipped, as are MMS without a `text/plain` part (pictures alone).
//! - The thread is the contact name, else the address (a group MMS: its `~`-joined numbers).
//! - The app writes characters outside the BMP (emoji) as two numeric references to UTF-16
//!   surrogates (`&#55357;&#56832;`), which strict XML rejects; attribute values are
//!   therefore unescaped here, pairing surrogates (a lone one becomes U+FFFD).
//! - The file is read as a stream of tags (quick-xml), so a backup of hundreds of MB with
//!   base64 pictures in `data` attributes costs little more than its items. A file cut off
//!   keeps what was read before the cut, with a warning.

use avatar_schemas::RecordKind;
use chrono::DateTime;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::{ErrorKind, FormatError, Item, Parsed};

/// The root element is `<smses`.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.contains("<smses")
}

/// Parse an SMS Backup & Restore `sms-*.xml`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not valid UTF-8 at byte {}; SMS Backup & Restore writes UTF-8, so the file was changed", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file has no content"),
        ));
    }
    let mut reader = Reader::from_str(text);
    let mut out = Parsed {
        format: "sms",
        ..Parsed::default()
    };
    let mut seen_root = false;
    let mut closed_root = false;
    let mut declared: Option<usize> = None;
    let mut messages = 0usize;
    // The MMS being read: its attributes, then parts and addrs as they come.
    let mut mms: Option<Mms> = None;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let at = reader.error_position();
                if !seen_root {
                    return Err(FormatError::new(
                        ErrorKind::Malformed,
                        format!("{name}: not well-formed XML at byte {at}: {e}"),
                    ));
                }
                out.warnings.push(format!("{name}: XML breaks at byte {at} ({e}); the messages before it were kept, the rest not read"));
                break;
            }
        };
        match event {
            Event::Start(tag) | Event::Empty(tag) if !seen_root => {
                if tag.name().as_ref() != "smses" {
                    return Err(FormatError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "{name}: XML whose root is <{}>, not <smses>; only SMS Backup & Restore message backups are read (not call logs)",
                            tag.name().as_ref()
                        ),
                    ));
                }
                seen_root = true;
                declared = attr(&tag, "count").and_then(|c| c.trim().parse().ok());
            }
            Event::Empty(tag) if tag.name().as_ref() == "sms" => {
                messages += 1;
                sms(&tag, &mut out);
            }
            Event::Start(tag) if tag.name().as_ref() == "mms" => {
                messages += 1;
                mms = Some(Mms::start(&tag));
            }
            Event::Empty(tag) | Event::Start(tag) => {
                if let Some(m) = mms.as_mut() {
                    match tag.name().as_ref() {
                        "part" => m.part(&tag),
                        "addr" => m.addr(&tag),
                        _ => {}
                    }
                }
            }
            Event::End(tag) if tag.name().as_ref() == "mms" => {
                if let Some(m) = mms.take() {
                    m.finish(&mut out);
                }
            }
            Event::End(tag) if tag.name().as_ref() == "smses" => closed_root = true,
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: no <smses> element; this is not an SMS Backup & Restore backup"),
        ));
    }
    if seen_root && !closed_root && out.warnings.is_empty() {
        out.warnings.push(format!("{name}: the file ends before </smses>: the backup was cut off; the messages before the cut were kept"));
    }
    if let Some(n) = declared.filter(|&n| n != messages) {
        out.warnings.push(format!(
            "{name}: the backup says it holds {n} message(s) but {messages} were found"
        ));
    }
    Ok(out)
}

fn sms(tag: &BytesStart<'_>, out: &mut Parsed) {
    let kind = attr(tag, "type");
    let sent = match kind.as_deref().map(str::trim) {
        Some("1") => false,
        Some("2") => true,
        _ => {
            out.skipped += 1;
            return;
        }
    };
    let body = attr(tag, "body").unwrap_or_default();
    if body.trim().is_empty() {
        out.skipped += 1;
        return;
    }
    let address = attr(tag, "address").filter(|a| !a.is_empty() && a != "null");
    let contact =
        attr(tag, "contact_name").filter(|c| !c.is_empty() && c != "(Unknown)" && c != "null");
    let thread = contact
        .clone()
        .or(address.clone())
        .unwrap_or_else(|| "SMS".to_string());
    out.items.push(Item {
        kind: RecordKind::Message,
        thread,
        timestamp: millis(attr(tag, "date")),
        author: if sent { None } else { contact.or(address) },
        text: body,
        title: None,
        message_id: None,
        in_reply_to: None,
        from_owner: sent,
    });
}

/// An MMS in progress: its own attributes, then its text parts and addresses.
struct Mms {
    sent: Option<bool>,
    date: Option<String>,
    address: Option<String>,
    contact: Option<String>,
    text: String,
    from: Option<String>,
}

impl Mms {
    fn start(tag: &BytesStart<'_>) -> Mms {
        let sent = match attr(tag, "msg_box").as_deref().map(str::trim) {
            Some("1") => Some(false),
            Some("2") => Some(true),
            _ => None,
        };
        Mms {
            sent,
            date: attr(tag, "date"),
            address: attr(tag, "address").filter(|a| !a.is_empty() && a != "null"),
            contact: attr(tag, "contact_name")
                .filter(|c| !c.is_empty() && c != "(Unknown)" && c != "null"),
            text: String::new(),
            from: None,
        }
    }

    fn part(&mut self, tag: &BytesStart<'_>) {
        if attr(tag, "ct").is_some_and(|ct| ct.eq_ignore_ascii_case("text/plain")) {
            if let Some(t) = attr(tag, "text").filter(|t| !t.trim().is_empty() && t != "null") {
                if !self.text.is_empty() {
                    self.text.push('\n');
                }
                self.text.push_str(&t);
            }
        }
    }

    fn addr(&mut self, tag: &BytesStart<'_>) {
        if attr(tag, "type").as_deref() == Some("137") {
            self.from =
                attr(tag, "address").filter(|a| !a.is_empty() && a != "insert-address-token");
        }
    }

    fn finish(self, out: &mut Parsed) {
        let Some(sent) = self.sent else {
            out.skipped += 1;
            return;
        };
        if self.text.trim().is_empty() {
            out.skipped += 1;
            return;
        }
        let group = self.address.as_deref().is_some_and(|a| a.contains('~'));
        let author = match (sent, group) {
            (true, _) => None,
            (false, false) => self.contact.clone().or(self.from).or(self.address.clone()),
            (false, true) => self.from.or(self.contact.clone()),
        };
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: self
                .contact
                .or(self.address)
                .unwrap_or_else(|| "MMS".to_string()),
            timestamp: millis(self.date),
            author,
            text: self.text,
            title: None,
            message_id: None,
            in_reply_to: None,
            from_owner: sent,
        });
    }
}

fn millis(s: Option<String>) -> Option<chrono::DateTime<chrono::Utc>> {
    let n: i64 = s?.trim().parse().ok()?;
    // Some older MMS rows hold seconds; no phone sent a message before 2001 in ms terms.
    let n = if n < 100_000_000_000 {
        n.checked_mul(1000)?
    } else {
        n
    };
    DateTime::from_timestamp_millis(n)
}

/// An attribute's value, unescaped; `None` when absent.
fn attr(tag: &BytesStart<'_>, key: &str) -> Option<String> {
    tag.attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .map(|a| unescape(&a.value))
}

/// XML entity and character references, with UTF-16 surrogate pairs (as the app writes
/// emoji) joined into one character. Unknown entities are kept as written.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut high: Option<u32> = None;
    while let Some(amp) = rest.find('&') {
        let (before, after) = rest.split_at(amp);
        if !before.is_empty() {
            flush(&mut out, &mut high);
            out.push_str(before);
        }
        let Some(semi) = after
            .get(1..)
            .and_then(|a| a.find(';'))
            .filter(|&i| i <= 10)
        else {
            flush(&mut out, &mut high);
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..1 + semi];
        rest = &after[semi + 2..];
        let code = match entity {
            "amp" => Some('&' as u32),
            "lt" => Some('<' as u32),
            "gt" => Some('>' as u32),
            "quot" => Some('"' as u32),
            "apos" => Some('\'' as u32),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok()
            }
            e if e.starts_with('#') => e[1..].parse().ok(),
            _ => None,
        };
        match code {
            Some(c @ 0xD800..=0xDBFF) => {
                flush(&mut out, &mut high);
                high = Some(c);
            }
            Some(c @ 0xDC00..=0xDFFF) => match high.take() {
                Some(h) => {
                    let joined = 0x10000 + ((h - 0xD800) << 10) + (c - 0xDC00);
                    out.push(char::from_u32(joined).unwrap_or('\u{FFFD}'));
                }
                None => out.push('\u{FFFD}'),
            },
            Some(c) => {
                flush(&mut out, &mut high);
                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            None => {
                flush(&mut out, &mut high);
                out.push('&');
                out.push_str(entity);
                out.push(';');
            }
        }
    }
    flush(&mut out, &mut high);
    out.push_str(rest);
    out
}

/// A high surrogate not followed by a low one is a broken character.
fn flush(out: &mut String, high: &mut Option<u32>) {
    if high.take().is_some() {
        out.push('\u{FFFD}');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    // No real backup is in ../shared/fixtures (its README says so). Written by hand in the
    // layout SyncTech documents for SMS Backup & Restore (synctech.com.au "fields in XML
    // backup files"), including its surrogate-pair emoji and an MMS group message.
    const SAMPLE: &str = include_str!("../tests/samples/sms/sms-20240501120000.xml");

    #[test]
    fn sample_backup() {
        let p = crate::parse("sms-20240501120000.xml", None, SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.format, "sms");
        let got: Vec<(&str, Option<&str>, bool, &str)> = p
            .items
            .iter()
            .map(|i| {
                (
                    i.thread.as_str(),
                    i.author.as_deref(),
                    i.from_owner,
                    i.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Jane Doe",
                    Some("Jane Doe"),
                    false,
                    "Running 10 min late 😅\nsorry!"
                ),
                (
                    "Jane Doe",
                    None,
                    true,
                    "No worries, I'll grab a table. Tom & Ann are here <3"
                ),
                (
                    "+15555550199",
                    Some("+15555550199"),
                    false,
                    "Your code is 482913"
                ),
                (
                    "Jane Doe, Bob Stone",
                    Some("+15555550123"),
                    false,
                    "Pizza tonight?"
                ),
                ("Jane Doe, Bob Stone", None, true, "yes!"),
            ]
        );
        assert_eq!(p.skipped, 2, "a draft and a picture-only MMS");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            p.items[0].timestamp.unwrap(),
            Utc.with_ymd_and_hms(2024, 4, 30, 17, 0, 0).unwrap()
        );
    }

    #[test]
    fn unescape_pairs_surrogates() {
        assert_eq!(unescape("a&#55357;&#56832;b"), "a😀b");
        assert_eq!(unescape("&#10;&amp;&lt;&#x41;&nbsp;"), "\n&<A&nbsp;");
        assert_eq!(unescape("&#55357;x"), "\u{FFFD}x");
        assert_eq!(unescape("&#56832;"), "\u{FFFD}");
        assert_eq!(unescape("Tom & Ann"), "Tom & Ann");
        assert_eq!(unescape("&#1114112;"), "\u{FFFD}");
    }

    #[test]
    fn cut_off_and_miscounted_backups_keep_what_was_read() {
        let cut = &SAMPLE[..SAMPLE.find("Your code").unwrap()];
        let p = parse("sms.xml", cut.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 2);
        assert!(!p.warnings.is_empty());
        let p = parse("sms.xml", br#"<smses count="3"><sms type="1" address="1" date="1700000000000" body="x"/></smses>"#).unwrap();
        assert_eq!(p.items.len(), 1);
        assert!(p.warnings[0].contains("3 message(s)"), "{:?}", p.warnings);
    }

    #[test]
    fn large_backup_streams_quickly() {
        let mut xml = String::from(
            "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n<smses count=\"100000\">\n",
        );
        for i in 0..100_000u64 {
            xml.push_str(&format!(
                "  <sms protocol=\"0\" address=\"+1555000{:04}\" date=\"{}\" type=\"{}\" subject=\"null\" body=\"message number {i} &#55357;&#56832;\" toa=\"null\" sc_toa=\"null\" service_center=\"null\" read=\"1\" status=\"-1\" locked=\"0\" date_sent=\"0\" sub_id=\"1\" readable_date=\"Jan 1, 2024 00:00:00\" contact_name=\"(Unknown)\" />\n",
                i % 500,
                1_700_000_000_000 + i * 1000,
                1 + i % 2
            ));
        }
        xml.push_str("</smses>\n");
        let start = std::time::Instant::now();
        let p = parse("sms.xml", xml.as_bytes()).unwrap();
        let took = start.elapsed();
        assert_eq!(p.items.len(), 100_000);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.items[99_999].text, "message number 99999 😀");
        assert_eq!(p.items.iter().filter(|i| i.from_owner).count(), 50_000);
        // ~25 MB; generous bound so a loaded CI machine passes, but catches quadratic work.
        assert!(took.as_secs() < 20, "took {took:?}");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(parse("x", b"  ").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse("x", b"<smses>\xff</smses>").unwrap_err().kind,
            ErrorKind::Encoding
        );
        assert_eq!(
            parse("x", b"<calls count=\"1\"><call number=\"1\"/></calls>")
                .unwrap_err()
                .kind,
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse("x", b"just text").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(
            parse("x", b"<smses <<").unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("sms.xml", &bytes);
            }

            #[test]
            fn never_panics_on_xml_like_text(s in r#"[<>/="a-z0-9&#; \n]{0,200}"#) {
                let _ = parse("sms.xml", format!("<smses count=\"1\">{s}").as_bytes());
                let _ = unescape(&s);
            }

            #[test]
            fn prefixes_never_panic(cut in 0usize..SAMPLE.len()) {
                if let Some(s) = SAMPLE.get(..cut) {
                    let _ = parse("sms.xml", s.as_bytes());
                }
            }
        }
    }
}
