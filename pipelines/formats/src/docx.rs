//! Word documents (`.docx`, Office Open XML / ECMA-376): a zip package whose main part
//! (`word/document.xml`, found through `_rels/.rels`) holds the body, and whose
//! `docProps/core.xml` holds title, creator and dates.
//!
//! Choices:
//! - One document is one item; the text is the body's paragraphs (`w:p`) one per line, with
//!   `w:t` text, `w:tab` as a tab and `w:br`/`w:cr` as a line break. Headings (paragraph
//!   styles whose name is `heading N` or `Title`, or an explicit outline level) become
//!   Markdown `#` lines and numbered/bulleted paragraphs `- ` lines, so later stages can
//!   split on structure.
//! - Deleted text of tracked changes (`w:delText`) and field codes (`w:instrText`) are not
//!   text anyone reads, so they are left out; `mc:Fallback` is skipped because it repeats the
//!   text boxes of `mc:Choice` for old readers.
//! - Headers, footers, footnotes and comments live in other parts and are not read: they
//!   are boilerplate or other people's words more often than the author's.
//! - Time is `dcterms:created` (when the author wrote it; a later re-save does not move a
//!   2015 essay to 2024), else `dcterms:modified`. The author is `dc:creator`;
//!   `cp:lastModifiedBy` may be someone else and is not used.

pub(crate) mod package;

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::{ErrorKind, FormatError, Parsed};
use package::{
    attr, fields, first, join_paragraphs, local, parse_date, push_ref, xml_error, Package,
};

/// Whether `name` is a Word document. The content is a zip, which sniff.rs recognises by
/// its magic bytes before asking for the name.
pub fn looks_like(name: &str, _head: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".docx")
}

/// Parse a `.docx` into one document item.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let mut pkg = Package::open("docx", bytes)?;
    let main = main_part(&mut pkg)?;
    let Some(xml) = pkg.text(&main)? else {
        let what = if pkg.has("xl/workbook.xml") {
            "an Excel workbook"
        } else if pkg.has("ppt/presentation.xml") {
            "a PowerPoint presentation"
        } else {
            "not a Word document"
        };
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("docx: the package has no `{main}`: it is {what}, not a .docx text document"),
        ));
    };
    let mut warnings = Vec::new();
    let levels = match pkg.text("word/styles.xml") {
        Ok(Some(styles)) => style_levels(&styles),
        Ok(None) => HashMap::new(),
        Err(e) => {
            warnings.push(format!("styles not read, headings may be missed: {e}"));
            HashMap::new()
        }
    };
    let text = document_text(&main, &xml, &levels)?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("docx: {name} has no text in its body (only images, or an empty document)"),
        ));
    }
    let (title, author, timestamp) = match pkg.text("docProps/core.xml") {
        Ok(Some(core)) => match core_properties(&core) {
            Ok(meta) => meta,
            Err(e) => {
                warnings.push(format!("metadata not read: {e}"));
                (None, None, None)
            }
        },
        Ok(None) => (None, None, None),
        Err(e) => {
            warnings.push(format!("metadata not read: {e}"));
            (None, None, None)
        }
    };
    Ok(Parsed {
        format: "docx",
        items: vec![package::document_item(name, title, author, timestamp, text)],
        skipped: 0,
        warnings,
    })
}

/// The main document part named by the package relationships, `word/document.xml` when
/// they do not say (some generators write `document2.xml` and say so only there).
fn main_part(pkg: &mut Package<'_>) -> Result<String, FormatError> {
    const DEFAULT: &str = "word/document.xml";
    let Some(rels) = pkg.text("_rels/.rels")? else {
        return Ok(DEFAULT.to_string());
    };
    let Ok(rels) = fields("docx", "_rels/.rels", &rels, &["Relationship"]) else {
        return Ok(DEFAULT.to_string());
    };
    let target = rels
        .iter()
        .find(|r| {
            r.attr("Type")
                .is_some_and(|t| t.ends_with("/officeDocument"))
        })
        .and_then(|r| r.attr("Target"))
        .map(|t| t.trim_start_matches('/').to_string());
    Ok(target.unwrap_or_else(|| DEFAULT.to_string()))
}

/// Title, author and time from `docProps/core.xml`.
#[allow(clippy::type_complexity)]
fn core_properties(
    xml: &str,
) -> Result<
    (
        Option<String>,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    ),
    FormatError,
> {
    let f = fields(
        "docx",
        "docProps/core.xml",
        xml,
        &["title", "creator", "created", "modified"],
    )?;
    let title = first(&f, "title").map(str::to_string);
    let author = first(&f, "creator").map(str::to_string);
    let timestamp = first(&f, "created")
        .and_then(parse_date)
        .or_else(|| first(&f, "modified").and_then(parse_date));
    Ok((title, author, timestamp))
}

/// Heading level (1-9) per paragraph style id, from `word/styles.xml`: style ids are
/// localised (`berschrift1`), their names (`heading 1`) and outline levels are not.
fn style_levels(xml: &str) -> HashMap<String, u8> {
    let mut out = HashMap::new();
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut current: Option<String> = None;
    loop {
        let (e, is_start) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, true),
            Ok(Event::Empty(e)) => (e, false),
            Ok(Event::End(e)) => {
                if local(e.name().as_ref()) == "style" {
                    current = None;
                }
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => continue,
        };
        match local(e.name().as_ref()) {
            "style" if is_start => current = attr(&e, "styleId"),
            "name" => {
                if let (Some(id), Some(level)) =
                    (&current, attr(&e, "val").and_then(|v| heading_level(&v)))
                {
                    out.insert(id.clone(), level);
                }
            }
            "outlineLvl" => {
                if let (Some(id), Some(level)) = (&current, outline_level(&e)) {
                    out.entry(id.clone()).or_insert(level);
                }
            }
            _ => {}
        }
    }
    out
}

/// `Heading1`, `heading 2`, `Title` -> their level.
fn heading_level(style: &str) -> Option<u8> {
    let s: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if s == "title" {
        return Some(1);
    }
    let n: u8 = s.strip_prefix("heading")?.parse().ok()?;
    (1..=9).contains(&n).then_some(n)
}

/// `w:outlineLvl w:val="0"` is a level-1 heading; 9 means body text.
fn outline_level(e: &BytesStart<'_>) -> Option<u8> {
    let n: u8 = attr(e, "val")?.parse().ok()?;
    (n < 9).then_some(n + 1)
}

#[derive(Default)]
struct Para {
    text: String,
    level: Option<u8>,
    list: bool,
}

impl Para {
    fn finish(self) -> String {
        let text = self.text.trim_end();
        match (self.level, self.list) {
            _ if text.trim().is_empty() => String::new(),
            (Some(l), _) => format!("{} {}", "#".repeat(usize::from(l)), text.trim_start()),
            (None, true) => format!("- {}", text.trim_start()),
            (None, false) => text.to_string(),
        }
    }
}

/// The body text of `word/document.xml`, paragraphs one per line.
fn document_text(
    entry: &str,
    xml: &str,
    levels: &HashMap<String, u8>,
) -> Result<String, FormatError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    // Paragraphs nest (a text box inside a paragraph), so open ones are a stack.
    let mut open: Vec<Para> = Vec::new();
    let mut done: Vec<String> = Vec::new();
    let mut loose = Para::default();
    let mut in_t = 0usize;
    let mut run = 0usize;
    let mut skip = 0usize;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| xml_error("docx", entry, &e, reader.buffer_position()))?;
        match ev {
            Event::Start(_) if skip > 0 => skip += 1,
            Event::End(_) if skip > 0 => skip -= 1,
            _ if skip > 0 => {}
            Event::Start(e) => match local(e.name().as_ref()) {
                "Fallback" | "delText" | "instrText" => skip = 1,
                "p" => open.push(Para::default()),
                "r" => run += 1,
                "t" => in_t += 1,
                _ => inline(&e, current(&mut open, &mut loose), run, levels),
            },
            Event::Empty(e) => {
                if local(e.name().as_ref()) == "p" {
                    done.push(String::new());
                } else {
                    inline(&e, current(&mut open, &mut loose), run, levels);
                }
            }
            Event::End(e) => match local(e.name().as_ref()) {
                "p" => {
                    if let Some(p) = open.pop() {
                        done.push(p.finish());
                    }
                }
                "r" => run = run.saturating_sub(1),
                "t" => in_t = in_t.saturating_sub(1),
                _ => {}
            },
            Event::Text(t) if in_t > 0 => current(&mut open, &mut loose)
                .text
                .push_str(&t.xml10_content()),
            Event::CData(t) if in_t > 0 => current(&mut open, &mut loose).text.push_str(&t),
            Event::GeneralRef(r) if in_t > 0 => {
                push_ref(&mut current(&mut open, &mut loose).text, &r)
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // A body cut off mid-paragraph still has its text.
    while let Some(p) = open.pop() {
        done.push(p.finish());
    }
    done.push(loose.finish());
    Ok(join_paragraphs(&done))
}

/// The innermost open paragraph, or the text outside any paragraph.
fn current<'a>(open: &'a mut [Para], loose: &'a mut Para) -> &'a mut Para {
    match open.last_mut() {
        Some(p) => p,
        None => loose,
    }
}

/// Elements inside a paragraph that add characters or set its kind.
fn inline(e: &BytesStart<'_>, para: &mut Para, run: usize, levels: &HashMap<String, u8>) {
    match local(e.name().as_ref()) {
        // `w:tab` also defines tab stops inside `w:pPr`; only the one in a run is a character.
        "tab" if run > 0 => para.text.push('\t'),
        "br" | "cr" if run > 0 => para.text.push('\n'),
        "noBreakHyphen" if run > 0 => para.text.push('-'),
        "pStyle" => {
            if let Some(v) = attr(e, "val") {
                para.level = levels.get(&v).copied().or_else(|| heading_level(&v));
            }
        }
        "outlineLvl" => para.level = para.level.or_else(|| outline_level(e)),
        "numPr" => para.list = true,
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BODY: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">
<w:body>
<w:p><w:pPr><w:pStyle w:val="Heading1"/><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t>Plan</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">Tea &amp; </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>cake</w:t></w:r><w:r><w:tab/><w:t>at 5</w:t><w:br/><w:t>sharp</w:t></w:r></w:p>
<w:p/>
<w:p/>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>milk</w:t></w:r><w:del><w:r><w:delText>sugar</w:delText></w:r></w:del></w:p>
<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> PAGE </w:instrText></w:r><w:r><w:t>3</w:t></w:r></w:p>
<w:p><w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:txbxContent><w:p><w:r><w:t>boxed</w:t></w:r></w:p></w:txbxContent></mc:Choice><mc:Fallback><w:pict><w:txbxContent><w:p><w:r><w:t>boxed</w:t></w:r></w:p></w:txbxContent></w:pict></mc:Fallback></mc:AlternateContent></w:r></w:p>
</w:body></w:document>"#;

    #[test]
    fn body_paragraphs_headings_lists_and_runs() {
        let text = document_text("word/document.xml", BODY, &HashMap::new()).unwrap();
        assert_eq!(text, "# Plan\nTea & cake\tat 5\nsharp\n\n- milk\n3\nboxed");
    }

    #[test]
    fn localised_heading_styles_come_from_styles_xml() {
        let styles = r#"<w:styles xmlns:w="x"><w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style><w:style w:styleId="Zitat"><w:name w:val="Quote"/></w:style></w:styles>"#;
        let levels = style_levels(styles);
        assert_eq!(levels.get("berschrift2"), Some(&2));
        assert_eq!(levels.get("Zitat"), None);
        let body = r#"<w:document xmlns:w="x"><w:body><w:p><w:pPr><w:pStyle w:val="berschrift2"/></w:pPr><w:r><w:t>Kapitel</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(document_text("d", body, &levels).unwrap(), "## Kapitel");
    }

    #[test]
    fn broken_xml_is_malformed_with_its_position() {
        // Missing end tags are tolerated (the text so far is kept); a tag or comment cut
        // in the middle is an error.
        let e = document_text(
            "word/document.xml",
            "<w:document><w:body><w:p><w:t>a</w:t>",
            &HashMap::new(),
        );
        assert_eq!(e.unwrap(), "a");
        let e = document_text(
            "word/document.xml",
            "<w:document><w:body><w:p><w:t>a</w:t></w:p",
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        let e = document_text(
            "word/document.xml",
            "<w:document><w:p><w:t>a</w:t><!-- never closed",
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        assert!(e.message.contains("word/document.xml"), "{}", e.message);
    }

    #[test]
    fn not_a_zip_and_legacy_doc_are_explained() {
        let e = parse("a.docx", b"hello").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Malformed);
        let e = parse(
            "a.docx",
            &[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0],
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(e.message.contains("legacy"));
        let e = parse("a.docx", b"PK\x03\x04truncated").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
    }

    /// `tests/samples/docx/garden.docx` is written by `make_samples.py` beside it in Word
    /// 2016's package layout (ECMA-376): styles, tracked deletion, field code, text box
    /// with VML fallback, list, table.
    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/docx/garden.docx"
        ))
        .unwrap()
    }

    #[test]
    fn word_sample_reads_as_a_person_sees_it() {
        let bytes = sample();
        let p = crate::parse("garden.docx", None, &bytes).unwrap();
        assert_eq!(p.format, "docx");
        assert_eq!(p.items.len(), 1);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let it = &p.items[0];
        assert_eq!(it.kind, avatar_schemas::RecordKind::Document);
        assert_eq!(it.thread, "garden.docx");
        assert_eq!(it.title.as_deref(), Some("Garden year 2023"));
        assert_eq!(it.author.as_deref(), Some("Ana Sousa"));
        assert_eq!(
            it.timestamp.unwrap().to_rfc3339(),
            "2023-04-13T08:41:00+00:00"
        );
        assert_eq!(
            it.text,
            "# Notes on the garden year\n# Spring\n\
             The tomatoes went in on 12 April, and the frost came a week later. Lesson: wait for May & cover them.\n\n\
             Seeds to order:\n- Cherokee Purple\n- Sungold\n# Summer\n\
             Watering\tevery second evening\n(more in July)\nCrop\nKilos\nBeans\n4.5\n\
             Remember the netting!\n\nPage 1"
        );
    }

    #[test]
    fn every_cut_and_flipped_variant_is_an_error_or_text_never_a_panic() {
        let bytes = sample();
        for cut in (0..bytes.len()).step_by(97) {
            let _ = parse("g.docx", &bytes[..cut]);
        }
        for at in (30..bytes.len()).step_by(53) {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let _ = parse("g.docx", &b);
        }
        assert_eq!(
            parse("g.docx", &bytes[..bytes.len() / 2]).unwrap_err().kind,
            ErrorKind::Truncated
        );
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/samples/docx/garden.docx"
        ))
        .unwrap_or_default()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = super::parse("x.docx", &bytes);
        }

        #[test]
        fn damaged_sample_never_panics(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
            let mut b = sample();
            prop_assume!(!b.is_empty());
            for (i, v) in edits {
                let at = i.index(b.len());
                b[at] = v;
            }
            let _ = super::parse("x.docx", &b);
            let end = cut.index(b.len());
            let _ = super::parse("x.docx", &b[..end]);
        }
    }
}
