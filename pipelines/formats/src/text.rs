//! Plain text and Markdown documents: notes, journals, blog posts. One document is one item;
//! chunking happens later (avatar-text), so the text is kept exactly as written: Markdown
//! stays Markdown, because its structure (headings, lists) is what the chunker splits on.
//!
//! Markdown files may start with front matter (YAML between `---` lines, as Jekyll, Hugo and
//! Obsidian write it, or TOML between `+++` lines, as Hugo does). Only `title`, `date` and
//! `author` are read, with a small line reader rather than a YAML library: those keys are
//! almost always one-line scalars, and a broken block must not cost the document.
//! The front-matter title wins over the first `# ` heading because it is the title the
//! author chose for the page; the file stem is the last resort.

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::{ErrorKind, FormatError, Item, Parsed};

/// Parse one document named `name` (a file name or a path inside an archive).
/// `markdown` turns on front matter and heading titles.
pub fn parse(name: &str, bytes: &[u8], markdown: bool) -> Result<Parsed, FormatError> {
    let format = if markdown { "markdown" } else { "text" };
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let (offset, bytes) = match bytes.strip_prefix(BOM) {
        Some(rest) => (BOM.len(), rest),
        None => (0, bytes),
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!(
                "{name}: not valid UTF-8 at byte {}; save it as UTF-8 or tell Avatar the encoding",
                offset + e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the document has only whitespace"),
        ));
    }

    let (front, body) = if markdown {
        split_front_matter(text)
    } else {
        (FrontMatter::default(), text)
    };
    if body.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the document has front matter but no text"),
        ));
    }

    let mut warnings = Vec::new();
    let timestamp = front.date.as_deref().and_then(|d| {
        let t = parse_date(d);
        if t.is_none() {
            warnings.push(format!(
                "{name}: front matter `date: {d}` is not a date Avatar reads (RFC 3339 or YYYY-MM-DD); the document has no date"
            ));
        }
        t
    });
    let title = front
        .title
        .filter(|t| !t.is_empty())
        .or_else(|| if markdown { first_heading(body) } else { None })
        .unwrap_or_else(|| file_stem(name).to_string());

    Ok(Parsed {
        format,
        items: vec![Item {
            kind: RecordKind::Document,
            thread: name.to_string(),
            timestamp,
            author: front.author.filter(|a| !a.is_empty()),
            text: body.to_string(),
            title: Some(title),
            message_id: None,
            in_reply_to: None,
            from_owner: false,
        }],
        skipped: 0,
        warnings,
    })
}

#[derive(Debug, Default, PartialEq)]
struct FrontMatter {
    title: Option<String>,
    date: Option<String>,
    author: Option<String>,
}

/// Splits a leading `---`…`---` (or `...`) YAML block or `+++`…`+++` TOML block from the
/// body. Without a closing fence the opening `---` is a thematic break, not front matter, and
/// the text is returned whole. Blank lines between the block and the body are dropped.
fn split_front_matter(text: &str) -> (FrontMatter, &str) {
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return (FrontMatter::default(), text);
    };
    let (sep, closers): (char, &[&str]) = match first.trim_end() {
        "---" => (':', &["---", "..."]),
        "+++" => ('=', &["+++"]),
        _ => return (FrontMatter::default(), text),
    };
    let mut pos = first.len();
    let mut block: Vec<&str> = Vec::new();
    for line in lines {
        pos += line.len();
        if closers.contains(&line.trim_end()) {
            let body = text[pos..].trim_start_matches(['\n', '\r']);
            return (read_front_matter(&block, sep), body);
        }
        block.push(line.trim_end_matches(['\n', '\r']));
    }
    (FrontMatter::default(), text)
}

fn read_front_matter(lines: &[&str], sep: char) -> FrontMatter {
    let mut fm = FrontMatter::default();
    let mut authors_list: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, value)) = line.split_once(sep) else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let slot = match key.as_str() {
            "title" => &mut fm.title,
            "date" => &mut fm.date,
            "author" => &mut fm.author,
            "authors" => &mut authors_list,
            _ => continue,
        };
        if slot.is_some() {
            continue;
        }
        let value = value.trim();
        let v =
            if value.is_empty() || value == "|" || value == ">" || value == ">-" || value == "|-" {
                continued_value(&lines[i + 1..])
            } else {
                scalar(value)
            };
        *slot = Some(v).filter(|v| !v.is_empty());
    }
    fm.author = fm.author.or(authors_list);
    fm
}

/// The indented lines after `key:`: a block list (`- a` / `- b`, joined with ", ") or a
/// folded/literal scalar (joined with spaces).
fn continued_value(lines: &[&str]) -> String {
    let mut items = Vec::new();
    let mut list = false;
    for line in lines {
        let t = line.trim();
        if !line.starts_with([' ', '\t', '-']) || t.is_empty() {
            break;
        }
        if let Some(item) = t.strip_prefix("- ") {
            list = true;
            items.push(scalar(item));
        } else {
            items.push(t.to_string());
        }
    }
    items.join(if list { ", " } else { " " })
}

/// A one-line YAML/TOML scalar: quotes removed, a trailing ` # comment` dropped, a flow
/// list `[a, b]` joined with ", ".
fn scalar(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            if let Some(end) = rest.rfind(q) {
                let inner = &rest[..end];
                return if q == '\'' {
                    inner.replace("''", "'")
                } else {
                    inner.replace("\\\"", "\"")
                };
            }
        }
    }
    let v = match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    };
    if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .split(',')
            .map(scalar)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
    }
    v.to_string()
}

/// RFC 3339, `YYYY-MM-DD HH:MM[:SS] [+ZZZZ]` (Jekyll), a zone-less date-time (read as UTC),
/// or `YYYY-MM-DD` (midnight UTC).
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M %z",
        "%Y-%m-%dT%H:%M:%S%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// The first level-1 heading (`# Title` or `Title` underlined with `===`), skipping fenced
/// code blocks where `# ` is a shell comment.
fn first_heading(body: &str) -> Option<String> {
    let mut fence: Option<&str> = None;
    let mut prev: Option<&str> = None;
    for line in body.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let t = line.trim();
        if indent <= 3 {
            if let Some(open) = fence {
                if t.starts_with(open)
                    && t.trim_start_matches(open.as_bytes()[0] as char).is_empty()
                {
                    fence = None;
                }
                prev = None;
                continue;
            }
            if t.starts_with("```") || t.starts_with("~~~") {
                fence = Some(&t[..3]);
                prev = None;
                continue;
            }
            if let Some(rest) = t.strip_prefix('#') {
                if rest.is_empty() || rest.starts_with([' ', '\t']) {
                    let title = strip_closing_hashes(rest.trim());
                    if !title.is_empty() {
                        return Some(title.to_string());
                    }
                }
            }
            if !t.is_empty() && t.bytes().all(|b| b == b'=') {
                if let Some(p) = prev {
                    return Some(p.trim().to_string());
                }
            }
        } else if fence.is_some() {
            continue;
        }
        prev = (!t.is_empty() && !t.starts_with('#')).then_some(line);
    }
    None
}

/// `Title ##` -> `Title` (CommonMark's optional closing sequence needs a space before it).
fn strip_closing_hashes(s: &str) -> &str {
    let without = s.trim_end_matches('#');
    if without.is_empty() {
        ""
    } else if without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        s
    }
}

/// `notes/2024/ideas.md` -> `ideas`; archive paths may use either separator.
fn file_stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    };
    if stem.is_empty() {
        name
    } else {
        stem
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn one(name: &str, s: &str, md: bool) -> Item {
        let p = parse(name, s.as_bytes(), md).unwrap();
        assert_eq!(p.items.len(), 1);
        p.items.into_iter().next().unwrap()
    }

    #[test]
    fn yaml_front_matter_is_read_and_removed() {
        let doc = "---\ntitle: \"Walking the coast\"\ndate: 2024-05-06T08:30:00+02:00\nauthor: Maja Holm # me\ntags: [walk, sea]\n---\n\n# Day one\n\nWe *left* early.\n";
        let p = parse("blog/walk.md", doc.as_bytes(), true).unwrap();
        assert_eq!(p.format, "markdown");
        assert!(p.warnings.is_empty());
        let it = &p.items[0];
        assert_eq!(it.kind, RecordKind::Document);
        assert_eq!(it.thread, "blog/walk.md");
        assert_eq!(it.title.as_deref(), Some("Walking the coast"));
        assert_eq!(it.author.as_deref(), Some("Maja Holm"));
        assert_eq!(
            it.timestamp,
            Some(Utc.with_ymd_and_hms(2024, 5, 6, 6, 30, 0).unwrap())
        );
        assert_eq!(it.text, "# Day one\n\nWe *left* early.\n");
    }

    #[test]
    fn heading_then_stem_are_the_fallback_titles() {
        let it = one(
            "notes/ideas.md",
            "Intro line\n\n```sh\n# not a title\n```\n# Real *title* ##\ntext",
            true,
        );
        assert_eq!(it.title.as_deref(), Some("Real *title*"));
        let it = one("notes/setext.md", "My Title\n========\n\nbody", true);
        assert_eq!(it.title.as_deref(), Some("My Title"));
        let it = one(
            "C:\\Users\\me\\journal.2024.md",
            "## only level two\n#hashtag is not a heading",
            true,
        );
        assert_eq!(it.title.as_deref(), Some("journal.2024"));
        // Plain text never takes a title from its content.
        let it = one("todo.txt", "# buy milk\n", false);
        assert_eq!(it.title.as_deref(), Some("todo"));
        assert_eq!(it.text, "# buy milk\n");
        let it = one(".plan", "plans", false);
        assert_eq!(it.title.as_deref(), Some(".plan"));
    }

    #[test]
    fn toml_front_matter_lists_and_dates() {
        let it = one(
            "post.md",
            "+++\ntitle = 'It''s here'\ndate = 2023-01-02\nauthors = [\"Ann\", \"Bo\"]\n+++\nBody",
            true,
        );
        assert_eq!(it.title.as_deref(), Some("It's here"));
        assert_eq!(it.author.as_deref(), Some("Ann, Bo"));
        assert_eq!(
            it.timestamp,
            Some(Utc.with_ymd_and_hms(2023, 1, 2, 0, 0, 0).unwrap())
        );
        assert_eq!(it.text, "Body");

        let it = one(
            "jekyll.md",
            "---\ndate: 2010-07-08 09:10:11 +0100\nauthor:\n  - Cy\n  - Di\n...\nText",
            true,
        );
        assert_eq!(it.author.as_deref(), Some("Cy, Di"));
        assert_eq!(
            it.timestamp,
            Some(Utc.with_ymd_and_hms(2010, 7, 8, 8, 10, 11).unwrap())
        );
        assert_eq!(it.title.as_deref(), Some("jekyll"));
    }

    #[test]
    fn bad_date_is_a_warning_not_an_error() {
        let p = parse("x.md", b"---\ndate: last tuesday\n---\nhello", true).unwrap();
        assert_eq!(p.items[0].timestamp, None);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("last tuesday"));
    }

    #[test]
    fn unclosed_dashes_are_a_thematic_break_not_front_matter() {
        let doc = "---\ntitle: no\n\nstill text";
        let it = one("x.md", doc, true);
        assert_eq!(it.text, doc);
        assert_eq!(it.title.as_deref(), Some("x"));
        // Front matter in a .txt is text.
        let doc = "---\ntitle: t\n---\nbody";
        assert_eq!(one("x.txt", doc, false).text, doc);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse("a.txt", b"caf\xc3\xa9 ok \xe9t\xe9", false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Encoding);
        assert_eq!(
            e.message,
            "a.txt: not valid UTF-8 at byte 9; save it as UTF-8 or tell Avatar the encoding"
        );
        let e = parse("b.md", b"\xEF\xBB\xBFab\xff", true).unwrap_err();
        assert!(e.message.contains("at byte 5"), "{}", e.message);
        assert_eq!(
            parse("c.txt", b" \n\t\r\n", false).unwrap_err().kind,
            ErrorKind::Empty
        );
        assert_eq!(
            parse("d.md", b"---\ntitle: x\n---\n\n", true)
                .unwrap_err()
                .kind,
            ErrorKind::Empty
        );
    }

    #[test]
    fn bom_and_crlf() {
        let it = one(
            "w.md",
            "\u{feff}---\r\ntitle: Win\r\n---\r\n\r\nline one\r\n",
            true,
        );
        assert_eq!(it.title.as_deref(), Some("Win"));
        assert_eq!(it.text, "line one\r\n");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512), md: bool) {
                let _ = parse("f.md", &bytes, md);
            }

            /// The text is always the input's tail: nothing is invented or rewritten.
            #[test]
            fn text_is_a_suffix_of_the_input(s in "(---|\\+\\+\\+|# |title: |date: |author:|  - |```|=+|[a-z ]{0,8}|\r?\n){0,30}", md: bool) {
                if let Ok(p) = parse("n/f.md", s.as_bytes(), md) {
                    let it = &p.items[0];
                    prop_assert!(s.ends_with(&it.text));
                    prop_assert!(!it.text.trim().is_empty());
                    prop_assert!(it.title.as_deref().is_some_and(|t| !t.is_empty()));
                    if !md { prop_assert_eq!(&it.text, &s); }
                }
            }
        }
    }
}
