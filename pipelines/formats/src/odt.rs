//! OpenDocument text (`.odt`, ODF 1.2/1.3 as LibreOffice and others write it): a zip package
//! with `mimetype`, the body in `content.xml` and metadata in `meta.xml`.
//!
//! Choices:
//! - One document is one item. Paragraphs (`text:p`) are lines, headings (`text:h`) become
//!   Markdown `#` lines at their `text:outline-level`, and the first paragraph of a list
//!   item a `- ` line. Inside a paragraph, whitespace collapses as ODF says (runs of spaces
//!   and newlines are one space); `text:s` adds `text:c` spaces, `text:tab` a tab and
//!   `text:line-break` a newline.
//! - Footnote bodies, comments (`office:annotation`), tracked deletions and generated
//!   indexes (table of contents…) are left out: they repeat the text or are not the
//!   author's running prose.
//! - Time is `meta:creation-date` (ODF writes it without a zone, so it is read as UTC),
//!   else `dc:date` (last modification). The author is `meta:initial-creator`, else
//!   `dc:creator` (who saved it last).
//! - A package whose `mimetype` is not a text document (a spreadsheet or slides renamed
//!   `.odt`) is refused as Unsupported rather than read as empty.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::docx::package::{
    attr, document_item, fields, first, join_paragraphs, local, parse_date, push_ref, xml_error,
    Package,
};
use crate::{ErrorKind, FormatError, Parsed};

/// Whether `name` is an OpenDocument text. The content is a zip, which sniff.rs recognises
/// by its magic bytes before asking for the name.
pub fn looks_like(name: &str, _head: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".odt")
}

/// Parse an `.odt` into one document item.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let mut pkg = Package::open("odt", bytes)?;
    if let Some(mime) = pkg.text("mimetype")? {
        let mime = mime.trim();
        if !mime.starts_with("application/vnd.oasis.opendocument.text") {
            return Err(FormatError::new(
                ErrorKind::Unsupported,
                format!("odt: the package is `{mime}`, not an OpenDocument text; only text documents are read"),
            ));
        }
    }
    let Some(xml) = pkg.text("content.xml")? else {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            "odt: the package has no `content.xml`; it is damaged or not an OpenDocument file",
        ));
    };
    let text = content_text(&xml)?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("odt: {name} has no text in its body (only images, or an empty document)"),
        ));
    }
    let mut warnings = Vec::new();
    let meta = match pkg.text("meta.xml") {
        Ok(Some(xml)) => fields(
            "odt",
            "meta.xml",
            &xml,
            &[
                "title",
                "initial-creator",
                "creator",
                "creation-date",
                "date",
            ],
        )
        .unwrap_or_else(|e| {
            warnings.push(format!("metadata not read: {e}"));
            Vec::new()
        }),
        Ok(None) => Vec::new(),
        Err(e) => {
            warnings.push(format!("metadata not read: {e}"));
            Vec::new()
        }
    };
    let title = first(&meta, "title").map(str::to_string);
    let author = first(&meta, "initial-creator")
        .or_else(|| first(&meta, "creator"))
        .map(str::to_string);
    let timestamp = first(&meta, "creation-date")
        .and_then(parse_date)
        .or_else(|| first(&meta, "date").and_then(parse_date));
    Ok(Parsed {
        format: "odt",
        items: vec![document_item(name, title, author, timestamp, text)],
        skipped: 0,
        warnings,
    })
}

/// Subtrees whose text is not the document's running text.
const SKIP: &[&str] = &[
    "note",
    "annotation",
    "tracked-changes",
    "table-of-content",
    "illustration-index",
    "table-index",
    "object-index",
    "user-index",
    "alphabetical-index",
    "bibliography",
    "automatic-styles",
    "font-face-decls",
    "scripts",
];

#[derive(Default)]
struct Para {
    text: String,
    level: Option<u8>,
    list: bool,
}

impl Para {
    fn push_collapsed(&mut self, s: &str) {
        for c in s.chars() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                if !self.text.is_empty() && !self.text.ends_with(' ') {
                    self.text.push(' ');
                }
            } else {
                self.text.push(c);
            }
        }
    }

    fn finish(self) -> String {
        let text = self.text.trim();
        match (self.level, self.list) {
            _ if text.is_empty() => String::new(),
            (Some(l), _) => format!("{} {text}", "#".repeat(usize::from(l))),
            (None, true) => format!("- {text}"),
            (None, false) => text.to_string(),
        }
    }
}

fn current<'a>(open: &'a mut [Para], loose: &'a mut Para) -> &'a mut Para {
    match open.last_mut() {
        Some(p) => p,
        None => loose,
    }
}

/// The body text of `content.xml`, paragraphs one per line.
fn content_text(xml: &str) -> Result<String, FormatError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut open: Vec<Para> = Vec::new();
    let mut done: Vec<String> = Vec::new();
    let mut loose = Para::default();
    let mut skip = 0usize;
    // Set by `text:list-item`, taken by its first paragraph.
    let mut list_pending = false;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| xml_error("odt", "content.xml", &e, reader.buffer_position()))?;
        match ev {
            Event::Start(_) if skip > 0 => skip += 1,
            Event::End(_) if skip > 0 => skip -= 1,
            _ if skip > 0 => {}
            Event::Start(e) => {
                let qname = e.name();
                let n = local(qname.as_ref());
                if SKIP.contains(&n) {
                    skip = 1;
                } else if n == "p" || n == "h" {
                    open.push(para_of(&e, n == "h", std::mem::take(&mut list_pending)));
                } else if n == "list-item" {
                    list_pending = true;
                } else {
                    inline(&e, current(&mut open, &mut loose));
                }
            }
            Event::Empty(e) => {
                let qname = e.name();
                let n = local(qname.as_ref());
                if n == "p" || n == "h" {
                    list_pending = false;
                    done.push(String::new());
                } else {
                    inline(&e, current(&mut open, &mut loose));
                }
            }
            Event::End(e) => {
                let qname = e.name();
                let n = local(qname.as_ref());
                if n == "p" || n == "h" {
                    if let Some(p) = open.pop() {
                        done.push(p.finish());
                    }
                }
            }
            // Text outside paragraphs is indentation between elements.
            Event::Text(t) if !open.is_empty() => {
                current(&mut open, &mut loose).push_collapsed(&t.xml10_content())
            }
            Event::CData(t) if !open.is_empty() => {
                current(&mut open, &mut loose).push_collapsed(&t)
            }
            Event::GeneralRef(r) if !open.is_empty() => {
                push_ref(&mut current(&mut open, &mut loose).text, &r)
            }
            Event::Eof => break,
            _ => {}
        }
    }
    while let Some(p) = open.pop() {
        done.push(p.finish());
    }
    done.push(loose.finish());
    Ok(join_paragraphs(&done))
}

fn para_of(e: &BytesStart<'_>, heading: bool, list: bool) -> Para {
    let level = heading.then(|| {
        attr(e, "outline-level")
            .and_then(|v| v.trim().parse::<u8>().ok())
            .map(|l| l.clamp(1, 9))
            .unwrap_or(1)
    });
    Para {
        text: String::new(),
        level,
        list,
    }
}

/// Elements inside a paragraph that stand for characters.
fn inline(e: &BytesStart<'_>, para: &mut Para) {
    match local(e.name().as_ref()) {
        "s" => {
            // `text:c` is a count; a hostile one must not allocate gigabytes.
            let n = attr(e, "c")
                .and_then(|c| c.trim().parse::<usize>().ok())
                .unwrap_or(1);
            para.text.extend(std::iter::repeat_n(' ', n.min(64)));
        }
        "tab" => para.text.push('\t'),
        "line-break" => para.text.push('\n'),
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_lists_and_spacing() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">
  <office:automatic-styles><style:style style:name="P1"/></office:automatic-styles>
  <office:body>
    <office:text>
      <text:sequence-decls/>
      <text:table-of-content><text:index-body><text:p>Intro .... 1</text:p></text:index-body></text:table-of-content>
      <text:h text:outline-level="2">Intro</text:h>
      <text:p text:style-name="P1">One   two
        three<text:s text:c="3"/>four<text:tab/>five<text:line-break/>six<text:note text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p>a footnote</text:p></text:note-body></text:note></text:p>
      <text:p/>
      <text:list><text:list-item><text:p>eggs &amp; <text:span text:style-name="T1">ham</text:span></text:p></text:list-item></text:list>
      <text:p><office:annotation><dc:creator>Bob</dc:creator><text:p>a comment</text:p></office:annotation>end</text:p>
    </office:text>
  </office:body>
</office:document-content>"#;
        assert_eq!(
            content_text(xml).unwrap(),
            "## Intro\nOne two three   four\tfive\nsix\n\n- eggs & ham\nend"
        );
    }

    #[test]
    fn hostile_space_count_is_bounded() {
        let xml = r#"<t:p xmlns:t="x">a<t:s t:c="99999999999"/>b</t:p>"#;
        assert_eq!(content_text(xml).unwrap().len(), 66);
    }

    #[test]
    fn not_a_zip_is_malformed() {
        assert_eq!(
            parse("a.odt", b"<xml/>").unwrap_err().kind,
            ErrorKind::Malformed
        );
    }

    /// `tests/samples/odt/porto.odt` is written by `tests/samples/docx/make_samples.py` in
    /// LibreOffice 7's layout (ODF 1.3): table of contents, footnote, comment, list, table.
    #[test]
    fn libreoffice_sample_reads_as_a_person_sees_it() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/odt/porto.odt"
        ))
        .unwrap();
        let p = crate::parse("trips/porto.odt", None, &bytes).unwrap();
        assert_eq!(p.format, "odt");
        assert_eq!(p.items.len(), 1);
        let it = &p.items[0];
        assert_eq!(it.thread, "porto.odt");
        assert_eq!(it.title.as_deref(), Some("Porto, October"));
        assert_eq!(it.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2022-10-01T21:14:09.532+00:00"
        );
        assert_eq!(
            it.text,
            "# Trip to Porto\n\
             We took the Alfa Pendular at 8:09 and were in Campanhã before eleven. Lunch was  francesinha, of course.\n\
             ## Things to do next time\n- Livraria Lello, early\n- Port cellars in Gaia\n\
             Costs:\t€ 84\n(two people, one night)\nTrain\n€ 49"
        );
        for cut in (0..bytes.len()).step_by(89) {
            let _ = parse("p.odt", &bytes[..cut]);
        }
    }

    #[test]
    fn a_spreadsheet_renamed_odt_is_unsupported() {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file(
                "mimetype",
                zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
            z.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
                .unwrap();
            z.finish().unwrap();
        }
        let e = parse("sheet.odt", buf.get_ref()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("spreadsheet"));
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/odt/porto.odt"
        ))
        .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = super::parse("x.odt", &bytes);
        }

        #[test]
        fn damaged_sample_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut b = sample();
            prop_assume!(!b.is_empty());
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            let _ = super::parse("x.odt", &b);
            let end = cut.index(b.len());
            let _ = super::parse("x.odt", &b[..end]);
        }
    }
}
