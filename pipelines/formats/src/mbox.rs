//! mbox (mboxo / mboxrd, as Gmail Takeout, Thunderbird and mailing-list archives write it):
//! messages separated by lines that start with `From `.
//!
//! The file is split on bytes, in one pass, without copying: only a message that contains
//! escaped `>From ` lines is copied to unescape it. Each message goes through
//! [`crate::email::parse_message`]; one that fails becomes a warning and the rest go on, so a
//! single broken message does not dead-letter a whole mailbox. Gmail's `X-GM-THRID` gives the
//! thread (see the email module) and messages labelled `Spam` by Gmail are skipped. A mail's
//! readable attachments follow it as document items (see `email::attachments`).

use std::borrow::Cow;

use crate::email::parse_message_full;
use crate::{ErrorKind, FormatError, Parsed};

/// Parse an mbox file; format `mbox`.
pub fn parse(bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            "mbox: the file is empty",
        ));
    }
    let starts = separator_offsets(bytes);
    let Some(&first) = starts.first() else {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            "mbox: no `From ` separator line; not an mbox file",
        ));
    };
    let mut parsed = Parsed {
        format: "mbox",
        ..Parsed::default()
    };
    if bytes[..first].iter().any(|b| !b.is_ascii_whitespace()) {
        parsed.warnings.push(format!(
            "mbox: {first} bytes before the first `From ` line were ignored"
        ));
    }
    let mut first_error = None;
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(bytes.len());
        // The message starts after the separator line itself.
        let body_start = memchr(b'\n', &bytes[start..end]).map_or(end, |p| start + p + 1);
        let raw = &bytes[body_start..end];
        match parse_message_full(&unescape_from(raw)) {
            Ok(mail) => {
                if mail.labels.iter().any(|l| l.eq_ignore_ascii_case("spam")) {
                    parsed.skipped += 1;
                } else {
                    parsed.items.extend(mail.items);
                    parsed.warnings.extend(
                        mail.warnings
                            .into_iter()
                            .map(|w| format!("mbox: message {} at byte {start}: {w}", n + 1)),
                    );
                }
            }
            Err(e) => {
                let msg = format!("mbox: message {} at byte {start}: {e}", n + 1);
                first_error.get_or_insert_with(|| e.clone());
                parsed.warnings.push(msg);
            }
        }
    }
    if parsed.items.is_empty() && parsed.skipped == 0 {
        if let Some(e) = first_error {
            return Err(FormatError::new(
                e.kind,
                format!(
                    "mbox: none of the {} messages could be read; first: {e}",
                    starts.len()
                ),
            ));
        }
    }
    Ok(parsed)
}

/// Byte offsets of every line that starts with `From `.
fn separator_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut line_start = 0;
    while line_start < bytes.len() {
        if bytes[line_start..].starts_with(b"From ") {
            out.push(line_start);
        }
        match memchr(b'\n', &bytes[line_start..]) {
            Some(p) => line_start += p + 1,
            None => break,
        }
    }
    out
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Undo `>From ` quoting: mboxrd escapes `>*From ` by adding one `>`, mboxo escapes only
/// `From `; removing one `>` is right for both. Borrowed when there is nothing to undo.
fn unescape_from(raw: &[u8]) -> Cow<'_, [u8]> {
    let is_escaped = |line: &[u8]| {
        let gts = line.iter().take_while(|&&b| b == b'>').count();
        gts > 0 && line[gts..].starts_with(b"From ")
    };
    let mut any = false;
    for line in raw.split(|&b| b == b'\n') {
        if is_escaped(line) {
            any = true;
            break;
        }
    }
    if !any {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        if is_escaped(line) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

    const SAMPLE: &str = "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n\
X-GM-THRID: 1780000000000000001\n\
X-Gmail-Labels: Sent,Opened\n\
From: Me <me@example.com>\n\
Subject: Plans\n\
Date: Mon, 01 Jan 2024 10:00:00 +0000\n\
Message-ID: <one@example.com>\n\
\n\
Shall we meet?\n\
>From the station, it is 5 minutes.\n\
\n\
From 1780000000000000002@xxx Mon Jan  1 00:00:00 2024\n\
X-GM-THRID: 1780000000000000001\n\
X-Gmail-Labels: Inbox,Category Personal\n\
From: You <you@example.com>\n\
Subject: Re: Plans\n\
Date: Mon, 01 Jan 2024 11:00:00 +0000\n\
Message-ID: <two@example.com>\n\
In-Reply-To: <one@example.com>\n\
\n\
Yes!\n\
\n\
On Mon, Jan 1, 2024 at 10:00 AM Me <me@example.com> wrote:\n\
> Shall we meet?\n\
\n\
From 3@xxx Mon Jan  1 00:00:00 2024\n\
X-Gmail-Labels: Spam\n\
From: Spammer <s@spam.example>\n\
Subject: WIN\n\
\n\
Click\n";

    #[test]
    fn splits_unescapes_and_threads_gmail_takeout() {
        let p = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.format, "mbox");
        assert_eq!(p.items.len(), 2, "{p:#?}");
        assert_eq!(p.skipped, 1);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let (a, b) = (&p.items[0], &p.items[1]);
        assert_eq!(a.text, "Shall we meet?\nFrom the station, it is 5 minutes.");
        assert_eq!(a.thread, "1780000000000000001");
        assert_eq!(b.thread, a.thread);
        assert_eq!(b.text, "Yes!");
        assert_eq!(b.in_reply_to.as_deref(), Some("one@example.com"));
        assert_eq!(a.author.as_deref(), Some("Me <me@example.com>"));
    }

    #[test]
    fn unescape_removes_one_level() {
        assert_eq!(
            &*unescape_from(b"a\n>From x\n>>From y\n> From z\nFrom"),
            b"a\nFrom x\n>From y\n> From z\nFrom"
        );
        assert!(matches!(unescape_from(b"plain\n>quote"), Cow::Borrowed(_)));
    }

    #[test]
    fn broken_message_is_a_warning() {
        let raw = "From a Mon Jan  1 00:00:00 2024\nFrom: a@example.org\nSubject: ok\n\nfine\n\
From b Mon Jan  1 00:00:00 2024\n\nno headers here at all, only words\n";
        let p = parse(raw.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("message 2"));
    }

    #[test]
    fn not_an_mbox() {
        assert_eq!(parse(b"").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse(b"hello\nworld\n").unwrap_err().kind,
            ErrorKind::Malformed
        );
        let e = parse(b"From x\n\nno headers\n").unwrap_err();
        assert!(e.message.contains("none of the 1 messages"), "{e}");
    }

    #[test]
    fn crlf_and_leading_junk() {
        let raw = "junk\r\nFrom a Mon Jan  1 00:00:00 2024\r\nFrom: a@example.org\r\nSubject: s\r\n\r\nhi\r\n";
        let p = parse(raw.as_bytes()).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].text, "hi");
        assert_eq!(p.warnings.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mbox_like_text(
            lines in proptest::collection::vec("(From [ -~]{0,30}|>+From x|From: a@b\\.c|Subject: [ -~]{0,20}|[ -~]{0,50}|)", 0..40)
        ) {
            let _ = parse(lines.join("\n").as_bytes());
        }
    }

    /// Throughput on the perceval mboxes repeated to ~20 MB. Run with
    /// `cargo test -p avatar-formats --release -- --ignored mbox_throughput --nocapture`;
    /// compare with Python's `mailbox.mbox` + `email` on the same file (the test writes it to
    /// the path in `AVATAR_MBOX_BENCH_OUT` if set).
    #[test]
    #[ignore]
    fn mbox_throughput() {
        let dir = std::path::Path::new(FIXTURES).join("mbox");
        if !dir.is_dir() {
            println!("skipping: ../shared/fixtures not found");
            return;
        }
        let mut one = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "mbox") {
                one.extend(std::fs::read(entry.path()).unwrap());
                one.push(b'\n');
            }
        }
        let mut big = Vec::new();
        while big.len() < 20_000_000 {
            big.extend_from_slice(&one);
        }
        if let Ok(out) = std::env::var("AVATAR_MBOX_BENCH_OUT") {
            std::fs::write(out, &big).unwrap();
        }
        let t = std::time::Instant::now();
        let p = parse(&big).unwrap();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "mbox: {} messages, {:.1} MB in {secs:.3}s = {:.1} MB/s, {:.0} msg/s",
            p.items.len(),
            big.len() as f64 / 1e6,
            big.len() as f64 / 1e6 / secs,
            p.items.len() as f64 / secs
        );
    }

    #[test]
    fn perceval_mboxes() {
        let dir = std::path::Path::new(FIXTURES).join("mbox");
        if !dir.is_dir() {
            println!("skipping: ../shared/fixtures not found");
            return;
        }
        let mut total = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "mbox") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let separators = bytes
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"From "))
                .count();
            let p = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            println!(
                "{}: {} items, {} warnings {:?}",
                path.display(),
                p.items.len(),
                p.warnings.len(),
                p.warnings
            );
            assert_eq!(
                p.items.len() + p.warnings.len() + p.skipped,
                separators,
                "{}",
                path.display()
            );
            assert_eq!(p.items.len(), separators, "{}", path.display());
            total += p.items.len();
        }
        assert_eq!(total, 26);

        let single = std::fs::read(dir.join("perceval__mbox_single.mbox")).unwrap();
        let p = parse(&single).unwrap();
        let m = &p.items[0];
        assert_eq!(
            m.title.as_deref(),
            Some("[List-name] Protocol Buffers anyone?")
        );
        assert_eq!(
            m.author.as_deref(),
            Some("Göran Lastname <goran@domain.com>")
        );
        assert_eq!(m.message_id.as_deref(), Some("4CF64D10.9020206@domain.com"));
        assert_eq!(
            m.timestamp.map(|t| t.to_rfc3339()),
            Some("2010-12-01T13:26:40+00:00".to_string())
        );
        assert!(
            m.text.starts_with("Hi!\n\nA message in English"),
            "{:?}",
            m.text
        );

        let unix = std::fs::read(dir.join("perceval__mbox_unixfrom_encoding.mbox")).unwrap();
        let p = parse(&unix).unwrap();
        let m = &p.items[0];
        assert_eq!(
            m.title.as_deref(),
            Some("[Analytics] DNT, standards, and expectations")
        );
        assert_eq!(
            m.author.as_deref(),
            Some("Christian Aistleitner <christian@example.org>")
        );
        // The quoted paragraph and its attribution are gone, the answer below stays.
        assert!(!m.text.contains("Aaron Halfaker wrote"), "{}", m.text);
        assert!(m.text.contains("If WMF's main form of QA"), "{}", m.text);
        assert_eq!(
            m.thread,
            "4ADDAFD4-A226-4F68-B02D-EDA5DE355104@wikimedia.org"
        );

        // An invalid Date header gives no timestamp rather than a wrong one.
        let nf = std::fs::read(dir.join("perceval__mbox_no_fields.mbox")).unwrap();
        let p = parse(&nf).unwrap();
        assert_eq!(p.items.len(), 6);
        assert_eq!(p.items[4].timestamp, None);
    }
}
