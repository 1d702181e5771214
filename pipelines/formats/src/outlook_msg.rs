//! Outlook `.msg`: one message saved from Outlook ("Save as", drag to the desktop), an OLE2
//! Compound File ([MS-OXMSG]) read with the `cfb` crate.
//!
//! A `.msg` is a small file system of MAPI properties: each variable-length property is a
//! stream `__substg1.0_PPPPTTTT` (PPPP the property id, TTTT its type: `001F` UTF-16LE,
//! `001E` 8-bit in the message code page, `0102` binary), fixed-size ones (times, code pages)
//! are 16-byte records in `__properties_version1.0` after a 32-byte header, and each
//! attachment is a storage `__attach_version1.0_#XXXXXXXX` with its own streams.
//!
//! Read: subject (0x0037), plain body (0x1000) or, when absent, the HTML body (0x1013, with
//! quote containers removed as for HTML mail), sender name (0x0C1A) and SMTP address (0x5D01,
//! else 0x0C1F when it is an address, not an Exchange DN), the sent time (client submit time
//! 0x0039, like a mail's `Date:`, else delivery time 0x0E06), the Internet message id
//! (0x1035), in-reply-to (0x1042), references (0x1039). Received mail also keeps its
//! transport headers (0x007D): when a property is missing they are asked, through the same
//! MIME parser as `.eml`. The thread follows the email module's rule (first reference, then
//! parent, then own id, then the subject without `Re:`). Reply stripping is the email one.
//! Attachments (0x3707/0x3704 name, 0x3701 data, 0x370E MIME type) become documents as for
//! mail. RTF-only bodies (0x1009, compressed RTF) are not decoded: such a message keeps its
//! subject and a warning. A compound file that is not a message (Word `.doc`, Excel `.xls`)
//! is refused as Unsupported with what it seems to be.

use std::io::{Cursor, Read};

use avatar_schemas::RecordKind;
use avatar_text::{html_to_text_without_quotes, strip_reply};
use cfb::CompoundFile;
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

use crate::email::attachments::{attachment_items, Attachment};
use crate::email::{normalize_subject, CFB_MAGIC};
use crate::{ErrorKind, FormatError, Item, Parsed};

const PT_UNICODE: u16 = 0x001F;
const PT_STRING8: u16 = 0x001E;
const PT_BINARY: u16 = 0x0102;
const PT_LONG: u16 = 0x0003;
const PT_SYSTIME: u16 = 0x0040;

const PR_MESSAGE_CLASS: u16 = 0x001A;
const PR_SUBJECT: u16 = 0x0037;
const PR_CLIENT_SUBMIT_TIME: u16 = 0x0039;
const PR_TRANSPORT_MESSAGE_HEADERS: u16 = 0x007D;
const PR_SENDER_NAME: u16 = 0x0C1A;
const PR_SENDER_EMAIL_ADDRESS: u16 = 0x0C1F;
const PR_MESSAGE_DELIVERY_TIME: u16 = 0x0E06;
const PR_BODY: u16 = 0x1000;
const PR_RTF_COMPRESSED: u16 = 0x1009;
const PR_HTML: u16 = 0x1013;
const PR_INTERNET_MESSAGE_ID: u16 = 0x1035;
const PR_INTERNET_REFERENCES: u16 = 0x1039;
const PR_IN_REPLY_TO_ID: u16 = 0x1042;
const PR_ATTACH_DATA_BIN: u16 = 0x3701;
const PR_ATTACH_FILENAME: u16 = 0x3704;
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;
const PR_ATTACH_MIME_TAG: u16 = 0x370E;
const PR_INTERNET_CPID: u16 = 0x3FDE;
const PR_MESSAGE_CODEPAGE: u16 = 0x3FFD;
const PR_SENDER_SMTP_ADDRESS: u16 = 0x5D01;

/// Attachment storages read per message (hostile files may list thousands).
const MAX_ATTACHMENTS: usize = 256;

/// Binary format, sniffed by its magic bytes in `sniff.rs`; nothing to see in text.
pub fn looks_like(_name: &str, _head: &str) -> bool {
    false
}

/// Parse one `.msg` file named `name`; format `msg`. The mail is the first item, its
/// readable attachments follow as documents.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    if !bytes.starts_with(&CFB_MAGIC) {
        let kind = if CFB_MAGIC.starts_with(bytes) {
            ErrorKind::Truncated
        } else {
            ErrorKind::Malformed
        };
        return Err(FormatError::new(
            kind,
            format!("{name}: not an Outlook .msg (no OLE2 compound file signature D0CF11E0)"),
        ));
    }
    let mut cfb = CompoundFile::open(Cursor::new(bytes)).map_err(|e| {
        // A compound file is whole 512-byte sectors: any other length was cut short.
        FormatError::new(
            if bytes.len() < 512 || !bytes.len().is_multiple_of(512) {
                ErrorKind::Truncated
            } else {
                ErrorKind::Malformed
            },
            format!("{name}: the compound file cannot be read ({e}); the .msg is damaged or cut short, save it from Outlook again"),
        )
    })?;
    let mut msg = MsgReader {
        cfb: &mut cfb,
        limit: bytes.len() as u64,
    };
    let root: Vec<String> = msg
        .cfb
        .read_root_storage()
        .map(|e| e.name().to_string())
        .collect();
    if !root
        .iter()
        .any(|n| n == "__properties_version1.0" || n.starts_with("__substg1.0_"))
    {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "{name}: an OLE2 compound file that is not an Outlook message ({}); convert it to a format Avatar reads (.docx, .pdf, .txt) or, for mail, save it from Outlook as .msg or .eml",
                what_compound_file(&root)
            ),
        ));
    }
    let class = msg.string("", PR_MESSAGE_CLASS, None).unwrap_or_default();
    let upper = class.to_ascii_uppercase();
    if [
        "IPM.CONTACT",
        "IPM.DISTLIST",
        "IPM.APPOINTMENT",
        "IPM.SCHEDULE",
        "IPM.TASK",
    ]
    .iter()
    .any(|c| upper.starts_with(c))
    {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: an Outlook item of class {class}, not a message; only mail (.msg of class IPM.Note) is read"),
        ));
    }
    read_message(name, &mut msg)
}

/// What a non-message compound file most likely is, from its top-level stream names.
fn what_compound_file(root: &[String]) -> &'static str {
    let has = |n: &str| root.iter().any(|r| r == n);
    if has("WordDocument") {
        "a Word 97-2003 .doc"
    } else if has("Workbook") || has("Book") {
        "an Excel 97-2003 .xls"
    } else if has("PowerPoint Document") {
        "a PowerPoint 97-2003 .ppt"
    } else if has("__nameid_version1.0") {
        "Outlook named properties without a message"
    } else if has("VisioDocument") {
        "a Visio drawing"
    } else {
        "unknown content"
    }
}

fn read_message(name: &str, msg: &mut MsgReader<'_, '_>) -> Result<Parsed, FormatError> {
    let mut warnings = Vec::new();
    let fixed = msg.fixed_properties("", 32);
    let codepage =
        fixed_long(&fixed, PR_INTERNET_CPID).or_else(|| fixed_long(&fixed, PR_MESSAGE_CODEPAGE));
    let headers = msg
        .string("", PR_TRANSPORT_MESSAGE_HEADERS, codepage)
        .filter(|h| !h.trim().is_empty());
    let parsed_headers = headers
        .as_deref()
        .and_then(|h| MessageParser::default().parse_headers(h.as_bytes()));

    let subject = msg
        .string("", PR_SUBJECT, codepage)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            parsed_headers
                .as_ref()
                .and_then(|h| h.subject().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
        });

    let body = match msg
        .string("", PR_BODY, codepage)
        .filter(|b| !b.trim().is_empty())
    {
        Some(plain) => strip_reply(&plain),
        None => match msg.html("", codepage) {
            Some(html) => strip_reply(&html_to_text_without_quotes(&html)),
            None => {
                if msg.exists("", PR_RTF_COMPRESSED, PT_BINARY) {
                    warnings.push(format!(
                        "{name}: the body is only in compressed RTF, which Avatar does not read yet; the message keeps its subject"
                    ));
                }
                String::new()
            }
        },
    };

    let header_id =
        |f: fn(&mail_parser::Message<'_>) -> Option<String>| parsed_headers.as_ref().and_then(f);
    let message_id = msg
        .string("", PR_INTERNET_MESSAGE_ID, codepage)
        .map(|s| clean_id(&s))
        .filter(|s| !s.is_empty())
        .or_else(|| header_id(|m| m.message_id().map(clean_id).filter(|s| !s.is_empty())));
    let in_reply_to = msg
        .string("", PR_IN_REPLY_TO_ID, codepage)
        .and_then(|s| first_id(&s))
        .or_else(|| header_id(|m| first_of(m.in_reply_to())));
    let references = msg
        .string("", PR_INTERNET_REFERENCES, codepage)
        .and_then(|s| first_id(&s))
        .or_else(|| header_id(|m| first_of(m.references())));
    let thread = references
        .or_else(|| in_reply_to.clone())
        .or_else(|| message_id.clone())
        .or_else(|| {
            subject
                .as_deref()
                .map(normalize_subject)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_default();

    let timestamp = fixed_time(&fixed, PR_CLIENT_SUBMIT_TIME)
        .or_else(|| fixed_time(&fixed, PR_MESSAGE_DELIVERY_TIME))
        .or_else(|| {
            let d = parsed_headers.as_ref()?.date()?;
            d.is_valid()
                .then(|| DateTime::from_timestamp(d.to_timestamp(), 0))
                .flatten()
        });

    let author = author(msg, codepage).or_else(|| {
        let h = parsed_headers.as_ref()?;
        let from = h.from()?.first()?;
        match (from.name(), from.address()) {
            (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
            (_, Some(a)) => Some(a.to_string()),
            (Some(n), None) => Some(n.to_string()),
            (None, None) => None,
        }
    });

    if subject.is_none() && body.trim().is_empty() && author.is_none() {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!("{name}: an Outlook message with no subject, body or sender; nothing to read"),
        ));
    }

    let item = Item {
        kind: RecordKind::Email,
        thread,
        timestamp,
        author,
        text: body,
        title: subject,
        message_id,
        in_reply_to,
        from_owner: false,
    };

    let raw_attachments = msg.attachments(codepage, &mut warnings);
    let attachments: Vec<Attachment<'_>> = raw_attachments
        .iter()
        .map(|a| Attachment {
            name: a.name.clone(),
            mime: a.mime.clone(),
            text: None,
            bytes: &a.data,
        })
        .collect();
    let docs = attachment_items(&item, &attachments, &mut warnings);
    let mut items = Vec::with_capacity(1 + docs.len());
    items.push(item);
    items.extend(docs);
    Ok(Parsed {
        format: "msg",
        items,
        skipped: 0,
        warnings,
    })
}

/// `Name <address>` from the sender properties; Exchange-internal senders have an X.500
/// DN (`/O=ORG/OU=...`) as their address, which is left out in favour of the SMTP one.
fn author(msg: &mut MsgReader<'_, '_>, codepage: Option<i32>) -> Option<String> {
    let name = msg
        .string("", PR_SENDER_NAME, codepage)
        .map(|n| n.trim().trim_matches('"').trim().to_string())
        .filter(|n| !n.is_empty());
    let address = [PR_SENDER_SMTP_ADDRESS, PR_SENDER_EMAIL_ADDRESS]
        .into_iter()
        .filter_map(|id| msg.string("", id, codepage))
        .map(|a| a.trim().to_string())
        .find(|a| a.contains('@') && !a.starts_with('/'));
    match (name, address) {
        (Some(n), Some(a)) if !n.eq_ignore_ascii_case(&a) => Some(format!("{n} <{a}>")),
        (_, Some(a)) => Some(a),
        (Some(n), None) => Some(n),
        (None, None) => None,
    }
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The first id of an `In-Reply-To`/`References` header value.
fn first_of(value: &mail_parser::HeaderValue<'_>) -> Option<String> {
    value.as_text_list()?.first().and_then(|s| first_id(s))
}

fn first_id(ids: &str) -> Option<String> {
    ids.split_whitespace()
        .next()
        .map(clean_id)
        .filter(|s| !s.is_empty())
}

/// One attachment storage's name, type and bytes.
struct RawAttachment {
    name: Option<String>,
    mime: Option<String>,
    data: Vec<u8>,
}

/// A fixed-size property record: id, type and its 8 value bytes.
type Fixed = Vec<(u16, u16, [u8; 8])>;

fn fixed_long(fixed: &Fixed, id: u16) -> Option<i32> {
    fixed
        .iter()
        .find(|(i, t, _)| *i == id && *t == PT_LONG)
        .map(|(_, _, v)| i32::from_le_bytes([v[0], v[1], v[2], v[3]]))
}

fn fixed_time(fixed: &Fixed, id: u16) -> Option<DateTime<Utc>> {
    fixed
        .iter()
        .find(|(i, t, _)| *i == id && *t == PT_SYSTIME)
        .and_then(|(_, _, v)| filetime(u64::from_le_bytes(*v)))
}

/// A Windows FILETIME (100 ns ticks since 1601-01-01 UTC); 0 means unset.
fn filetime(ticks: u64) -> Option<DateTime<Utc>> {
    const UNIX_EPOCH_TICKS: u64 = 116_444_736_000_000_000;
    if ticks == 0 || ticks < UNIX_EPOCH_TICKS {
        return None;
    }
    let since = ticks - UNIX_EPOCH_TICKS;
    let secs = i64::try_from(since / 10_000_000).ok()?;
    let nanos = u32::try_from((since % 10_000_000) * 100).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// Streams of one `.msg`, read with a size cap (a stream cannot be larger than the file).
struct MsgReader<'a, 'b> {
    cfb: &'a mut CompoundFile<Cursor<&'b [u8]>>,
    limit: u64,
}

impl MsgReader<'_, '_> {
    fn path(dir: &str, id: u16, ty: u16) -> String {
        format!("{dir}/__substg1.0_{id:04X}{ty:04X}")
    }

    fn exists(&self, dir: &str, id: u16, ty: u16) -> bool {
        self.cfb.is_stream(Self::path(dir, id, ty))
    }

    fn stream(&mut self, path: &str) -> Option<Vec<u8>> {
        if !self.cfb.is_stream(path) {
            return None;
        }
        let stream = self.cfb.open_stream(path).ok()?;
        let mut buf = Vec::new();
        stream.take(self.limit).read_to_end(&mut buf).ok()?;
        Some(buf)
    }

    /// A string property, UTF-16 or 8-bit (decoded with the message code page).
    fn string(&mut self, dir: &str, id: u16, codepage: Option<i32>) -> Option<String> {
        if let Some(b) = self.stream(&Self::path(dir, id, PT_UNICODE)) {
            return Some(utf16le(&b));
        }
        self.stream(&Self::path(dir, id, PT_STRING8))
            .map(|b| decode_8bit(&b, codepage))
    }

    /// The HTML body: binary in the charset the HTML states (usually the code page), or a
    /// string property in some writers.
    fn html(&mut self, dir: &str, codepage: Option<i32>) -> Option<String> {
        let html = match self.stream(&Self::path(dir, PR_HTML, PT_BINARY)) {
            Some(b) => decode_8bit(&b, codepage),
            None => self.string(dir, PR_HTML, codepage)?,
        };
        (!html.trim().is_empty()).then_some(html)
    }

    /// The fixed-size property records of `dir`, after its `header`-byte header.
    fn fixed_properties(&mut self, dir: &str, header: usize) -> Fixed {
        let Some(b) = self.stream(&format!("{dir}/__properties_version1.0")) else {
            return Vec::new();
        };
        b.get(header..)
            .unwrap_or(&[])
            .chunks_exact(16)
            .map(|r| {
                let ty = u16::from_le_bytes([r[0], r[1]]);
                let id = u16::from_le_bytes([r[2], r[3]]);
                let mut v = [0u8; 8];
                v.copy_from_slice(&r[8..16]);
                (id, ty, v)
            })
            .collect()
    }

    fn attachments(
        &mut self,
        codepage: Option<i32>,
        warnings: &mut Vec<String>,
    ) -> Vec<RawAttachment> {
        let mut dirs: Vec<String> = self
            .cfb
            .read_root_storage()
            .filter(|e| e.is_storage() && e.name().starts_with("__attach_version1.0_#"))
            .map(|e| format!("/{}", e.name()))
            .collect();
        dirs.sort();
        if dirs.len() > MAX_ATTACHMENTS {
            warnings.push(format!(
                "only the first {MAX_ATTACHMENTS} of {} attachments were read",
                dirs.len()
            ));
            dirs.truncate(MAX_ATTACHMENTS);
        }
        let mut out = Vec::new();
        for dir in dirs {
            // Embedded messages (0x3701 of type 000D, a storage) are forwarded mail, not
            // documents; only binary data is read.
            let Some(data) = self.stream(&Self::path(&dir, PR_ATTACH_DATA_BIN, PT_BINARY)) else {
                continue;
            };
            let name = self
                .string(&dir, PR_ATTACH_LONG_FILENAME, codepage)
                .or_else(|| self.string(&dir, PR_ATTACH_FILENAME, codepage))
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            let mime = self
                .string(&dir, PR_ATTACH_MIME_TAG, codepage)
                .map(|m| m.trim().to_ascii_lowercase())
                .filter(|m| !m.is_empty());
            out.push(RawAttachment { name, mime, data });
        }
        out
    }
}

/// UTF-16LE without its terminating NULs (some writers include them).
fn utf16le(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
        .trim_end_matches('\0')
        .to_string()
}

/// 8-bit text in Windows code page `codepage` (Windows-1252 when unknown); UTF-8 wins when
/// the bytes are valid UTF-8, because some writers store UTF-8 whatever the code page says.
fn decode_8bit(b: &[u8], codepage: Option<i32>) -> String {
    let b = match b.iter().position(|&c| c == 0) {
        Some(end) => &b[..end],
        None => b,
    };
    if let Ok(s) = std::str::from_utf8(b) {
        return s.to_string();
    }
    let charset: String = match codepage.unwrap_or(1252) {
        65001 => return String::from_utf8_lossy(b).into_owned(),
        cp @ 1250..=1258 => format!("windows-{cp}"),
        cp @ 28591..=28599 => format!("iso-8859-{}", cp - 28590),
        28603 => "iso-8859-13".into(),
        28605 => "iso-8859-15".into(),
        932 => "shift_jis".into(),
        936 => "gbk".into(),
        949 => "euc-kr".into(),
        950 => "big5".into(),
        20866 => "koi8-r".into(),
        21866 => "koi8-u".into(),
        50220..=50222 => "iso-2022-jp".into(),
        51932 => "euc-jp".into(),
        _ => "windows-1252".into(),
    };
    match mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()) {
        Some(decode) => decode(b),
        None => String::from_utf8_lossy(b).into_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
