use super::*;
use std::io::Write;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn fixture(rel: &str) -> Option<Vec<u8>> {
    let root = std::path::Path::new(FIXTURES);
    if !root.is_dir() {
        println!("skipping: ../shared/fixtures not found");
        return None;
    }
    Some(std::fs::read(root.join(rel)).unwrap())
}

/// Builds a `.msg` the way [MS-OXMSG] lays it out (and as the fixture above shows it):
/// `__substg1.0_PPPPTTTT` streams, a `__properties_version1.0` stream with a 32-byte header
/// then 16-byte fixed property records, `__attach_version1.0_#N` storages.
struct MsgBuilder {
    cfb: CompoundFile<Cursor<Vec<u8>>>,
    fixed: Vec<u8>,
}

impl MsgBuilder {
    fn new() -> Self {
        let cfb = CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        MsgBuilder {
            cfb,
            fixed: vec![0; 32],
        }
    }

    fn raw(&mut self, path: &str, bytes: &[u8]) -> &mut Self {
        self.cfb
            .create_stream(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        self
    }

    fn unicode(&mut self, dir: &str, id: u16, s: &str) -> &mut Self {
        let bytes: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        self.raw(&format!("{dir}/__substg1.0_{id:04X}001F"), &bytes)
    }

    fn string8(&mut self, dir: &str, id: u16, bytes: &[u8]) -> &mut Self {
        self.raw(&format!("{dir}/__substg1.0_{id:04X}001E"), bytes)
    }

    fn binary(&mut self, dir: &str, id: u16, bytes: &[u8]) -> &mut Self {
        self.raw(&format!("{dir}/__substg1.0_{id:04X}0102"), bytes)
    }

    fn fixed(&mut self, id: u16, ty: u16, value: u64) -> &mut Self {
        self.fixed.extend_from_slice(&ty.to_le_bytes());
        self.fixed.extend_from_slice(&id.to_le_bytes());
        self.fixed.extend_from_slice(&6u32.to_le_bytes());
        self.fixed.extend_from_slice(&value.to_le_bytes());
        self
    }

    fn attachment(&mut self, n: u32, name: &str, mime: &str, data: &[u8]) -> &mut Self {
        let dir = format!("/__attach_version1.0_#{n:08X}");
        self.cfb.create_storage(&dir).unwrap();
        self.unicode(&dir, PR_ATTACH_LONG_FILENAME, name)
            .unicode(&dir, PR_ATTACH_MIME_TAG, mime)
            .binary(&dir, PR_ATTACH_DATA_BIN, data)
    }

    fn build(mut self) -> Vec<u8> {
        let fixed = self.fixed.clone();
        self.raw("/__properties_version1.0", &fixed);
        self.bytes()
    }

    /// The file as it is, without a properties stream.
    fn bytes(mut self) -> Vec<u8> {
        self.cfb.flush().unwrap();
        self.cfb.into_inner().into_inner()
    }
}

/// 2024-03-01T09:30:00Z as a FILETIME.
const SENT: u64 = (1_709_285_400 + 11_644_473_600) * 10_000_000;

fn reply_msg() -> Vec<u8> {
    let mut b = MsgBuilder::new();
    b.unicode("", PR_MESSAGE_CLASS, "IPM.Note")
        // 8-bit subject in the message code page (Windows-1252): "Re: Grüße aus Köln".
        .string8("", PR_SUBJECT, b"Re: Gr\xfc\xdfe aus K\xf6ln")
        .unicode(
            "",
            PR_BODY,
            "Thanks, see you on Monday!\r\n\r\nJörg\r\n\r\n-----Original Message-----\r\nFrom: Ann Example <ann@example.org>\r\nSent: Friday, March 1, 2024 9:00 AM\r\nSubject: Grüße aus Köln\r\n\r\nAre you coming?\r\n",
        )
        .unicode("", PR_SENDER_NAME, "Jörg Beispiel")
        // Exchange senders carry an X.500 DN here; the SMTP address is in 0x5D01.
        .unicode("", PR_SENDER_EMAIL_ADDRESS, "/O=EXAMPLE/OU=EXCHANGE ADMINISTRATIVE GROUP/CN=RECIPIENTS/CN=JB")
        .unicode("", PR_SENDER_SMTP_ADDRESS, "joerg@example.de")
        .unicode("", PR_INTERNET_MESSAGE_ID, "<reply-1@example.de>")
        .unicode("", PR_IN_REPLY_TO_ID, "<ask-1@example.org>")
        .unicode("", PR_INTERNET_REFERENCES, "<root-1@example.org> <ask-1@example.org>")
        .fixed(PR_INTERNET_CPID, PT_LONG, 1252)
        .fixed(PR_CLIENT_SUBMIT_TIME, PT_SYSTIME, SENT)
        .fixed(PR_MESSAGE_DELIVERY_TIME, PT_SYSTIME, SENT + 600_000_000)
        .attachment(0, "agenda.txt", "text/plain", b"1. Budget\r\n2. Caf\xe9 order\r\n")
        .attachment(1, "photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0 not really a jpeg")
        .attachment(2, "minutes.md", "application/octet-stream", "# Minutes\n\nWe agreed.".as_bytes());
    b.build()
}

#[test]
fn real_outlook_msg_fixture_saved_as_eml() {
    let Some(bytes) = fixture("eml/mailparser__mail_outlook_1.eml") else {
        return;
    };
    // Sniffed by content despite its .eml name.
    let p = crate::parse("mailparser__mail_outlook_1.eml", None, &bytes).unwrap();
    assert_eq!(p.format, "msg");
    // Its three attachments are images (newsletter.png, spacer.gif, image004.jpg): no documents.
    assert_eq!(p.items.len(), 1, "{p:#?}");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let m = &p.items[0];
    assert_eq!(m.kind, RecordKind::Email);
    assert_eq!(
        m.title.as_deref(),
        Some("Newsletter Prüfung Personalwesen / Prüfung Eröffnungsbilanz")
    );
    assert_eq!(m.author.as_deref(), Some("NueblingV@w-vwa.de"));
    // Client submit time; the transport headers say `Date: Mon, 18 Sep 2017 12:00:18 +0200`.
    assert_eq!(
        m.timestamp.map(|t| t.to_rfc3339()),
        Some("2017-09-18T10:00:18+00:00".to_string())
    );
    assert_eq!(
        m.message_id.as_deref(),
        Some("20170918100018.6AE0948009C@www.w-vwa.de")
    );
    assert_eq!(m.thread, "20170918100018.6AE0948009C@www.w-vwa.de");
    assert_eq!(m.in_reply_to, None);
    assert!(
        m.text
            .starts_with("Wenn Sie diesen Newsletter nicht lesen können"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Sehr geehrte Frau Gaiser-Schönenborn,"));
    assert!(m.text.contains("Valerie Nübling\nBildungsreferentin"));
    // The same bytes forced through the eml reader (a Maildir hint) are handed over too.
    let forced = crate::parse("x.eml", Some("eml"), &bytes).unwrap();
    assert_eq!(forced, p);
    // Cut short: an error, never a panic.
    // Missing only part of the last sector: the streams are all there, it still reads.
    assert_eq!(
        parse("cut.msg", &bytes[..bytes.len() - 1]).unwrap().items,
        p.items
    );
    for cut in [8, 100, 600, 4096, 82_688] {
        let e = parse("cut.msg", &bytes[..cut]).unwrap_err();
        let want = if cut % 512 == 0 {
            ErrorKind::Malformed
        } else {
            ErrorKind::Truncated
        };
        assert_eq!(e.kind, want, "cut at {cut}: {e}");
        assert!(e.message.contains("damaged or cut short"), "{e}");
    }
}

#[test]
fn reads_properties_strips_the_quote_and_extracts_text_attachments() {
    let bytes = reply_msg();
    let p = crate::parse("mail.bin", None, &bytes).unwrap();
    assert_eq!(p.format, "msg");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.items.len(), 3, "{p:#?}");
    let m = &p.items[0];
    assert_eq!(m.title.as_deref(), Some("Re: Grüße aus Köln"));
    assert_eq!(m.text, "Thanks, see you on Monday!\n\nJörg");
    assert_eq!(
        m.author.as_deref(),
        Some("Jörg Beispiel <joerg@example.de>")
    );
    assert_eq!(m.message_id.as_deref(), Some("reply-1@example.de"));
    assert_eq!(m.in_reply_to.as_deref(), Some("ask-1@example.org"));
    assert_eq!(m.thread, "root-1@example.org");
    assert_eq!(
        m.timestamp.map(|t| t.to_rfc3339()),
        Some("2024-03-01T09:30:00+00:00".to_string())
    );
    let (agenda, minutes) = (&p.items[1], &p.items[2]);
    assert_eq!(agenda.kind, RecordKind::Document);
    assert_eq!(agenda.title.as_deref(), Some("agenda.txt"));
    assert_eq!(agenda.text, "1. Budget\r\n2. Café order");
    assert_eq!(agenda.thread, m.thread);
    assert_eq!(agenda.in_reply_to.as_deref(), Some("reply-1@example.de"));
    assert_eq!(agenda.author, m.author);
    assert_eq!(agenda.timestamp, m.timestamp);
    assert_eq!(minutes.title.as_deref(), Some("minutes.md"));
    assert_eq!(minutes.text, "# Minutes\n\nWe agreed.");
}

#[test]
fn html_only_body_loses_its_quote_and_headers_fill_gaps() {
    let mut b = MsgBuilder::new();
    b.unicode("", PR_MESSAGE_CLASS, "IPM.Note")
        .unicode("", PR_SUBJECT, "Lunch")
        .binary(
            "",
            PR_HTML,
            b"<html><body><div>Sure, 12:30 works.</div><div class=\"gmail_quote\">On Mon, Bo wrote:<blockquote>Lunch?</blockquote></div></body></html>",
        )
        .unicode(
            "",
            PR_TRANSPORT_MESSAGE_HEADERS,
            "From: Cy <cy@example.com>\r\nDate: Tue, 5 Mar 2024 11:00:00 +0100\r\nMessage-ID: <h1@example.com>\r\nIn-Reply-To: <q1@example.com>\r\nSubject: Lunch\r\n\r\n",
        );
    let p = parse("lunch.msg", &b.build()).unwrap();
    let m = &p.items[0];
    assert_eq!(m.text, "Sure, 12:30 works.");
    assert_eq!(m.author.as_deref(), Some("Cy <cy@example.com>"));
    assert_eq!(m.message_id.as_deref(), Some("h1@example.com"));
    assert_eq!(m.in_reply_to.as_deref(), Some("q1@example.com"));
    assert_eq!(m.thread, "q1@example.com");
    assert_eq!(
        m.timestamp.map(|t| t.to_rfc3339()),
        Some("2024-03-05T10:00:00+00:00".to_string())
    );
}

#[test]
fn rtf_only_body_keeps_the_subject_with_a_warning() {
    let mut b = MsgBuilder::new();
    b.unicode("", PR_MESSAGE_CLASS, "IPM.Note")
        .unicode("", PR_SUBJECT, "Old mail")
        .binary("", PR_RTF_COMPRESSED, b"\x10\0\0\0LZFu compressed rtf");
    let p = parse("old.msg", &b.build()).unwrap();
    assert_eq!(p.items[0].title.as_deref(), Some("Old mail"));
    assert_eq!(p.items[0].text, "");
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("compressed RTF"), "{:?}", p.warnings);
}

#[test]
fn a_compound_file_that_is_not_a_message_is_unsupported() {
    let mut b = MsgBuilder::new();
    b.raw("/WordDocument", b"\xec\xa5 word binary")
        .raw("/1Table", b"table");
    let doc = b.bytes();
    let e = crate::parse("report.doc", None, &doc).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("Word 97-2003 .doc"), "{e}");

    let mut c = MsgBuilder::new();
    c.unicode("", PR_MESSAGE_CLASS, "IPM.Contact")
        .unicode("", PR_SUBJECT, "Ann");
    let e = parse("ann.msg", &c.build()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("IPM.Contact"), "{e}");
}

#[test]
fn broken_input_is_an_error() {
    assert_eq!(parse("x.msg", b"").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("x.msg", &CFB_MAGIC[..4]).unwrap_err().kind,
        ErrorKind::Truncated
    );
    assert_eq!(
        parse("x.msg", b"From: a@b\n\nhi").unwrap_err().kind,
        ErrorKind::Malformed
    );
    let mut junk = CFB_MAGIC.to_vec();
    junk.extend(std::iter::repeat_n(0xAB, 600));
    assert!(parse("x.msg", &junk).is_err());
    let mut empty = MsgBuilder::new();
    empty.unicode("", PR_MESSAGE_CLASS, "IPM.Note");
    assert_eq!(
        parse("x.msg", &empty.build()).unwrap_err().kind,
        ErrorKind::Malformed
    );
}

#[test]
fn filetime_and_codepages() {
    assert_eq!(filetime(0), None);
    assert_eq!(
        filetime(SENT).map(|t| t.to_rfc3339()),
        Some("2024-03-01T09:30:00+00:00".to_string())
    );
    assert_eq!(decode_8bit(b"Gr\xfc\xdfe\0junk", Some(1252)), "Grüße");
    assert_eq!(
        decode_8bit(b"\xcf\xf0\xe8\xe2\xe5\xf2", Some(1251)),
        "Привет"
    );
    assert_eq!(decode_8bit("déjà".as_bytes(), Some(1252)), "déjà");
    assert_eq!(utf16le(b"h\0i\0\0\0"), "hi");
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
        let _ = parse("x.msg", &bytes);
        let mut with_magic = CFB_MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse("x.msg", &with_magic);
    }

    #[test]
    fn parse_never_panics_on_a_damaged_message(
        flips in proptest::collection::vec((0usize..8192, proptest::prelude::any::<u8>()), 1..16)
    ) {
        let mut bytes = reply_msg();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let _ = parse("x.msg", &bytes);
    }
}

#[test]
fn a_pst_reaching_the_parsers_says_how_it_is_read() {
    // Ingest converts .pst files with readpst; one stored raw (no readpst) dead-letters with
    // the way out.
    let e = crate::parse("archive.pst", None, b"!BDN\x00\x00\x00\x00\x00\x01").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Binary);
    assert!(
        e.message.contains("Outlook .pst") && e.message.contains("readpst"),
        "{e}"
    );
}
