//! Training data from records: the person's replies in chats and mail, their memories and their
//! documents, turned into [`SftExample`] conversations for fine-tuning, plus the Parquet file
//! that carries them to the trainer.
//!
//! Everything here is a pure, deterministic function of the records (the same records in any
//! order give the same examples in the same order, with the same ids), so rebuilding the
//! dataset from a replayed log gives the same bytes.
//!
//! How each kind becomes examples (details in each module):
//! - [`chat`]: threads → sessions (time gaps) → bursts (one author, close in time); every burst
//!   by the person that answers the other side is a target, with the session's earlier turns as
//!   context, trimmed to a token budget.
//! - [`email`]: the person's reply, with the mail it answers as the user turn.
//! - [`memory`]: a question from the memory's title, the memory as the answer.
//! - [`text`]: the person's documents as continued-pretraining text, in pieces.
//!
//! Loss convention (shared with the trainer): only the **last** assistant message of an
//! example is a target; earlier assistant turns are context and are masked. A `text` example
//! is a single assistant message, so all of its text is target.
//!
//! Token counts come from a counter passed in (`&dyn Fn(&str) -> usize`), so the builder does
//! not depend on a tokenizer; [`whitespace_tokens`] is a rough stand-in.

use avatar_schemas::Record;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

pub use avatar_redact::{Finding, Kind as PiiKind, RedactConfig, RedactionStats, Redactor};
pub use avatar_schemas::dataset::{SftExample, SftKind, SftMessage, SftRole, SftSplit};

pub mod chat;
#[cfg(test)]
mod demo_tests;
pub mod email;
pub mod memory;
mod parquet_file;
mod stats;
pub mod text;

pub use parquet_file::{dataset_arrow_schema, read_parquet, read_parquet_bytes, write_parquet};
pub use stats::{DatasetStats, KindStats};

/// Counts the tokens of a text (a tokenizer's length, or [`whitespace_tokens`]).
pub type TokenCounter<'a> = &'a dyn Fn(&str) -> usize;

/// How the dataset is built. Every field has a default, so a config file names only what it
/// changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetConfig {
    /// A silence longer than this (seconds) in a chat starts a new session; context never
    /// crosses sessions. Default 1800 (30 minutes); 600–3600 is the usual range.
    pub session_gap_secs: u64,
    /// Consecutive messages by one author at most this far apart (seconds) are one burst,
    /// joined by newlines. Default 300 (5 minutes); 120–600 is the usual range.
    pub burst_gap_secs: u64,
    /// Token budget of the context before a chat target (and of the mail a reply answers);
    /// the oldest messages are dropped first. Default 512.
    pub max_context_tokens: usize,
    /// Largest piece of a document, in tokens; documents are cut at paragraph boundaries.
    /// Default 512.
    pub max_text_tokens: usize,
    /// A system message put first in every chat, email and memory example (not in `text`
    /// examples, which are plain continuation text). Default none.
    pub system_prompt: Option<String>,
    /// The latest fraction of examples (by timestamp) held out for evaluation; examples
    /// without a timestamp always train. Default 0.1.
    pub heldout_fraction: f64,
    /// Redact third parties' PII (addresses, numbers, cards, IBANs, ids, credentials, URLs
    /// with tokens) from every message before it becomes training data. Default true; turning
    /// it off puts other people's data into the model's weights.
    pub redact: bool,
    /// Also replace third parties' names by `[PERSON_n]`, one number per participant.
    /// Default false (names carry much of a conversation's meaning).
    pub redact_names: bool,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        DatasetConfig {
            session_gap_secs: 30 * 60,
            burst_gap_secs: 5 * 60,
            max_context_tokens: 512,
            max_text_tokens: 512,
            system_prompt: None,
            heldout_fraction: 0.1,
            redact: true,
            redact_names: false,
        }
    }
}

/// Errors reading or writing dataset files. Building examples cannot fail.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The file is readable Parquet but not a dataset this crate understands.
    #[error("dataset file: {0}")]
    Invalid(String),
}

/// A rough token count (whitespace-separated words) for when no tokenizer is at hand. Real
/// tokenizers give more tokens than words (about 1.3× for English prose).
pub fn whitespace_tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Builds every example from `records` (records of other avatars are not filtered: pass one
/// avatar's records). Records with empty text are ignored; duplicate ids count once.
///
/// Redaction (when `config.redact`) keeps the addresses and numbers of the records' authors
/// marked as the person, and no others; names are taken from the records' other authors. Use
/// [`build_dataset_with`] to pass the person's aliases and the participants (from identity).
pub fn build_dataset(
    records: &[Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> Vec<SftExample> {
    build_dataset_with(records, config, count, &RedactConfig::default()).examples
}

/// The examples and what redaction took out of them.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltDataset {
    pub examples: Vec<SftExample>,
    pub privacy: PrivacyReport,
}

/// What redaction did to one dataset build: written next to the dataset as `privacy.json`
/// and shown by `avatar privacy report`. Counts only, never the values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrivacyReport {
    /// Whether redaction ran (false only when the user asked to keep PII).
    pub redacted: bool,
    /// Whether third parties' names were replaced by placeholders.
    pub names: bool,
    pub examples: usize,
    /// Records whose text is in some example.
    pub records: usize,
    #[serde(flatten)]
    pub stats: RedactionStats,
}

/// [`build_dataset`] with the person's aliases (`privacy.keep`) and the third parties'
/// names by participant (`privacy.third_party_names`, used when `config.redact_names`).
///
/// Each record's text and title are redacted once before the examples are built (so findings
/// are counted per record and source, and token budgets see the redacted text); then every
/// message of every example is scanned again, which catches what the builder adds (the
/// authors' names in group chats).
pub fn build_dataset_with(
    records: &[Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
    privacy: &RedactConfig,
) -> BuiltDataset {
    if !config.redact {
        let examples = build_examples(records, config, count);
        let used: HashSet<&str> = examples
            .iter()
            .flat_map(|e| e.source_records.iter().map(String::as_str))
            .collect();
        return BuiltDataset {
            privacy: PrivacyReport {
                redacted: false,
                names: false,
                examples: examples.len(),
                records: used.len(),
                stats: RedactionStats::default(),
            },
            examples,
        };
    }
    let mut keep = privacy.keep.clone();
    let mut theirs: Vec<(String, String)> = Vec::new();
    for r in records {
        if let Some(a) = &r.author {
            if r.author_is_person {
                if !keep.contains(a) {
                    keep.push(a.clone());
                }
            } else if !theirs.iter().any(|(x, _)| x == a) {
                theirs.push((a.clone(), a.clone()));
            }
        }
    }
    theirs.sort();
    let names = config.redact_names.then(|| {
        privacy
            .third_party_names
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(theirs)
    });
    let redactor = Redactor::new(RedactConfig {
        keep,
        third_party_names: names,
    });
    let mut findings: HashMap<&str, (&str, Vec<Finding>)> = HashMap::new();
    let redacted: Vec<Record> = records
        .iter()
        .map(|r| {
            let text = redactor.redact(&r.text);
            let title = r.title.as_deref().map(|t| redactor.redact(t));
            let mut f = text.findings;
            let mut out = r.clone();
            out.text = text.text;
            if let Some(t) = title {
                f.extend(t.findings);
                out.title = Some(t.text);
            }
            findings
                .entry(r.id.as_str())
                .or_insert((r.source.as_str(), f));
            out
        })
        .collect();
    let mut examples = build_examples(&redacted, config, count);
    let mut stats = RedactionStats::default();
    let mut used: Vec<String> = examples
        .iter()
        .flat_map(|e| e.source_records.iter().cloned())
        .collect();
    used.sort_unstable();
    used.dedup();
    for id in &used {
        if let Some((source, f)) = findings.get(id.as_str()) {
            stats.add(source, f);
        }
    }
    for e in &mut examples {
        let source = e
            .source_records
            .first()
            .and_then(|id| findings.get(id.as_str()))
            .map(|(s, _)| *s)
            .unwrap_or("");
        for m in &mut e.messages {
            let r = redactor.redact(&m.content);
            if !r.findings.is_empty() {
                stats.add(source, &r.findings);
                m.content = r.text;
            }
        }
    }
    BuiltDataset {
        privacy: PrivacyReport {
            redacted: true,
            names: redactor.redacts_names(),
            examples: examples.len(),
            records: used.len(),
            stats,
        },
        examples,
    }
}

/// The examples of `records`, as they are (redaction is the caller's).
fn build_examples(
    records: &[Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> Vec<SftExample> {
    let records = canonical(records);
    let mut out = Vec::new();
    out.extend(chat::chat_examples(&records, config, count));
    out.extend(email::email_examples(&records, config, count));
    out.extend(memory::memory_examples(&records, config));
    out.extend(text::text_examples(&records, config, count));
    // Stable sort: same time and kind keep the (deterministic) order they were built in, so
    // the pieces of a document stay in reading order.
    out.sort_by(|a, b| {
        (a.timestamp.is_none(), a.timestamp, a.kind).cmp(&(
            b.timestamp.is_none(),
            b.timestamp,
            b.kind,
        ))
    });
    assign_splits(&mut out, config.heldout_fraction);
    out
}

/// The records in one order whatever order they came in: by kind, thread, time, position;
/// without empty texts or repeated ids.
fn canonical(records: &[Record]) -> Vec<&Record> {
    let mut sorted: Vec<&Record> = records
        .iter()
        .filter(|r| !r.text.trim().is_empty())
        .collect();
    sorted.sort_by(|a, b| {
        (
            a.kind.as_str(),
            &a.thread,
            a.timestamp,
            &a.artifact,
            a.ordinal,
            &a.id,
            &a.text,
        )
            .cmp(&(
                b.kind.as_str(),
                &b.thread,
                b.timestamp,
                &b.artifact,
                b.ordinal,
                &b.id,
                &b.text,
            ))
    });
    let mut seen = HashSet::new();
    sorted.retain(|r| seen.insert(r.id.as_str()));
    sorted
}

/// The stable id of an example: a hash of its kind, its target record ids and, for text, the
/// piece number. Context records are left out so that a longer context budget keeps ids.
pub fn example_id(kind: SftKind, target_records: &[&str], piece: Option<usize>) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    for id in target_records {
        h.update(b"\n");
        h.update(id.as_bytes());
    }
    if let Some(p) = piece {
        h.update(format!("#{p}").as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// The system message (if configured), to start chat, email and memory examples with.
fn system_messages(config: &DatasetConfig) -> Vec<SftMessage> {
    config
        .system_prompt
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| SftMessage {
            role: SftRole::System,
            content: s.clone(),
        })
        .collect()
}

/// Marks the latest `fraction` of all examples (by timestamp, then id) as held out. Examples
/// without a timestamp cannot be placed in time and always train, so with many of them the
/// held-out share is smaller than asked.
pub fn assign_splits(examples: &mut [SftExample], fraction: f64) {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let wanted = (examples.len() as f64 * fraction).round() as usize;
    let mut dated: Vec<(DateTime<Utc>, String, usize)> = examples
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.timestamp.map(|t| (t, e.id.clone(), i)))
        .collect();
    dated.sort();
    let heldout: HashSet<usize> = dated.iter().rev().take(wanted).map(|d| d.2).collect();
    for (i, e) in examples.iter_mut().enumerate() {
        e.split = if heldout.contains(&i) {
            SftSplit::Heldout
        } else {
            SftSplit::Train
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_support {
    use avatar_schemas::{Record, RecordKind};

    /// A record with the fields the builder reads; `at` is RFC 3339 or empty for no time.
    pub fn rec(
        id: &str,
        kind: RecordKind,
        thread: &str,
        at: &str,
        author: &str,
        person: bool,
        text: &str,
    ) -> Record {
        Record {
            id: id.into(),
            avatar: "ada".into(),
            source: "file:///x".into(),
            format: "test".into(),
            kind,
            thread: thread.into(),
            timestamp: (!at.is_empty()).then(|| at.parse().unwrap()),
            author: (!author.is_empty()).then(|| author.into()),
            author_is_person: person,
            text: text.into(),
            title: None,
            message_id: None,
            in_reply_to: None,
            artifact: "a".into(),
            ordinal: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::test_support::rec;
    use super::*;
    use avatar_schemas::RecordKind;

    fn corpus() -> Vec<Record> {
        let m = |id: &str, at: &str, who: &str, text: &str| {
            rec(id, RecordKind::Message, "t", at, who, who == "Ada", text)
        };
        let mut doc = rec(
            "d",
            RecordKind::Document,
            "notes",
            "",
            "Ada",
            true,
            "A note.",
        );
        doc.title = Some("Note".into());
        vec![
            m("1", "2024-01-01T10:00:00Z", "Bob", "hi"),
            m("2", "2024-01-01T10:01:00Z", "Ada", "hello"),
            m("3", "2024-01-02T10:00:00Z", "Bob", "again"),
            m("4", "2024-01-02T10:01:00Z", "Ada", "yes"),
            m("5", "2024-01-03T10:00:00Z", "Bob", "third"),
            m("6", "2024-01-03T10:01:00Z", "Ada", "sure"),
            m("7", "2024-01-04T10:00:00Z", "Bob", "fourth"),
            m("8", "2024-01-04T10:01:00Z", "Ada", "ok"),
            doc,
            rec(
                "m",
                RecordKind::Memory,
                "memories",
                "2023-06-01T00:00:00Z",
                "",
                false,
                "I flew.",
            ),
        ]
    }

    #[test]
    fn config_defaults_and_partial_files() {
        let c: DatasetConfig = serde_json::from_str(r#"{"burst_gap_secs": 120}"#).unwrap();
        assert_eq!(c.burst_gap_secs, 120);
        assert_eq!(c.session_gap_secs, 1800);
        assert_eq!(c.max_context_tokens, 512);
        assert_eq!(c.heldout_fraction, 0.1);
        assert!(serde_json::from_str::<DatasetConfig>(r#"{"burst_gap": 1}"#).is_err());
    }

    #[test]
    fn latest_examples_are_held_out_and_undated_ones_train() {
        let config = DatasetConfig {
            heldout_fraction: 0.5,
            ..DatasetConfig::default()
        };
        let ex = build_dataset(&corpus(), &config, &whitespace_tokens);
        // 4 chat replies, 1 memory, 1 text piece: 3 held out, the latest dated ones.
        assert_eq!(ex.len(), 6);
        let held: Vec<&str> = ex
            .iter()
            .filter(|e| e.split == SftSplit::Heldout)
            .map(|e| e.messages.last().unwrap().content.as_str())
            .collect();
        assert_eq!(held, ["yes", "sure", "ok"]);
        let text = ex.iter().find(|e| e.kind == SftKind::Text).unwrap();
        assert_eq!(text.split, SftSplit::Train);
        // Sorted by time, undated last.
        assert_eq!(ex[0].kind, SftKind::Memory);
        assert_eq!(ex[5].kind, SftKind::Text);

        let none = DatasetConfig {
            heldout_fraction: 0.0,
            ..DatasetConfig::default()
        };
        let ex = build_dataset(&corpus(), &none, &whitespace_tokens);
        assert!(ex.iter().all(|e| e.split == SftSplit::Train));
        let all = DatasetConfig {
            heldout_fraction: 1.0,
            ..DatasetConfig::default()
        };
        let ex = build_dataset(&corpus(), &all, &whitespace_tokens);
        assert_eq!(
            ex.iter().filter(|e| e.split == SftSplit::Heldout).count(),
            5
        );
    }

    #[test]
    fn input_order_does_not_matter_and_duplicates_count_once() {
        let config = DatasetConfig::default();
        let a = build_dataset(&corpus(), &config, &whitespace_tokens);
        let mut shuffled = corpus();
        shuffled.reverse();
        shuffled.swap(2, 7);
        shuffled.extend(corpus());
        let b = build_dataset(&shuffled, &config, &whitespace_tokens);
        assert_eq!(a, b);
        let ids: HashSet<&str> = a.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), a.len(), "ids are unique");
    }

    #[test]
    fn ids_depend_on_kind_targets_and_piece() {
        let a = example_id(SftKind::Chat, &["r1", "r2"], None);
        assert_eq!(a, example_id(SftKind::Chat, &["r1", "r2"], None));
        assert_eq!(a.len(), 32);
        assert_ne!(a, example_id(SftKind::Email, &["r1", "r2"], None));
        assert_ne!(a, example_id(SftKind::Chat, &["r1"], None));
        assert_ne!(a, example_id(SftKind::Chat, &["r1r2"], None));
        assert_ne!(
            example_id(SftKind::Text, &["r1"], Some(0)),
            example_id(SftKind::Text, &["r1"], Some(1))
        );
    }

    /// A chat where Bob sends his card and address, and Ada gives her own address and
    /// repeats Carol's number; an unanswered message holds an IBAN.
    fn pii_corpus() -> Vec<Record> {
        let m = |id: &str, thread: &str, at: &str, who: &str, text: &str| {
            let mut r = rec(
                id,
                RecordKind::Message,
                thread,
                at,
                who,
                who.starts_with("Ada"),
                text,
            );
            r.source = format!("file:///{thread}.txt");
            r
        };
        vec![
            m(
                "1",
                "t",
                "2024-01-01T10:00:00Z",
                "Bob Stone",
                "my card is 4111 1111 1111 1111, mail bob@stone.example",
            ),
            m(
                "2",
                "t",
                "2024-01-01T10:01:00Z",
                "Ada",
                "thanks Bob Stone; write to ada@example.org, or ring Carol on +1 415 555 0134",
            ),
            m(
                "3",
                "u",
                "2024-01-02T10:00:00Z",
                "Bob Stone",
                "IBAN DE89 3704 0044 0532 0130 00",
            ),
        ]
    }

    fn all_text(ex: &[SftExample]) -> String {
        serde_json::to_string(ex).unwrap()
    }

    #[test]
    fn third_party_pii_is_redacted_by_default_and_the_persons_own_address_stays() {
        let built = build_dataset_with(
            &pii_corpus(),
            &DatasetConfig::default(),
            &whitespace_tokens,
            &RedactConfig {
                keep: vec!["ada@example.org".into()],
                third_party_names: None,
            },
        );
        let text = all_text(&built.examples);
        assert_eq!(built.examples.len(), 1);
        for secret in ["4111 1111 1111 1111", "bob@stone.example", "415 555 0134"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("ada@example.org"), "{text}");
        assert!(text.contains("[CARD]") && text.contains("[PHONE]") && text.contains("[EMAIL]"));
        assert!(
            text.contains("Bob Stone"),
            "names stay unless asked: {text}"
        );
        let p = &built.privacy;
        assert!(p.redacted && !p.names);
        assert_eq!((p.examples, p.records), (1, 2));
        // The IBAN is in no example: not counted.
        assert_eq!(p.stats.total, 3, "{p:?}");
        assert_eq!(p.stats.by_kind[&PiiKind::PaymentCard], 1);
        assert_eq!(p.stats.by_source["file:///t.txt"][&PiiKind::Phone], 1);
        assert!(!p.stats.by_source.contains_key("file:///u.txt"));
        // The plain entry point redacts too (keeping the person's authors' addresses only).
        let plain = build_dataset(&pii_corpus(), &DatasetConfig::default(), &whitespace_tokens);
        assert!(!all_text(&plain).contains("4111 1111"));
    }

    #[test]
    fn names_become_placeholders_when_asked_and_keep_pii_turns_redaction_off() {
        let config = DatasetConfig {
            redact_names: true,
            ..DatasetConfig::default()
        };
        let built = build_dataset_with(
            &pii_corpus(),
            &config,
            &whitespace_tokens,
            &RedactConfig {
                keep: vec!["Ada".into()],
                third_party_names: Some(vec![("Bob Stone".into(), "p1".into())]),
            },
        );
        let text = all_text(&built.examples);
        assert!(!text.contains("Bob"), "{text}");
        assert!(text.contains("thanks [PERSON_1]"), "{text}");
        assert!(built.privacy.names);
        assert_eq!(built.privacy.stats.by_kind[&PiiKind::Name], 1);

        let off = DatasetConfig {
            redact: false,
            ..DatasetConfig::default()
        };
        let raw = build_dataset_with(
            &pii_corpus(),
            &off,
            &whitespace_tokens,
            &RedactConfig::default(),
        );
        assert!(all_text(&raw.examples).contains("4111 1111 1111 1111"));
        assert!(!raw.privacy.redacted);
        assert_eq!(raw.privacy.stats.total, 0);
    }

    #[test]
    fn group_chat_author_prefixes_are_redacted_too() {
        let m = |id: &str, at: &str, who: &str, text: &str| {
            rec(id, RecordKind::Message, "g", at, who, who == "Ada", text)
        };
        let records = vec![
            m("1", "2024-01-01T10:00:00Z", "+44 7911 123456", "hello all"),
            m("2", "2024-01-01T10:00:30Z", "carol@x.example", "hi"),
            m("3", "2024-01-01T10:01:00Z", "Ada", "welcome"),
        ];
        let built = build_dataset_with(
            &records,
            &DatasetConfig::default(),
            &whitespace_tokens,
            &RedactConfig::default(),
        );
        let text = all_text(&built.examples);
        assert!(!text.contains("7911") && !text.contains("carol@"), "{text}");
        assert!(text.contains("[PHONE]: hello all"), "{text}");
        assert_eq!(built.privacy.stats.total, 2);
    }

    #[test]
    fn system_prompt_goes_first_except_in_text() {
        let config = DatasetConfig {
            system_prompt: Some("You are Ada.".into()),
            ..DatasetConfig::default()
        };
        for e in build_dataset(&corpus(), &config, &whitespace_tokens) {
            let first = &e.messages[0];
            if e.kind == SftKind::Text {
                assert_eq!(first.role, SftRole::Assistant);
            } else {
                assert_eq!(first.role, SftRole::System);
                assert_eq!(first.content, "You are Ada.");
            }
        }
    }
}
