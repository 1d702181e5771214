//! Tar archives built in the test (tar + flate2 writers), mirroring the zip tests: nested
//! folders, traversal, links, bombs, truncation, limits, nesting.
use super::*;
use crate::{ingest_paths, ArchiveLimits, IngestOptions, IngestReport};
use avatar_runtime::{BlobStore, EventLog, MemoryBlobStore, MemoryEventLog};
use avatar_schemas::{ArtifactReceived, Payload};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A header for `name` written byte for byte (the tar crate refuses `..` when asked nicely).
fn header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let raw = &mut h.as_old_mut().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    h
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        if name.ends_with('/') {
            let h = header(name, 0, tar::EntryType::Directory, None);
            b.append(&h, &[][..]).unwrap();
        } else {
            let h = header(name, bytes.len() as u64, tar::EntryType::Regular, None);
            b.append(&h, *bytes).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn ingest(
    dir: &Path,
    file: &str,
    bytes: &[u8],
    opts: &IngestOptions,
) -> (
    IngestReport,
    Vec<(String, ArtifactReceived)>,
    MemoryBlobStore,
) {
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let report = ingest_paths(&log, &blobs, "ada", &[path], opts, &mut |_| {}).unwrap();
    let arts = log
        .read(0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|s| match s.event.payload {
            Payload::ArtifactReceived(a) => Some((s.event.source, a)),
            _ => None,
        })
        .collect();
    (report, arts, blobs)
}

fn canonical(dir: &Path, file: &str) -> PathBuf {
    std::fs::canonicalize(dir.join(file)).unwrap()
}

#[test]
fn tar_gz_entries_in_nested_folders_become_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tar_of(&[
        ("export/", b""),
        ("export/chats/a.txt", b"hello"),
        ("export/notes b.md", b"# notes"),
        ("export/.DS_Store", b"junk"),
    ]);
    let (report, arts, blobs) = ingest(
        tmp.path(),
        "export.tar.gz",
        &gz(&t),
        &IngestOptions::default(),
    );
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let uri = crate::file_uri(&canonical(tmp.path(), "export.tar.gz"));
    let got: Vec<(String, String)> = arts
        .iter()
        .map(|(s, a)| (s.clone(), a.name.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                format!("{uri}#export/chats/a.txt"),
                "export/chats/a.txt".to_string()
            ),
            (
                format!("{uri}#export/notes%20b.md"),
                "export/notes b.md".to_string()
            ),
        ]
    );
    assert_eq!(blobs.get(&arts[0].1.sha256).unwrap(), b"hello");

    // The same archive uncompressed, and under a .tgz name, and gzip without a tar name.
    for (name, bytes) in [
        ("export.tar", t.clone()),
        ("export.tgz", gz(&t)),
        ("download", gz(&t)),
    ] {
        let (report, arts, _) = ingest(tmp.path(), name, &bytes, &IngestOptions::default());
        assert_eq!(arts.len(), 2, "{name}: {:?}", report.rejected);
    }
}

#[test]
fn traversal_and_link_entries_are_rejected_and_siblings_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in [
        ("../../etc/evil", &b"x"[..]),
        ("/abs/evil", b"y"),
        ("ok.txt", b"fine"),
    ] {
        b.append(
            &header(name, body.len() as u64, tar::EntryType::Regular, None),
            body,
        )
        .unwrap();
    }
    b.append(
        &header("link", 0, tar::EntryType::Symlink, Some("/etc/passwd")),
        &[][..],
    )
    .unwrap();
    b.append(
        &header("hard", 0, tar::EntryType::Link, Some("ok.txt")),
        &[][..],
    )
    .unwrap();
    let t = b.into_inner().unwrap();
    let (report, arts, _) = ingest(tmp.path(), "x.tar.gz", &gz(&t), &IngestOptions::default());
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].1.name, "ok.txt");
    let reasons = format!("{:?}", report.rejected);
    assert_eq!(report.rejected.len(), 4, "{reasons}");
    assert!(
        reasons.contains(crate::paths::REASON_TRAVERSAL),
        "{reasons}"
    );
    assert!(reasons.contains(crate::paths::REASON_ABSOLUTE), "{reasons}");
    assert!(reasons.contains("symbolic link entry"), "{reasons}");
    assert!(reasons.contains("hard link entry"), "{reasons}");
}

#[test]
fn gzip_bombs_stop_at_the_ratio_and_sizes_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 20 << 20];
    let t = tar_of(&[
        ("small.txt", b"kept"),
        ("bomb.bin", &zeros),
        ("after.txt", b"after"),
    ]);
    let bomb = gz(&t);
    assert!(bomb.len() < 100 << 10, "{}", bomb.len());
    let (report, arts, _) = ingest(tmp.path(), "bomb.tar.gz", &bomb, &IngestOptions::default());
    let names: Vec<&str> = arts.iter().map(|(_, a)| a.name.as_str()).collect();
    assert_eq!(names, ["small.txt"]);
    let reasons = format!("{:?}", report.rejected);
    assert!(reasons.contains("compression bomb?"), "{reasons}");

    // Per-entry and total limits, on a plain tar (no ratio).
    let t = tar_of(&[
        ("a.txt", &[b'a'; 100]),
        ("b.txt", &[b'b'; 10]),
        ("c.txt", &[b'c'; 60]),
    ]);
    let opts = IngestOptions {
        archive: ArchiveLimits {
            max_entry_bytes: 80,
            max_total_bytes: 100,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let (report, arts, _) = ingest(tmp.path(), "limits.tar", &t, &opts);
    let names: Vec<&str> = arts.iter().map(|(_, a)| a.name.as_str()).collect();
    assert_eq!(names, ["b.txt", "c.txt"]);
    let reasons = format!("{:?}", report.rejected);
    assert!(reasons.contains("max_entry_bytes"), "{reasons}");

    let opts = IngestOptions {
        archive: ArchiveLimits {
            max_entries: 2,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let (report, arts, _) = ingest(tmp.path(), "count.tar", &t, &opts);
    assert_eq!(arts.len(), 2, "c.txt is the third entry");
    assert!(format!("{:?}", report.rejected).contains("max_entries (2)"));
}

#[test]
fn truncated_tar_gz_keeps_what_can_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let t = tar_of(&[
        ("first.txt", b"one"),
        ("second.txt", b"two"),
        ("big.bin", &big),
        ("last.txt", b"x"),
    ]);
    let whole = gz(&t);
    let cut = &whole[..whole.len() / 2];
    let (report, arts, _) = ingest(tmp.path(), "cut.tar.gz", cut, &IngestOptions::default());
    let names: Vec<&str> = arts.iter().map(|(_, a)| a.name.as_str()).collect();
    assert_eq!(names, ["first.txt", "second.txt"]);
    assert!(!report.rejected.is_empty());

    // Not a tar at all, though named like one: stored raw and reported.
    let (report, arts, _) = ingest(
        tmp.path(),
        "fake.tar.gz",
        &gz(b"just text, not a tar"),
        &IngestOptions::default(),
    );
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0].1.name, "fake.tar.gz");
    assert!(
        format!("{:?}", report.rejected).contains("not a readable tar archive"),
        "{:?}",
        report.rejected
    );
}

#[test]
fn nested_archives_open_up_to_max_depth() {
    let tmp = tempfile::tempdir().unwrap();
    let inner = gz(&tar_of(&[("deep.txt", b"deep")]));
    let outer = tar_of(&[("inner.tgz", &inner), ("top.txt", b"top")]);
    let (report, arts, _) = ingest(tmp.path(), "outer.tar", &outer, &IngestOptions::default());
    let uri = crate::file_uri(&canonical(tmp.path(), "outer.tar"));
    let sources: Vec<&str> = arts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        sources,
        [
            format!("{uri}#inner.tgz#deep.txt"),
            format!("{uri}#top.txt")
        ]
    );
    assert!(report.rejected.is_empty());

    let opts = IngestOptions {
        archive: ArchiveLimits {
            max_depth: 0,
            ..ArchiveLimits::default()
        },
        ..IngestOptions::default()
    };
    let (report, arts, _) = ingest(tmp.path(), "outer.tar", &outer, &opts);
    assert_eq!(arts.len(), 1);
    assert!(format!("{:?}", report.rejected).contains("max_depth (0)"));
}

#[test]
fn tar_kind_is_recognised_by_content() {
    let t = tar_of(&[("a.txt", b"a")]);
    assert_eq!(tar_kind("anything", &t), Some(TarKind::Plain));
    assert_eq!(tar_kind("anything", &gz(&t)), Some(TarKind::Gzip));
    assert_eq!(tar_kind("notes.txt.gz", &gz(b"plain text")), None);
    assert_eq!(tar_kind("notes.txt", b"plain text"), None);
}
