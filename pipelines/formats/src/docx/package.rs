//! What DOCX, ODT and EPUB share: each is a zip package of XML files with a metadata part.
//!
//! Reading an entry is bounded (64 MiB per entry, 256 MiB per package) because a few KB of
//! deflate can expand to gigabytes, and a "document" is an easy way to deliver a zip bomb.
//! XML is read with quick-xml as a flat event stream, so hostile nesting costs no stack.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;
use zip::result::ZipError;
use zip::ZipArchive;

use crate::{ErrorKind, FormatError};

/// Largest decompressed size of one entry (the main XML part of a very long document is
/// a few MiB; anything past this is an attack or not a document).
pub(crate) const MAX_ENTRY: u64 = 64 * 1024 * 1024;
/// Largest decompressed size read from one package in total (an EPUB reads every chapter).
pub(crate) const MAX_TOTAL: u64 = 256 * 1024 * 1024;

/// An opened zip package that remembers how much it has inflated so far.
pub(crate) struct Package<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    format: &'static str,
    inflated: u64,
}

impl<'a> Package<'a> {
    /// Open `bytes` as a zip; `format` names the format in error messages.
    pub(crate) fn open(format: &'static str, bytes: &'a [u8]) -> Result<Self, FormatError> {
        if !bytes.starts_with(b"PK") {
            return Err(not_a_zip(format, bytes));
        }
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
            FormatError::new(
                ErrorKind::Truncated,
                format!(
                    "{format}: the zip container cannot be read ({e}); the file was probably cut off during a copy or download: copy it again"
                ),
            )
        })?;
        Ok(Package {
            archive,
            format,
            inflated: 0,
        })
    }

    /// Whether the package has an entry of exactly this name.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// Every entry name, in archive order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(Result::ok)
            .map(|n| n.into_owned())
            .collect()
    }

    /// The entry `name` as UTF-8 text (a BOM is dropped), `None` when it is absent.
    pub(crate) fn text(&mut self, name: &str) -> Result<Option<String>, FormatError> {
        let Some(bytes) = self.bytes(name)? else {
            return Ok(None);
        };
        let bytes = bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .map(<[u8]>::to_vec)
            .unwrap_or(bytes);
        String::from_utf8(bytes).map(Some).map_err(|e| {
            FormatError::new(
                ErrorKind::Encoding,
                format!(
                    "{}: `{name}` is not valid UTF-8 (byte {}); the package is damaged or was written by a broken tool",
                    self.format,
                    e.utf8_error().valid_up_to()
                ),
            )
        })
    }

    /// The raw bytes of entry `name`, `None` when it is absent. Errors for encrypted
    /// entries, unknown compression, damage, or an entry over the size limits.
    pub(crate) fn bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, FormatError> {
        let format = self.format;
        let budget = MAX_ENTRY.min(MAX_TOTAL.saturating_sub(self.inflated));
        let mut file = match self.archive.by_name(name) {
            Ok(f) => f,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(entry_error(format, name, &e)),
        };
        if file.size() > budget {
            return Err(too_big(format, name));
        }
        let mut buf = Vec::new();
        // `take` bounds the work even when the declared size lies.
        let read = (&mut file).take(budget + 1).read_to_end(&mut buf);
        if let Err(e) = read {
            return Err(FormatError::new(
                ErrorKind::Malformed,
                format!("{format}: entry `{name}` is damaged and cannot be decompressed ({e})"),
            ));
        }
        if buf.len() as u64 > budget {
            return Err(too_big(format, name));
        }
        self.inflated += buf.len() as u64;
        Ok(Some(buf))
    }
}

fn too_big(format: &str, name: &str) -> FormatError {
    FormatError::new(
        ErrorKind::Unsupported,
        format!(
            "{format}: entry `{name}` decompresses to more than {} MiB (or the package to more than {} MiB); refusing it as a possible zip bomb",
            MAX_ENTRY >> 20,
            MAX_TOTAL >> 20
        ),
    )
}

fn entry_error(format: &str, name: &str, e: &ZipError) -> FormatError {
    match e {
        ZipError::UnsupportedArchive(_) | ZipError::InvalidPassword => FormatError::new(
            ErrorKind::Unsupported,
            format!("{format}: entry `{name}` is password-protected or uses an unsupported zip feature ({e}); save an unprotected copy and ingest that"),
        ),
        ZipError::CompressionMethodNotSupported(_) => FormatError::new(
            ErrorKind::Unsupported,
            format!("{format}: entry `{name}` uses a compression method Avatar does not read ({e}); re-save the document from its application"),
        ),
        _ => FormatError::new(
            ErrorKind::Malformed,
            format!("{format}: entry `{name}` cannot be read ({e}); the package is damaged"),
        ),
    }
}

/// The error for a file that should be a zip package and is not: legacy Office binaries
/// and password-protected Office files are Compound Files, not zips.
fn not_a_zip(format: &str, bytes: &[u8]) -> FormatError {
    if bytes.starts_with(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]) {
        return FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "{format}: this is an OLE Compound File, not a zip package: either a legacy binary document (.doc) renamed, or a password-protected file; open it and save it as an unprotected .{format}"
            ),
        );
    }
    FormatError::new(
        ErrorKind::Malformed,
        format!("{format}: not a zip package (a .{format} file starts with `PK`); the file is damaged or not a .{format}"),
    )
}

/// The error for XML that quick-xml rejects, with the entry and byte offset.
pub(crate) fn xml_error(
    format: &str,
    entry: &str,
    e: &quick_xml::Error,
    position: u64,
) -> FormatError {
    FormatError::new(
        ErrorKind::Malformed,
        format!("{format}: `{entry}` is not well-formed XML at byte {position} ({e}); the document is damaged"),
    )
}

/// The part of a qualified name after its prefix (`w:t` -> `t`).
pub(crate) fn local(name: &str) -> &str {
    name.rsplit_once(':').map(|(_, l)| l).unwrap_or(name)
}

/// The value of the attribute whose local name is `want` (prefix ignored), unescaped.
pub(crate) fn attr(e: &BytesStart<'_>, want: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        if local(a.key.as_ref()) != want {
            return None;
        }
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(Cow::into_owned)
            .unwrap_or_else(|_| a.value.clone().into_owned());
        Some(v)
    })
}

/// Append the character an entity or character reference stands for; an unknown entity is
/// kept as written so no text silently disappears.
pub(crate) fn push_ref(out: &mut String, r: &BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        out.push(c);
        return;
    }
    let name: &str = r;
    match quick_xml::escape::resolve_predefined_entity(name) {
        Some(s) => out.push_str(s),
        None => {
            out.push('&');
            out.push_str(name);
            out.push(';');
        }
    }
}

/// One leaf-ish element of a metadata part: its local name, attributes (local names) and
/// text content.
#[derive(Debug, Default, Clone)]
pub(crate) struct Field {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
}

impl Field {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every element of `xml` whose local name is in `wanted`, with its text trimmed, in
/// document order. Metadata parts are flat, so one pass with no tree is enough; an element
/// nested in a wanted one adds its text to the outer one.
pub(crate) fn fields(
    format: &str,
    entry: &str,
    xml: &str,
    wanted: &[&str],
) -> Result<Vec<Field>, FormatError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut out = Vec::new();
    let mut open: Option<(Field, usize)> = None;
    let mut depth = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| xml_error(format, entry, &e, reader.buffer_position()))?;
        match ev {
            Event::Start(e) => {
                depth += 1;
                if open.is_none() {
                    let n = local(e.name().as_ref()).to_string();
                    if wanted.contains(&n.as_str()) {
                        open = Some((field_of(n, &e), depth));
                    }
                }
            }
            Event::Empty(e) if open.is_none() => {
                let n = local(e.name().as_ref()).to_string();
                if wanted.contains(&n.as_str()) {
                    out.push(field_of(n, &e));
                }
            }
            Event::End(_) => {
                if matches!(open, Some((_, d)) if d == depth) {
                    if let Some((mut f, _)) = open.take() {
                        f.text = f.text.trim().to_string();
                        out.push(f);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                if let Some((f, _)) = open.as_mut() {
                    f.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((f, _)) = open.as_mut() {
                    f.text.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((f, _)) = open.as_mut() {
                    push_ref(&mut f.text, &r);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

fn field_of(name: String, e: &BytesStart<'_>) -> Field {
    let attrs = e
        .attributes()
        .flatten()
        .map(|a| {
            let k = local(a.key.as_ref()).to_string();
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.clone().into_owned());
            (k, v)
        })
        .collect();
    Field {
        name,
        attrs,
        text: String::new(),
    }
}

/// The first non-empty text among `fields` named `name`.
pub(crate) fn first<'f>(fields: &'f [Field], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| f.name == name && !f.text.is_empty())
        .map(|f| f.text.as_str())
}

/// A W3C/ISO 8601 date as documents write it (`2024-03-01T10:20:30Z`, with offset,
/// fractions, no zone, or only `2024-03-01` / `2024-03` / `2024`), in UTC. A time without
/// a zone (ODF `meta:creation-date`) is read as UTC: the zone is not recorded anywhere.
pub(crate) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M:%S%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.with_timezone(&Utc));
        }
    }
    let naive = s.strip_suffix('Z').unwrap_or(s);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(Utc.from_utc_datetime(&d));
        }
    }
    let date = NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&format!("{naive}-01"), "%Y-%m-%d").ok())
        .or_else(|| {
            (naive.len() == 4 && naive.bytes().all(|b| b.is_ascii_digit()))
                .then(|| NaiveDate::parse_from_str(&format!("{naive}-01-01"), "%Y-%m-%d").ok())
                .flatten()
        })?;
    Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?))
}

/// The file name without its directories (either separator): the thread of a document.
pub(crate) fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Join paragraphs with newlines, dropping leading/trailing blank lines and keeping at
/// most one blank line in a row (empty paragraphs are how word processors add spacing).
pub(crate) fn join_paragraphs(paragraphs: &[String]) -> String {
    let mut out = String::new();
    let mut blank = false;
    for p in paragraphs {
        let p = p.trim_end();
        if p.trim().is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank {
                out.push('\n');
            }
        }
        blank = false;
        out.push_str(p);
    }
    out
}

/// One document as one item: the shape every document format here produces. The title
/// falls back to the file name without its extension, so every document has one.
pub(crate) fn document_item(
    name: &str,
    title: Option<String>,
    author: Option<String>,
    timestamp: Option<DateTime<Utc>>,
    text: String,
) -> crate::Item {
    let file = base_name(name);
    let title = title
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            file.rsplit_once('.')
                .map(|(stem, _)| stem)
                .filter(|s| !s.is_empty())
                .unwrap_or(file)
                .to_string()
        });
    crate::Item {
        kind: avatar_schemas::RecordKind::Document,
        thread: file.to_string(),
        timestamp,
        author: author
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        text,
        title: Some(title),
        message_id: None,
        in_reply_to: None,
        from_owner: false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_forms_documents_write() {
        let d = |s| parse_date(s).map(|d| d.to_rfc3339());
        assert_eq!(
            d("2024-03-01T10:20:30Z").unwrap(),
            "2024-03-01T10:20:30+00:00"
        );
        assert_eq!(
            d("2024-03-01T12:20:30+02:00").unwrap(),
            "2024-03-01T10:20:30+00:00"
        );
        assert_eq!(
            d("2024-03-01T10:20:30.123456789").unwrap(),
            "2024-03-01T10:20:30.123456789+00:00"
        );
        assert_eq!(d("2024-03-01").unwrap(), "2024-03-01T00:00:00+00:00");
        assert_eq!(d("2024-03").unwrap(), "2024-03-01T00:00:00+00:00");
        assert_eq!(d("1999").unwrap(), "1999-01-01T00:00:00+00:00");
        assert_eq!(d("yesterday"), None);
        assert_eq!(d(""), None);
    }

    #[test]
    fn paragraphs_keep_one_blank_line() {
        let p: Vec<String> = ["", "a", "", "", "b", "c", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(join_paragraphs(&p), "a\n\nb\nc");
    }

    #[test]
    fn fields_reads_flat_metadata() {
        let xml = r#"<?xml version="1.0"?><cp:coreProperties xmlns:dc="x"><dc:title>A &amp; B</dc:title><dc:creator> Ann </dc:creator><dcterms:created xsi:type="dcterms:W3CDTF">2020-01-02T03:04:05Z</dcterms:created></cp:coreProperties>"#;
        let f = fields("docx", "core.xml", xml, &["title", "creator", "created"]).unwrap();
        assert_eq!(first(&f, "title"), Some("A & B"));
        assert_eq!(first(&f, "creator"), Some("Ann"));
        assert_eq!(f[2].attr("type"), Some("dcterms:W3CDTF"));
    }

    #[test]
    fn base_name_strips_both_separators() {
        assert_eq!(base_name("a/b\\c.docx"), "c.docx");
        assert_eq!(base_name("c.docx"), "c.docx");
    }

    #[test]
    fn a_zip_bomb_entry_is_refused_without_inflating_it_all() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file(
                "word/document.xml",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            let chunk = vec![b' '; 1 << 20];
            for _ in 0..(MAX_ENTRY >> 20) + 1 {
                z.write_all(&chunk).unwrap();
            }
            z.finish().unwrap();
        }
        assert!(
            buf.get_ref().len() < 1 << 20,
            "the bomb is small: {}",
            buf.get_ref().len()
        );
        let e = crate::docx::parse("bomb.docx", buf.get_ref()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("zip bomb"), "{}", e.message);
    }
}
