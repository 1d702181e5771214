use super::*;
use chrono::TimeZone;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/git");
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples/git");

/// Reads a perceval fixture, or `None` (after saying so) when ../shared/fixtures is absent.
fn fixture(file: &str) -> Option<Vec<u8>> {
    if !std::path::Path::new(FIXTURES).is_dir() {
        eprintln!("skipping: ../shared/fixtures not found");
        return None;
    }
    Some(std::fs::read(format!("{FIXTURES}/{file}")).unwrap())
}

fn sample(file: &str) -> Vec<u8> {
    std::fs::read(format!("{SAMPLES}/{file}")).unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
    Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
}

fn texts(p: &Parsed) -> Vec<&str> {
    p.items.iter().map(|i| i.text.as_str()).collect()
}

#[test]
fn perceval_git_log_has_nine_written_commits_and_one_generated_merge() {
    let Some(bytes) = fixture("perceval__git_log.txt") else {
        return;
    };
    let p = parse("perceval__git_log.txt", &bytes).unwrap();
    assert_eq!(p.format, "git-log");
    // 10 commits in the file; the first is `Merge branch 'lzp'` + a Conflicts list (git's words).
    assert_eq!(p.items.len(), 9, "{:?}", texts(&p));
    assert_eq!(p.skipped, 1);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(
        texts(&p),
        [
            "modify aaa/otherthing",
            "rename aaa/otherthing",
            "Create \"deeply\" nested file",
            "Add one final file",
            "Deleted and renamed file",
            "Added new file",
            "Renamed file",
            "Initial commit on test repository",
            "Moving things around",
        ]
    );
    let first = &p.items[0];
    assert_eq!(
        first.message_id.as_deref(),
        Some("51a3b654f252210572297f47597b31527c475fb8")
    );
    // UTF-8 CJK name kept as written.
    let author = first.author.as_deref().unwrap();
    assert!(author.starts_with("Zhongpeng Lin ("), "{author}");
    assert!(author.ends_with(") <lin.zhp@example.com>"), "{author}");
    assert!(!author.contains('\u{fffd}'));
    assert_eq!(first.timestamp, utc(2014, 2, 12, 6, 9, 26));
    assert_eq!(first.title.as_deref(), Some("modify aaa/otherthing"));
    assert_eq!(first.kind, RecordKind::Document);
    assert_eq!(first.thread, "perceval__git_log");
    let eduardo = p
        .items
        .iter()
        .filter(|i| {
            i.author.as_deref() == Some("Eduardo Morais <companheiro.vermelho@example.com>")
        })
        .count();
    assert_eq!(eduardo, 7);
}

#[test]
fn perceval_git_log_last_commit_is_read_too() {
    let Some(bytes) = fixture("perceval__git_log.txt") else {
        return;
    };
    let p = parse("perceval__git_log.txt", &bytes).unwrap();
    // The last commit block is `Moving things around`, a second root dated 2018.
    let moving = p
        .items
        .iter()
        .find(|i| i.text == "Moving things around")
        .expect("Moving things around");
    assert_eq!(moving.timestamp, utc(2018, 1, 9, 14, 30, 49));
    assert_eq!(
        moving.message_id.as_deref(),
        Some("49345fe87bd1dfad7e682f6554f7472c5576a8c7")
    );
}

#[test]
fn perceval_bad_cr_and_bad_encoding() {
    let Some(bytes) = fixture("perceval__git_bad_cr.txt") else {
        return;
    };
    let p = parse("perceval__git_bad_cr.txt", &bytes).unwrap();
    assert_eq!(texts(&p), ["[PATCH] arm: fix SIGBUS handling\n\n)"]);
    assert_eq!(
        p.items[0].author.as_deref(),
        Some("akpm@osdl.org <akpm@osdl.org>")
    );
    assert_eq!(p.items[0].timestamp, utc(2005, 4, 16, 22, 23, 55));

    let bytes = fixture("perceval__git_bad_encoding.txt").unwrap();
    let p = parse("perceval__git_bad_encoding.txt", &bytes).unwrap();
    // 0x93/0x94 are Windows-1252 quotes in an otherwise ASCII log.
    assert_eq!(
        texts(&p),
        ["Calling \u{201c}Open Type\u{201d} (CTRL+SHIFT+T) after startup - performance improvement."]
    );
    assert_eq!(p.items[0].author.as_deref(), Some("rganor <rganor>"));
    assert_eq!(p.items[0].timestamp, utc(2010, 4, 29, 10, 18, 26));
}

#[test]
fn perceval_merges_renames_brackets_and_trailers() {
    let Some(bytes) = fixture("perceval__git_log_merge.txt") else {
        return;
    };
    let p = parse("m", &bytes).unwrap();
    // `Merge tag 'for-linus-v4.8' of …` and `Merge branch 'lzp'`: both git's own words.
    assert_eq!((p.items.len(), p.skipped), (0, 2));

    let p = parse("m", &fixture("perceval__git_log_merge_moved.txt").unwrap()).unwrap();
    assert_eq!((p.items.len(), p.skipped), (0, 2));

    let p = parse("m", &fixture("perceval__git_log_moved.txt").unwrap()).unwrap();
    assert_eq!(texts(&p), ["[backends] Move backends to core sub-package"]);
    assert_eq!(p.items[0].timestamp, utc(2016, 11, 22, 13, 0, 6));
    assert_eq!(
        p.items[0].author.as_deref(),
        Some("John Smith <jsmith@example.com>")
    );

    let p = parse(
        "m",
        &fixture("perceval__git_log_moved_special_files.txt").unwrap(),
    )
    .unwrap();
    assert_eq!(texts(&p), ["Move files between dirs"]);
    assert_eq!(p.items[0].timestamp, utc(2025, 3, 28, 11, 24, 17));

    let p = parse("m", &fixture("perceval__git_log_brackets.txt").unwrap()).unwrap();
    assert_eq!(texts(&p), ["Create commit with a filename with brackets"]);
    assert_eq!(p.items[0].timestamp, utc(2025, 3, 26, 13, 52, 8));

    let p = parse("m", &fixture("perceval__git_log_trailers.txt").unwrap()).unwrap();
    assert_eq!(p.items.len(), 3);
    assert_eq!(
        p.items[0].text,
        "Commit with a list of trailers\n\nSigned-off-by: John Smith <jsmith@example.com>\nMyTrailer: this is my trailer\nSigned-off-by: John Doe <jdoe@example.com>\nReported-by: Jane Doe <jane@example.com>"
    );
    assert_eq!(
        p.items[0].title.as_deref(),
        Some("Commit with a list of trailers")
    );
    assert_eq!(
        p.items[1].text,
        "Commit with a list of core trailers\n\nSigned-off-by: John Smith <jsmith@example.com>\nSigned-off-by: John Doe <jdoe@example.com>"
    );
    assert_eq!(p.items[2].text, "Initial commit on test repository");
}

#[test]
fn perceval_cut_off_log_warns_and_empty_log_is_empty() {
    let Some(bytes) = fixture("perceval__git_log_incompleted.txt") else {
        return;
    };
    let p = parse("i", &bytes).unwrap();
    // A generated merge, then a commit whose headers end the file.
    assert_eq!((p.items.len(), p.skipped), (0, 1));
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("51a3b654f252"), "{:?}", p.warnings);

    let e = parse("e", &fixture("perceval__git_log_empty.txt").unwrap()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Empty);
}

#[test]
fn every_fixture_and_sample_is_sniffed_as_git_log() {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if fixture("perceval__git_log.txt").is_some() {
        for f in [
            "perceval__git_bad_cr.txt",
            "perceval__git_bad_encoding.txt",
            "perceval__git_log.txt",
            "perceval__git_log_brackets.txt",
            "perceval__git_log_incompleted.txt",
            "perceval__git_log_merge.txt",
            "perceval__git_log_merge_moved.txt",
            "perceval__git_log_moved.txt",
            "perceval__git_log_moved_special_files.txt",
            "perceval__git_log_trailers.txt",
        ] {
            files.push((f.to_string(), fixture(f).unwrap()));
        }
    }
    for f in std::fs::read_dir(SAMPLES).unwrap() {
        let path = f.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((name, std::fs::read(&path).unwrap()));
    }
    assert!(files.len() >= 2, "the samples at least");
    for (name, bytes) in files {
        let p = crate::parse(&name, None, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.format, "git-log", "{name}");
    }
}

#[test]
fn format_patch_sample_gives_message_and_added_lines() {
    // Written by `git format-patch -1 --stdout` on a two-commit repository made for this test.
    let p = parse(
        "0001-Use-the-difference-table.patch",
        &sample("0001-Use-the-difference-table.patch"),
    )
    .unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.items.len(), 3);
    let msg = &p.items[0];
    assert_eq!(msg.text, "Use the difference table");
    assert_eq!(
        msg.author.as_deref(),
        Some("Charles Babbage <charles@example.org>")
    );
    assert_eq!(msg.timestamp, utc(2024, 3, 2, 9, 30, 0));
    assert_eq!(
        msg.message_id.as_deref(),
        Some("6a2da22a89b28b48cb7640bbd0eb3552e336deb6")
    );
    let code = &p.items[1];
    // Added lines starting with `--`/`++` are code, not file headers.
    assert_eq!(
        code.text,
        "engine.py\n\n    -- = \"dashes in code\"\n    ++ = \"pluses in code\"\n    return table(n)"
    );
    assert_eq!(code.title.as_deref(), Some("engine.py @ 6a2da22a89b2"));
    assert_eq!(p.items[2].text, "notes.txt\n\nnote");
}

#[test]
fn log_with_patches_sample_gives_messages_and_code() {
    // `git log -p --pretty=fuller` of the same repository: two commits by two authors.
    let p = parse("git_log_p_fuller.txt", &sample("git_log_p_fuller.txt")).unwrap();
    assert_eq!(p.items.len(), 5, "{:?}", texts(&p));
    assert_eq!(p.items[0].text, "Use the difference table");
    assert_eq!(
        p.items[3].text,
        "Add the analytical engine skeleton\n\nThe first sketch: one function, no tables yet."
    );
    assert_eq!(
        p.items[3].author.as_deref(),
        Some("Ada Lovelace <ada@example.org>")
    );
    assert_eq!(p.items[3].timestamp, utc(2024, 3, 1, 9, 0, 0));
    assert_eq!(
        p.items[4].text,
        "engine.py\n\ndef bernoulli(n):\n    \"\"\"Return the n-th Bernoulli number.\"\"\"\n    return 0"
    );
}

#[test]
fn avatar_rendering_with_indented_message_binary_and_truncation() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let text = format!(
        "From {sha} Mon Sep 17 00:00:00 2001\nAuthor: Ada <ada@example.org>\nDate: Fri, 1 Mar 2024 10:00:00 +0100\nSubject: Fix it\nTruncated: patch over 1048576 bytes\n\n    ---\n    diff --git a/x b/x is quoted here\n---\ndiff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\ndiff --git a/a.rs b/a.rs\n--- a/a.rs\n+++ b/a.rs\n@@ -1,0 +1,3 @@\n+fn a() {{}}\n"
    );
    let p = parse("repo/0123456789ab.patch", text.as_bytes()).unwrap();
    assert_eq!(p.items.len(), 2);
    assert_eq!(
        p.items[0].text,
        "Fix it\n\n---\ndiff --git a/x b/x is quoted here"
    );
    assert_eq!(p.items[0].thread, "repo");
    assert_eq!(p.items[1].text, "a.rs\n\nfn a() {}");
    assert_eq!(p.skipped, 1, "the binary file");
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn dates_in_every_git_shape() {
    let want = utc(2014, 2, 12, 6, 10, 39);
    for d in [
        "Tue Feb 11 22:10:39 2014 -0800",
        "Tue, 11 Feb 2014 22:10:39 -0800",
        "2014-02-11 22:10:39 -0800",
        "2014-02-11T22:10:39-08:00",
        "1392185439 -0800",
    ] {
        assert_eq!(parse_date(d), want, "{d}");
    }
    assert_eq!(
        parse_date("Tue Jan 9 15:30:49 2018 +0100"),
        utc(2018, 1, 9, 14, 30, 49)
    );
    assert_eq!(parse_date("yesterday"), None);
}

#[test]
fn looks_like_needs_a_sha() {
    assert!(looks_like(
        "x",
        "\ncommit 456a68ee1407a77f3e804a30dff245bb6c6b872f (HEAD)\n"
    ));
    assert!(looks_like(
        "x",
        "From 456a68ee1407a77f3e804a30dff245bb6c6b872f Mon Sep 17 00:00:00 2001\n"
    ));
    assert!(!looks_like("x", "commit to the plan\n"));
    assert!(!looks_like(
        "x",
        "From ada@example.org Mon Sep 17 00:00:00 2001\n"
    ));
    assert_eq!(repo_name("avatar/0123456789ab.patch"), "avatar");
    assert_eq!(repo_name("log.txt"), "log");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert_eq!(
        parse("x", b"hello\n").unwrap_err().kind,
        ErrorKind::Malformed
    );
    assert_eq!(parse("x", b"  \n").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("x", b"commit \0").unwrap_err().kind,
        ErrorKind::Binary
    );
    // A hunk header promising more lines than the file has.
    let p = parse(
        "x",
        b"commit 456a68ee1407a77f3e804a30dff245bb6c6b872f\nAuthor: A <a@b>\nDate: Tue Feb 11 22:10:39 2014 -0800\n\n    m\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,9 +1,9 @@\n+x\n",
    )
    .unwrap();
    assert_eq!(p.items.len(), 2);
    assert_eq!(p.warnings.len(), 1);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse("x", &bytes);
        }

        #[test]
        fn never_panics_on_log_like_text(body in "(commit [0-9a-f]{40}( [0-9a-f]{40})?\n|Author: [a-z <>@]{0,12}\n|Date: [A-Za-z0-9 :+-]{0,30}\n|Merge: a b\n|\n|    [ -~]{0,20}\n|diff --git a/f b/f\n|@@ -[0-9]{1,2},[0-9]{1,2} \\+[0-9]{1,2},[0-9]{1,2} @@\n|[+ -\\\\][ -~]{0,10}\n|--- a/f\n|\\+\\+\\+ b/f\n){0,40}") {
            let _ = parse("x", body.as_bytes());
        }
    }
}
