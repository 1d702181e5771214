//! EPUB books (EPUB 2 and 3): a zip whose `META-INF/container.xml` points at the OPF
//! package document; the OPF has the metadata (`dc:title`, `dc:creator`, `dc:date`), the
//! manifest (id -> file) and the spine (reading order). Chapters are XHTML files.
//!
//! Choices:
//! - One item per chapter in spine order, titled "Book — Chapter", so retrieval can cite a
//!   chapter instead of a whole book. Chapter names come from the table of contents (EPUB 3
//!   `nav`, else the EPUB 2 NCX), else the chapter's first heading, else "Chapter N".
//! - Converters split long chapters into several files and list only the first in the table
//!   of contents; a spine file with no entry of its own is appended to the chapter before it
//!   (when the book has a table of contents at all), so a chapter stays one item.
//! - Chapter XHTML is rendered with `avatar_text::html_to_text`, which tolerates the broken
//!   markup real books have. Chapters with no text (cover images, blank pages) and spine
//!   entries that are not XHTML are skipped and counted.
//! - Authors are the `dc:creator`s with role `aut` (or all of them when none says), joined
//!   with ", ". Time is the publication/creation `dc:date`, else the first `dc:date`, else
//!   `dcterms:modified`.
//! - DRM: content listed in `META-INF/encryption.xml` cannot be read; a book whose chapters
//!   are all encrypted is Unsupported, a partly encrypted one gives a warning. (Font
//!   obfuscation also uses that file, but fonts are not read, so it does not matter.)
//! - Limits: 10 000 spine entries, 64 MiB per file and 256 MiB per book decompressed.

use std::collections::{HashMap, HashSet};

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::docx::package::{
    base_name, document_item, fields, local, parse_date, push_ref, Field, Package,
};
use crate::{ErrorKind, FormatError, Parsed};

/// Most spine entries read from one book.
const MAX_SPINE: usize = 10_000;

/// Whether `name` is an EPUB. The content is a zip, which sniff.rs recognises by its magic
/// bytes before asking for the name.
pub fn looks_like(name: &str, _head: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".epub")
}

/// Parse an `.epub` into one item per chapter.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let mut pkg = Package::open("epub", bytes)?;
    if let Some(mime) = pkg.text("mimetype")? {
        let mime = mime.trim();
        if !mime.is_empty() && mime != "application/epub+zip" {
            return Err(FormatError::new(
                ErrorKind::Unsupported,
                format!("epub: the package declares `{mime}`, not `application/epub+zip`"),
            ));
        }
    }
    let opf_path = rootfile(&mut pkg)?;
    let Some(opf) = pkg.text(&opf_path)? else {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!("epub: the package document `{opf_path}` named by META-INF/container.xml is missing"),
        ));
    };
    let book = Opf::read(&opf_path, &opf)?;
    let mut warnings = Vec::new();
    let encrypted = encrypted_paths(&mut pkg, &mut warnings);
    let toc = table_of_contents(&mut pkg, &book, &mut warnings);

    let mut items: Vec<crate::Item> = Vec::new();
    let mut skipped = 0;
    let mut encrypted_docs = 0;
    let mut docs = 0;
    let spine = &book.spine[..book.spine.len().min(MAX_SPINE)];
    if book.spine.len() > MAX_SPINE {
        warnings.push(format!(
            "only the first {MAX_SPINE} of {} spine entries were read",
            book.spine.len()
        ));
    }
    for idref in spine {
        let Some(entry) = book.manifest.get(idref) else {
            warnings.push(format!("spine entry `{idref}` is not in the manifest"));
            skipped += 1;
            continue;
        };
        // The navigation document is the table of contents, not a chapter.
        if !is_xhtml(&entry.media_type) || entry.properties.split_whitespace().any(|p| p == "nav") {
            skipped += 1;
            continue;
        }
        docs += 1;
        if encrypted.contains(&entry.path) {
            encrypted_docs += 1;
            skipped += 1;
            continue;
        }
        let xhtml = match pkg.bytes(&entry.path) {
            Ok(Some(b)) => match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => {
                    warnings.push(format!(
                        "`{}` is not UTF-8; invalid bytes replaced",
                        entry.path
                    ));
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            },
            Ok(None) => {
                warnings.push(format!(
                    "`{}` is listed in the manifest but missing",
                    entry.path
                ));
                skipped += 1;
                continue;
            }
            // Past the size budget the rest of the book is not read either.
            Err(e) if e.kind == ErrorKind::Unsupported => return Err(e),
            Err(e) => {
                warnings.push(e.message);
                skipped += 1;
                continue;
            }
        };
        let text = avatar_text::html_to_text(xhtml.trim_start_matches('\u{feff}'));
        if text.trim().is_empty() {
            skipped += 1;
            continue;
        }
        let label = toc.get(&entry.path).cloned();
        if label.is_none() && !toc.is_empty() {
            if let Some(prev) = items.last_mut() {
                prev.text.push_str("\n\n");
                prev.text.push_str(&text);
                continue;
            }
        }
        let chapter = label
            .or_else(|| crate::html::first_heading(&xhtml))
            .unwrap_or_else(|| format!("Chapter {}", items.len() + 1));
        let title = match &book.title {
            Some(t) if *t == chapter => t.clone(),
            Some(t) => format!("{t} — {chapter}"),
            None => chapter,
        };
        items.push(document_item(
            name,
            Some(title),
            book.author.clone(),
            book.date,
            text,
        ));
    }
    if docs > 0 && encrypted_docs == docs {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            "epub: the book is DRM-protected (its chapters are listed in META-INF/encryption.xml); Avatar cannot read encrypted books",
        ));
    }
    if encrypted_docs > 0 {
        warnings.push(format!(
            "{encrypted_docs} encrypted chapter files were skipped (DRM)"
        ));
    }
    if items.is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!(
                "epub: {} has no chapter with text ({} spine entries)",
                base_name(name),
                book.spine.len()
            ),
        ));
    }
    Ok(Parsed {
        format: "epub",
        items,
        skipped,
        warnings,
    })
}

fn is_xhtml(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/xhtml+xml" | "text/html" | "application/xml" | "text/x-oeb1-document"
    )
}

/// The OPF path from `META-INF/container.xml`, else the first `.opf` in the package.
fn rootfile(pkg: &mut Package<'_>) -> Result<String, FormatError> {
    if let Some(xml) = pkg.text("META-INF/container.xml")? {
        if let Ok(f) = fields("epub", "META-INF/container.xml", &xml, &["rootfile"]) {
            let path = f
                .iter()
                .find(|r| {
                    r.attr("media-type")
                        .is_none_or(|m| m == "application/oebps-package+xml")
                })
                .and_then(|r| r.attr("full-path"))
                .map(|p| resolve("", p));
            if let Some(p) = path.filter(|p| !p.is_empty()) {
                return Ok(p);
            }
        }
    }
    pkg.names()
        .into_iter()
        .find(|n| n.to_ascii_lowercase().ends_with(".opf"))
        .ok_or_else(|| {
            FormatError::new(
                ErrorKind::Malformed,
                "epub: no package document (META-INF/container.xml names none and there is no .opf file); the book is damaged or not an EPUB",
            )
        })
}

struct ManifestItem {
    path: String,
    media_type: String,
    properties: String,
}

/// What the OPF says: metadata, manifest (id -> item) and spine (ids in reading order).
struct Opf {
    title: Option<String>,
    author: Option<String>,
    date: Option<chrono::DateTime<chrono::Utc>>,
    manifest: HashMap<String, ManifestItem>,
    spine: Vec<String>,
}

impl Opf {
    fn read(path: &str, xml: &str) -> Result<Opf, FormatError> {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let f = fields(
            "epub",
            path,
            xml,
            &["title", "creator", "date", "meta", "item", "itemref"],
        )?;
        let title = f
            .iter()
            .find(|x| x.name == "title" && !x.text.is_empty())
            .map(|x| x.text.clone());
        let creators: Vec<&Field> = f
            .iter()
            .filter(|x| x.name == "creator" && !x.text.is_empty())
            .collect();
        let authors: Vec<&str> = creators
            .iter()
            .filter(|c| c.attr("role") == Some("aut"))
            .map(|c| c.text.as_str())
            .collect();
        let authors = if authors.is_empty() {
            creators.iter().map(|c| c.text.as_str()).collect()
        } else {
            authors
        };
        let author = (!authors.is_empty()).then(|| authors.join(", "));
        let dates: Vec<&Field> = f.iter().filter(|x| x.name == "date").collect();
        let date = dates
            .iter()
            .filter(|d| {
                matches!(
                    d.attr("event"),
                    Some("publication" | "creation" | "original-publication")
                )
            })
            .chain(dates.iter().filter(|d| d.attr("event").is_none()))
            .chain(dates.iter())
            .find_map(|d| parse_date(&d.text))
            .or_else(|| {
                f.iter()
                    .filter(|m| m.name == "meta" && m.attr("property") == Some("dcterms:modified"))
                    .find_map(|m| parse_date(&m.text))
            });
        let manifest = f
            .iter()
            .filter(|x| x.name == "item")
            .filter_map(|x| {
                let id = x.attr("id")?.to_string();
                let href = x.attr("href")?;
                Some((
                    id,
                    ManifestItem {
                        path: resolve(dir, href),
                        media_type: x
                            .attr("media-type")
                            .unwrap_or("")
                            .trim()
                            .to_ascii_lowercase(),
                        properties: x.attr("properties").unwrap_or("").to_string(),
                    },
                ))
            })
            .collect();
        let spine = f
            .iter()
            .filter(|x| x.name == "itemref")
            .filter_map(|x| x.attr("idref").map(str::to_string))
            .collect();
        Ok(Opf {
            title,
            author,
            date,
            manifest,
            spine,
        })
    }
}

/// Package paths listed as encrypted in `META-INF/encryption.xml`.
fn encrypted_paths(pkg: &mut Package<'_>, warnings: &mut Vec<String>) -> HashSet<String> {
    match pkg.text("META-INF/encryption.xml") {
        Ok(Some(xml)) => match fields(
            "epub",
            "META-INF/encryption.xml",
            &xml,
            &["CipherReference"],
        ) {
            Ok(f) => f
                .iter()
                .filter_map(|c| c.attr("URI"))
                .map(|u| resolve("", u))
                .collect(),
            Err(e) => {
                warnings.push(format!("encryption.xml not read: {e}"));
                HashSet::new()
            }
        },
        Ok(None) => HashSet::new(),
        Err(e) => {
            warnings.push(format!("encryption.xml not read: {e}"));
            HashSet::new()
        }
    }
}

/// Chapter path -> its name in the table of contents: the EPUB 3 navigation document if
/// there is one, else the NCX. An unreadable table of contents is a warning, not an error.
fn table_of_contents(
    pkg: &mut Package<'_>,
    book: &Opf,
    warnings: &mut Vec<String>,
) -> HashMap<String, String> {
    let nav = book
        .manifest
        .values()
        .find(|m| m.properties.split_whitespace().any(|p| p == "nav"))
        .map(|m| (m.path.clone(), true));
    let ncx = book
        .manifest
        .values()
        .find(|m| m.media_type == "application/x-dtbncx+xml")
        .map(|m| (m.path.clone(), false));
    for (path, is_nav) in nav.into_iter().chain(ncx) {
        let xml = match pkg.text(&path) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(format!("table of contents not read: {e}"));
                continue;
            }
        };
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let map = toc_entries(&xml, dir, is_nav);
        if !map.is_empty() {
            return map;
        }
    }
    HashMap::new()
}

/// Read `a href` labels of a nav document (its `toc` nav when marked) or `navPoint`
/// labels of an NCX. Labels keep their entities raw until the end, then are decoded as
/// HTML (nav documents use HTML entities such as `&nbsp;`).
fn toc_entries(xml: &str, dir: &str, is_nav: bool) -> HashMap<String, String> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut out: HashMap<String, String> = HashMap::new();
    let mut any: HashMap<String, String> = HashMap::new();
    let mut in_toc_nav = false;
    let mut saw_toc_nav = false;
    // The label being collected and, for nav, its target.
    let mut label: Option<String> = None;
    let mut target: Option<String> = None;
    let mut last_label = String::new();
    // A damaged table of contents ends the scan with what was read so far.
    while let Ok(ev) = reader.read_event() {
        match ev {
            Event::Start(e) => match local(e.name().as_ref()) {
                "nav" if is_nav => {
                    let toc = crate::docx::package::attr(&e, "type")
                        .is_some_and(|t| t.split_whitespace().any(|t| t == "toc"));
                    in_toc_nav = toc;
                    saw_toc_nav |= toc;
                }
                "a" if is_nav => {
                    target = crate::docx::package::attr(&e, "href");
                    label = Some(String::new());
                }
                "text" if !is_nav => label = Some(String::new()),
                _ => {}
            },
            Event::Empty(e) if !is_nav && local(e.name().as_ref()) == "content" => {
                if let Some(src) = crate::docx::package::attr(&e, "src") {
                    let label = crate::html::decode_entities(&last_label);
                    if !label.is_empty() {
                        out.entry(resolve(dir, &src)).or_insert(label);
                    }
                }
            }
            Event::End(e) => match local(e.name().as_ref()) {
                "nav" => in_toc_nav = false,
                "a" if is_nav => {
                    if let (Some(l), Some(t)) = (label.take(), target.take()) {
                        let l = crate::html::decode_entities(&l);
                        if !l.is_empty() {
                            let map = if in_toc_nav { &mut out } else { &mut any };
                            map.entry(resolve(dir, &t)).or_insert(l);
                        }
                    }
                }
                "text" if !is_nav => last_label = label.take().unwrap_or_default(),
                _ => {}
            },
            Event::Text(t) => {
                if let Some(l) = label.as_mut() {
                    l.push_str(&html_escape(&t.xml10_content()));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(l) = label.as_mut() {
                    // Predefined and numeric references resolve here; others (`&nbsp;`)
                    // are kept for the HTML decoder.
                    let mut s = String::new();
                    push_ref(&mut s, &r);
                    l.push_str(&if s.starts_with('&') {
                        s
                    } else {
                        html_escape(&s)
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if is_nav && !saw_toc_nav {
        return any;
    }
    out
}

/// Escape `<`/`&` so text survives the HTML decoder unchanged.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// A package path from a base directory and an href: fragment dropped, `%XX` decoded,
/// `.`/`..` segments applied (never above the root).
fn resolve(dir: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let href = percent_decode(href);
    let mut parts: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for seg in href.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_opf_directory() {
        assert_eq!(
            resolve("OEBPS", "Text/ch%201.xhtml#p3"),
            "OEBPS/Text/ch 1.xhtml"
        );
        assert_eq!(
            resolve("OEBPS/Text", "../Styles/a.css"),
            "OEBPS/Styles/a.css"
        );
        assert_eq!(resolve("", "../../x.xhtml"), "x.xhtml");
        assert_eq!(resolve("a", "/b.xhtml"), "b.xhtml");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn ncx_and_nav_labels() {
        let ncx = r#"<ncx><navMap><navPoint id="n1"><navLabel><text>One &amp; only</text></navLabel><content src="Text/c1.xhtml#top"/>
<navPoint id="n2"><navLabel><text>Sub</text></navLabel><content src="Text/c1.xhtml#s"/></navPoint></navPoint></navMap></ncx>"#;
        let m = toc_entries(ncx, "OEBPS", false);
        assert_eq!(
            m.get("OEBPS/Text/c1.xhtml").map(String::as_str),
            Some("One & only")
        );
        let nav = r#"<html xmlns:epub="e"><body><nav epub:type="landmarks"><ol><li><a href="c2.xhtml">Start</a></li></ol></nav>
<nav epub:type="toc"><ol><li><a href="c1.xhtml">I.&nbsp;Dawn <span>&lt;1&gt;</span></a></li><li><a href="c2.xhtml">II. Noon</a></li></ol></nav></body></html>"#;
        let m = toc_entries(nav, "", true);
        assert_eq!(m.get("c1.xhtml").map(String::as_str), Some("I. Dawn <1>"));
        assert_eq!(m.get("c2.xhtml").map(String::as_str), Some("II. Noon"));
    }

    #[test]
    fn opf_metadata() {
        let opf = r#"<package xmlns="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
<metadata><dc:title>Sea</dc:title><dc:creator opf:role="edt">Ed</dc:creator><dc:creator opf:role="aut">Ann</dc:creator>
<dc:date opf:event="modification">2019-01-01</dc:date><dc:date opf:event="publication">2010-05</dc:date></metadata>
<manifest><item id="c1" href="Text/c1.xhtml" media-type="application/xhtml+xml"/></manifest>
<spine toc="ncx"><itemref idref="c1"/></spine></package>"#;
        let b = Opf::read("OEBPS/content.opf", opf).unwrap();
        assert_eq!(b.title.as_deref(), Some("Sea"));
        assert_eq!(b.author.as_deref(), Some("Ann"));
        assert_eq!(b.date.unwrap().to_rfc3339(), "2010-05-01T00:00:00+00:00");
        assert_eq!(b.manifest["c1"].path, "OEBPS/Text/c1.xhtml");
        assert_eq!(b.spine, vec!["c1"]);
    }

    #[test]
    fn not_a_zip_is_malformed() {
        assert_eq!(
            parse("b.epub", b"%PDF-1.4").unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/samples/epub/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// `harbour.epub` is written by `tests/samples/docx/make_samples.py` as EPUB 3.2 lays a
    /// book out: nav + NCX, an image-only cover, chapter one split in two files (Calibre).
    #[test]
    fn epub3_one_item_per_chapter_in_spine_order() {
        let p = crate::parse("books/harbour.epub", None, &sample("harbour.epub")).unwrap();
        assert_eq!(p.format, "epub");
        assert_eq!(p.skipped, 2, "cover (image only) and the nav document");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let titles: Vec<_> = p
            .items
            .iter()
            .map(|i| i.title.as_deref().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "Small Harbour Stories — The Ferry",
                "Small Harbour Stories — Salt & Light"
            ]
        );
        let one = &p.items[0];
        assert_eq!(one.thread, "harbour.epub");
        assert_eq!(one.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            one.timestamp.unwrap().to_rfc3339(),
            "2021-11-20T00:00:00+00:00"
        );
        assert_eq!(
            one.text,
            "The Ferry\n\nThe ferry left at six, whatever the weather.\n\nNobody on the quay believed the timetable.\n\n\
             By seven the fog had lifted—and the ferry was still there."
        );
        assert_eq!(
            p.items[1].text,
            "Salt & Light\n\nMaria dried cod on the roof every August."
        );
    }

    /// `letters.epub`: EPUB 2.0.1 with only an NCX, `opf:role` creators and `opf:event` dates.
    #[test]
    fn epub2_with_ncx_only() {
        let p = crate::parse("letters.epub", None, &sample("letters.epub")).unwrap();
        assert_eq!(p.format, "epub");
        let titles: Vec<_> = p
            .items
            .iter()
            .map(|i| i.title.as_deref().unwrap())
            .collect();
        assert_eq!(
            titles,
            [
                "Letters Home — Lisboa, 3 de Maio",
                "Letters Home — Coimbra, 9 de Junho"
            ]
        );
        assert_eq!(p.items[0].author.as_deref(), Some("Rui Sousa"));
        assert_eq!(
            p.items[0].timestamp.unwrap().to_rfc3339(),
            "2019-06-01T00:00:00+00:00"
        );
        assert_eq!(
            p.items[0].text,
            "Lisboa, 3 de Maio\n\nQuerida mãe, the city is loud and I love it."
        );
        assert_eq!(p.skipped, 0);
    }

    #[test]
    fn drm_protected_book_is_unsupported() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default();
            z.start_file("META-INF/container.xml", o).unwrap();
            z.write_all(br#"<container><rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#).unwrap();
            z.start_file("META-INF/encryption.xml", o).unwrap();
            z.write_all(br#"<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><enc:CipherData><enc:CipherReference URI="ch1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>"#).unwrap();
            z.start_file("content.opf", o).unwrap();
            z.write_all(br#"<package><metadata><dc:title>T</dc:title></metadata><manifest><item id="c" href="ch1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c"/></spine></package>"#).unwrap();
            z.start_file("ch1.xhtml", o).unwrap();
            z.write_all(b"\x8a\x11\xfe binary ciphertext").unwrap();
            z.finish().unwrap();
        }
        let e = parse("drm.epub", buf.get_ref()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("DRM"));
    }

    #[test]
    fn damaged_books_never_panic() {
        let bytes = sample("harbour.epub");
        for cut in (0..bytes.len()).step_by(61) {
            let _ = parse("h.epub", &bytes[..cut]);
        }
        for at in (40..bytes.len()).step_by(37) {
            let mut b = bytes.clone();
            b[at] = b[at].wrapping_add(1);
            let _ = parse("h.epub", &b);
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/epub/harbour.epub"
        ))
        .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = super::parse("x.epub", &bytes);
        }

        #[test]
        fn damaged_sample_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut b = sample();
            prop_assume!(!b.is_empty());
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            let _ = super::parse("x.epub", &b);
            let end = cut.index(b.len());
            let _ = super::parse("x.epub", &b[..end]);
        }
    }
}
