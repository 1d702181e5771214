//! PDF documents: the text layer of every page, with title, author and date from the
//! document Info dictionary.
//!
//! Choices:
//! - Objects, streams, fonts and encryption are read by `lopdf` (pure Rust; it bounds
//!   decompression and opens files protected only by an owner password, which are most
//!   "encrypted" PDFs). `pdf-extract` lays text out better but costs a second, older lopdf
//!   and a font stack; the small content-stream walker below is enough for prose: a change
//!   of line (`Td`/`TD` with a vertical move, `Tm` to another baseline, `T*`, `'`, `"`)
//!   is a newline and a wide `TJ` gap a space. Pages are separated by a blank line.
//!   Text inside form XObjects and annotations is not read.
//! - One PDF is one item. Time is `CreationDate`, else `ModDate` (`D:YYYYMMDDHHmmSS+HH'mm'`,
//!   missing parts default as the PDF spec says; no zone means UTC). Author is `Author`.
//! - A PDF that needs a user password is Unsupported ("encrypted PDF"); one whose pages have
//!   no text at all is Unsupported ("no text layer; OCR is not supported") because that is a
//!   scan and nothing here does OCR.
//! - PDF libraries panic on hostile input, so all lopdf work runs under `catch_unwind` and a
//!   panic becomes a Malformed error: one bad file must not take the ingest service down.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use lopdf::content::Content;
use lopdf::{Document, Encoding, Object, ObjectId};

use crate::docx::package::document_item;
use crate::{ErrorKind, FormatError, Parsed};

/// Decompressed bytes allowed per page's content (and per font's ToUnicode map).
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;
/// Per-page problems listed one by one before they are only counted.
const MAX_PAGE_WARNINGS: usize = 20;

/// PDFs are binary and sniffed by their `%PDF-` magic; a `.pdf` name alone is not enough.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with("%PDF-")
}

/// Parse a PDF into one document item.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    // Some writers put junk before the header; readers accept it within the first KiB.
    let Some(start) = bytes
        .get(..bytes.len().min(1024))
        .and_then(|head| head.windows(5).position(|w| w == b"%PDF-"))
    else {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!("pdf: {name} has no `%PDF-` header; it is not a PDF"),
        ));
    };
    let bytes = &bytes[start..];
    guarded(name, || extract(name, bytes))
}

/// Run `f`, turning a panic into a Malformed error. The reader's state is dropped with the
/// panic and nothing outlives the call, so the unwind-safety assertion holds.
fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T, FormatError>) -> Result<T, FormatError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(FormatError::new(
            ErrorKind::Malformed,
            format!("pdf: {name} is damaged in a way the PDF reader cannot handle (it crashed reading it); re-save or print it to a new PDF"),
        )),
    }
}

fn extract(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let doc = Document::load_mem(bytes).map_err(|e| load_error(name, bytes, &e))?;
    if doc.is_encrypted() && doc.authenticate_password("").is_err() {
        return Err(encrypted(name));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!("pdf: {name} has no pages (its page tree is missing or damaged)"),
        ));
    }
    let mut warnings = Vec::new();
    let mut failed = 0usize;
    let mut texts = Vec::with_capacity(pages.len());
    for (number, id) in &pages {
        match page_text(&doc, *id) {
            Ok(t) => texts.push(t),
            Err(e) => {
                failed += 1;
                if failed <= MAX_PAGE_WARNINGS {
                    warnings.push(format!("page {number}: text not read ({e})"));
                }
            }
        }
    }
    if failed > MAX_PAGE_WARNINGS {
        warnings.push(format!("{failed} pages in all could not be read"));
    }
    let text = tidy(&texts.join("\n\n"));
    if text.is_empty() {
        if failed == pages.len() {
            return Err(FormatError::new(
                ErrorKind::Malformed,
                format!(
                    "pdf: no page of {name} could be read: {}",
                    warnings.first().map(String::as_str).unwrap_or("")
                ),
            ));
        }
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "pdf: {name} has no text layer; OCR is not supported ({} page(s), probably scanned images): run it through an OCR tool (e.g. ocrmypdf) and ingest the result",
                pages.len()
            ),
        ));
    }
    let info = info(&doc);
    let timestamp = info
        .get("CreationDate")
        .and_then(|d| parse_pdf_date(d))
        .or_else(|| info.get("ModDate").and_then(|d| parse_pdf_date(d)));
    let item = document_item(
        name,
        info.get("Title").cloned(),
        info.get("Author").cloned(),
        timestamp,
        text,
    );
    Ok(Parsed {
        format: "pdf",
        items: vec![item],
        skipped: 0,
        warnings,
    })
}

fn encrypted(name: &str) -> FormatError {
    FormatError::new(
        ErrorKind::Unsupported,
        format!("pdf: {name} is an encrypted PDF that needs a password to open; save an unprotected copy (e.g. `qpdf --decrypt --password=… in.pdf out.pdf`) and ingest that"),
    )
}

/// A load failure: a password problem is Unsupported, a file without its end marker was cut
/// off (Truncated), anything else is damage (Malformed).
fn load_error(name: &str, bytes: &[u8], e: &lopdf::Error) -> FormatError {
    if matches!(
        e,
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_)
    ) {
        return encrypted(name);
    }
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return FormatError::new(
            ErrorKind::Truncated,
            format!("pdf: {name} cannot be read ({e}) and has no `%%EOF` end marker: the file was cut off; copy or download it again"),
        );
    }
    FormatError::new(
        ErrorKind::Malformed,
        format!("pdf: {name} cannot be read ({e}); the file is damaged"),
    )
}

/// The text strings of the trailer's Info dictionary (Title, Author, dates…), decoded from
/// PDFDocEncoding or UTF-16.
fn info(doc: &Document) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(obj) = doc.trailer.get(b"Info") else {
        return out;
    };
    let Ok((_, Object::Dictionary(dict))) = doc.dereference(obj) else {
        return out;
    };
    for (key, value) in dict.iter() {
        let Ok((_, value)) = doc.dereference(value) else {
            continue;
        };
        if let Ok(s) = lopdf::decode_text_string(value) {
            let s = s
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
            if !s.is_empty() {
                out.insert(String::from_utf8_lossy(key).into_owned(), s);
            }
        }
    }
    out
}

/// Text of one page, walking its content stream.
fn page_text(doc: &Document, page: ObjectId) -> Result<String, lopdf::Error> {
    let fonts = doc.get_page_fonts(page)?;
    let encodings: BTreeMap<Vec<u8>, Encoding<'_>> = fonts
        .into_iter()
        .filter_map(|(name, font)| {
            font.get_font_encoding_with_limit(doc, MAX_PAGE_CONTENT)
                .ok()
                .map(|e| (name, e))
        })
        .collect();
    let data = doc.get_page_content_with_limit(page, MAX_PAGE_CONTENT)?;
    let content = Content::decode(&data)?;
    let mut w = Walker::default();
    for op in &content.operations {
        let num = |i: usize| op.operands.get(i).and_then(|o| o.as_float().ok());
        match op.operator.as_str() {
            "BT" => {
                w.x = 0.0;
                w.y = 0.0;
            }
            "Tf" => {
                w.font = op
                    .operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|n| encodings.get(n));
            }
            "Td" | "TD" => {
                let (dx, dy) = (num(0).unwrap_or(0.0), num(1).unwrap_or(0.0));
                w.move_to(w.y + dy, dx > 0.0);
            }
            "Tm" => {
                let x = num(4).unwrap_or(0.0);
                let right = x > w.x;
                w.x = x;
                w.move_to(num(5).unwrap_or(w.y), right);
            }
            "T*" => w.newline = true,
            "Tj" => {
                if let Some(Object::String(s, _)) = op.operands.first() {
                    w.show(s);
                }
            }
            "'" => {
                w.newline = true;
                if let Some(Object::String(s, _)) = op.operands.first() {
                    w.show(s);
                }
            }
            "\"" => {
                w.newline = true;
                if let Some(Object::String(s, _)) = op.operands.get(2) {
                    w.show(s);
                }
            }
            "TJ" => {
                if let Some(Object::Array(parts)) = op.operands.first() {
                    for p in parts {
                        match p {
                            Object::String(s, _) => w.show(s),
                            // Thousandths of an em: a gap wider than a quarter em is a space.
                            Object::Integer(_) | Object::Real(_)
                                if p.as_float().is_ok_and(|n| n < -250.0) =>
                            {
                                w.space = true;
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(w.out)
}

/// Content-stream state that matters for text order and breaks.
#[derive(Default)]
struct Walker<'a> {
    out: String,
    font: Option<&'a Encoding<'a>>,
    /// Current text position (text space, ignoring scaling); `x` only as set by `Tm`.
    x: f32,
    y: f32,
    /// Baseline of the last shown text.
    line_y: Option<f32>,
    newline: bool,
    space: bool,
}

impl Walker<'_> {
    /// A move of the text position: to another baseline it is a line break; along the same
    /// line to the right it separates runs, which writers that place words one by one
    /// leave without a space character.
    fn move_to(&mut self, y: f32, right: bool) {
        self.y = y;
        match self.line_y {
            Some(ly) if (ly - y).abs() > 1.0 => self.newline = true,
            Some(_) if right => self.space = true,
            _ => {}
        }
    }

    fn show(&mut self, bytes: &[u8]) {
        let text = match self.font {
            Some(enc) => enc.bytes_to_string(bytes).unwrap_or_default(),
            // No usable font encoding: printable ASCII is the best guess.
            None => bytes
                .iter()
                .filter(|b| b.is_ascii_graphic() || **b == b' ')
                .map(|&b| char::from(b))
                .collect(),
        };
        let text = text.replace('\0', "");
        if text.is_empty() {
            return;
        }
        if self.newline && !self.out.is_empty() {
            self.out.push('\n');
        } else if self.space
            && !self.out.ends_with(char::is_whitespace)
            && !text.starts_with(char::is_whitespace)
        {
            self.out.push(' ');
        }
        self.newline = false;
        self.space = false;
        self.out.push_str(&text);
        self.line_y = Some(self.y);
    }
}

/// Trim line ends, keep at most one blank line in a row, trim the whole.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank > 0 {
                out.push('\n');
            }
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// A PDF date `D:YYYYMMDDHHmmSSOHH'mm'` (every part after the year optional; `O` is `+`,
/// `-` or `Z`) in UTC. Some writers omit `D:` or the apostrophes; both are accepted.
pub fn parse_pdf_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let part = |from: usize, len: usize, default: u32| -> Option<u32> {
        match digits.get(from..from + len) {
            Some(p) => p.parse().ok(),
            None => Some(default),
        }
    };
    let year: i32 = digits.get(..4)?.parse().ok()?;
    let date = NaiveDate::from_ymd_opt(year, part(4, 2, 1)?, part(6, 2, 1)?)?;
    let naive = date.and_hms_opt(part(8, 2, 0)?, part(10, 2, 0)?, part(12, 2, 0)?)?;
    let zone = &s[digits.len()..];
    let offset = match zone.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let z: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let h: i32 = z.get(..2).and_then(|h| h.parse().ok()).unwrap_or(0);
            let m: i32 = z.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
            let secs = (h * 60 + m) * 60;
            FixedOffset::east_opt(if sign == '-' { -secs } else { secs })?
        }
        _ => FixedOffset::east_opt(0)?,
    };
    let local = offset.from_local_datetime(&naive).single()?;
    Some(local.with_timezone(&Utc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates() {
        let d = |s| parse_pdf_date(s).map(|d| d.to_rfc3339());
        assert_eq!(
            d("D:20240301102030+01'00'").unwrap(),
            "2024-03-01T09:20:30+00:00"
        );
        assert_eq!(
            d("D:20240301102030-05'30").unwrap(),
            "2024-03-01T15:50:30+00:00"
        );
        assert_eq!(d("D:20240301102030Z").unwrap(), "2024-03-01T10:20:30+00:00");
        assert_eq!(d("D:2024").unwrap(), "2024-01-01T00:00:00+00:00");
        assert_eq!(d("20240301").unwrap(), "2024-03-01T00:00:00+00:00");
        assert_eq!(d("D:20241399"), None);
        assert_eq!(d("yesterday"), None);
        assert_eq!(d("D:"), None);
    }

    #[test]
    fn no_header_is_malformed() {
        let e = parse("x.pdf", b"hello").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
    }

    #[test]
    fn cut_off_pdf_is_truncated_or_malformed_never_a_panic() {
        let e = parse(
            "x.pdf",
            b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        )
        .unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::Truncated | ErrorKind::Malformed),
            "{e:?}"
        );
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/samples/pdf/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// `minutes.pdf` is written object by object by `tests/samples/docx/make_samples.py`
    /// (ISO 32000-1): Info with a UTF-16 title, one Flate-compressed page using `TJ`
    /// kerning, `T*` and `Tm` placement, one plain page using `'`.
    #[test]
    fn text_layer_and_info_dictionary() {
        let p = crate::parse("minutes.pdf", None, &sample("minutes.pdf")).unwrap();
        assert_eq!(p.format, "pdf");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let it = &p.items[0];
        assert_eq!(it.title.as_deref(), Some("Minutes - April 2024"));
        assert_eq!(it.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2024-04-12T17:30:00+00:00"
        );
        assert_eq!(
            it.text,
            "Minutes of the allotment meeting\nPresent: Ana, Rui, Maria.\nWater rota agreed:\n\
             each plot waters on its day.\nThe shed key stays with Maria until June.\n\n\
             Next meeting: 4 May, 18:00.\nBring gloves."
        );
    }

    /// Made from `minutes.pdf` by `qpdf --encrypt` (AES-256): with a user password it is
    /// refused; with only an owner password (print forbidden) it opens like any PDF.
    #[test]
    fn encrypted_pdfs() {
        let e = crate::parse("encrypted.pdf", None, &sample("encrypted.pdf")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("encrypted PDF"), "{}", e.message);
        let p = crate::parse("owner_only.pdf", None, &sample("owner_only.pdf")).unwrap();
        assert_eq!(p.items[0].author.as_deref(), Some("Ana Sousa"));
        assert!(
            p.items[0]
                .text
                .starts_with("Minutes of the allotment meeting\n"),
            "{}",
            p.items[0].text
        );
    }

    /// `scan.pdf`: one page that only draws an image, as a scanner writes it.
    #[test]
    fn scanned_pdf_has_no_text_layer() {
        let e = crate::parse("scan.pdf", None, &sample("scan.pdf")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(
            e.message.contains("no text layer; OCR is not supported"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_panic_inside_the_reader_becomes_malformed() {
        let r: Result<(), FormatError> = guarded("x.pdf", || panic!("lopdf index out of bounds"));
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.message.contains("x.pdf"));
    }

    #[test]
    fn corrupted_pdfs_give_errors_not_panics() {
        let bytes = sample("minutes.pdf");
        let e = parse("cut.pdf", &bytes[..bytes.len() * 2 / 3]);
        assert!(e.is_err() || e.is_ok_and(|p| !p.items.is_empty()));
        for cut in (9..bytes.len()).step_by(41) {
            let _ = parse("cut.pdf", &bytes[..cut]);
        }
        for at in (9..bytes.len()).step_by(13) {
            let mut b = bytes.clone();
            b[at] ^= 0xff;
            let _ = parse("flip.pdf", &b);
        }
        // The xref points past the end and every object is garbage.
        let garbage = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\nxref\n0 99999999\ntrailer << /Root 1 0 R /Size 99999999 >>\nstartxref\n999999\n%%EOF\n";
        assert!(parse("g.pdf", garbage).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/pdf/minutes.pdf"
        ))
        .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = super::parse("x.pdf", &bytes);
        }

        #[test]
        fn damaged_sample_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut b = sample();
            prop_assume!(!b.is_empty());
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            let _ = super::parse("x.pdf", &b);
            let end = cut.index(b.len());
            let _ = super::parse("x.pdf", &b[..end]);
        }
    }
}
