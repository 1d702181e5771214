//! One RFC 5322 message (an `.eml` file, a Maildir entry, or one message of an mbox) ->
//! one [`Item`].
//!
//! MIME decoding (charsets, quoted-printable, base64, multipart, encoded-word headers) is
//! mail-parser's job; this module decides which body counts and what the author wrote in it:
//! text/plain is preferred over HTML because it keeps the `>` quote markers, and an HTML-only
//! mail has its quote containers removed before it is flattened. Then [`strip_reply`] removes
//! reply headers, quotes and footers. Thread, parent and sender-signature context is not known
//! here; the processor applies those steps later.

use avatar_schemas::RecordKind;
use avatar_text::{html_to_text_without_quotes, strip_reply};
use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use crate::{ErrorKind, FormatError, Item, Parsed};

pub(crate) mod attachments;

/// Parse one message file (`.eml`, a Maildir entry); format `eml`. The mail is the first
/// item, its readable attachments follow as documents. An Outlook `.msg` saved under a mail
/// name (or forced with `--format eml`) is handed to the `.msg` reader rather than refused.
pub fn parse_eml(bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.starts_with(&CFB_MAGIC) {
        return crate::outlook_msg::parse("message.msg", bytes);
    }
    let mail = parse_message_full(bytes)?;
    Ok(Parsed {
        format: "eml",
        items: mail.items,
        skipped: 0,
        warnings: mail.warnings,
    })
}

/// The OLE2 compound file signature that starts every Outlook `.msg`.
pub(crate) const CFB_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Parse one RFC 5322 message into an email [`Item`] (attachments left out).
pub fn parse_message(bytes: &[u8]) -> Result<Item, FormatError> {
    parse_message_with_labels(bytes).map(|(item, _)| item)
}

/// One message read whole: the mail item first, then its attachments as documents.
pub(crate) struct FullMessage {
    pub items: Vec<Item>,
    /// Gmail labels (`X-Gmail-Labels`), which the mbox reader uses to skip spam.
    pub labels: Vec<String>,
    /// Attachments that could not be read.
    pub warnings: Vec<String>,
}

/// Parse one message with its attachments; shared by `eml` and `mbox`.
pub(crate) fn parse_message_full(bytes: &[u8]) -> Result<FullMessage, FormatError> {
    let (msg, item, labels) = parse_parts(bytes)?;
    let mut warnings = Vec::new();
    let attachments = attachments::mime_attachments(&msg);
    let docs = attachments::attachment_items(&item, &attachments, &mut warnings);
    let mut items = Vec::with_capacity(1 + docs.len());
    items.push(item);
    items.extend(docs);
    Ok(FullMessage {
        items,
        labels,
        warnings,
    })
}

/// Like [`parse_message`], also returning the Gmail labels (`X-Gmail-Labels`).
pub(crate) fn parse_message_with_labels(bytes: &[u8]) -> Result<(Item, Vec<String>), FormatError> {
    parse_parts(bytes).map(|(_, item, labels)| (item, labels))
}

fn parse_parts(bytes: &[u8]) -> Result<(Message<'_>, Item, Vec<String>), FormatError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            "email: the message is empty",
        ));
    }
    if bytes.starts_with(&CFB_MAGIC) {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            "email: an Outlook .msg (OLE compound file), not an RFC 5322 message; export it as .eml",
        ));
    }
    if bytes[..bytes.len().min(1024)].contains(&0) {
        return Err(FormatError::new(
            ErrorKind::Binary,
            "email: NUL bytes in the header section; binary data, not an RFC 5322 message",
        ));
    }
    let msg = MessageParser::default().parse(bytes).ok_or_else(|| {
        FormatError::new(
            ErrorKind::Malformed,
            "email: no header section could be read",
        )
    })?;
    let has_mail_header = msg.from().is_some()
        || msg.date().is_some()
        || msg.subject().is_some()
        || msg.message_id().is_some();
    if !has_mail_header {
        let kind = if bytes.len() < 16 {
            ErrorKind::Truncated
        } else {
            ErrorKind::Malformed
        };
        return Err(FormatError::new(
            kind,
            "email: none of From, Date, Subject or Message-ID is present; not an RFC 5322 message",
        ));
    }

    let mut body = body_text(&msg);
    if body.trim().is_empty() {
        body = salvage_cut_multipart(&msg).unwrap_or_default();
    }
    let text = strip_reply(&body);
    let subject = msg
        .subject()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let message_id = msg.message_id().map(clean_id).filter(|s| !s.is_empty());
    let in_reply_to = first_id(msg.in_reply_to());
    let gm_thread = raw_header(&msg, "X-GM-THRID");
    let thread = gm_thread
        .or_else(|| first_id(msg.references()))
        .or_else(|| in_reply_to.clone())
        .or_else(|| message_id.clone())
        .or_else(|| {
            subject
                .as_deref()
                .map(normalize_subject)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default();
    let labels = raw_header(&msg, "X-Gmail-Labels")
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let item = Item {
        kind: RecordKind::Email,
        thread,
        timestamp: timestamp(&msg),
        author: msg.from().and_then(author),
        text,
        title: subject,
        message_id,
        in_reply_to,
        from_owner: false,
    };
    Ok((msg, item, labels))
}

/// The text the body shows: all text/plain body parts, or the HTML ones (quotes removed)
/// when the mail has no plain text.
fn body_text(msg: &Message<'_>) -> String {
    let plain: Vec<&str> = msg
        .text_bodies()
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(t.as_ref()),
            _ => None,
        })
        .filter(|t| !t.trim().is_empty())
        .collect();
    if !plain.is_empty() {
        return plain.join("\n\n");
    }
    let html: Vec<String> = msg
        .html_bodies()
        .filter_map(|p| match &p.body {
            PartType::Html(h) => Some(html_to_text_without_quotes(h)),
            _ => None,
        })
        .collect();
    let html = html.join("\n\n");
    if !html.trim().is_empty() {
        return html;
    }
    // Broken MIME (a boundary that never occurs, say) leaves the text as the root part's
    // body, filed as an attachment: still the author's words.
    match &msg.root_part().body {
        PartType::Text(t) => return t.to_string(),
        PartType::Html(h) => return html_to_text_without_quotes(h),
        _ => {}
    }
    if msg.attachment_count() > 0 {
        return String::new();
    }
    // Broken MIME (a boundary that never occurs, say) leaves no body part although the
    // text is there: fall back to the raw body so malformed mail still yields its words.
    let raw = msg.raw_message();
    let start = msg.root_part().offset_body as usize;
    raw.get(start..)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// A multipart mail cut before its closing boundary (an interrupted download or copy) can
/// leave the MIME parser with no body at all although the first part's text is there. Parse
/// that first part on its own, as a message whose headers are the part headers.
fn salvage_cut_multipart(msg: &Message<'_>) -> Option<String> {
    let boundary = msg.content_type()?.attribute("boundary")?;
    let raw = msg.raw_message();
    let body = raw.get(msg.root_part().offset_body as usize..)?;
    let delimiter = format!("--{boundary}");
    let start = find(body, delimiter.as_bytes())? + delimiter.len();
    let part = &body[start..];
    let part = match find(part, delimiter.as_bytes()) {
        Some(end) => &part[..end],
        None => part,
    };
    let part = part
        .strip_prefix(b"\r\n")
        .or_else(|| part.strip_prefix(b"\n"))?;
    let inner = MessageParser::default().parse(part)?;
    let text = inner.body_text(0)?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn timestamp(msg: &Message<'_>) -> Option<DateTime<Utc>> {
    let d = msg.date()?;
    if !d.is_valid() {
        return None;
    }
    DateTime::from_timestamp(d.to_timestamp(), 0)
}

/// `Name <addr>`, or whichever of the two exists. Pipermail archives obfuscate addresses as
/// `user at example.org`; we undo that so the identity stage sees one address per person.
fn author(from: &Address<'_>) -> Option<String> {
    let addr = from.first()?;
    let name = addr
        .name()
        .map(|n| n.trim().trim_matches('"').trim())
        .filter(|n| !n.is_empty());
    let address = addr
        .address()
        .map(|a| a.trim().replace(" at ", "@"))
        .filter(|a| !a.is_empty());
    match (name, address) {
        (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
        (_, Some(a)) => Some(a),
        (Some(n), None) => Some(deobfuscate_name(n)),
        (None, None) => None,
    }
}

/// `user at example.org (Real Name)` that the parser saw as a name only.
fn deobfuscate_name(n: &str) -> String {
    match n.split_once(" at ") {
        Some((user, rest)) if !user.contains(' ') => {
            let (domain, real) = match rest.split_once(' ') {
                Some((d, r)) => (d, r.trim().trim_matches(['(', ')']).trim()),
                None => (rest, ""),
            };
            if real.is_empty() {
                format!("{user}@{domain}")
            } else {
                format!("{real} <{user}@{domain}>")
            }
        }
        _ => n.to_string(),
    }
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The first message id of a References / In-Reply-To header.
fn first_id(value: &HeaderValue<'_>) -> Option<String> {
    let first = match value {
        HeaderValue::Text(t) => t.split_whitespace().next().map(str::to_string),
        HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        _ => None,
    }?;
    Some(clean_id(&first)).filter(|s| !s.is_empty())
}

fn raw_header(msg: &Message<'_>, name: &str) -> Option<String> {
    msg.headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .and_then(|h| match h.value() {
            HeaderValue::Text(t) => Some(t.to_string()),
            HeaderValue::TextList(l) => Some(l.join(",")),
            _ => msg
                .raw_message()
                .get(h.offset_start() as usize..h.offset_end() as usize)
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Subject without reply/forward prefixes (`Re:`, `Fwd:`, `AW:`, `SV:`, `VS:`, `Antw:` …,
/// repeated, any case, `Re[2]:` too), whitespace collapsed: the thread key of last resort.
pub fn normalize_subject(subject: &str) -> String {
    const PREFIXES: &[&str] = &[
        "re",
        "fw",
        "fwd",
        "aw",
        "wg",
        "sv",
        "vs",
        "antw",
        "doorst",
        "tr",
        "rv",
        "enc",
        "odp",
        "res",
        "ynt",
        "vl",
        "bls",
        "отв",
        "пересл",
    ];
    let mut s = subject.trim();
    while let Some(colon) = s.find([':', '：']) {
        let head = s[..colon].trim();
        // "Re[2]" / "Re(2)" counters.
        let word = head
            .split(['[', '('])
            .next()
            .unwrap_or("")
            .trim()
            .to_lowercase();
        if !head.is_empty() && PREFIXES.contains(&word.as_str()) {
            let colon_len = s[colon..].chars().next().map_or(1, char::len_utf8);
            s = s[colon + colon_len..].trim_start();
        } else {
            break;
        }
    }
    avatar_text::normalize_whitespace(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

    fn fixtures() -> Option<std::path::PathBuf> {
        let p = std::path::PathBuf::from(FIXTURES);
        if p.is_dir() {
            Some(p)
        } else {
            println!("skipping: ../shared/fixtures not found");
            None
        }
    }

    const SAMPLE: &str = "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\r\n\
To: ann@example.org\r\n\
Subject: =?ISO-8859-1?Q?Re:_AW:_Gr=FC=DFe?=\r\n\
Date: Tue, 1 Mar 2011 18:02:00 +0530\r\n\
Message-ID: <abc@example.de>\r\n\
In-Reply-To: <parent@example.org>\r\n\
References: <root@example.org> <parent@example.org>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Sch=C3=B6n, bis morgen!\r\n\
\r\n\
Am 01.03.2011 um 10:00 schrieb Ann <ann@example.org>:\r\n\
> Treffen wir uns?\r\n";

    #[test]
    fn decodes_headers_body_and_strips_quote() {
        let item = parse_message(SAMPLE.as_bytes()).unwrap();
        assert_eq!(item.kind, RecordKind::Email);
        assert_eq!(
            item.author.as_deref(),
            Some("Jürgen Müller <jm@example.de>")
        );
        assert_eq!(item.title.as_deref(), Some("Re: AW: Grüße"));
        assert_eq!(item.text, "Schön, bis morgen!");
        assert_eq!(item.message_id.as_deref(), Some("abc@example.de"));
        assert_eq!(item.in_reply_to.as_deref(), Some("parent@example.org"));
        assert_eq!(item.thread, "root@example.org");
        assert_eq!(
            item.timestamp.map(|t| t.to_rfc3339()),
            Some("2011-03-01T12:32:00+00:00".to_string())
        );
    }

    #[test]
    fn thread_falls_back_to_subject_without_prefixes() {
        let raw = "From: a@example.org\nSubject: Re: Fwd: AW: SV: VS: Antw: Plans\n\nHello";
        let item = parse_message(raw.as_bytes()).unwrap();
        assert_eq!(item.thread, "Plans");
        assert_eq!(item.message_id, None);
        assert_eq!(item.timestamp, None);
        assert_eq!(normalize_subject("RE[2]:  re:  Big   news"), "Big news");
        assert_eq!(normalize_subject("Report: done"), "Report: done");
    }

    #[test]
    fn gmail_thread_id_wins() {
        let raw =
            "X-GM-THRID: 1234567890123456789\nX-Gmail-Labels: Inbox,Important,\"Work stuff\"\n\
From: Bo <bo@example.com>\nMessage-ID: <m1@example.com>\nSubject: Hi\n\nText";
        let (item, labels) = parse_message_with_labels(raw.as_bytes()).unwrap();
        assert_eq!(item.thread, "1234567890123456789");
        assert_eq!(labels, vec!["Inbox", "Important", "Work stuff"]);
    }

    #[test]
    fn html_only_mail_loses_its_quote() {
        let raw = "From: a@example.org\nSubject: x\nContent-Type: text/html; charset=utf-8\n\n\
<div>Thanks&nbsp;a lot!</div><div class=\"gmail_quote\">On Mon, B &lt;b@x.org&gt; wrote:\
<blockquote class=\"gmail_quote\">question</blockquote></div>";
        let item = parse_message(raw.as_bytes()).unwrap();
        assert_eq!(item.text, "Thanks a lot!");
    }

    #[test]
    fn multipart_prefers_plain_text_and_decodes_base64() {
        let raw = "From: a@example.org\nSubject: x\nMIME-Version: 1.0\n\
Content-Type: multipart/alternative; boundary=\"b1\"\n\n--b1\n\
Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n\
Q2Fm6SBwbGVhc2U=\n--b1\nContent-Type: text/html\n\n<p>HTML version</p>\n--b1--\n";
        let item = parse_message(raw.as_bytes()).unwrap();
        assert_eq!(item.text, "Café please");
    }

    #[test]
    fn unusable_input_is_an_error() {
        assert_eq!(parse_message(b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse_message(b" \n\r\n").unwrap_err().kind,
            ErrorKind::Empty
        );
        let e = parse_message(b"just some words, no headers at all here\n").unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Malformed | ErrorKind::Truncated),
            "{e:?}"
        );
        assert!(parse_eml(b"\x00\x01\x02").is_err());
    }

    #[test]
    fn malformed_but_with_body_still_parses() {
        // Broken boundary, missing Date: the body is still there.
        let raw = "From: x@example.org\nSubject: broken\nContent-Type: multipart/mixed; boundary=\"nope\"\n\nplain words\n";
        let item = parse_message(raw.as_bytes()).unwrap();
        assert!(item.text.contains("plain words"), "{:?}", item.text);
    }

    #[test]
    fn pipermail_obfuscated_author() {
        let raw =
            "From: goran at domain.com (=?ISO-8859-1?Q?G=F6ran_Lastname?=)\nSubject: s\n\nbody";
        let item = parse_message(raw.as_bytes()).unwrap();
        let author = item.author.unwrap();
        assert!(author.contains("goran@domain.com"), "{author}");
    }

    #[test]
    fn every_eml_and_maildir_fixture_parses() {
        let Some(root) = fixtures() else { return };
        let mut files = Vec::new();
        for dir in ["eml", "maildir"] {
            collect_files(&root.join(dir), &mut files);
        }
        let mut ok = 0;
        let mut failed = Vec::new();
        // (file name, attachment titles, warnings) of every file with documents or warnings.
        let mut with_attachments = Vec::new();
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            match parse_eml(&bytes) {
                Ok(p) => {
                    let mails = p
                        .items
                        .iter()
                        .filter(|i| i.kind == RecordKind::Email)
                        .count();
                    assert_eq!(mails, 1, "{name}");
                    assert_eq!(p.items[0].kind, RecordKind::Email, "the mail comes first");
                    let docs: Vec<String> = p.items[1..]
                        .iter()
                        .filter_map(|i| i.title.clone())
                        .collect();
                    if !docs.is_empty() || !p.warnings.is_empty() {
                        with_attachments.push((name, docs, p.warnings.len()));
                    }
                    ok += 1;
                }
                Err(e) => failed.push((name, e)),
            }
        }
        println!(
            "eml+maildir: {ok} parsed of {}; failed: {failed:?}; attachments: {with_attachments:?}",
            files.len()
        );
        assert_eq!(files.len(), 292, "the 9 eml + 283 maildir files");
        // All parse: the Outlook .msg that SpamScope saved as .eml goes to the .msg reader.
        assert!(failed.is_empty(), "{failed:?}");
        let docs = |n: &str| vec![n.to_string()];
        assert_eq!(
            with_attachments,
            vec![
                // WatchGuard's notice, an inline text/plain part with a file name.
                (
                    "mailparser__mail_test_3.eml".to_string(),
                    docs("message.txt"),
                    0
                ),
                // att09558.htm/att04803.htm are body fragments; the PDF is a scan.
                ("mailparser__mail_test_7.eml".to_string(), vec![], 1),
                // notmuch's patch mails: the patch is a text/plain attachment.
                ("23:2,".to_string(), docs("notmuch-help.patch"), 0),
                ("24:2,".to_string(), docs("notmuch-help.patch"), 0),
            ]
        );
        let outlook = std::fs::read(root.join("eml/mailparser__mail_outlook_1.eml")).unwrap();
        assert_eq!(parse_eml(&outlook).unwrap().format, "msg");

        let watchguard = std::fs::read(root.join("eml/mailparser__mail_test_3.eml")).unwrap();
        let p = parse_eml(&watchguard).unwrap();
        let (mail, doc) = (&p.items[0], &p.items[1]);
        assert_eq!(doc.kind, RecordKind::Document);
        assert!(
            doc.text.starts_with("The WatchGuard Firebox that protects your network has detected a message that may not be safe."),
            "{}",
            doc.text
        );
        assert!(doc.text.contains("File name    : export_pdf_ 65acf801~.js"));
        assert_eq!(doc.thread, mail.thread);
        assert_eq!(doc.timestamp, mail.timestamp);
        assert_eq!(doc.author, mail.author);
        assert_eq!(doc.in_reply_to, mail.message_id);

        let patch = std::fs::read(root.join("maildir/notmuch/default/bar/baz/23:2,")).unwrap();
        let p = parse_eml(&patch).unwrap();
        assert!(p.items[1]
            .text
            .starts_with("diff --git a/notmuch.c b/notmuch.c\nindex c47e640..a35cb99 100644"));

        let scan = std::fs::read(root.join("eml/mailparser__mail_test_7.eml")).unwrap();
        let p = parse_eml(&scan).unwrap();
        assert!(
            p.warnings[0].starts_with("attachment 20170609091403417.pdf was not read"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn known_fixture_messages() {
        let Some(root) = fixtures() else { return };
        let bytes = std::fs::read(root.join("maildir/notmuch/default/cur/29:2,")).unwrap();
        let item = parse_message(&bytes).unwrap();
        println!("{item:#?}");
        let nntp = std::fs::read(root.join("mbox/perceval__nntp_1.txt")).unwrap();
        let item = parse_message(&nntp).unwrap();
        println!("{item:#?}");
        assert!(item.author.is_some());
        assert!(item.timestamp.is_some());
    }

    proptest::proptest! {
        #[test]
        fn parse_eml_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = parse_eml(&bytes);
        }

        #[test]
        fn parse_eml_never_panics_on_mail_like_text(
            body in "(From|Subject|Date|Content-Type|Message-ID|References): [ -~]{0,40}\n(\n|[ -~]{0,60}\n){0,20}"
        ) {
            let _ = parse_eml(body.as_bytes());
        }
    }

    pub(crate) fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect_files(&p, out);
            } else if p.file_name().is_some_and(|n| n != "SOURCES.md") {
                out.push(p);
            }
        }
        out.sort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod reply_score;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod cut_multipart {
    #[test]
    fn a_multipart_cut_before_its_closing_boundary_keeps_its_text() {
        let raw = "From: a@example.org\nTo: b@example.org\nSubject: cut\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\nThe beginning of a mail that was cut";
        let item = super::parse_message(raw.as_bytes()).unwrap();
        assert_eq!(item.text, "The beginning of a mail that was cut");
    }
}
