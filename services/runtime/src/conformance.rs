//! Conformance suites: every implementation of [`EventLog`] and [`BlobStore`] (memory, SQLite,
//! files, later Kafka and object storage) must pass the same checks, so services can rely on
//! the trait contracts rather than on one backend's behaviour.
//!
//! The suites panic with a message naming the broken contract; call them from a `#[test]`.

use crate::{sha256_hex, BlobStore, EventLog, Offset, StoreError, Stored};
use avatar_schemas::{
    ArtifactReceived, AvatarCreated, DeadLetter, Envelope, Forget, ForgetTarget, MemoryAdded,
    Payload, Record, RecordKind,
};

/// Unwraps with the name of the operation that failed (the suite is a test helper, but the
/// workspace lints `unwrap`).
fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

fn artifact(avatar: &str, sha: &str) -> Envelope {
    Envelope::new(
        avatar,
        format!("file:///inbox/{sha}.txt"),
        Payload::ArtifactReceived(ArtifactReceived {
            sha256: sha.to_string(),
            size: 42,
            name: format!("{sha}.txt"),
            format_hint: None,
        }),
    )
}

fn memory(text: &str) -> Envelope {
    Envelope::new(
        "ada",
        "memory:",
        Payload::Memory(MemoryAdded {
            text: text.to_string(),
            title: None,
            added_by: Some("Ada".into()),
        }),
    )
}

/// One event of every payload kind, with unicode, optional fields set and unset, and a
/// causation id: what a round trip through the store must preserve exactly.
fn every_kind() -> Vec<Envelope> {
    let created = Envelope::new(
        "ada",
        "memory:",
        Payload::AvatarCreated(AvatarCreated {
            avatar_id: "ada".into(),
            name: "Ada Lovelace".into(),
            aliases: vec!["ada@example.org".into(), "Ада".into()],
        }),
    );
    let art = artifact("ada", &"c0".repeat(32));
    let when = art.occurred_at;
    let record = Record {
        id: "r-1".into(),
        avatar: "ada".into(),
        source: "file:///x.zip#chat/é.txt".into(),
        format: "whatsapp".into(),
        kind: RecordKind::Message,
        thread: "chat with Bob".into(),
        timestamp: Some(when),
        author: Some("Ada".into()),
        author_is_person: true,
        text: "Bonjour 👋\nline two \"quoted\" \\ back".into(),
        title: None,
        message_id: Some("m1".into()),
        in_reply_to: None,
        artifact: "c0".repeat(32),
        ordinal: 7,
    };
    let message =
        Envelope::new("ada", "file:///x.zip", Payload::Message(record.clone())).caused_by(art.id);
    let document = Envelope::new(
        "ada",
        "file:///notes.md",
        Payload::Document(Record {
            id: "r-2".into(),
            kind: RecordKind::Document,
            timestamp: None,
            author: None,
            author_is_person: false,
            title: Some("Notes".into()),
            ordinal: u32::MAX,
            ..record
        }),
    );
    let dead = Envelope::new(
        "ada",
        "file:///broken.bin",
        Payload::DeadLetter(DeadLetter {
            artifact: Some("d0".repeat(32)),
            name: "broken.bin".into(),
            error_kind: "binary".into(),
            reason: "not text".into(),
        }),
    );
    let forget = Envelope::new(
        "ada",
        "memory:",
        Payload::Forget(Forget {
            target: ForgetTarget::Before(when),
            reason: None,
        }),
    );
    vec![
        created,
        art,
        message,
        document,
        memory("a memory"),
        dead,
        forget,
    ]
}

fn offsets(stored: &[Stored]) -> Vec<Offset> {
    stored.iter().map(|s| s.offset).collect()
}

/// Checks every contract of [`EventLog`]. `make` must return a fresh, empty log on each call
/// (the suite uses several so that one check's events do not hide another's bug).
pub fn event_log_suite(make: &dyn Fn() -> Box<dyn EventLog>) {
    empty_log(&*make());
    offsets_dense_and_round_trip(&*make());
    read_is_inclusive_and_bounded(&*make());
    append_deduplicates(&*make());
    commit_moves_checkpoint_and_appends(&*make());
    concurrent_appends_stay_dense(&*make());
}

fn empty_log(log: &dyn EventLog) {
    assert_eq!(ok(log.end(), "end"), 0, "a fresh log ends at 0");
    assert!(
        ok(log.read(0, 10), "read").is_empty(),
        "a fresh log reads nothing"
    );
    assert_eq!(
        ok(log.checkpoint("any"), "checkpoint"),
        0,
        "default checkpoint is 0"
    );
    assert!(ok(log.append(&[]), "append([])").is_empty());
    assert_eq!(ok(log.end(), "end"), 0, "appending nothing appends nothing");
}

fn offsets_dense_and_round_trip(log: &dyn EventLog) {
    let events = every_kind();
    let n = events.len() as Offset;
    let got = ok(log.append(&events), "append");
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "offsets are 0-based and dense"
    );
    assert_eq!(ok(log.end(), "end"), n, "end is the number of events");
    let stored = ok(log.read(0, 100), "read");
    assert_eq!(offsets(&stored), got, "read returns the appended offsets");
    for (s, e) in stored.iter().zip(&events) {
        assert_eq!(&s.event, e, "event at {} round-trips unchanged", s.offset);
    }
    let more = ok(log.append(&[memory("later")]), "append");
    assert_eq!(more, [n], "the next append continues at end");
    assert_eq!(ok(log.end(), "end"), n + 1);
}

fn read_is_inclusive_and_bounded(log: &dyn EventLog) {
    let events: Vec<Envelope> = (0..25).map(|i| memory(&format!("m{i}"))).collect();
    ok(log.append(&events), "append");
    let one = ok(log.read(3, 1), "read(3, 1)");
    assert_eq!(offsets(&one), [3], "read(from, 1) returns exactly `from`");
    assert_eq!(one[0].event, events[3]);
    assert_eq!(offsets(&ok(log.read(20, 3), "read")), [20, 21, 22]);
    assert_eq!(
        offsets(&ok(log.read(22, 100), "read")),
        [22, 23, 24],
        "read stops at end"
    );
    assert!(ok(log.read(25, 10), "read(end)").is_empty());
    assert!(ok(log.read(1_000, 10), "read(past end)").is_empty());
    assert!(
        ok(log.read(0, 0), "read(0, 0)").is_empty(),
        "max 0 reads nothing"
    );
    assert!(ok(log.read(u64::MAX, 10), "read(u64::MAX)").is_empty());
    assert_eq!(ok(log.read(0, usize::MAX), "read(0, usize::MAX)").len(), 25);
    // Paging with read(next, page) visits every event exactly once, in order.
    let mut seen = Vec::new();
    let mut next = 0;
    loop {
        let page = ok(log.read(next, 7), "read page");
        let Some(last) = page.last() else { break };
        next = last.offset + 1;
        seen.extend(page.into_iter().map(|s| s.event));
    }
    assert_eq!(seen, events, "paging covers the log exactly once");
}

fn append_deduplicates(log: &dyn EventLog) {
    let a = artifact("ada", "aa");
    assert_eq!(ok(log.append(std::slice::from_ref(&a)), "append"), [0]);
    // The same artifact again, even as a new event (new id, new time), is a no-op.
    let again = artifact("ada", "aa");
    assert_ne!(again.id, a.id);
    assert!(
        ok(log.append(&[again]), "append duplicate").is_empty(),
        "a duplicate key is skipped"
    );
    assert_eq!(ok(log.end(), "end"), 1, "duplicates do not move end");
    // The same bytes for another avatar are another artifact.
    assert_eq!(ok(log.append(&[artifact("bob", "aa")]), "append"), [1]);
    // Within one batch: duplicates of the log and of the batch itself are skipped, the
    // rest keep their order and get dense offsets.
    let b = artifact("ada", "bb");
    let batch = [
        a.clone(),
        b.clone(),
        artifact("ada", "bb"),
        artifact("ada", "cc"),
    ];
    assert_eq!(ok(log.append(&batch), "append batch"), [2, 3]);
    let tail = ok(log.read(2, 10), "read");
    assert_eq!(tail[0].event, b, "the first of duplicates in a batch wins");
    assert_eq!(tail[1].event, batch[3]);
    // Events without a key are always appended, even identical ones.
    let m = memory("same words");
    assert_eq!(
        ok(log.append(&[m.clone(), m.clone()]), "append keyless"),
        [4, 5]
    );
    assert_eq!(ok(log.append(&[m]), "append keyless"), [6]);
    assert_eq!(ok(log.end(), "end"), 7);
    assert_eq!(
        offsets(&ok(log.read(0, 100), "read")),
        (0..7).collect::<Vec<_>>()
    );
}

fn commit_moves_checkpoint_and_appends(log: &dyn EventLog) {
    ok(
        log.append(&[artifact("ada", "aa"), artifact("ada", "bb")]),
        "append",
    );
    let out = artifact("ada", "derived");
    ok(
        log.commit("parse", 2, &[out.clone(), artifact("ada", "aa")]),
        "commit",
    );
    assert_eq!(
        ok(log.checkpoint("parse"), "checkpoint"),
        2,
        "commit moves the checkpoint"
    );
    assert_eq!(
        ok(log.end(), "end"),
        3,
        "commit appends output, deduplicated"
    );
    assert_eq!(ok(log.read(2, 1), "read")[0].event, out);
    // Named consumers are independent.
    assert_eq!(ok(log.checkpoint("index"), "checkpoint"), 0);
    ok(log.commit("index", 1, &[]), "commit without output");
    assert_eq!(ok(log.checkpoint("index"), "checkpoint"), 1);
    assert_eq!(ok(log.checkpoint("parse"), "checkpoint"), 2);
    assert_eq!(ok(log.end(), "end"), 3, "an empty commit appends nothing");
    // Committing again overwrites; replaying a commit is harmless.
    ok(log.commit("parse", 3, std::slice::from_ref(&out)), "commit");
    ok(log.commit("parse", 3, &[out]), "commit replay");
    assert_eq!(ok(log.checkpoint("parse"), "checkpoint"), 3);
    assert_eq!(
        ok(log.end(), "end"),
        3,
        "a replayed commit duplicates nothing"
    );
    // Keyless output is appended on each commit.
    ok(log.commit("memories", 1, &[memory("x")]), "commit keyless");
    assert_eq!(ok(log.end(), "end"), 4);
    // Appends never move checkpoints.
    ok(log.append(&[memory("y")]), "append");
    assert_eq!(ok(log.checkpoint("memories"), "checkpoint"), 1);
    assert_eq!(ok(log.checkpoint("parse"), "checkpoint"), 3);
    // Consumer names are exact strings.
    assert_eq!(ok(log.checkpoint("Parse"), "checkpoint"), 0);
    assert_eq!(ok(log.checkpoint("parse "), "checkpoint"), 0);
}

fn concurrent_appends_stay_dense(log: &dyn EventLog) {
    const THREADS: usize = 4;
    const EACH: usize = 10;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for i in 0..EACH {
                    // Every thread also appends one shared artifact: only one copy may land.
                    let batch = [
                        artifact("ada", &format!("t{t}-{i}")),
                        artifact("ada", "shared"),
                    ];
                    ok(log.append(&batch), "concurrent append");
                }
            });
        }
    });
    let all = ok(log.read(0, 1_000), "read");
    let n = THREADS * EACH + 1;
    assert_eq!(
        all.len(),
        n,
        "every distinct event once, the shared one once"
    );
    assert_eq!(
        offsets(&all),
        (0..n as Offset).collect::<Vec<_>>(),
        "concurrent appends keep offsets dense"
    );
    assert_eq!(ok(log.end(), "end"), n as Offset);
}

/// Checks every contract of [`BlobStore`] on `store` (which may already hold blobs).
pub fn blob_store_suite(store: &dyn BlobStore) {
    let bytes = b"hello, blob".to_vec();
    let key = ok(store.put(&bytes), "put");
    assert_eq!(
        key,
        sha256_hex(&bytes),
        "put returns the sha256 in lowercase hex"
    );
    assert_eq!(key.len(), 64);
    assert!(ok(store.contains(&key), "contains"));
    assert_eq!(
        ok(store.get(&key), "get"),
        bytes,
        "get returns the bytes put"
    );
    assert_eq!(
        ok(store.put(&bytes), "put again"),
        key,
        "putting again is a no-op"
    );
    assert_eq!(ok(store.get(&key), "get"), bytes);

    let empty = ok(store.put(&[]), "put empty");
    assert_eq!(empty, sha256_hex(&[]));
    assert!(ok(store.get(&empty), "get empty").is_empty());

    // Binary content of every byte value, big enough to need several writes.
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i: u32| (i % 251) as u8).collect();
    let big_key = ok(store.put(&big), "put big");
    assert_eq!(ok(store.get(&big_key), "get big"), big);

    let absent = sha256_hex(b"never stored");
    assert!(!ok(store.contains(&absent), "contains absent"));
    match store.get(&absent) {
        Err(StoreError::BlobMissing(k)) => assert_eq!(k, absent),
        other => panic!("get of an absent blob must be BlobMissing, got {other:?}"),
    }
    // Keys that are not a sha256 (e.g. a path) are never found, never escape the store.
    for bad in ["", "../../etc/passwd", "AB", &key.to_uppercase()[..]] {
        if bad == key {
            continue;
        }
        assert!(store.get(bad).is_err(), "get({bad:?}) must fail");
        assert!(!store.contains(bad).unwrap_or(false), "contains({bad:?})");
    }
    // The first blob is unaffected by the others.
    assert_eq!(ok(store.get(&key), "get"), bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryBlobStore, MemoryEventLog};

    #[test]
    fn memory_event_log_conforms() {
        event_log_suite(&|| Box::new(MemoryEventLog::new()));
    }

    #[test]
    fn memory_blob_store_conforms() {
        blob_store_suite(&MemoryBlobStore::default());
    }

    /// A log with one injectable bug, to prove the suite is not vacuous.
    struct Buggy {
        inner: MemoryEventLog,
        raw: std::sync::Mutex<Vec<Envelope>>,
        skip_dedup: bool,
        commit_forgets_checkpoint: bool,
    }

    impl EventLog for Buggy {
        fn append(&self, events: &[Envelope]) -> crate::Result<Vec<Offset>> {
            if !self.skip_dedup {
                return self.inner.append(events);
            }
            let mut raw = self
                .raw
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?;
            let start = raw.len() as Offset;
            raw.extend(events.iter().cloned());
            Ok((start..raw.len() as Offset).collect())
        }
        fn read(&self, from: Offset, max: usize) -> crate::Result<Vec<Stored>> {
            if !self.skip_dedup {
                return self.inner.read(from, max);
            }
            let raw = self
                .raw
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?;
            Ok(raw
                .iter()
                .enumerate()
                .skip(usize::try_from(from).unwrap_or(usize::MAX))
                .take(max)
                .map(|(i, e)| Stored {
                    offset: i as Offset,
                    event: e.clone(),
                })
                .collect())
        }
        fn end(&self) -> crate::Result<Offset> {
            if !self.skip_dedup {
                return self.inner.end();
            }
            Ok(self
                .raw
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?
                .len() as Offset)
        }
        fn checkpoint(&self, name: &str) -> crate::Result<Offset> {
            self.inner.checkpoint(name)
        }
        fn commit(&self, name: &str, next: Offset, output: &[Envelope]) -> crate::Result<()> {
            if self.commit_forgets_checkpoint {
                self.inner.append(output).map(|_| ())
            } else {
                self.inner.commit(name, next, output)
            }
        }
    }

    fn suite_fails_on(skip_dedup: bool, commit_forgets_checkpoint: bool) -> bool {
        let make = move || -> Box<dyn EventLog> {
            Box::new(Buggy {
                inner: MemoryEventLog::new(),
                raw: Default::default(),
                skip_dedup,
                commit_forgets_checkpoint,
            })
        };
        std::panic::catch_unwind(|| event_log_suite(&make)).is_err()
    }

    #[test]
    fn suite_catches_broken_logs() {
        assert!(
            !suite_fails_on(false, false),
            "the wrapper itself is correct"
        );
        assert!(suite_fails_on(true, false), "a log without dedup must fail");
        assert!(
            suite_fails_on(false, true),
            "a commit without checkpoint must fail"
        );
    }
}
