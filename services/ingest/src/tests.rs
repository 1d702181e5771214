//! Tests of the whole source against the in-memory stores and folders built per test.
#![allow(clippy::unwrap_used)]

use super::*;
use avatar_runtime::{MemoryBlobStore, MemoryEventLog, Offset, Stored};
use std::fs;
use std::io::{Cursor, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

fn ingest(
    log: &dyn EventLog,
    blobs: &dyn BlobStore,
    paths: &[PathBuf],
    opts: &IngestOptions,
) -> IngestReport {
    ingest_paths(log, blobs, "ada", paths, opts, &mut |_| {}).unwrap()
}

/// (source, artifact) of every artifact event in the log, in log order.
fn artifacts(log: &dyn EventLog) -> Vec<(String, ArtifactReceived)> {
    log.read(0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.event.payload {
            Payload::ArtifactReceived(a) => Some((s.event.source, a)),
            _ => None,
        })
        .collect()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, bytes) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, opts).unwrap();
        } else {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn canonical(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap()
}

fn reasons(report: &IngestReport) -> String {
    format!("{:?}", report.rejected)
}

#[test]
fn folder_walk_is_sorted_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("b/2.txt"), b"two");
    write(&root.join("a/1.txt"), b"one");
    write(&root.join("c.txt"), b"three");
    write(&root.join("a/b c.txt"), b"four");
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let mut seen = Vec::new();
    let report = ingest_paths(
        &log,
        &blobs,
        "ada",
        &[root.join("c.txt"), root.to_path_buf()],
        &IngestOptions::default(),
        &mut |p| seen.push((p.done, p.total)),
    )
    .unwrap();
    assert_eq!(report.artifacts_new, 4, "{report:?}");
    assert_eq!(report.artifacts_known, 0);
    assert!(report.rejected.is_empty(), "{}", reasons(&report));
    assert_eq!(report.bytes, 3 + 3 + 5 + 4);
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
    let base = file_uri(&canonical(root));
    let got: Vec<(String, String)> = artifacts(&log)
        .into_iter()
        .map(|(s, a)| (s, a.name))
        .collect();
    assert_eq!(
        got,
        vec![
            (format!("{base}/a/1.txt"), "1.txt".to_string()),
            (format!("{base}/a/b%20c.txt"), "b c.txt".to_string()),
            (format!("{base}/b/2.txt"), "2.txt".to_string()),
            (format!("{base}/c.txt"), "c.txt".to_string()),
        ]
    );
    for (_, a) in artifacts(&log) {
        assert_eq!(blobs.get(&a.sha256).unwrap().len() as u64, a.size);
        assert_eq!(a.format_hint, None);
    }
}

#[test]
fn same_bytes_twice_is_one_artifact_across_paths_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("x/a.txt"), b"same");
    write(&dir.path().join("y/b.txt"), b"same");
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let opts = IngestOptions::default();
    let first = ingest(&log, &blobs, &[dir.path().to_path_buf()], &opts);
    assert_eq!((first.artifacts_new, first.artifacts_known), (1, 1));
    let second = ingest(&log, &blobs, &[dir.path().to_path_buf()], &opts);
    assert_eq!((second.artifacts_new, second.artifacts_known), (0, 2));
    assert_eq!(artifacts(&log).len(), 1);
    // Another avatar with the same bytes is a different artifact.
    ingest_paths(
        &log,
        &blobs,
        "bob",
        &[dir.path().to_path_buf()],
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(artifacts(&log).len(), 2);
}

#[test]
fn maildir_messages_get_the_eml_hint_and_tmp_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Mail");
    write(&md.join("cur/1.host:2,S"), b"From: a\n\nhi\n");
    write(&md.join("new/2.host"), b"From: b\n\nho\n");
    write(&md.join("tmp/3.host"), b"From: c\n\nbeing delivered\n");
    write(&dir.path().join("notes/cur/plain.txt"), b"not mail");
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let report = ingest(
        &log,
        &blobs,
        &[dir.path().to_path_buf()],
        &IngestOptions::default(),
    );
    assert!(report.rejected.is_empty(), "{}", reasons(&report));
    let hints: Vec<(String, Option<String>)> = artifacts(&log)
        .into_iter()
        .map(|(_, a)| (a.name, a.format_hint))
        .collect();
    assert_eq!(
        hints,
        vec![
            ("1.host:2,S".to_string(), Some("eml".to_string())),
            ("2.host".to_string(), Some("eml".to_string())),
            ("plain.txt".to_string(), None),
        ]
    );
    // A hint the user forces wins.
    let forced = IngestOptions {
        format_hint: Some("text".into()),
        ..IngestOptions::default()
    };
    let log2 = MemoryEventLog::new();
    ingest(&log2, &blobs, &[md.join("cur")], &forced);
    assert_eq!(artifacts(&log2)[0].1.format_hint.as_deref(), Some("text"));
}

#[test]
fn zip_entries_in_nested_folders_become_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    // No .zip extension: recognised by its magic bytes.
    let path = dir.path().join("export");
    write(
        &path,
        &zip_of(&[
            ("export/", b""),
            ("export/inbox/a.txt", b"alpha"),
            ("export/b.txt", b"beta"),
            ("export/.DS_Store", b"junk"),
            ("Mail/cur/9:2,S", b"From: x\n\nmail\n"),
            ("Mail/new/", b""),
        ]),
    );
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let report = ingest(
        &log,
        &blobs,
        std::slice::from_ref(&path),
        &IngestOptions::default(),
    );
    assert!(report.rejected.is_empty(), "{}", reasons(&report));
    assert_eq!(report.artifacts_new, 3);
    let base = file_uri(&canonical(&path));
    let got = artifacts(&log);
    let summary: Vec<(String, String, Option<String>)> = got
        .iter()
        .map(|(s, a)| (s.clone(), a.name.clone(), a.format_hint.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                format!("{base}#export/inbox/a.txt"),
                "export/inbox/a.txt".into(),
                None
            ),
            (format!("{base}#export/b.txt"), "export/b.txt".into(), None),
            (
                format!("{base}#Mail/cur/9:2,S"),
                "Mail/cur/9:2,S".into(),
                Some("eml".into())
            ),
        ]
    );
    assert_eq!(blobs.get(&got[0].1.sha256).unwrap(), b"alpha");
}

#[test]
fn zip_slip_entries_are_rejected_and_siblings_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.zip");
    write(
        &path,
        &zip_of(&[
            ("../evil.txt", b"evil"),
            ("ok.txt", b"fine"),
            ("/etc/cron.d/x", b"evil2"),
            ("a/../../x.txt", b"evil3"),
            ("..\\..\\win.txt", b"evil4"),
            ("C:/Windows/x.txt", b"evil5"),
            ("later.txt", b"also fine"),
        ]),
    );
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let report = ingest(&log, &blobs, &[path], &IngestOptions::default());
    let names: Vec<String> = artifacts(&log).into_iter().map(|(_, a)| a.name).collect();
    assert_eq!(names, vec!["ok.txt", "later.txt"]);
    assert_eq!(report.rejected.len(), 5, "{}", reasons(&report));
    assert!(report.rejected[0].0.ends_with("evil.zip#../evil.txt"));
    assert!(report.rejected[0].1.contains("traversal"));
    assert!(report.rejected[1].1.contains("absolute"));
    assert!(report.rejected[4].1.contains("drive letter"));
    assert!(!blobs
        .contains(&avatar_runtime::sha256_hex(b"evil"))
        .unwrap());
}

/// Offsets of `needle` in `hay`.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn zip_bombs_are_rejected_by_ratio_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 32 << 20];
    let bomb = zip_of(&[("bomb.bin", &zeros), ("ok.txt", b"fine")]);
    write(&dir.path().join("bomb.zip"), &bomb);

    // The same bomb with a header that claims 100 bytes: only the limited read catches it.
    let mut liar = bomb.clone();
    let local = find_all(&liar, b"PK\x03\x04")[0];
    let central = find_all(&liar, b"PK\x01\x02")[0];
    liar[local + 22..local + 26].copy_from_slice(&100u32.to_le_bytes());
    liar[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    write(&dir.path().join("liar.zip"), &liar);

    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let report = ingest(
        &log,
        &blobs,
        &[dir.path().to_path_buf()],
        &IngestOptions::default(),
    );
    let names: Vec<String> = artifacts(&log).into_iter().map(|(_, a)| a.name).collect();
    assert_eq!(names, vec!["ok.txt"], "{}", reasons(&report));
    assert_eq!(report.artifacts_known, 1);
    assert_eq!(report.rejected.len(), 2, "{}", reasons(&report));
    assert!(report.rejected[0].0.ends_with("bomb.zip#bomb.bin"));
    assert!(
        report.rejected[0].1.contains("max_ratio"),
        "{}",
        reasons(&report)
    );
    assert!(report.rejected[1].0.ends_with("liar.zip#bomb.bin"));
    assert!(report.bytes < 1 << 20);

    // Per-entry size limit, on incompressible bytes.
    let noise: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let big = dir.path().join("big/big.zip");
    write(
        &big,
        &zip_of(&[("noise.bin", &noise), ("small.txt", b"small")]),
    );
    let opts = IngestOptions {
        archive: ArchiveLimits {
            max_entry_bytes: 1 << 20,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let report = ingest(&log, &blobs, &[big], &opts);
    assert_eq!(report.artifacts_new, 1);
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].1.contains("max_entry_bytes"),
        "{}",
        reasons(&report)
    );
}

#[test]
fn archive_totals_and_entry_counts_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.zip");
    let names: Vec<String> = (0..5).map(|i| format!("f{i}.txt")).collect();
    let contents: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; 1000]).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&contents)
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    write(&path, &zip_of(&entries));
    let opts = |entries, total| IngestOptions {
        archive: ArchiveLimits {
            max_entries: entries,
            max_total_bytes: total,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        std::slice::from_ref(&path),
        &opts(3, u64::MAX),
    );
    assert_eq!(r.artifacts_new, 3);
    assert_eq!(r.rejected.len(), 1);
    assert!(r.rejected[0].1.contains("max_entries"), "{}", reasons(&r));

    let log = MemoryEventLog::new();
    let r = ingest(&log, &blobs, &[path], &opts(100, 2500));
    assert_eq!(r.artifacts_new, 2);
    assert_eq!(r.rejected.len(), 3);
    assert!(
        r.rejected[0].1.contains("max_total_bytes"),
        "{}",
        reasons(&r)
    );
}

#[test]
fn nested_zips_open_up_to_max_depth() {
    let dir = tempfile::tempdir().unwrap();
    let inner = zip_of(&[("deep.txt", b"deep")]);
    let outer = zip_of(&[("inner.zip", &inner), ("top.txt", b"top")]);
    let path = dir.path().join("outer.zip");
    write(&path, &outer);
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        std::slice::from_ref(&path),
        &IngestOptions::default(),
    );
    assert!(r.rejected.is_empty(), "{}", reasons(&r));
    let base = file_uri(&canonical(&path));
    let got: Vec<(String, String)> = artifacts(&log)
        .into_iter()
        .map(|(s, a)| (s, a.name))
        .collect();
    assert_eq!(
        got,
        vec![
            (format!("{base}#inner.zip#deep.txt"), "deep.txt".into()),
            (format!("{base}#top.txt"), "top.txt".into()),
        ]
    );

    let flat = IngestOptions {
        archive: ArchiveLimits {
            max_depth: 0,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let log = MemoryEventLog::new();
    let r = ingest(&log, &blobs, &[path], &flat);
    assert_eq!(r.artifacts_new, 1);
    assert_eq!(r.rejected.len(), 1);
    assert!(r.rejected[0].0.ends_with("outer.zip#inner.zip"));
    assert!(r.rejected[0].1.contains("max_depth"));
}

#[test]
fn truncated_zip_keeps_what_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let full = zip_of(&[
        ("one.txt", b"first entry"),
        ("two.txt", b"second entry"),
        ("three.txt", &[b'x'; 5000]),
    ]);
    let third = find_all(&full, b"PK\x03\x04")[2];
    let path = dir.path().join("cut.zip");
    write(&path, &full[..third + 40]);
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(&log, &blobs, &[path], &IngestOptions::default());
    let names: Vec<String> = artifacts(&log).into_iter().map(|(_, a)| a.name).collect();
    assert_eq!(names, vec!["one.txt", "two.txt"], "{}", reasons(&r));
    assert!(!r.rejected.is_empty());
    assert!(
        r.rejected.iter().any(|(n, _)| n.contains("cut.zip")),
        "{}",
        reasons(&r)
    );
}

#[test]
fn unreadable_zip_is_stored_raw_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.zip");
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend_from_slice(&[0xff; 10]);
    write(&path, &bytes);
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        std::slice::from_ref(&path),
        &IngestOptions::default(),
    );
    assert_eq!(r.artifacts_new, 1);
    assert_eq!(r.rejected.len(), 1, "{}", reasons(&r));
    assert!(r.rejected[0].1.contains("stored as one raw artifact"));
    let (source, a) = &artifacts(&log)[0];
    assert_eq!(source, &file_uri(&canonical(&path)));
    assert_eq!(a.name, "broken.zip");
    assert_eq!(blobs.get(&a.sha256).unwrap(), bytes);
}

#[test]
fn hidden_files_and_folders_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join(".DS_Store"), b"x");
    write(&dir.path().join(".git/config"), b"y");
    write(&dir.path().join("SOURCES.md"), b"kept");
    let hidden_root = dir.path().join(".named-explicitly");
    write(&hidden_root.join("in.txt"), b"z");
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        &[dir.path().to_path_buf()],
        &IngestOptions::default(),
    );
    let names: Vec<String> = artifacts(&log).into_iter().map(|(_, a)| a.name).collect();
    assert_eq!(names, vec!["SOURCES.md"]);
    assert!(r.rejected.is_empty());
    // A hidden folder the user names is walked.
    let r = ingest(&log, &blobs, &[hidden_root], &IngestOptions::default());
    assert_eq!(r.artifacts_new, 1);
}

#[test]
fn missing_path_fails_before_anything_is_ingested() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.txt"), b"a");
    let missing = dir.path().join("nope");
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let err = ingest_paths(
        &log,
        &blobs,
        "ada",
        &[dir.path().to_path_buf(), missing.clone()],
        &IngestOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(&err, IngestError::NotFound(p) if *p == missing),
        "{err}"
    );
    assert!(err.to_string().contains("does not exist"));
    assert_eq!(log.end().unwrap(), 0);
    assert!(!blobs.contains(&avatar_runtime::sha256_hex(b"a")).unwrap());
    let err = ingest_paths(
        &log,
        &blobs,
        " ",
        &[],
        &IngestOptions::default(),
        &mut |_| {},
    );
    assert!(matches!(err, Err(IngestError::InvalidAvatar(_))));
}

#[test]
fn oversized_files_are_rejected_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("big.txt"), &[b'b'; 100]);
    write(&dir.path().join("small.txt"), b"s");
    let opts = IngestOptions {
        max_file_bytes: 10,
        ..IngestOptions::default()
    };
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(&log, &blobs, &[dir.path().to_path_buf()], &opts);
    assert_eq!(r.artifacts_new, 1);
    assert_eq!(r.rejected.len(), 1);
    assert!(r.rejected[0].0.ends_with("big.txt"));
    assert!(r.rejected[0].1.contains("max_file_bytes"));
}

#[cfg(unix)]
#[test]
fn symlinks_are_reported_unless_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(&outside.path().join("target.txt"), b"target");
    write(&dir.path().join("real.txt"), b"real");
    std::os::unix::fs::symlink(
        outside.path().join("target.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("real.txt"), dir.path().join("again.txt")).unwrap();
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        &[dir.path().to_path_buf()],
        &IngestOptions::default(),
    );
    assert_eq!(r.artifacts_new, 1);
    assert_eq!(r.rejected.len(), 2, "{}", reasons(&r));
    assert!(r.rejected[0].1.contains("symbolic link"));

    let follow = IngestOptions {
        follow_symlinks: true,
        ..IngestOptions::default()
    };
    let log = MemoryEventLog::new();
    let r = ingest(&log, &blobs, &[dir.path().to_path_buf()], &follow);
    assert!(r.rejected.is_empty(), "{}", reasons(&r));
    // `again.txt` resolves to `real.txt`: one file, under its canonical path.
    assert_eq!((r.artifacts_new, r.artifacts_known), (2, 0));
    let sources: Vec<String> = artifacts(&log).into_iter().map(|(s, _)| s).collect();
    assert!(sources.contains(&file_uri(&canonical(&outside.path().join("target.txt")))));
}

/// A log that fails its `fail_on`-th append, then works: a crash in the middle of a run.
struct FlakyLog {
    inner: MemoryEventLog,
    calls: AtomicUsize,
    fail_on: usize,
}

impl EventLog for FlakyLog {
    fn append(&self, events: &[Envelope]) -> avatar_runtime::Result<Vec<Offset>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(StoreError::Backend("disk full".into()));
        }
        self.inner.append(events)
    }
    fn read(&self, from: Offset, max: usize) -> avatar_runtime::Result<Vec<Stored>> {
        self.inner.read(from, max)
    }
    fn end(&self) -> avatar_runtime::Result<Offset> {
        self.inner.end()
    }
    fn checkpoint(&self, name: &str) -> avatar_runtime::Result<Offset> {
        self.inner.checkpoint(name)
    }
    fn commit(&self, name: &str, next: Offset, output: &[Envelope]) -> avatar_runtime::Result<()> {
        self.inner.commit(name, next, output)
    }
}

#[test]
fn batches_survive_a_failed_append_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..300 {
        write(
            &dir.path().join(format!("f{i:03}.txt")),
            format!("file {i}").as_bytes(),
        );
    }
    let log = FlakyLog {
        inner: MemoryEventLog::new(),
        calls: AtomicUsize::new(0),
        fail_on: 2,
    };
    let blobs = MemoryBlobStore::default();
    let paths = [dir.path().to_path_buf()];
    let err = ingest_paths(
        &log,
        &blobs,
        "ada",
        &paths,
        &IngestOptions::default(),
        &mut |_| {},
    );
    assert!(matches!(err, Err(IngestError::Store(_))));
    assert_eq!(log.end().unwrap(), BATCH as u64, "the first batch is kept");
    let r = ingest(&log, &blobs, &paths, &IngestOptions::default());
    assert_eq!((r.artifacts_new, r.artifacts_known), (300 - BATCH, BATCH));
    assert_eq!(log.end().unwrap(), 300);
    assert_eq!(log.calls.load(Ordering::SeqCst), 2 + 2);
}

#[test]
fn memories_are_appended_with_the_memory_source() {
    let log = MemoryEventLog::new();
    let e = add_memory(
        &log,
        "ada",
        "She loved sailing.",
        Some("Summers".into()),
        Some("Bob".into()),
    )
    .unwrap();
    assert_eq!(e.source, MEMORY_SOURCE);
    assert_eq!(e.kind(), "records.memory");
    let stored = log.read(0, 10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event, e);
    match &stored[0].event.payload {
        Payload::Memory(m) => {
            assert_eq!(m.text, "She loved sailing.");
            assert_eq!(m.title.as_deref(), Some("Summers"));
            assert_eq!(m.added_by.as_deref(), Some("Bob"));
        }
        other => panic!("{other:?}"),
    }
    add_memory(&log, "ada", "She loved sailing.", None, None).unwrap();
    assert_eq!(log.end().unwrap(), 2, "memories have no dedup key");
    assert!(matches!(
        add_memory(&log, "ada", "  \n", None, None),
        Err(IngestError::EmptyMemory)
    ));
}

/// Every regular, non-hidden file below `dir`.
fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let t = e.file_type().unwrap();
        if t.is_dir() {
            n += count_files(&e.path());
        } else if t.is_file() {
            n += 1;
        }
    }
    n
}

#[test]
fn real_maildir_fixture_is_ingested_with_hints() {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/maildir"
    ));
    if !root.exists() {
        eprintln!("skipping: ../shared/fixtures not found");
        return;
    }
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest(
        &log,
        &blobs,
        &[root.to_path_buf()],
        &IngestOptions::default(),
    );
    assert!(r.rejected.is_empty(), "{}", reasons(&r));
    assert_eq!(r.artifacts_new + r.artifacts_known, count_files(root));
    let got = artifacts(&log);
    let hinted = |part: &str| {
        got.iter()
            .filter(|(s, _)| s.contains(part))
            .all(|(_, a)| a.format_hint.as_deref() == Some("eml"))
    };
    // `lkml/` has only `cur/` (git drops empty folders): the `:2,` info names it Maildir.
    assert!(hinted("/notmuch/lkml/cur/"));
    assert!(hinted("/notmuch/default/foo/cur/"));
    assert!(hinted("/notmuch/default/bar/baz/new/"));
    let top = got
        .iter()
        .find(|(s, _)| s.ends_with("/notmuch/default/01:2,"))
        .unwrap();
    assert_eq!(top.1.format_hint, None, "not in cur/ or new/");
    assert!(got.iter().filter(|(_, a)| a.format_hint.is_some()).count() > 200);
}

#[test]
fn refused_inputs_are_dead_letters_in_the_log_once() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 32 << 20];
    write(
        &dir.path().join("bomb.zip"),
        &zip_of(&[("bomb.bin", &zeros), ("ok.txt", b"fine")]),
    );
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let dead = |log: &MemoryEventLog| -> Vec<avatar_schemas::DeadLetter> {
        log.read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|s| match s.event.payload {
                Payload::DeadLetter(d) => Some(d),
                _ => None,
            })
            .collect()
    };
    for _ in 0..2 {
        let report = ingest(
            &log,
            &blobs,
            &[dir.path().to_path_buf()],
            &IngestOptions::default(),
        );
        assert_eq!(report.rejected.len(), 1);
        let letters = dead(&log);
        assert_eq!(letters.len(), 1, "re-ingesting repeats no dead letter");
        assert_eq!(letters[0].error_kind, "rejected");
        assert!(letters[0].name.ends_with("bomb.zip#bomb.bin"));
        assert!(
            letters[0].reason.contains("max_ratio"),
            "{}",
            letters[0].reason
        );
    }
    assert_eq!(artifacts(&log).len(), 1);
}
