//! Structure-aware chunking: records → passages sized for the embedder.
//!
//! A vector index finds passages, not files, and a passage only means something when it is
//! cut where the writing changes subject. So the cut follows the structure of each kind:
//!
//! - a chat **session** (consecutive messages of one thread, gaps ≤ `session_gap_secs`) is one
//!   passage of `Author: text` lines: one message alone rarely says enough;
//! - an **email** (quotes already stripped upstream) is cut at paragraphs;
//! - a **document** at Markdown headings (each section starts a new chunk), then paragraphs;
//! - **code** (`format == "code"`) at top-level definitions (`fn`, `def`, `class`, …);
//! - a **memory** is one chunk (cut only when it is longer than `max_tokens`).
//!
//! Sizes are counted by the caller's token counter (the embedder's tokenizer in production,
//! whitespace words in tests): a chunk holds at most `max_tokens` unless a single word is
//! longer. When one unit needs several chunks, each continues with the last `overlap_tokens`
//! of the previous one so a sentence cut in two is still whole somewhere.
//!
//! Ids are content hashes (record ids + text), so replaying the log gives the same chunk ids
//! and a re-embed can skip what it already has.

use avatar_schemas::{Record, RecordKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

/// How big chunks are and when a chat session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Most tokens in one chunk (all-MiniLM-L6-v2 reads 256 word pieces; 200 leaves room).
    pub max_tokens: usize,
    /// Tokens repeated from the end of the previous chunk of the same unit. Clamped to half of
    /// `max_tokens` so every chunk carries new text.
    pub overlap_tokens: usize,
    /// A chat gap longer than this (seconds) starts a new session.
    pub session_gap_secs: i64,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 200,
            overlap_tokens: 30,
            session_gap_secs: 1800,
        }
    }
}

/// One passage to embed and cite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Hex of the first 16 bytes of sha256(record ids, text): stable across replays.
    pub id: String,
    /// Records whose text is in the chunk (overlap included), in order of appearance.
    pub record_ids: Vec<String>,
    pub text: String,
    pub avatar: String,
    /// Source of the first record in the chunk.
    pub source: String,
    /// The record's author; for a chat chunk the author of most of its messages (ties go to
    /// whoever spoke first). Never `None` just because a chat is mixed: author filters must
    /// still find conversations someone led.
    pub author: Option<String>,
    /// The earliest timestamp among the chunk's records.
    pub timestamp: Option<DateTime<Utc>>,
    pub kind: RecordKind,
}

/// Cut the records of ONE artifact (or one memory), in dataset order, into chunks.
///
/// Total and pure: any records in, chunks out; records with blank text give no chunk.
pub fn chunk_records(
    records: &[Record],
    cfg: &ChunkConfig,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let packer = Packer::new(cfg, count_tokens);
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let rec = &records[i];
        if rec.kind == RecordKind::Message {
            let mut end = i + 1;
            while end < records.len() && same_session(&records[end - 1], &records[end], cfg) {
                end += 1;
            }
            let pieces: Vec<Piece> = (i..end)
                .filter(|&j| !records[j].text.trim().is_empty())
                .map(|j| Piece::new(j, render_message(&records[j]), "\n"))
                .collect();
            emit(&mut out, records, packer.pack(pieces), true);
            i = end;
            continue;
        }
        if rec.kind == RecordKind::Transcript {
            // A story told in a recording runs over several clips: the clips of one
            // recording, in order, are packed together like a chat session.
            let mut end = i + 1;
            while end < records.len()
                && records[end].kind == RecordKind::Transcript
                && records[end].source == rec.source
            {
                end += 1;
            }
            let pieces: Vec<Piece> = (i..end)
                .filter(|&j| !records[j].text.trim().is_empty())
                .map(|j| Piece::new(j, records[j].text.trim().to_string(), "\n"))
                .collect();
            emit(&mut out, records, packer.pack(pieces), false);
            i = end;
            continue;
        }
        let units: Vec<Vec<Piece>> = match rec.kind {
            RecordKind::Document if rec.format == "code" => code_units(i, &rec.text),
            RecordKind::Document => section_units(i, &rec.text),
            RecordKind::Email
            | RecordKind::Memory
            | RecordKind::Message
            | RecordKind::Transcript => {
                vec![paragraph_pieces(i, &rec.text)]
            }
        };
        for unit in units {
            emit(&mut out, records, packer.pack(unit), false);
        }
        i += 1;
    }
    out
}

/// Hex of the first 16 bytes of sha256 over the record ids (NUL-terminated) and the text.
pub fn chunk_id(record_ids: &[String], text: &str) -> String {
    let mut h = Sha256::new();
    for id in record_ids {
        h.update(id.as_bytes());
        h.update([0u8]);
    }
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn same_session(a: &Record, b: &Record, cfg: &ChunkConfig) -> bool {
    if b.kind != RecordKind::Message || a.thread != b.thread || a.source != b.source {
        return false;
    }
    match (a.timestamp, b.timestamp) {
        // Out-of-order exports happen; a gap is a gap in either direction.
        (Some(x), Some(y)) => (y - x).num_seconds().abs() <= cfg.session_gap_secs,
        // No clock: nothing says the conversation stopped.
        _ => true,
    }
}

fn render_message(r: &Record) -> String {
    format!(
        "{}: {}",
        r.author.as_deref().unwrap_or("unknown"),
        r.text.trim()
    )
}

/// A piece of a unit: text from one record and the separator that precedes it in a chunk.
#[derive(Debug, Clone, PartialEq)]
struct Piece {
    rec: usize,
    text: String,
    sep: &'static str,
}

impl Piece {
    fn new(rec: usize, text: String, sep: &'static str) -> Piece {
        Piece { rec, text, sep }
    }
}

fn join(pieces: &[Piece]) -> String {
    let mut s = String::new();
    for (n, p) in pieces.iter().enumerate() {
        if n > 0 {
            s.push_str(p.sep);
        }
        s.push_str(&p.text);
    }
    s
}

/// Split at blank lines, keeping fenced code blocks (```) whole.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if line.trim().is_empty() && !fenced {
            if !cur.is_empty() {
                out.push(cur.join("\n"));
                cur.clear();
            }
        } else {
            cur.push(line.trim_end());
        }
    }
    if !cur.is_empty() {
        out.push(cur.join("\n"));
    }
    out.retain(|p| !p.trim().is_empty());
    out
}

fn paragraph_pieces(rec: usize, text: &str) -> Vec<Piece> {
    paragraphs(text)
        .into_iter()
        .map(|p| Piece::new(rec, p, "\n\n"))
        .collect()
}

fn is_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with(' ')
}

/// Markdown sections: a heading starts a new unit (outside code fences).
fn section_units(rec: usize, text: &str) -> Vec<Vec<Piece>> {
    let mut sections: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && is_heading(line) && !cur.trim().is_empty() {
            sections.push(std::mem::take(&mut cur));
        }
        cur.push_str(line);
        cur.push('\n');
    }
    sections.push(cur);
    sections
        .iter()
        .map(|s| paragraph_pieces(rec, s))
        .filter(|u| !u.is_empty())
        .collect()
}

/// Keywords that open a top-level definition in common languages.
const DEFINITION_STARTS: &[&str] = &[
    "fn ",
    "pub fn ",
    "pub(crate) fn ",
    "async fn ",
    "pub async fn ",
    "impl ",
    "impl<",
    "def ",
    "async def ",
    "class ",
    "function ",
    "async function ",
    "export function ",
    "export default function ",
    "export class ",
    "func ",
    "sub ",
    "public ",
    "private ",
    "protected ",
];

fn starts_definition(block: &str) -> bool {
    let first = block.lines().find(|l| {
        let t = l.trim_start();
        // Decorators, attributes and doc comments belong to the definition below them.
        !(t.starts_with('@') || t.starts_with("#[") || t.starts_with("///"))
    });
    first.is_some_and(|l| DEFINITION_STARTS.iter().any(|k| l.starts_with(k)))
}

/// Code: blank-line-separated blocks; one starting with a definition at column 0 opens a
/// new unit, everything else (imports, comments, nested blank lines) joins the current one.
fn code_units(rec: usize, text: &str) -> Vec<Vec<Piece>> {
    let mut units: Vec<Vec<Piece>> = Vec::new();
    let mut cur: Vec<Piece> = Vec::new();
    for block in paragraphs(text) {
        if starts_definition(&block) && !cur.is_empty() {
            units.push(std::mem::take(&mut cur));
        }
        cur.push(Piece::new(rec, block, "\n\n"));
    }
    if !cur.is_empty() {
        units.push(cur);
    }
    units
}

/// Build [`Chunk`]s from packed pieces.
fn emit(out: &mut Vec<Chunk>, records: &[Record], chunks: Vec<Vec<Piece>>, chat: bool) {
    for pieces in chunks {
        let Some(first) = pieces.first() else {
            continue;
        };
        let first = &records[first.rec];
        let mut recs: Vec<usize> = Vec::new();
        for p in &pieces {
            if !recs.contains(&p.rec) {
                recs.push(p.rec);
            }
        }
        let record_ids: Vec<String> = recs.iter().map(|&r| records[r].id.clone()).collect();
        let text = join(&pieces);
        let author = if chat {
            leading_author(recs.iter().map(|&r| &records[r]))
        } else {
            first.author.clone()
        };
        let timestamp = recs.iter().filter_map(|&r| records[r].timestamp).min();
        out.push(Chunk {
            id: chunk_id(&record_ids, &text),
            record_ids,
            text,
            avatar: first.avatar.clone(),
            source: first.source.clone(),
            author,
            timestamp,
            kind: first.kind,
        });
    }
}

/// Most frequent author; ties go to whoever appears first.
fn leading_author<'a>(records: impl Iterator<Item = &'a Record>) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in records {
        let Some(a) = r.author.as_deref() else {
            continue;
        };
        match counts.iter_mut().find(|(n, _)| *n == a) {
            Some((_, c)) => *c += 1,
            None => counts.push((a, 1)),
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (a, c) in counts {
        if best.is_none_or(|(_, bc)| c > bc) {
            best = Some((a, c));
        }
    }
    best.map(|(a, _)| a.to_string())
}

/// Greedy packing of pieces into chunks under the token budget, with overlap.
struct Packer<'a> {
    max: usize,
    overlap: usize,
    count: &'a dyn Fn(&str) -> usize,
}

impl<'a> Packer<'a> {
    fn new(cfg: &ChunkConfig, count: &'a dyn Fn(&str) -> usize) -> Self {
        let max = cfg.max_tokens.max(1);
        Packer {
            max,
            overlap: cfg.overlap_tokens.min(max / 2),
            count,
        }
    }

    fn fits(&self, pieces: &[Piece], extra: Option<&Piece>) -> bool {
        let mut text = join(pieces);
        if let Some(p) = extra {
            if !pieces.is_empty() {
                text.push_str(p.sep);
            }
            text.push_str(&p.text);
        }
        (self.count)(&text) <= self.max
    }

    /// Pack one unit. Each returned chunk is a list of pieces; a chunk after the first starts
    /// with the overlap taken from the end of the previous chunk.
    fn pack(&self, pieces: Vec<Piece>) -> Vec<Vec<Piece>> {
        let mut out: Vec<Vec<Piece>> = Vec::new();
        let mut queue: VecDeque<Piece> = pieces.into();
        // The chunk being filled; `fresh` counts its pieces that are not overlap.
        let mut cur: Vec<Piece> = Vec::new();
        let mut fresh = 0usize;
        while let Some(piece) = queue.pop_front() {
            if self.fits(&cur, Some(&piece)) {
                cur.push(piece);
                fresh += 1;
                continue;
            }
            if fresh > 0 {
                let done = std::mem::take(&mut cur);
                cur = self.tail(&done, Some(&piece));
                out.push(done);
                fresh = 0;
                if self.fits(&cur, Some(&piece)) {
                    cur.push(piece);
                    fresh += 1;
                    continue;
                }
            }
            // The piece alone (after the overlap) is too big: cut it into lines, then words.
            let lines: Vec<&str> = piece
                .text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            if lines.len() > 1 {
                for (n, line) in lines.iter().enumerate().rev() {
                    let sep = if n == 0 { piece.sep } else { "\n" };
                    queue.push_front(Piece::new(piece.rec, line.to_string(), sep));
                }
                continue;
            }
            let words: Vec<&str> = piece.text.split_whitespace().collect();
            let mut i = 0;
            while i < words.len() {
                let make = |i: usize, k: usize| {
                    let sep = if i == 0 { piece.sep } else { " " };
                    Piece::new(piece.rec, words[i..i + k].join(" "), sep)
                };
                let k = self.largest(words.len() - i, |k| self.fits(&cur, Some(&make(i, k))));
                if k == 0 {
                    if fresh > 0 {
                        let done = std::mem::take(&mut cur);
                        cur = self.tail(&done, None);
                        out.push(done);
                        fresh = 0;
                        continue;
                    }
                    if !cur.is_empty() {
                        // Not even one word fits after the overlap: drop the overlap.
                        cur.clear();
                        continue;
                    }
                }
                // k == 0 with an empty chunk: a single word longer than the budget goes alone.
                let k = k.max(1);
                cur.push(make(i, k));
                fresh += 1;
                i += k;
                if i < words.len() {
                    let done = std::mem::take(&mut cur);
                    cur = self.tail(&done, None);
                    out.push(done);
                    fresh = 0;
                }
            }
        }
        if fresh > 0 {
            out.push(cur);
        }
        out
    }

    /// The largest `k` in `0..=n` with `ok(k)`, assuming `ok` is monotone (it is re-checked,
    /// so a non-monotone counter can only make chunks smaller, never too big).
    fn largest(&self, n: usize, ok: impl Fn(usize) -> bool) -> usize {
        if n == 0 || !ok(1) {
            return 0;
        }
        // Exponential search keeps the counted strings near the chunk size.
        let mut lo = 1;
        let mut hi = 2;
        while hi <= n && ok(hi) {
            lo = hi;
            hi *= 2;
        }
        let mut hi = hi.min(n + 1); // ok(lo) holds; ok(hi) fails or hi is past n
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if ok(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The overlap that opens the next chunk: the last words of `done`, at most
    /// `overlap` tokens, fewer than all of them, and small enough that `next` still fits.
    fn tail(&self, done: &[Piece], next: Option<&Piece>) -> Vec<Piece> {
        if self.overlap == 0 {
            return Vec::new();
        }
        let words: Vec<(usize, usize, &str)> = done
            .iter()
            .enumerate()
            .flat_map(|(pi, p)| p.text.split_whitespace().map(move |w| (pi, p.rec, w)))
            .collect();
        let n = words.len().saturating_sub(1);
        let build = |k: usize| -> Vec<Piece> {
            let mut out: Vec<Piece> = Vec::new();
            let mut last_pi = usize::MAX;
            for &(pi, rec, w) in &words[words.len() - k..] {
                match out.last_mut() {
                    Some(p) if pi == last_pi => {
                        p.text.push(' ');
                        p.text.push_str(w);
                    }
                    _ => out.push(Piece::new(rec, w.to_string(), done[pi].sep)),
                }
                last_pi = pi;
            }
            out
        };
        let next_alone_fits = next.is_some_and(|p| self.fits(&[], Some(p)));
        let k = self.largest(n, |k| {
            let t = build(k);
            (self.count)(&join(&t)) <= self.overlap && (!next_alone_fits || self.fits(&t, next))
        });
        build(k)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn rec(
        id: &str,
        kind: RecordKind,
        format: &str,
        author: Option<&str>,
        ts: Option<i64>,
        text: &str,
    ) -> Record {
        Record {
            id: id.into(),
            avatar: "ada".into(),
            source: "file:///x".into(),
            format: format.into(),
            kind,
            thread: "t".into(),
            timestamp: ts.map(|s| Utc.timestamp_opt(s, 0).unwrap()),
            author: author.map(str::to_string),
            author_is_person: false,
            text: text.into(),
            title: None,
            message_id: None,
            in_reply_to: None,
            artifact: "a".into(),
            ordinal: 0,
        }
    }

    fn msg(id: &str, author: &str, ts: i64, text: &str) -> Record {
        rec(
            id,
            RecordKind::Message,
            "whatsapp",
            Some(author),
            Some(ts),
            text,
        )
    }

    fn cfg(max: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
            session_gap_secs: 1800,
        }
    }

    #[test]
    fn chat_sessions_split_at_gaps() {
        let recs = vec![
            msg("1", "Mary", 0, "Tea on Thursday?"),
            msg("2", "Ada", 60, "With pleasure."),
            msg("3", "Ada", 120, "I will bring a cake."),
            msg("4", "Mary", 120 + 1801, "Did the cake survive?"),
        ];
        let chunks = chunk_records(&recs, &ChunkConfig::default(), &words);
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[0].text,
            "Mary: Tea on Thursday?\nAda: With pleasure.\nAda: I will bring a cake."
        );
        assert_eq!(chunks[0].record_ids, vec!["1", "2", "3"]);
        assert_eq!(chunks[0].author.as_deref(), Some("Ada"));
        assert_eq!(chunks[0].timestamp, recs[0].timestamp);
        assert_eq!(chunks[0].kind, RecordKind::Message);
        assert_eq!(chunks[1].record_ids, vec!["4"]);
        assert_eq!(chunks[1].author.as_deref(), Some("Mary"));
    }

    #[test]
    fn session_gap_is_configurable_and_threads_split() {
        let mut recs = vec![msg("1", "Mary", 0, "a"), msg("2", "Ada", 600, "b")];
        let c = ChunkConfig {
            session_gap_secs: 300,
            ..ChunkConfig::default()
        };
        assert_eq!(chunk_records(&recs, &c, &words).len(), 2);
        assert_eq!(
            chunk_records(&recs, &ChunkConfig::default(), &words).len(),
            1
        );
        recs[1].thread = "other".into();
        assert_eq!(
            chunk_records(&recs, &ChunkConfig::default(), &words).len(),
            2
        );
    }

    #[test]
    fn author_tie_goes_to_first_speaker() {
        let recs = vec![msg("1", "Mary", 0, "a"), msg("2", "Ada", 1, "b")];
        let chunks = chunk_records(&recs, &ChunkConfig::default(), &words);
        assert_eq!(chunks[0].author.as_deref(), Some("Mary"));
    }

    #[test]
    fn long_session_is_split_with_overlap() {
        let recs: Vec<Record> = (0..10)
            .map(|i| {
                msg(
                    &i.to_string(),
                    "Ada",
                    i * 60,
                    &format!("w{i}a w{i}b w{i}c w{i}d"),
                )
            })
            .collect();
        // Each line is 5 words ("Ada:" + 4).
        let chunks = chunk_records(&recs, &cfg(12, 3), &words);
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(words(&c.text) <= 12, "{}", c.text);
        }
        // The second chunk opens with the last 3 words of the first.
        let first: Vec<&str> = chunks[0].text.split_whitespace().collect();
        let second: Vec<&str> = chunks[1].text.split_whitespace().collect();
        assert_eq!(&second[..3], &first[first.len() - 3..]);
        assert_eq!(
            chunks[1].record_ids[0],
            chunks[0].record_ids.last().unwrap().clone()
        );
    }

    #[test]
    fn email_splits_at_paragraphs() {
        let text = "Dear Mary,\n\none two three four five\nsix seven\n\neight nine ten eleven\n\nYours,\nAda";
        let r = rec("e", RecordKind::Email, "mbox", Some("Ada"), None, text);
        let chunks = chunk_records(&[r], &cfg(8, 0), &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "Dear Mary,",
                "one two three four five\nsix seven",
                "eight nine ten eleven\n\nYours,\nAda"
            ]
        );
        assert!(chunks.iter().all(|c| c.author.as_deref() == Some("Ada")));
    }

    #[test]
    fn short_email_is_one_chunk_verbatim() {
        let text = "Dear Babbage,\n\nI will translate it.\n\nYours,\nAda";
        let r = rec("e", RecordKind::Email, "mbox", None, None, text);
        let chunks = chunk_records(&[r], &ChunkConfig::default(), &words);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, text);
    }

    #[test]
    fn markdown_splits_at_headings_not_inside_fences() {
        let text = "# Notes\n\nThe engine weaves.\n\n## Note G\n\nBernoulli numbers.\n\n```\n# not a heading\n\nstill code\n```\n";
        let r = rec(
            "d",
            RecordKind::Document,
            "markdown",
            Some("Ada"),
            None,
            text,
        );
        let chunks = chunk_records(&[r], &ChunkConfig::default(), &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "# Notes\n\nThe engine weaves.",
                "## Note G\n\nBernoulli numbers.\n\n```\n# not a heading\n\nstill code\n```"
            ]
        );
    }

    #[test]
    fn code_splits_at_top_level_definitions() {
        let text = "import os\n\ndef a():\n    return 1\n\n\n@decorated\ndef b():\n    x = 1\n\n    return x\n\nclass C:\n    pass\n";
        let r = rec("c", RecordKind::Document, "code", None, None, text);
        let chunks = chunk_records(&[r], &ChunkConfig::default(), &words);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "import os",
                "def a():\n    return 1",
                "@decorated\ndef b():\n    x = 1\n\n    return x",
                "class C:\n    pass"
            ]
        );
    }

    #[test]
    fn long_code_block_is_cut_at_lines_first() {
        let body: Vec<String> = (0..6).map(|i| format!("    let x{i} = {i};")).collect();
        let text = format!("fn f() {{\n{}\n}}", body.join("\n"));
        let r = rec("c", RecordKind::Document, "code", None, None, &text);
        let chunks = chunk_records(&[r], &cfg(10, 0), &words);
        assert!(chunks.len() > 1);
        // Lines are kept whole: every chunk line is a line of the source.
        for c in &chunks {
            for line in c.text.lines() {
                assert!(text.lines().any(|l| l == line), "{line:?}");
            }
        }
    }

    #[test]
    fn memory_is_one_chunk() {
        let text = "At twelve she set out to fly.\n\nShe wrote a book she called Flyology.";
        let r = rec(
            "m",
            RecordKind::Memory,
            "memory",
            Some("a friend"),
            Some(5),
            text,
        );
        let chunks = chunk_records(&[r], &ChunkConfig::default(), &words);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, text);
        assert_eq!(chunks[0].kind, RecordKind::Memory);
        assert_eq!(chunks[0].record_ids, vec!["m"]);
    }

    #[test]
    fn giant_word_goes_alone_and_blank_records_give_nothing() {
        let r = rec(
            "d",
            RecordKind::Document,
            "text",
            None,
            None,
            "a bbbbbbbbbbbbbbbbbbbbb c",
        );
        let chars = |s: &str| s.chars().count();
        let chunks = chunk_records(&[r], &cfg(5, 2), &chars);
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, vec!["a", "bbbbbbbbbbbbbbbbbbbbb", "c"]);
        let blank = rec("b", RecordKind::Email, "mbox", None, None, " \n\n ");
        assert!(chunk_records(&[blank], &ChunkConfig::default(), &words).is_empty());
        assert!(chunk_records(&[], &ChunkConfig::default(), &words).is_empty());
    }

    #[test]
    fn ids_depend_on_records_and_text() {
        let a = chunk_id(&["1".into()], "x");
        assert_eq!(a.len(), 32);
        assert_eq!(a, chunk_id(&["1".into()], "x"));
        assert_ne!(a, chunk_id(&["2".into()], "x"));
        assert_ne!(a, chunk_id(&["1".into()], "y"));
        // The separator keeps ["ab"] and ["a", "b"] apart.
        assert_ne!(
            chunk_id(&["ab".into()], ""),
            chunk_id(&["a".into(), "b".into()], "")
        );
    }

    #[test]
    fn config_deserialises_with_defaults() {
        let c: ChunkConfig = serde_json::from_str(r#"{"max_tokens": 100}"#).unwrap();
        assert_eq!(
            c,
            ChunkConfig {
                max_tokens: 100,
                ..ChunkConfig::default()
            }
        );
        assert!(serde_json::from_str::<ChunkConfig>(r#"{"max": 1}"#).is_err());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn arb_text() -> impl Strategy<Value = String> {
        // Words, line breaks, paragraph breaks and the odd heading or fence.
        proptest::collection::vec(
            prop_oneof![
                6 => "[a-z]{1,6}",
                1 => Just("\n".to_string()),
                1 => Just("\n\n".to_string()),
                1 => Just("\n# head".to_string()),
                1 => Just("\n```\n".to_string()),
                1 => Just("\ndef f():".to_string()),
            ],
            0..80,
        )
        .prop_map(|parts| parts.join(" "))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            0..5usize,
            arb_text(),
            0..4000i64,
            prop_oneof![Just("Ada"), Just("Mary")],
            0..2usize,
        )
            .prop_map(|(k, text, dt, author, thread)| {
                let (kind, format) = match k {
                    0 | 1 => (RecordKind::Message, "whatsapp"),
                    2 => (RecordKind::Email, "mbox"),
                    3 => (
                        RecordKind::Document,
                        if dt % 2 == 0 { "markdown" } else { "code" },
                    ),
                    _ => (RecordKind::Memory, "memory"),
                };
                Record {
                    id: String::new(),
                    avatar: "ada".into(),
                    source: "file:///x".into(),
                    format: format.into(),
                    kind,
                    thread: format!("t{thread}"),
                    timestamp: Some(Utc.timestamp_opt(dt, 0).unwrap()),
                    author: Some(author.into()),
                    author_is_person: false,
                    text,
                    title: None,
                    message_id: None,
                    in_reply_to: None,
                    artifact: "a".into(),
                    ordinal: 0,
                }
            })
    }

    fn arb_records() -> impl Strategy<Value = Vec<Record>> {
        proptest::collection::vec(arb_record(), 0..12).prop_map(|mut v| {
            let mut t = 0;
            for (i, r) in v.iter_mut().enumerate() {
                r.id = format!("r{i}");
                // Cumulative times: some gaps exceed the session gap, most do not.
                t += r.timestamp.map(|x| x.timestamp()).unwrap_or(0);
                r.timestamp = Some(Utc.timestamp_opt(t, 0).unwrap());
            }
            v
        })
    }

    /// Whether `needle` is a subsequence of `hay`.
    fn subsequence(needle: &[&str], hay: &[&str]) -> bool {
        let mut it = hay.iter();
        needle.iter().all(|n| it.any(|h| h == n))
    }

    proptest! {
        #[test]
        fn covers_every_record_and_respects_the_budget(
            recs in arb_records(), max in 1..40usize, overlap in 0..20usize,
        ) {
            let cfg = ChunkConfig { max_tokens: max, overlap_tokens: overlap, session_gap_secs: 1800 };
            let chunks = chunk_records(&recs, &cfg, &words);
            for c in &chunks {
                let n = words(&c.text);
                prop_assert!(n <= max || n == 1, "{} words > {}: {:?}", n, max, c.text);
                prop_assert!(!c.text.trim().is_empty());
                prop_assert!(!c.record_ids.is_empty());
            }
            for r in &recs {
                let mine: Vec<&str> = chunks
                    .iter()
                    .filter(|c| c.record_ids.contains(&r.id))
                    .flat_map(|c| c.text.split_whitespace())
                    .collect();
                let want: Vec<&str> = r.text.split_whitespace().collect();
                prop_assert!(subsequence(&want, &mine), "record {} not covered", r.id);
            }
        }

        #[test]
        fn without_overlap_every_word_is_covered_exactly_once(
            recs in arb_records(), max in 1..40usize,
        ) {
            let cfg = ChunkConfig { max_tokens: max, overlap_tokens: 0, session_gap_secs: 1800 };
            let chunks = chunk_records(&recs, &cfg, &words);
            let got: Vec<&str> = chunks.iter().flat_map(|c| c.text.split_whitespace()).collect();
            let mut want: Vec<String> = Vec::new();
            let mut i = 0;
            while i < recs.len() {
                // Chat lines carry their `Author:` prefix.
                let r = &recs[i];
                if r.kind == RecordKind::Message && !r.text.trim().is_empty() {
                    want.push(format!("{}:", r.author.as_deref().unwrap_or("unknown")));
                }
                want.extend(r.text.split_whitespace().map(str::to_string));
                i += 1;
            }
            let want: Vec<&str> = want.iter().map(String::as_str).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn ids_are_deterministic_and_content_derived(recs in arb_records(), max in 1..40usize) {
            let cfg = ChunkConfig { max_tokens: max, overlap_tokens: 5, session_gap_secs: 1800 };
            let a = chunk_records(&recs, &cfg, &words);
            let b = chunk_records(&recs, &cfg, &words);
            prop_assert_eq!(&a, &b);
            for c in &a {
                prop_assert_eq!(&c.id, &chunk_id(&c.record_ids, &c.text));
            }
        }

        #[test]
        fn never_panics_on_any_text(text in "(?s).{0,300}", max in 0..50usize, overlap in 0..60usize) {
            let r = Record {
                id: "x".into(), avatar: "a".into(), source: "s".into(), format: "code".into(),
                kind: RecordKind::Document, thread: "t".into(), timestamp: None, author: None,
                author_is_person: false, text, title: None, message_id: None, in_reply_to: None,
                artifact: String::new(), ordinal: 0,
            };
            let cfg = ChunkConfig { max_tokens: max, overlap_tokens: overlap, session_gap_secs: 0 };
            let chars = |s: &str| s.chars().count();
            for c in chunk_records(std::slice::from_ref(&r), &cfg, &chars) {
                let n = chars(&c.text);
                prop_assert!(n <= max.max(1) || words(&c.text) == 1, "{:?}", c.text);
            }
            let mut md = r.clone();
            md.format = "markdown".into();
            let _ = chunk_records(&[md], &cfg, &words);
        }
    }
}
