//! The dataset built from real exports: the demo corpus (samples/demo), parsed here the way
//! the processor does (formats → identity → mail cleaning → records) without the binary or a
//! log, and a real-world WhatsApp group chat from the shared fixtures.

#![allow(clippy::unwrap_used)]

use crate::{
    build_dataset, read_parquet_bytes, whitespace_tokens, write_parquet, DatasetConfig,
    DatasetStats, SftExample, SftKind, SftRole, SftSplit,
};
use avatar_schemas::{record_id, Record, RecordKind};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/demo");

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The demo's records, as `avatar demo` would store them for Ada Lovelace.
fn demo_records() -> Option<Vec<Record>> {
    let root = Path::new(DEMO);
    if !root.exists() {
        return None;
    }
    let identity =
        avatar_identity::Identity::new("Ada Lovelace", ["ada@example.org", "+44 7700 900123"]);
    let is_person = |a: Option<&str>| a.is_some_and(|a| identity.is_person(a));
    let mut paths = Vec::new();
    for sub in ["chats", "mail", "notes"] {
        files(&root.join(sub), &mut paths);
    }
    let mut records = Vec::new();
    for path in paths {
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let bytes = std::fs::read(&path).unwrap();
        let parsed =
            avatar_formats::parse(&name, None, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut texts: Vec<String> = parsed.items.iter().map(|i| i.text.clone()).collect();
        if parsed.format == "mbox" {
            // The processor's mail cleaning: parent lines out, the person's signature out.
            let by_id: HashMap<&str, usize> = parsed
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| it.message_id.as_deref().map(|m| (m, i)))
                .collect();
            let originals = texts.clone();
            for (i, it) in parsed.items.iter().enumerate() {
                if let Some(&p) = it.in_reply_to.as_deref().and_then(|m| by_id.get(m)) {
                    texts[i] = avatar_text::remove_parent_lines(&texts[i], &originals[p]);
                }
            }
            let own: Vec<&str> = parsed
                .items
                .iter()
                .zip(&texts)
                .filter(|(it, _)| is_person(it.author.as_deref()))
                .map(|(_, t)| t.as_str())
                .collect();
            let signatures = avatar_text::learn_signatures(&own);
            for (it, t) in parsed.items.iter().zip(texts.iter_mut()) {
                if is_person(it.author.as_deref()) {
                    *t = avatar_text::strip_signatures(t, &signatures);
                }
            }
        }
        for (ordinal, (item, text)) in parsed.items.iter().zip(texts).enumerate() {
            let text = text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            records.push(Record {
                id: record_id(&name, ordinal as u32),
                avatar: "ada".into(),
                source: format!("file:///demo/{name}"),
                format: parsed.format.to_string(),
                kind: item.kind,
                thread: item.thread.clone(),
                timestamp: item.timestamp,
                author: item.author.clone(),
                author_is_person: item.from_owner || is_person(item.author.as_deref()),
                text,
                title: item.title.clone(),
                message_id: item.message_id.clone(),
                in_reply_to: item.in_reply_to.clone(),
                artifact: name.clone(),
                ordinal: ordinal as u32,
            });
        }
    }
    // The memory `avatar demo` adds.
    records.push(Record {
        id: record_id("memory", 0),
        avatar: "ada".into(),
        source: "memory:".into(),
        format: "memory".into(),
        kind: RecordKind::Memory,
        thread: "memories".into(),
        timestamp: Some("2024-05-01T12:00:00Z".parse().unwrap()),
        author: Some("a family friend".into()),
        author_is_person: false,
        text: "At twelve she set out to fly…".into(),
        title: Some("Flyology".into()),
        message_id: None,
        in_reply_to: None,
        artifact: String::new(),
        ordinal: 0,
    });
    Some(records)
}

fn pairs(e: &SftExample) -> Vec<(SftRole, &str)> {
    e.messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect()
}

#[test]
fn demo_corpus_gives_well_formed_examples_of_every_kind() {
    let Some(records) = demo_records() else {
        eprintln!("skipping: samples/demo not found");
        return;
    };
    let config = DatasetConfig::default();
    let ex = build_dataset(&records, &config, &whitespace_tokens);
    let stats = DatasetStats::from_examples(&ex, &whitespace_tokens);
    eprintln!("{}", serde_json::to_string_pretty(&stats).unwrap());
    for kind in ["chat", "email", "text"] {
        assert!(
            stats.by_kind.get(kind).is_some_and(|k| k.examples() >= 3),
            "{kind}: {stats:?}"
        );
    }
    assert_eq!(stats.by_kind["memory"].examples(), 1);
    assert_eq!(
        stats.total.heldout,
        (ex.len() as f64 * 0.1).round() as usize
    );

    let by_id: HashMap<&str, &Record> = records.iter().map(|r| (r.id.as_str(), r)).collect();
    let others: Vec<&str> = records
        .iter()
        .filter(|r| !r.author_is_person && r.kind != RecordKind::Memory && r.text.len() > 30)
        .map(|r| r.text.as_str())
        .collect();
    for e in &ex {
        // Shape: [system] user/assistant alternating, ending with the person; text is one turn.
        let roles: Vec<SftRole> = e.messages.iter().map(|m| m.role).collect();
        assert_eq!(*roles.last().unwrap(), SftRole::Assistant, "{e:#?}");
        if e.kind == SftKind::Text {
            assert_eq!(roles.len(), 1);
        } else {
            assert_eq!(roles[0], SftRole::User, "{e:#?}");
            assert!(roles.windows(2).all(|w| w[0] != w[1]), "{e:#?}");
        }
        assert!(
            e.messages.iter().all(|m| !m.content.trim().is_empty()),
            "{e:#?}"
        );
        // The target is the person's, and nobody else's words are put in their mouth.
        let last = by_id[e.source_records.last().unwrap().as_str()];
        if e.kind != SftKind::Memory {
            assert!(last.author_is_person, "{e:#?}");
        }
        for m in e.messages.iter().filter(|m| m.role == SftRole::Assistant) {
            for o in &others {
                assert!(!m.content.contains(o), "{o:?} in {e:#?}");
            }
        }
        if e.kind == SftKind::Email {
            assert!(e.messages[0].content.starts_with("Subject: "), "{e:#?}");
            let reply = &e.messages[1].content;
            assert!(!reply.lines().any(|l| l.starts_with('>')), "{e:#?}");
        }
    }

    // Real WhatsApp timing: the 19:05 burst answers 19:02; the next morning is a new session.
    let mary = |target: &str| {
        ex.iter()
            .find(|e| e.messages.last().unwrap().content.starts_with(target))
            .unwrap_or_else(|| panic!("no example for {target:?}"))
    };
    assert_eq!(
        pairs(mary("Yes! I have started")),
        [
            (SftRole::User, "Did you see my letter about the translation?"),
            (
                SftRole::Assistant,
                "Yes! I have started on Menabrea's paper.\nThe notes are growing longer than the paper itself.\nNote A is about the difference between the two engines."
            )
        ]
    );
    assert_eq!(
        pairs(mary("With pleasure.")),
        [
            (
                SftRole::User,
                "Come for tea on Thursday? Bring the Bernoulli table."
            ),
            (
                SftRole::Assistant,
                "With pleasure. I will bring the table and a cake."
            )
        ]
    );
    // A group chat: the other side's messages carry their author's name.
    assert_eq!(
        pairs(mary("Almost. The table of Bernoulli numbers")),
        [
            (SftRole::User, "Charles Babbage: Have you finished Note G?"),
            (
                SftRole::Assistant,
                "Almost. The table of Bernoulli numbers needs one more column, and I found an error in your operation 4."
            )
        ]
    );
    let engine = mary("The analytical engine has no pretensions");
    assert_eq!(engine.messages.len(), 4, "{engine:#?}");
    assert!(engine.messages[2]
        .content
        .contains("difference engine fragment"));
}

#[test]
fn demo_dataset_is_deterministic_down_to_the_parquet_bytes() {
    let Some(records) = demo_records() else {
        eprintln!("skipping: samples/demo not found");
        return;
    };
    let config = DatasetConfig::default();
    let a = build_dataset(&records, &config, &whitespace_tokens);
    let mut reversed = records.clone();
    reversed.reverse();
    let b = build_dataset(&reversed, &config, &whitespace_tokens);
    assert_eq!(a, b);
    let ids: HashSet<&str> = a.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), a.len());
    let bytes_a = write_parquet(&a, Vec::new()).unwrap();
    let bytes_b = write_parquet(&b, Vec::new()).unwrap();
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(read_parquet_bytes(bytes_a).unwrap(), a);
    // Held-out examples are the latest ones.
    let latest_train = a
        .iter()
        .filter(|e| e.split == SftSplit::Train)
        .filter_map(|e| e.timestamp)
        .max()
        .unwrap();
    assert!(a
        .iter()
        .filter(|e| e.split == SftSplit::Heldout)
        .all(|e| e.timestamp.unwrap() >= latest_train));
}

#[test]
fn real_whatsapp_group_chat_prefixes_speakers() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/whatsapp/sodascience__chat.txt"
    );
    let Ok(bytes) = std::fs::read(path) else {
        eprintln!("skipping: ../shared/fixtures not found");
        return;
    };
    let parsed = avatar_formats::parse("sodascience__chat.txt", Some("whatsapp"), &bytes).unwrap();
    // Treat "person2" as the avatar's person.
    let records: Vec<Record> = parsed
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| Record {
            id: record_id("soda", i as u32),
            avatar: "p2".into(),
            source: "file:///chat.txt".into(),
            format: parsed.format.to_string(),
            kind: it.kind,
            thread: it.thread.clone(),
            timestamp: it.timestamp,
            author: it.author.clone(),
            author_is_person: it.author.as_deref() == Some("person2"),
            text: it.text.clone(),
            title: None,
            message_id: None,
            in_reply_to: None,
            artifact: "soda".into(),
            ordinal: i as u32,
        })
        .collect();
    let ex = build_dataset(&records, &DatasetConfig::default(), &whitespace_tokens);
    assert!(!ex.is_empty());
    // 15:20 person1 "Hi shiva!", 15:25 person2 answers: a reply within the session.
    assert_eq!(
        pairs(&ex[0]),
        [
            (SftRole::User, "person1: Hi shiva!"),
            (SftRole::Assistant, "Hi 👋")
        ]
    );
    for e in &ex {
        for m in &e.messages {
            match m.role {
                SftRole::User => {
                    assert!(m.content.starts_with("person"), "{e:#?}");
                    assert!(!m.content.contains("person2: "), "{e:#?}");
                }
                _ => assert!(!m.content.starts_with("person"), "{e:#?}"),
            }
        }
    }
}
