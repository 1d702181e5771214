//! Conformance suites: every implementation of [`EventLog`] and [`BlobStore`] (memory, SQLite,
//! files, later Kafka and object storage) must pass the same checks, so services can rely on
//! the trait contracts rather than on one backend's behaviour.
//!
//! The suites panic with a message naming the broken contract; call them from a `#[test]`.

use crate::{
    sha256_hex, BlobStore, ChunkPayload, EventLog, Offset, StoreError, Stored, VectorFilter,
    VectorPoint, VectorStore,
};
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

/// Dimension of the vectors [`vector_store_suite`] writes: the store under test must be made
/// with it.
pub const VECTOR_SUITE_DIM: usize = 8;

/// Unit vector `e_i` of [`VECTOR_SUITE_DIM`] dimensions.
fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; VECTOR_SUITE_DIM];
    v[i % VECTOR_SUITE_DIM] = 1.0;
    v
}

/// `a·e_i + b·e_j`, L2-normalised: its cosine with `e_i` is `a / sqrt(a² + b²)`.
fn mix(i: usize, a: f32, j: usize, b: f32) -> Vec<f32> {
    let n = (a * a + b * b).sqrt();
    let mut v = vec![0.0; VECTOR_SUITE_DIM];
    v[i] += a / n;
    v[j] += b / n;
    v
}

/// A chunk id as the chunker makes them: 64 hex digits derived from a name.
pub fn chunk_id(name: &str) -> String {
    sha256_hex(name.as_bytes())
}

struct Pt<'a> {
    name: &'a str,
    avatar: &'a str,
    records: &'a [&'a str],
    source: &'a str,
    author: Option<&'a str>,
    ts: Option<i64>,
    kind: &'a str,
    vector: Vec<f32>,
}

fn point(p: Pt<'_>) -> VectorPoint {
    VectorPoint {
        id: chunk_id(p.name),
        vector: p.vector,
        payload: ChunkPayload {
            avatar: p.avatar.into(),
            record_ids: p.records.iter().map(|r| r.to_string()).collect(),
            source: p.source.into(),
            author: p.author.map(Into::into),
            timestamp: p.ts,
            kind: p.kind.into(),
            text: format!("chunk {} — «{}» 👋", p.name, p.avatar),
        },
    }
}

/// The fixture: ada's chunks at decreasing cosine to `e0`, and bob's, one of which is `e0`
/// itself (so an avatar leak would rank first).
fn suite_points() -> Vec<VectorPoint> {
    let t0 = 1_600_000_000;
    vec![
        point(Pt {
            name: "a1",
            avatar: "ada",
            records: &["r1"],
            source: "file:///mail.mbox",
            author: Some("Ada <ada@example.org>"),
            ts: Some(t0),
            kind: "email",
            vector: unit(0),
        }),
        point(Pt {
            name: "a2",
            avatar: "ada",
            records: &["r2"],
            source: "file:///chat.zip",
            author: Some("Bob"),
            ts: Some(t0 + 100),
            kind: "message",
            vector: mix(0, 2.0, 1, 1.0),
        }),
        point(Pt {
            name: "a3",
            avatar: "ada",
            records: &["r3", "r4"],
            source: "file:///chat.zip",
            author: Some("Ada <ada@example.org>"),
            ts: Some(t0 + 200),
            kind: "message",
            vector: mix(0, 1.0, 2, 1.0),
        }),
        point(Pt {
            name: "a4",
            avatar: "ada",
            records: &["r5"],
            source: "file:///notes.md",
            author: None,
            ts: None,
            kind: "document",
            vector: mix(0, 1.0, 3, 2.0),
        }),
        point(Pt {
            name: "a5",
            avatar: "ada",
            records: &["r6"],
            source: "memory:",
            author: Some("Ada <ada@example.org>"),
            ts: Some(t0 + 300),
            kind: "memory",
            vector: unit(4),
        }),
        point(Pt {
            name: "a6",
            avatar: "ada",
            records: &["r7"],
            source: "file:///mail.mbox",
            author: Some("Carol"),
            ts: Some(t0 + 400),
            kind: "email",
            vector: mix(0, -1.0, 5, 0.5),
        }),
        point(Pt {
            name: "b1",
            avatar: "bob",
            records: &["rb1"],
            source: "file:///mail.mbox",
            author: Some("Ada <ada@example.org>"),
            ts: Some(t0),
            kind: "email",
            vector: unit(0),
        }),
        point(Pt {
            name: "b2",
            avatar: "bob",
            records: &["rb2", "r1"],
            source: "file:///chat.zip",
            author: Some("Bob"),
            ts: Some(t0 + 100),
            kind: "message",
            vector: mix(0, 3.0, 1, 1.0),
        }),
    ]
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn filter(avatar: &str) -> VectorFilter {
    VectorFilter {
        avatar: avatar.into(),
        ..VectorFilter::default()
    }
}

/// Search `query` with `f` and return the hit names (`a1`…) in rank order, checking on the way
/// that scores are the cosine, descending, and payloads round-trip.
fn names(
    store: &dyn VectorStore,
    query: &[f32],
    f: &VectorFilter,
    k: usize,
    what: &str,
) -> Vec<String> {
    let points = suite_points();
    let hits = ok(store.search(query, f, k), what);
    assert!(hits.len() <= k, "{what}: {} hits for k = {k}", hits.len());
    let mut out = Vec::new();
    for (i, hit) in hits.iter().enumerate() {
        let Some(p) = points.iter().find(|p| p.id == hit.id) else {
            panic!("{what}: hit {} is no point the suite wrote", hit.id);
        };
        assert_eq!(hit.payload, p.payload, "{what}: payload round trip");
        let cos = dot(query, &p.vector);
        assert!(
            (hit.score - cos).abs() < 1e-3,
            "{what}: score {} of {} is not its cosine {cos}",
            hit.score,
            hit.id
        );
        if i > 0 {
            assert!(
                hits[i - 1].score >= hit.score - 1e-6,
                "{what}: hits not ordered by score"
            );
        }
        let name = p.payload.text.split(' ').nth(1).unwrap_or_default();
        out.push(name.to_string());
    }
    out
}

/// Checks every contract of [`VectorStore`]. `make` must return a store of
/// [`VECTOR_SUITE_DIM`] dimensions that is empty on the first call; every later call must
/// reopen the same data (the same directory, the same server collection): the suite drops the
/// previous store first, so embedded stores are never opened twice at once.
pub fn vector_store_suite(make: &dyn Fn() -> Box<dyn VectorStore>) {
    let q = unit(0);
    let store = make();

    // Empty store.
    assert_eq!(ok(store.checkpoint(), "checkpoint"), 0, "fresh checkpoint");
    assert_eq!(ok(store.count("ada"), "count"), 0, "fresh store is empty");
    assert!(
        ok(store.search(&q, &filter("ada"), 5), "search empty").is_empty(),
        "search of an empty store finds nothing"
    );

    // Upsert, then ordering by cosine, payloads and scores (checked in `names`).
    ok(store.apply(1, &suite_points(), &[]), "apply");
    assert_eq!(ok(store.checkpoint(), "checkpoint"), 1);
    assert_eq!(ok(store.count("ada"), "count ada"), 6);
    assert_eq!(ok(store.count("bob"), "count bob"), 2);
    assert_eq!(ok(store.count("nobody"), "count nobody"), 0);
    let all = ["a1", "a2", "a3", "a4", "a5", "a6"];
    assert_eq!(
        names(&*store, &q, &filter("ada"), 10, "search ada"),
        all,
        "hits ordered by cosine, only ada's"
    );

    // k bound: the k best, not any k.
    assert_eq!(names(&*store, &q, &filter("ada"), 2, "k=2"), ["a1", "a2"]);
    assert_eq!(names(&*store, &q, &filter("ada"), 1, "k=1"), ["a1"]);
    assert!(ok(store.search(&q, &filter("ada"), 0), "k=0").is_empty());

    // Avatar isolation: bob's b1 equals the query but never shows for ada, and vice versa.
    assert_eq!(names(&*store, &q, &filter("bob"), 10, "bob"), ["b1", "b2"]);
    assert!(names(&*store, &q, &filter("nobody"), 10, "nobody").is_empty());

    // Each filter, applied in the store so that k hits are k matching ones.
    let f = VectorFilter {
        source: Some("file:///chat.zip".into()),
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "source"), ["a2", "a3"]);
    assert_eq!(names(&*store, &q, &f, 1, "source k=1"), ["a2"]);
    let f = VectorFilter {
        author: Some("Ada <ada@example.org>".into()),
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "author"), ["a1", "a3", "a5"]);
    let f = VectorFilter {
        author: Some("Ada".into()),
        ..filter("ada")
    };
    assert!(
        names(&*store, &q, &f, 10, "author prefix").is_empty(),
        "author matches exactly, not by prefix"
    );
    let t0 = 1_600_000_000;
    let f = VectorFilter {
        since: Some(t0 + 100),
        until: Some(t0 + 300),
        ..filter("ada")
    };
    assert_eq!(
        names(&*store, &q, &f, 10, "since/until"),
        ["a2", "a3", "a5"],
        "time bounds are inclusive; undated chunks never match a time bound"
    );
    let f = VectorFilter {
        since: Some(t0 + 101),
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "since"), ["a3", "a5", "a6"]);
    let f = VectorFilter {
        until: Some(t0 + 99),
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "until"), ["a1"]);
    let f = VectorFilter {
        kinds: vec!["email".into()],
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "kind"), ["a1", "a6"]);
    let f = VectorFilter {
        kinds: vec!["document".into(), "memory".into()],
        ..filter("ada")
    };
    assert_eq!(names(&*store, &q, &f, 10, "kinds"), ["a4", "a5"]);
    let f = VectorFilter {
        source: Some("file:///mail.mbox".into()),
        author: Some("Ada <ada@example.org>".into()),
        kinds: vec!["email".into(), "message".into()],
        since: Some(t0),
        until: Some(t0),
        avatar: "bob".into(),
    };
    assert_eq!(names(&*store, &q, &f, 10, "all filters"), ["b1"]);

    // Idempotent re-apply.
    ok(store.apply(2, &suite_points(), &[]), "re-apply");
    assert_eq!(ok(store.count("ada"), "count"), 6, "re-apply adds nothing");
    assert_eq!(
        names(&*store, &q, &filter("ada"), 10, "after re-apply"),
        all
    );

    // Delete by record id: a3 cites r3 and r4 and goes when either is forgotten; b2 cites
    // r1 too (a chunk spanning avatars' shared record) and goes with a1.
    ok(store.apply(3, &[], &["r4".into(), "r1".into()]), "forget");
    assert_eq!(ok(store.checkpoint(), "checkpoint"), 3);
    assert_eq!(
        names(&*store, &q, &filter("ada"), 10, "after forget"),
        ["a2", "a4", "a5", "a6"]
    );
    assert_eq!(names(&*store, &q, &filter("bob"), 10, "bob forget"), ["b1"]);
    assert_eq!(ok(store.count("ada"), "count"), 4);
    ok(
        store.apply(4, &[], &["no-such-record".into()]),
        "forget absent",
    );
    assert_eq!(ok(store.count("ada"), "count"), 4, "forgetting nothing");
    // Replaying the forget is harmless, and so is replaying the batch before it.
    ok(
        store.apply(3, &[], &["r4".into(), "r1".into()]),
        "forget again",
    );
    assert_eq!(ok(store.count("ada"), "count"), 4);

    // Dimension mismatch: a clear error, nothing written, checkpoint unmoved.
    let mut bad = suite_points();
    bad.truncate(1);
    bad[0].id = chunk_id("bad");
    bad[0].vector = vec![1.0; VECTOR_SUITE_DIM + 1];
    match store.apply(9, &bad, &[]) {
        Ok(()) => panic!("a vector of the wrong dimension must be refused"),
        Err(e) => assert!(
            e.to_string().to_lowercase().contains("dimension"),
            "the error says it is about dimensions: {e}"
        ),
    }
    assert_eq!(ok(store.checkpoint(), "checkpoint"), 3, "failed apply");
    assert_eq!(ok(store.count("ada"), "count"), 4, "failed apply wrote");
    match store.search(&[1.0, 0.0], &filter("ada"), 3) {
        Ok(h) => panic!("a query of the wrong dimension must fail, got {h:?}"),
        Err(e) => assert!(
            e.to_string().to_lowercase().contains("dimension"),
            "the error says it is about dimensions: {e}"
        ),
    }

    // Persistence across reopen.
    drop(store);
    let store = make();
    assert_eq!(
        ok(store.checkpoint(), "checkpoint"),
        3,
        "checkpoint reopened"
    );
    assert_eq!(ok(store.count("ada"), "count"), 4, "points reopened");
    assert_eq!(
        names(&*store, &q, &filter("ada"), 10, "reopened"),
        ["a2", "a4", "a5", "a6"]
    );
    // Upsert replaces a point's vector and payload.
    let mut moved = suite_points();
    moved.truncate(2);
    moved.remove(0);
    moved[0].vector = unit(6);
    moved[0].payload.source = "file:///other.zip".into();
    ok(store.apply(5, &moved, &[]), "replace");
    assert_eq!(ok(store.count("ada"), "count"), 4, "replace adds nothing");
    let hits = ok(store.search(&unit(6), &filter("ada"), 1), "search moved");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, chunk_id("a2"));
    assert_eq!(hits[0].payload.source, "file:///other.zip");
    assert!((hits[0].score - 1.0).abs() < 1e-3);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryBlobStore, MemoryEventLog, VectorHit};

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

    /// A brute-force [`VectorStore`] with injectable bugs: the reference that shows the vector
    /// suite passes a correct store and fails broken ones.
    #[derive(Default)]
    struct BruteForce {
        points: std::sync::Mutex<(Offset, Vec<VectorPoint>)>,
        leak_avatars: bool,
        filter_after_k: bool,
        delete_first_record_only: bool,
        forget_checkpoint: bool,
    }

    impl BruteForce {
        fn matches(&self, p: &ChunkPayload, f: &VectorFilter) -> bool {
            (self.leak_avatars || p.avatar == f.avatar)
                && f.source.as_ref().is_none_or(|s| *s == p.source)
                && f.author
                    .as_ref()
                    .is_none_or(|a| Some(a) == p.author.as_ref())
                && f.since.is_none_or(|s| p.timestamp.is_some_and(|t| t >= s))
                && f.until.is_none_or(|u| p.timestamp.is_some_and(|t| t <= u))
                && (f.kinds.is_empty() || f.kinds.contains(&p.kind))
        }
    }

    impl VectorStore for BruteForce {
        fn apply(
            &self,
            next: Offset,
            points: &[VectorPoint],
            delete_records: &[String],
        ) -> crate::Result<()> {
            if points.iter().any(|p| p.vector.len() != VECTOR_SUITE_DIM) {
                return Err(StoreError::Backend("wrong vector dimension".into()));
            }
            let mut g = self
                .points
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?;
            for p in points {
                g.1.retain(|q| q.id != p.id);
                g.1.push(p.clone());
            }
            let first_only = self.delete_first_record_only;
            g.1.retain(|p| {
                let cited = if first_only {
                    &p.payload.record_ids[..1]
                } else {
                    &p.payload.record_ids[..]
                };
                !cited.iter().any(|r| delete_records.contains(r))
            });
            if !self.forget_checkpoint {
                g.0 = next;
            }
            Ok(())
        }
        fn checkpoint(&self) -> crate::Result<Offset> {
            Ok(self
                .points
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?
                .0)
        }
        fn search(
            &self,
            query: &[f32],
            filter: &VectorFilter,
            k: usize,
        ) -> crate::Result<Vec<VectorHit>> {
            if query.len() != VECTOR_SUITE_DIM {
                return Err(StoreError::Backend("wrong query dimension".into()));
            }
            let g = self
                .points
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?;
            let mut hits: Vec<VectorHit> =
                g.1.iter()
                    .filter(|p| self.filter_after_k || self.matches(&p.payload, filter))
                    .map(|p| VectorHit {
                        id: p.id.clone(),
                        score: dot(query, &p.vector),
                        payload: p.payload.clone(),
                    })
                    .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            hits.truncate(k);
            hits.retain(|h| self.matches(&h.payload, filter));
            Ok(hits)
        }
        fn count(&self, avatar: &str) -> crate::Result<u64> {
            let g = self
                .points
                .lock()
                .map_err(|_| StoreError::Backend("p".into()))?;
            Ok(g.1.iter().filter(|p| p.payload.avatar == avatar).count() as u64)
        }
    }

    /// Forwards to one shared store, so that `make` "reopens" the same data.
    struct Shared(std::sync::Arc<BruteForce>);

    impl VectorStore for Shared {
        fn apply(&self, n: Offset, p: &[VectorPoint], d: &[String]) -> crate::Result<()> {
            self.0.apply(n, p, d)
        }
        fn checkpoint(&self) -> crate::Result<Offset> {
            self.0.checkpoint()
        }
        fn search(&self, q: &[f32], f: &VectorFilter, k: usize) -> crate::Result<Vec<VectorHit>> {
            self.0.search(q, f, k)
        }
        fn count(&self, avatar: &str) -> crate::Result<u64> {
            self.0.count(avatar)
        }
    }

    fn vector_suite_fails_on(store: BruteForce) -> bool {
        let shared = std::sync::Arc::new(store);
        let make = move || -> Box<dyn VectorStore> { Box::new(Shared(shared.clone())) };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vector_store_suite(&make)))
            .is_err()
    }

    #[test]
    fn vector_suite_passes_brute_force_and_catches_broken_stores() {
        assert!(!vector_suite_fails_on(BruteForce::default()), "reference");
        let leak = BruteForce {
            leak_avatars: true,
            ..Default::default()
        };
        assert!(vector_suite_fails_on(leak), "avatar leak");
        let post = BruteForce {
            filter_after_k: true,
            ..Default::default()
        };
        assert!(vector_suite_fails_on(post), "filtering after top-k");
        let first = BruteForce {
            delete_first_record_only: true,
            ..Default::default()
        };
        assert!(vector_suite_fails_on(first), "delete by first record only");
        let cp = BruteForce {
            forget_checkpoint: true,
            ..Default::default()
        };
        assert!(vector_suite_fails_on(cp), "checkpoint not kept");
    }
}
