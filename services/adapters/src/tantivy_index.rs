//! Full-text (BM25) search over records with tantivy, on disk.
//!
//! The checkpoint lives in the payload of tantivy's own commit, so index contents and checkpoint
//! move together without a second store. Every query is filtered by avatar inside the tantivy
//! query (a required term on the `avatar` field), never after retrieval: another avatar's
//! records cannot leak in and do not eat into the top `k`.
//!
//! Text uses tantivy's `default` tokenizer (split on non-alphanumerics, lowercase, drop tokens
//! over 40 bytes): no stemming or stop words, so it treats every language alike rather than
//! favouring English.
//!
//! The writer is created on the first `apply`, so a process that only searches (`avatar ask`
//! next to a running `avatar up`) never takes tantivy's single-writer lock.

use crate::OrBackend;
use avatar_runtime::{Hit, Offset, Result, SearchIndex, StoreError};
use avatar_schemas::Record;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, Value, FAST, INDEXED, STORED, STRING, TEXT,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Writer heap: modest, the machine is small and batches are per log page.
const WRITER_MEMORY: usize = 50_000_000;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 200;
/// Marks around matched words in snippets: plain text (Markdown bold), not HTML, so that
/// terminals, JSON clients and the LLM prompt can all use it as is.
const MARK_OPEN: &str = "**";
const MARK_CLOSE: &str = "**";

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    avatar: Field,
    text: Field,
    title: Field,
    author: Field,
    source: Field,
    timestamp: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        avatar: b.add_text_field("avatar", STRING),
        text: b.add_text_field("text", TEXT | STORED),
        title: b.add_text_field("title", TEXT),
        author: b.add_text_field("author", TEXT | STORED),
        source: b.add_text_field("source", STRING | STORED),
        // Microseconds since the epoch, for date filters and sorting later.
        timestamp: b.add_i64_field("timestamp", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

/// [`SearchIndex`] on a tantivy directory.
pub struct TantivyIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
}

impl TantivyIndex {
    /// Opens the index in `dir`, creating the folder and an empty index if needed. Fails if
    /// the folder holds an index with another schema.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).backend()?;
        let index = Index::open_or_create(directory, schema).backend()?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .backend()?;
        Ok(TantivyIndex {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
        })
    }

    fn writer(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>> {
        let mut guard = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("index writer mutex poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(
                self.index
                    .writer_with_num_threads(1, WRITER_MEMORY)
                    .backend()?,
            );
        }
        Ok(guard)
    }

    /// Merges every segment into one and deletes the old files. A tantivy delete only marks
    /// documents; their text stays in the segment's store until a merge rewrites it, so
    /// forgetting calls this to take the bytes off the disk.
    pub fn compact(&self) -> Result<()> {
        let mut guard = self.writer()?;
        let Some(writer) = guard.as_mut() else {
            return Err(StoreError::Backend("index writer missing".into()));
        };
        let segments = self.index.searchable_segment_ids().backend()?;
        if !segments.is_empty() {
            writer.merge(&segments).wait().backend()?;
        }
        writer.garbage_collect_files().wait().backend()?;
        drop(guard);
        self.reader.reload().backend()
    }

    fn document(&self, r: &Record) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &r.id);
        doc.add_text(f.avatar, &r.avatar);
        doc.add_text(f.text, &r.text);
        if let Some(title) = &r.title {
            doc.add_text(f.title, title);
        }
        if let Some(author) = &r.author {
            doc.add_text(f.author, author);
        }
        doc.add_text(f.source, &r.source);
        if let Some(t) = r.timestamp {
            doc.add_i64(f.timestamp, t.timestamp_micros());
        }
        doc
    }
}

impl SearchIndex for TantivyIndex {
    fn apply(&self, next: Offset, records: &[Record], deletes: &[String]) -> Result<()> {
        let mut guard = self.writer()?;
        let Some(writer) = guard.as_mut() else {
            return Err(StoreError::Backend("index writer missing".into()));
        };
        let staged = (|| -> tantivy::Result<()> {
            // Deletes apply to documents added before them (by opstamp), so deleting every
            // upserted id first makes an upsert a replacement, also within one batch.
            for id in records.iter().map(|r| &r.id).chain(deletes) {
                writer.delete_term(Term::from_field_text(self.fields.id, id));
            }
            // Within one batch the last version of an id wins, as in the record store.
            let last: HashMap<&str, usize> = records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.as_str(), i))
                .collect();
            for (i, r) in records.iter().enumerate() {
                if last.get(r.id.as_str()) == Some(&i) {
                    writer.add_document(self.document(r))?;
                }
            }
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(&next.to_string());
            commit.commit()?;
            Ok(())
        })();
        if let Err(e) = staged {
            // Drop what was staged so a later apply does not commit half of this one.
            let _ = writer.rollback();
            return Err(StoreError::Backend(e.to_string()));
        }
        drop(guard);
        // Make our own commit visible now rather than after the reload delay.
        self.reader.reload().backend()
    }

    fn checkpoint(&self) -> Result<Offset> {
        let metas = self.index.load_metas().backend()?;
        match metas.payload {
            None => Ok(0),
            Some(p) => p
                .parse()
                .map_err(|_| StoreError::Backend(format!("bad index checkpoint payload {p:?}"))),
        }
    }

    fn search(&self, avatar: &str, query: &str, k: usize) -> Result<Vec<Hit>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let f = &self.fields;
        let parser = QueryParser::for_index(&self.index, vec![f.text, f.title, f.author]);
        // Lenient: a user's stray quote or colon must not turn a question into an error.
        let (text_query, _ignored) = parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        let mut snippets = SnippetGenerator::create(&searcher, &*text_query, f.text).backend()?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let avatar_filter = TermQuery::new(
            Term::from_field_text(f.avatar, avatar),
            IndexRecordOption::Basic,
        );
        // Scored 0 so the ranking is BM25 over the text fields alone.
        let query = BooleanQuery::new(vec![
            (Occur::Must, text_query),
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(avatar_filter), 0.0)),
            ),
        ]);
        let top = searcher.search(&query, &TopDocs::with_limit(k)).backend()?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr).backend()?;
            let Some(record_id) = doc.get_first(f.id).and_then(|v| v.as_str()) else {
                return Err(StoreError::Backend("indexed document without id".into()));
            };
            let snippet = snippets.snippet_from_doc(&doc);
            let snippet = if snippet.is_empty() {
                // The match was in the title or author: show the start of the text instead.
                let text = doc.get_first(f.text).and_then(|v| v.as_str()).unwrap_or("");
                head(text, SNIPPET_CHARS)
            } else {
                mark(snippet.fragment(), snippet.highlighted())
            };
            hits.push(Hit {
                record_id: record_id.to_string(),
                score,
                snippet,
            });
        }
        Ok(hits)
    }
}

/// `fragment` with each highlighted byte range wrapped in the snippet marks.
fn mark(fragment: &str, highlighted: &[std::ops::Range<usize>]) -> String {
    let mut ranges = highlighted.to_vec();
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(fragment.len() + 8 * ranges.len());
    let mut at = 0;
    for r in ranges {
        let start = r.start.max(at);
        let (Some(before), Some(word)) = (fragment.get(at..start), fragment.get(start..r.end))
        else {
            continue;
        };
        if word.is_empty() {
            continue;
        }
        out.push_str(before);
        out.push_str(MARK_OPEN);
        out.push_str(word);
        out.push_str(MARK_CLOSE);
        at = r.end;
    }
    out.push_str(fragment.get(at..).unwrap_or(""));
    out.trim().to_string()
}

/// The first `max` characters of `text`, whitespace collapsed.
fn head(text: &str, max: usize) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::record;

    fn rec(id: &str, avatar: &str, text: &str) -> Record {
        record(id, avatar, text)
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.record_id.as_str()).collect()
    }

    #[test]
    fn compact_drops_deleted_documents_from_the_segments() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        // Two commits make two segments; the delete only marks the document.
        idx.apply(
            1,
            &[
                rec("r1", "ada", "zebraquartz vault code"),
                rec("r3", "ada", "bernoulli numbers"),
            ],
            &[],
        )
        .unwrap();
        idx.apply(2, &[rec("r2", "ada", "the analytical engine")], &[])
            .unwrap();
        idx.apply(3, &[], &["r1".to_string()]).unwrap();
        let deleted = |idx: &TantivyIndex| -> (u32, usize) {
            let searcher = idx.reader.searcher();
            let readers = searcher.segment_readers();
            (
                readers.iter().map(|r| r.num_deleted_docs()).sum(),
                readers.len(),
            )
        };
        assert_eq!(deleted(&idx).0, 1, "tantivy keeps the deleted document");
        idx.compact().unwrap();
        assert_eq!(
            deleted(&idx),
            (0, 1),
            "one segment, nothing deleted left in it"
        );
        assert!(idx.search("ada", "zebraquartz", 10).unwrap().is_empty());
        assert_eq!(ids(&idx.search("ada", "engine", 10).unwrap()), vec!["r2"]);
        assert_eq!(
            ids(&idx.search("ada", "bernoulli", 10).unwrap()),
            vec!["r3"]
        );
        assert_eq!(idx.checkpoint().unwrap(), 3);
        // Compacting an empty or already compact index is fine.
        idx.compact().unwrap();
        let empty = tempfile::tempdir().unwrap();
        TantivyIndex::open(empty.path()).unwrap().compact().unwrap();
    }

    #[test]
    fn a_fresh_index_searches_empty_and_checkpoints_zero() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        assert_eq!(idx.checkpoint().unwrap(), 0);
        assert!(idx.search("ada", "anything", 10).unwrap().is_empty());
        assert!(idx.search("ada", "", 10).unwrap().is_empty());
    }

    #[test]
    fn finds_ranks_and_marks_matches() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        idx.apply(
            3,
            &[
                rec(
                    "e1",
                    "ada",
                    "The Analytical Engine weaves algebraic patterns.",
                ),
                rec(
                    "e2",
                    "ada",
                    "Tea with Mary; the engine, the engine, the ENGINE!",
                ),
                rec("e3", "ada", "Nothing to see here."),
            ],
            &[],
        )
        .unwrap();
        let hits = idx.search("ada", "engine", 10).unwrap();
        assert_eq!(ids(&hits), ["e2", "e1"], "more mentions rank higher");
        assert!(hits[0].score > hits[1].score && hits[1].score > 0.0);
        assert!(
            hits[1].snippet.contains("**Engine**"),
            "{:?}",
            hits[1].snippet
        );
        assert!(!hits[1].snippet.contains('<'), "plain text, not HTML");
        // Lenient parsing: syntax errors are not errors.
        for odd in ["engine (", "engine \"unclosed", "engine AND", ":engine]"] {
            let hits = idx.search("ada", odd, 10).unwrap();
            assert_eq!(ids(&hits), ["e2", "e1"], "{odd:?}");
        }
        // k bounds the hits.
        assert_eq!(idx.search("ada", "engine", 1).unwrap().len(), 1);
        assert!(idx.search("ada", "engine", 0).unwrap().is_empty());
        // Title and author are searched; the snippet then falls back to the text's start.
        let by_author = idx.search("ada", "lovelace", 10).unwrap();
        assert_eq!(by_author.len(), 3);
        assert!(!by_author[0].snippet.is_empty());
    }

    #[test]
    fn never_returns_another_avatars_records() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        let mut records = vec![rec("a1", "ada", "secret engine plans")];
        // Many better-matching records of bob must neither appear nor crowd ada's out.
        for i in 0..20 {
            records.push(rec(&format!("b{i}"), "bob", "engine engine engine secret"));
        }
        records.push(rec("x", "ada-2", "engine"));
        idx.apply(1, &records, &[]).unwrap();
        assert_eq!(ids(&idx.search("ada", "engine secret", 1).unwrap()), ["a1"]);
        let bob = idx.search("bob", "engine", 100).unwrap();
        assert_eq!(bob.len(), 20);
        assert!(bob.iter().all(|h| h.record_id.starts_with('b')));
        assert!(idx.search("carol", "engine", 10).unwrap().is_empty());
        assert!(
            idx.search("ad", "engine", 10).unwrap().is_empty(),
            "exact match"
        );
    }

    #[test]
    fn replaces_by_id_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        idx.apply(
            1,
            &[rec("r1", "ada", "old words"), rec("r2", "ada", "old too")],
            &[],
        )
        .unwrap();
        idx.apply(2, &[rec("r1", "ada", "new words")], &[]).unwrap();
        assert_eq!(ids(&idx.search("ada", "old", 10).unwrap()), ["r2"]);
        assert_eq!(ids(&idx.search("ada", "words", 10).unwrap()), ["r1"]);
        // The same id twice in one batch keeps one document: the last.
        idx.apply(
            3,
            &[
                rec("r3", "ada", "twice first"),
                rec("r3", "ada", "twice last"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(ids(&idx.search("ada", "twice", 10).unwrap()), ["r3"]);
        assert!(idx.search("ada", "first", 10).unwrap().is_empty());
        idx.apply(4, &[], &["r2".into(), "unknown".into()]).unwrap();
        assert!(idx.search("ada", "old", 10).unwrap().is_empty());
        assert_eq!(idx.checkpoint().unwrap(), 4);
    }

    #[test]
    fn contents_and_checkpoint_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let idx = TantivyIndex::open(dir.path()).unwrap();
            idx.apply(7, &[rec("r1", "ada", "persistent memory")], &[])
                .unwrap();
            // A commit with nothing to index still moves the checkpoint.
            idx.apply(9, &[], &[]).unwrap();
        }
        let idx = TantivyIndex::open(dir.path()).unwrap();
        assert_eq!(idx.checkpoint().unwrap(), 9);
        assert_eq!(ids(&idx.search("ada", "memory", 10).unwrap()), ["r1"]);
    }

    #[test]
    fn tokenizes_non_english_text() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TantivyIndex::open(dir.path()).unwrap();
        idx.apply(
            1,
            &[
                rec("fr", "ada", "Les Élèves étudient la Machine analytique."),
                rec("ru", "ada", "Привет, как ДЕЛА?"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(ids(&idx.search("ada", "élèves", 10).unwrap()), ["fr"]);
        assert_eq!(ids(&idx.search("ada", "дела", 10).unwrap()), ["ru"]);
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)]
    fn marks_ranges_safely() {
        assert_eq!(mark("a cat sat", &[2..5]), "a **cat** sat");
        assert_eq!(mark("a cat sat", &[6..9, 2..5]), "a **cat** **sat**");
        assert_eq!(
            mark("héllo", &[0..2]),
            "héllo",
            "not a char boundary: skipped"
        );
        assert_eq!(mark("abc", &[1..10]), "abc", "out of range: skipped");
        assert_eq!(head("  a\n b  ", 200), "a b");
        assert_eq!(head("ééé", 2), "éé");
    }
}
