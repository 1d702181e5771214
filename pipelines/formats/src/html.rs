//! HTML documents: saved web pages, blog posts, exported notes (`.html`, `.htm`, `.xhtml`).
//!
//! Choices:
//! - One page is one item; its text is `avatar_text::html_to_text` (the same renderer mail
//!   uses: block elements become lines, scripts/styles/head are dropped, entities decoded).
//! - Metadata comes from the head, as publishers write it: title from `<title>`, else
//!   `og:title`/`dc.title`, else the first `<h1>`; author from `<meta name=author>` or
//!   `dc.creator`/`article:author` (not when it is a profile URL); time from
//!   `article:published_time`, `<meta name=date>`, `dc.date`/`dcterms.created` or
//!   `itemprop=datePublished`, else the modification time (`article:modified_time`…).
//!   Publication before modification, for the reason documents use creation dates: that is
//!   when the author wrote it.
//! - Bytes that are not UTF-8 are read as Windows-1252 (what browsers assume for old pages
//!   and what "ISO-8859-1" pages really are), with a warning; UTF-16 with a BOM is decoded.
//! - The metadata scan is a small tolerant tag scanner, no DOM: it only needs tag names and
//!   attributes, and a page with broken markup still gives its text.

use chrono::{DateTime, Utc};

use crate::docx::package::{document_item, parse_date};
use crate::{ErrorKind, FormatError, Parsed};

/// Whether `name`/`head` is an HTML page: by extension, or by a doctype/`<html>` start.
pub fn looks_like(name: &str, head: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if [".html", ".htm", ".xhtml", ".shtml"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        return true;
    }
    let mut start: String = head
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    // XHTML may open with an XML declaration and comments before the doctype.
    loop {
        let t = start.trim_start();
        let rest = if t.starts_with("<?") {
            t.find("?>").map(|i| &t[i + 2..])
        } else if t.starts_with("<!--") {
            t.find("-->").map(|i| &t[i + 3..])
        } else {
            None
        };
        match rest {
            Some(r) => start = r.to_string(),
            None => {
                start = t.to_string();
                break;
            }
        }
    }
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// Parse an HTML page into one document item.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let mut warnings = Vec::new();
    let html = decode(bytes, &mut warnings)?;
    let text = avatar_text::html_to_text(&html);
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("html: {name} has no visible text (only markup, scripts or images)"),
        ));
    }
    let meta = Meta::scan(&html);
    let item = document_item(name, meta.title, meta.author, meta.timestamp, text);
    Ok(Parsed {
        format: "html",
        items: vec![item],
        skipped: 0,
        warnings,
    })
}

/// The page as text: UTF-8 (BOM dropped), UTF-16 with a BOM, else Windows-1252.
fn decode(bytes: &[u8], warnings: &mut Vec<String>) -> Result<String, FormatError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest).map(str::to_string).map_err(|e| {
            FormatError::new(
                ErrorKind::Encoding,
                format!(
                    "html: the file starts with a UTF-8 byte order mark but is not UTF-8 (byte {})",
                    e.valid_up_to() + 3
                ),
            )
        });
    }
    for (bom, be) in [(b"\xFE\xFF", true), (b"\xFF\xFE", false)] {
        if let Some(rest) = bytes.strip_prefix(bom) {
            let units = rest.chunks_exact(2).map(|c| {
                if be {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            return Ok(char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect());
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => {
            warnings.push(format!(
                "not UTF-8 (first bad byte at {}); read as Windows-1252",
                e.valid_up_to()
            ));
            Ok(windows_1252(bytes))
        }
    }
}

/// Windows-1252 to text: Latin-1 with printable characters in 0x80-0x9F, the encoding old
/// pages and files declared as ISO-8859-1 actually use.
pub(crate) fn windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9f => HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        })
        .collect()
}

/// Title, author and time found in the page's tags.
#[derive(Debug, Default)]
struct Meta {
    title: Option<String>,
    author: Option<String>,
    timestamp: Option<DateTime<Utc>>,
}

/// Meta keys (name, property or itemprop, lowercased) in order of preference.
const TITLE_KEYS: &[&str] = &["og:title", "dc.title", "dcterms.title", "twitter:title"];
const AUTHOR_KEYS: &[&str] = &[
    "author",
    "dc.creator",
    "dcterms.creator",
    "article:author",
    "byl",
    "sailthru.author",
];
const PUBLISHED_KEYS: &[&str] = &[
    "article:published_time",
    "date",
    "dc.date",
    "dcterms.created",
    "dcterms.date",
    "dc.date.created",
    "datepublished",
    "pubdate",
    "publishdate",
    "og:published_time",
    "citation_publication_date",
];
const MODIFIED_KEYS: &[&str] = &[
    "article:modified_time",
    "dcterms.modified",
    "datemodified",
    "last-modified",
    "og:updated_time",
];

impl Meta {
    fn scan(html: &str) -> Meta {
        let mut metas: Vec<(String, String)> = Vec::new();
        let mut title: Option<String> = None;
        let mut h1: Option<String> = None;
        for tag in Tags::new(html) {
            match tag.name.as_str() {
                "meta" => {
                    let key = ["name", "property", "itemprop", "http-equiv"]
                        .iter()
                        .find_map(|k| tag.attr(k))
                        .map(|k| k.trim().to_ascii_lowercase());
                    if let (Some(key), Some(content)) = (key, tag.attr("content")) {
                        metas.push((key, decode_entities(content)));
                    }
                }
                "title" if title.is_none() => {
                    title = Some(decode_entities(inner(html, tag.end, "title")))
                }
                "h1" if h1.is_none() => h1 = Some(decode_entities(inner(html, tag.end, "h1"))),
                _ => {}
            }
        }
        let find = |keys: &[&str], ok: &dyn Fn(&str) -> bool| -> Option<String> {
            keys.iter().find_map(|k| {
                metas
                    .iter()
                    .find(|(key, v)| key == k && !v.is_empty() && ok(v))
                    .map(|(_, v)| v.clone())
            })
        };
        let date = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                metas.iter().filter(|(key, _)| key == k).find_map(|(_, v)| {
                    parse_date(v).or_else(|| {
                        DateTime::parse_from_rfc2822(v)
                            .ok()
                            .map(|d| d.with_timezone(&Utc))
                    })
                })
            })
        };
        Meta {
            title: title
                .filter(|t| !t.is_empty())
                .or_else(|| find(TITLE_KEYS, &|_| true))
                .or(h1.filter(|t| !t.is_empty())),
            author: find(AUTHOR_KEYS, &|v| {
                !v.starts_with("http://") && !v.starts_with("https://")
            }),
            timestamp: date(PUBLISHED_KEYS).or_else(|| date(MODIFIED_KEYS)),
        }
    }
}

/// Entities decoded and whitespace collapsed, by the same renderer as the body.
pub(crate) fn decode_entities(s: &str) -> String {
    avatar_text::html_to_text(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The raw content from `start` up to the closing tag `</name` (or the end, bounded).
fn inner<'a>(html: &'a str, start: usize, name: &str) -> &'a str {
    let rest = html.get(start..).unwrap_or("");
    let end = find_ci(rest, &format!("</{name}")).unwrap_or(rest.len().min(1024));
    // Without a closing tag the 1 KiB cut may fall inside a character; back off to a boundary.
    let mut end = end.min(rest.len());
    while !rest.is_char_boundary(end) {
        end -= 1;
    }
    &rest[..end]
}

/// The text of the first `<h1>`, `<h2>` or `<h3>` (the highest level present first), for
/// naming an EPUB chapter whose table of contents says nothing.
pub(crate) fn first_heading(html: &str) -> Option<String> {
    ["<h1", "<h2", "<h3"].iter().find_map(|open| {
        let mut from = 0;
        // `<h1` must be the tag itself, not `<h1x` or `<header`.
        while let Some(i) = html.get(from..).and_then(|rest| find_ci(rest, open)) {
            let at = from + i + open.len();
            from = at;
            let next = html.as_bytes().get(at).copied();
            if !matches!(next, Some(b'>' | b' ' | b'\t' | b'\n' | b'\r' | b'/')) {
                continue;
            }
            let (_, end) = attributes(html, at);
            let text = decode_entities(inner(html, end, &open[1..]));
            if !text.is_empty() {
                return Some(text);
            }
        }
        None
    })
}

/// Byte offset of ASCII `needle` in `hay`, ignoring ASCII case, without copying `hay`.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    hay.as_bytes()
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
}

/// A start tag: lowercased name, raw attributes, and the byte offset after its `>`.
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
    end: usize,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Start tags in document order, skipping comments and the content of scripts and styles.
struct Tags<'a> {
    html: &'a str,
    pos: usize,
}

impl<'a> Tags<'a> {
    fn new(html: &'a str) -> Self {
        Tags { html, pos: 0 }
    }
}

impl Iterator for Tags<'_> {
    type Item = Tag;

    fn next(&mut self) -> Option<Tag> {
        let b = self.html.as_bytes();
        loop {
            let lt = self.pos + self.html.get(self.pos..)?.find('<')?;
            let rest = &self.html[lt..];
            if rest.starts_with("<!--") {
                self.pos = rest.find("-->").map(|i| lt + i + 3).unwrap_or(b.len());
                continue;
            }
            let mut i = lt + 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b':') {
                i += 1;
            }
            if i == lt + 1 {
                self.pos = lt + 1;
                continue;
            }
            let name = self.html[lt + 1..i].to_ascii_lowercase();
            let (attrs, end) = attributes(self.html, i);
            self.pos = end;
            if name == "script" || name == "style" {
                let close = format!("</{name}");
                let tail = self.html.get(end..).unwrap_or("");
                self.pos = find_ci(tail, &close).map(|j| end + j).unwrap_or(b.len());
            }
            return Some(Tag { name, attrs, end });
        }
    }
}

/// Attributes of a tag starting at byte `i` (after its name) up to `>`; the offset after it.
fn attributes(html: &str, mut i: usize) -> (Vec<(String, String)>, usize) {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (attrs, b.len());
        }
        if b[i] == b'>' {
            return (attrs, i + 1);
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = html[start..i].to_ascii_lowercase();
        if i == start {
            // A stray `=`: step over it so the scan always advances.
            i += 1;
            continue;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vstart = i + 1;
                let vend = b[vstart..]
                    .iter()
                    .position(|&c| c == q)
                    .map(|p| vstart + p)
                    .unwrap_or(b.len());
                value = html[vstart..vend].to_string();
                i = (vend + 1).min(b.len());
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = html[vstart..i].to_string();
            }
        }
        attrs.push((key, value));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Why I moved to Lisbon &mdash; notes</title>
<meta name="author" content="Ana Sousa">
<meta property="article:author" content="https://example.org/ana">
<meta property="article:published_time" content="2021-06-03T08:15:00+01:00">
<meta property="article:modified_time" content="2022-01-01T00:00:00Z">
<script>var s = "<meta name='author' content='evil'>";</script>
</head><body><h1>Why I moved</h1><!-- <title>not this</title> --><p>The light, mostly.</p><p>And the &amp; sign.</p></body></html>"#;

    #[test]
    fn head_metadata_and_body_text() {
        let p = parse("blog/lisbon.html", PAGE.as_bytes()).unwrap();
        assert_eq!(p.format, "html");
        let it = &p.items[0];
        assert_eq!(it.title.as_deref(), Some("Why I moved to Lisbon — notes"));
        assert_eq!(it.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2021-06-03T07:15:00+00:00"
        );
        assert_eq!(it.thread, "lisbon.html");
        assert!(it.text.contains("The light, mostly."), "{}", it.text);
        assert!(it.text.contains("And the & sign."));
        assert!(
            !it.text.contains("notes"),
            "head text is not body text: {}",
            it.text
        );
    }

    #[test]
    fn fallbacks_h1_title_and_modified_date() {
        let html = "<html><body><h1>Only <b>a</b> heading</h1><meta name=dcterms.modified content=2020-02-02>text</body></html>";
        let it = &parse("x.htm", html.as_bytes()).unwrap().items[0];
        assert_eq!(it.title.as_deref(), Some("Only a heading"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2020-02-02T00:00:00+00:00"
        );
        assert_eq!(it.author, None);
    }

    #[test]
    fn legacy_bytes_are_windows_1252_with_a_warning() {
        let p = parse("old.html", b"<p>caf\xe9 \x93quoted\x94</p>").unwrap();
        assert_eq!(p.items[0].text, "café “quoted”");
        assert_eq!(p.warnings.len(), 1);
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend("<p>hi</p>".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(parse("u.html", &utf16).unwrap().items[0].text, "hi");
    }

    #[test]
    fn empty_page_is_an_error() {
        let e = parse(
            "e.html",
            b"<html><head><title>t</title></head><body><img src=x></body></html>",
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Empty);
    }

    #[test]
    fn sniffing_by_start_or_name() {
        assert!(looks_like(
            "page",
            "<?xml version=\"1.0\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.1//EN\">"
        ));
        assert!(looks_like("page", "  <HTML><body>"));
        assert!(looks_like("saved.HTM", "whatever"));
        assert!(!looks_like("notes.txt", "<p>not a page</p>"));
    }

    #[test]
    fn tag_scanner_survives_broken_markup() {
        for s in [
            "<",
            "<a",
            "<a b='",
            "<a =>",
            "<meta content=\"x",
            "<!--",
            "<title>",
            "<script>",
            "<é",
        ] {
            let _ = Meta::scan(s);
        }
    }

    /// `tests/samples/html/bread-diary.html` is a blog post as WordPress 6 saves it (head
    /// metadata, nav, article, footer), written by us.
    #[test]
    fn wordpress_post_sample() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/html/bread-diary.html"
        ))
        .unwrap();
        let p = crate::parse("bread-diary.html", None, &bytes).unwrap();
        assert_eq!(p.format, "html");
        let it = &p.items[0];
        assert_eq!(
            it.title.as_deref(),
            Some("Sourdough, week six – Ana's kitchen notes")
        );
        assert_eq!(it.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2023-02-19T09:30:00+00:00"
        );
        assert!(
            it.text
                .contains("The starter finally doubles in four hours."),
            "{}",
            it.text
        );
        assert!(
            it.text.contains("This week’s loaf: 500 g flour"),
            "{}",
            it.text
        );
        assert!(
            it.text.contains("- Four folds, 30 minutes apart"),
            "{}",
            it.text
        );
        assert!(
            it.text.contains("crust too pale — next time"),
            "{}",
            it.text
        );
        assert!(!it.text.contains("dataLayer") && !it.text.contains("font-family"));
    }

    /// Real HTML mail bodies from mailgun/talon (../shared/fixtures/email_replies, see its
    /// SOURCES.md): fragments without `<html>`, found by their `.html` name.
    #[test]
    fn talon_html_fixtures_are_sniffed_and_read() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/email_replies"
        );
        if !std::path::Path::new(dir).exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return;
        }
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".html") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let p = crate::parse(&name, None, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.format, "html", "{name}");
            assert_eq!(p.items.len(), 1, "{name}");
            n += 1;
        }
        assert_eq!(n, 11, "the README lists 11 talon .html files");
        let read = |f: &str| {
            let b = std::fs::read(format!("{dir}/{f}")).unwrap();
            parse(f, &b).unwrap().items.remove(0)
        };
        let yandex = read("talon__html_replies__yandex_ru.html");
        assert!(
            yandex.text.starts_with("Hi. I am fine.\n\nThanks,\nAlex"),
            "{}",
            yandex.text
        );
        assert!(yandex.text.contains("Hello! How are you?"));
        assert_eq!(
            yandex.title.as_deref(),
            Some("talon__html_replies__yandex_ru")
        );
        let hr = read("talon__reply-separated-by-hr.html");
        assert!(hr.text.starts_with("Hi\nthere\nBob"), "{}", hr.text);
        assert!(hr.text.contains("Subject: Hello"), "{}", hr.text);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), s in "(?s).{0,600}", t in "[<>a-z =\"'/!-]{0,300}") {
            let _ = super::parse("x.html", &bytes);
            let _ = super::parse("x.html", s.as_bytes());
            let _ = super::parse("x.html", t.as_bytes());
        }
    }
}
