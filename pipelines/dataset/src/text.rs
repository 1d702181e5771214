//! The person's documents (notes, essays, code) → continued-pretraining text.
//!
//! A `text` example is one assistant message holding a piece of the document, with no user
//! turn and no system prompt: all of it is target, so the model learns how the person writes
//! rather than how they answer. Only documents whose author is the person are used.
//!
//! Pieces hold at most `max_text_tokens` and are cut at paragraph boundaries (blank lines);
//! a paragraph too long on its own is cut between lines, and a line too long between words
//! (its inner spacing then becomes single spaces). A single word over the budget stays whole.

use crate::{
    example_id, DatasetConfig, SftExample, SftKind, SftMessage, SftRole, SftSplit, TokenCounter,
};
use avatar_schemas::{Record, RecordKind};

/// The examples of every document by the person. `records` must be in canonical order.
pub(crate) fn text_examples(
    records: &[&Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> Vec<SftExample> {
    let mut out = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.kind == RecordKind::Document && r.author_is_person)
    {
        for (i, piece) in split_text(&r.text, config.max_text_tokens, count)
            .into_iter()
            .enumerate()
        {
            out.push(SftExample {
                id: example_id(SftKind::Text, &[r.id.as_str()], Some(i)),
                split: SftSplit::Train,
                messages: vec![SftMessage {
                    role: SftRole::Assistant,
                    content: piece,
                }],
                kind: SftKind::Text,
                source_records: vec![r.id.clone()],
                timestamp: r.timestamp,
            });
        }
    }
    out
}

/// Cuts `text` into pieces of at most `max_tokens` (see the module docs for where).
pub fn split_text(text: &str, max_tokens: usize, count: TokenCounter<'_>) -> Vec<String> {
    // (separator before the unit, unit)
    let mut units: Vec<(&str, String)> = Vec::new();
    for paragraph in paragraphs(text) {
        if count(&paragraph) <= max_tokens {
            units.push(("\n\n", paragraph));
            continue;
        }
        let mut sep = "\n\n";
        for line in paragraph.lines() {
            if count(line) <= max_tokens {
                units.push((sep, line.to_string()));
            } else {
                for chunk in pack(
                    line.split_whitespace().map(|w| (" ", w.to_string())),
                    max_tokens,
                    count,
                ) {
                    units.push((sep, chunk));
                    sep = " ";
                }
            }
            sep = "\n";
        }
    }
    pack(units.into_iter(), max_tokens, count)
}

/// The paragraphs of `text`: runs of non-blank lines, trimmed at the ends.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n"));
    }
    out
}

/// Greedily joins units (each with the separator that goes before it) into pieces that fit.
fn pack<'s>(
    units: impl Iterator<Item = (&'s str, String)>,
    max_tokens: usize,
    count: TokenCounter<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (sep, unit) in units {
        if current.is_empty() {
            current = unit;
            continue;
        }
        let candidate = format!("{current}{sep}{unit}");
        if count(&candidate) <= max_tokens {
            current = candidate;
        } else {
            out.push(std::mem::replace(&mut current, unit));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::rec;
    use crate::{build_dataset, whitespace_tokens};

    #[test]
    fn pieces_cut_at_paragraphs_then_lines_then_words() {
        let text = "one two three\n\nfour five\nsix\n\n\n  \nseven eight nine ten eleven\ntwelve";
        assert_eq!(
            split_text(text, 5, &whitespace_tokens),
            [
                "one two three",
                "four five\nsix",
                "seven eight nine ten eleven",
                "twelve"
            ]
        );
        assert_eq!(
            split_text(text, 6, &whitespace_tokens),
            [
                "one two three\n\nfour five\nsix",
                "seven eight nine ten eleven\ntwelve"
            ]
        );
        assert_eq!(
            split_text(text, 100, &whitespace_tokens),
            ["one two three\n\nfour five\nsix\n\nseven eight nine ten eleven\ntwelve"]
        );
        assert_eq!(
            split_text("a b c d e", 2, &whitespace_tokens),
            ["a b", "c d", "e"]
        );
        assert!(split_text(" \n\n ", 5, &whitespace_tokens).is_empty());
    }

    #[test]
    fn every_piece_fits_and_no_word_is_lost() {
        let text = (0..300)
            .map(|i| {
                if i % 17 == 0 {
                    "\n\n".to_string()
                } else if i % 5 == 0 {
                    format!("w{i}\n")
                } else {
                    format!("w{i} ")
                }
            })
            .collect::<String>();
        for max in [1, 3, 10, 64] {
            let pieces = split_text(&text, max, &whitespace_tokens);
            assert!(pieces.iter().all(|p| whitespace_tokens(p) <= max));
            let words: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
            let want: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(words, want, "max {max}");
        }
    }

    #[test]
    fn only_the_persons_documents_become_text() {
        let mine = rec(
            "d1",
            RecordKind::Document,
            "notes",
            "1843-09-01T00:00:00Z",
            "Ada Lovelace",
            true,
            "p1 a\n\np2 b c",
        );
        let theirs = rec(
            "d2",
            RecordKind::Document,
            "notes",
            "",
            "Charles Babbage",
            false,
            "not hers",
        );
        let config = DatasetConfig {
            max_text_tokens: 3,
            ..DatasetConfig::default()
        };
        let ex = build_dataset(&[theirs, mine], &config, &whitespace_tokens);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].messages.len(), 1);
        assert_eq!(ex[0].messages[0].role, SftRole::Assistant);
        assert_eq!(ex[0].messages[0].content, "p1 a");
        assert_eq!(ex[1].messages[0].content, "p2 b c");
        assert_eq!(ex[0].id, example_id(SftKind::Text, &["d1"], Some(0)));
        assert_eq!(ex[1].id, example_id(SftKind::Text, &["d1"], Some(1)));
        assert!(ex
            .iter()
            .all(|e| e.kind == SftKind::Text && e.source_records == ["d1"]));
    }
}
