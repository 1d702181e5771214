//! A repository made with the `git` CLI in a temporary folder: two authors, a binary file, a
//! rename with an edit, a merge; ingested, then every artifact parsed by `avatar-formats`.
use super::*;
use avatar_runtime::{BlobStore, EventLog, MemoryBlobStore, MemoryEventLog};
use avatar_schemas::{ArtifactReceived, Payload};
use std::process::Command;

fn git(dir: &Path, args: &[&str], who: (&str, &str), date: &str) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", who.0)
        .env("GIT_AUTHOR_EMAIL", who.1)
        .env("GIT_COMMITTER_NAME", who.0)
        .env("GIT_COMMITTER_EMAIL", who.1)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const ADA: (&str, &str) = ("Ada Lovelace", "ada@example.org");
const BOB: (&str, &str) = ("Bob Babbage", "bob@example.org");

/// The history (newest first):
/// 5 merge `Merge branch 'feature'` (Ada)
/// 4 `Rename engine, add a note` on main (Ada): engine.py → analytical.py with one line added
/// 3 `Add the difference table` on feature (Bob): table.py
/// 2 `Add a logo` (Bob): logo.png (binary) + README line
/// 1 `Start the engine` (Ada): engine.py, README
fn make_repo(dir: &Path) {
    let run = |args: &[&str], who, date| git(dir, args, who, date);
    run(
        &["init", "-q", "-b", "main"],
        ADA,
        "2024-03-01T10:00:00+01:00",
    );
    let engine: String = (1..=12).map(|i| format!("line_{i} = {i}\n")).collect();
    std::fs::write(dir.join("engine.py"), &engine).unwrap();
    std::fs::write(dir.join("README"), "The engine.\n").unwrap();
    run(&["add", "."], ADA, "2024-03-01T10:00:00+01:00");
    run(
        &[
            "commit",
            "-q",
            "-m",
            "Start the engine\n\nFirst cut, no tables.",
        ],
        ADA,
        "2024-03-01T10:00:00+01:00",
    );

    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&[0u8; 64]);
    std::fs::write(dir.join("logo.png"), png).unwrap();
    std::fs::write(dir.join("README"), "The engine.\nNow with a logo.\n").unwrap();
    run(&["add", "."], BOB, "2024-03-02T09:00:00+00:00");
    run(
        &["commit", "-q", "-m", "Add a logo"],
        BOB,
        "2024-03-02T09:00:00+00:00",
    );

    run(
        &["checkout", "-q", "-b", "feature"],
        BOB,
        "2024-03-03T09:00:00+00:00",
    );
    std::fs::write(dir.join("table.py"), "def table(n):\n    return [0] * n\n").unwrap();
    run(&["add", "."], BOB, "2024-03-03T09:00:00+00:00");
    run(
        &["commit", "-q", "-m", "Add the difference table"],
        BOB,
        "2024-03-03T09:00:00+00:00",
    );

    run(
        &["checkout", "-q", "main"],
        ADA,
        "2024-03-04T09:00:00+00:00",
    );
    run(
        &["mv", "engine.py", "analytical.py"],
        ADA,
        "2024-03-04T09:00:00+00:00",
    );
    std::fs::write(dir.join("analytical.py"), format!("{engine}carry = True\n")).unwrap();
    run(&["add", "."], ADA, "2024-03-04T09:00:00+00:00");
    run(
        &["commit", "-q", "-m", "Rename engine, add a note"],
        ADA,
        "2024-03-04T09:00:00+00:00",
    );

    run(
        &["merge", "-q", "--no-ff", "--no-edit", "feature"],
        ADA,
        "2024-03-05T09:00:00+00:00",
    );
}

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

#[test]
fn a_repository_becomes_one_parsable_patch_per_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("engine");
    std::fs::create_dir(&dir).unwrap();
    make_repo(&dir);
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let mut seen = Vec::new();
    let report = ingest_git(
        &log,
        &blobs,
        "ada",
        dir.to_str().unwrap(),
        &GitOptions::default(),
        &mut |p| seen.push(p.commits),
    )
    .unwrap();
    assert_eq!(report.artifacts_new, 5, "{:?}", report.rejected);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(seen, [1, 2, 3, 4, 5]);

    let arts = artifacts(&log);
    let canonical = std::fs::canonicalize(&dir).unwrap();
    let mut items = Vec::new();
    let mut patches = Vec::new();
    for (source, a) in &arts {
        assert_eq!(a.format_hint.as_deref(), Some("git-log"));
        assert!(
            a.name.starts_with("engine/") && a.name.ends_with(".patch"),
            "{}",
            a.name
        );
        let sha = source.rsplit_once('#').unwrap().1;
        assert_eq!(source, &format!("git://{}#{sha}", canonical.display()));
        assert_eq!(a.name, format!("engine/{}.patch", &sha[..12]));
        let bytes = blobs.get(&a.sha256).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // The processor's path: the hint names the parser; sniffing must agree.
        let parsed = avatar_formats::parse(&a.name, a.format_hint.as_deref(), &bytes).unwrap();
        let sniffed = avatar_formats::parse(&a.name, None, &bytes).unwrap();
        assert_eq!(parsed, sniffed);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        items.extend(
            parsed
                .items
                .into_iter()
                .map(|i| (i.author, i.title, i.text)),
        );
        patches.push(text);
    }
    // Newest first: the merge, then by commit time.
    assert!(patches[0].contains("Subject: Merge branch 'feature'"));
    assert!(patches[0].contains("Parents: "));
    assert!(!patches[0].contains("diff --git"), "merges carry no diff");
    let ada = Some("Ada Lovelace <ada@example.org>".to_string());
    let bob = Some("Bob Babbage <bob@example.org>".to_string());
    let titles: Vec<(Option<String>, String)> = items
        .iter()
        .map(|(a, t, _)| {
            (
                a.clone(),
                t.clone().unwrap().split(" @ ").next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        titles,
        [
            // The generated merge message is skipped by the parser.
            (ada.clone(), "Rename engine, add a note".to_string()),
            (ada.clone(), "analytical.py".to_string()),
            (bob.clone(), "Add the difference table".to_string()),
            (bob.clone(), "table.py".to_string()),
            (bob.clone(), "Add a logo".to_string()),
            (bob.clone(), "README".to_string()),
            (ada.clone(), "Start the engine".to_string()),
            (ada.clone(), "README".to_string()),
            (ada.clone(), "engine.py".to_string()),
        ]
    );
    let text = |n: usize| items[n].2.as_str();
    // The rename is detected, so only the added line is Ada's in commit 4.
    assert_eq!(text(1), "analytical.py\n\ncarry = True");
    assert!(
        patches[1].contains("rename from engine.py\nrename to analytical.py"),
        "{}",
        patches[1]
    );
    assert_eq!(text(3), "table.py\n\ndef table(n):\n    return [0] * n");
    assert_eq!(text(5), "README\n\nNow with a logo.");
    assert!(
        patches[3].contains("Binary files /dev/null and b/logo.png differ"),
        "{}",
        patches[3]
    );
    assert_eq!(text(6), "Start the engine\n\nFirst cut, no tables.");
    assert!(text(8).starts_with("engine.py\n\nline_1 = 1\n"));
    assert!(
        patches[4].contains("Date: Fri, 01 Mar 2024 10:00:00 +0100")
            || patches[4].contains("Date: Fri, 1 Mar 2024 10:00:00 +0100"),
        "{}",
        patches[4]
    );

    // Same commits, same bytes: a second run stores nothing new.
    let again = ingest_git(
        &log,
        &blobs,
        "ada",
        dir.to_str().unwrap(),
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((again.artifacts_new, again.artifacts_known), (0, 5));
}

#[test]
fn big_patches_are_truncated_and_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("big");
    std::fs::create_dir(&dir).unwrap();
    git(
        &dir,
        &["init", "-q", "-b", "main"],
        ADA,
        "2024-03-01T10:00:00+00:00",
    );
    let big: String = (0..5000).map(|i| format!("row {i}\n")).collect();
    std::fs::write(dir.join("a.txt"), &big).unwrap();
    std::fs::write(dir.join("b.txt"), "small\n").unwrap();
    git(&dir, &["add", "."], ADA, "2024-03-01T10:00:00+00:00");
    git(
        &dir,
        &["commit", "-q", "-m", "Data"],
        ADA,
        "2024-03-01T10:00:00+00:00",
    );
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let opts = GitOptions {
        max_patch_bytes: 4096,
        ..GitOptions::default()
    };
    let report = ingest_git(
        &log,
        &blobs,
        "ada",
        &format!("file://{}", dir.display()),
        &opts,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.artifacts_new, 1);
    let (_, a) = &artifacts(&log)[0];
    let bytes = blobs.get(&a.sha256).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(
            "Truncated: patch over 4096 bytes; the diff stops in a.txt (1 of 2 files not shown)"
        ),
        "{text}"
    );
    assert!(bytes.len() < 4096 + 512);
    let parsed = avatar_formats::parse(&a.name, Some("git-log"), &bytes).unwrap();
    assert_eq!(parsed.items[0].text, "Data");
    assert!(parsed.items[1].text.starts_with("a.txt\n\nrow 0\nrow 1\n"));
    assert!(!parsed.warnings.is_empty());
}

#[test]
fn urls_and_non_repositories_are_refused_clearly() {
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let e = ingest_git(
        &log,
        &blobs,
        "ada",
        "https://github.com/a/b.git",
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, GitError::Remote(_)));
    assert!(
        e.to_string()
            .contains("git clone https://github.com/a/b.git"),
        "{e}"
    );
    let e = ingest_git(
        &log,
        &blobs,
        "ada",
        "git@github.com:a/b.git",
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, GitError::Remote(_)));
    let tmp = tempfile::tempdir().unwrap();
    let e = ingest_git(
        &log,
        &blobs,
        "ada",
        tmp.path().to_str().unwrap(),
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, GitError::NotARepository { .. }), "{e}");
    let e = ingest_git(
        &log,
        &blobs,
        "ada",
        "/no/such/repo",
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(e, GitError::Ingest(IngestError::NotFound(_))),
        "{e}"
    );
    assert_eq!(percent_decode("/a%20b/%zz%2"), "/a b/%zz%2");
}

#[test]
fn an_empty_repository_is_reported_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    git(
        tmp.path(),
        &["init", "-q", "-b", "main"],
        ADA,
        "2024-03-01T10:00:00+00:00",
    );
    let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
    let r = ingest_git(
        &log,
        &blobs,
        "ada",
        tmp.path().to_str().unwrap(),
        &GitOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.artifacts_new, 0);
    assert_eq!(r.rejected.len(), 1);
}
