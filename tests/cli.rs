//! The CLI contract end to end on the shipped samples: init, ingest, records, search,
//! memory, status.

mod common;
use common::*;

#[test]
fn ingest_samples_then_records_search_memory_status() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let out = ok(&data, &["ingest", samples().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("truncated-result.json"),
        "dead letter reported: {err}"
    );
    assert!(err.contains("scan.png"), "dead letter reported: {err}");

    let records = json_lines(&ok(&data, &["records", "--json"]));
    for r in &records {
        for field in [
            "id",
            "source",
            "format",
            "thread",
            "timestamp",
            "author",
            "author_is_person",
            "text",
        ] {
            assert!(r.get(field).is_some(), "record lacks {field}: {r}");
        }
    }
    let count = |format: &str| records.iter().filter(|r| r["format"] == format).count();
    assert_eq!(count("mbox"), 25, "4 + 21 mails in the sample mboxes");
    assert_eq!(count("whatsapp"), 99, "system lines and media skipped");
    assert_eq!(count("telegram"), 24, "service messages skipped");
    assert_eq!(count("markdown"), 9);
    assert_eq!(count("text"), 2);

    // Identity: Ada's own messages are marked, others' are not.
    let by = |needle: &str| {
        records
            .iter()
            .find(|r| r["text"].as_str().unwrap_or("").contains(needle))
            .unwrap_or_else(|| panic!("no record containing {needle:?}"))
    };
    assert_eq!(by("no pretensions to originate")["author_is_person"], true);
    assert_eq!(by("Come for tea on Thursday")["author_is_person"], false);
    assert_eq!(by("Note G will show")["author_is_person"], true);
    assert_eq!(by("Menabrea's paper is out")["author_is_person"], false);
    // The reply's quoted text is not counted as Ada's writing.
    let reply = by("Note G will show");
    assert!(
        !reply["text"]
            .as_str()
            .unwrap()
            .contains("Would you translate"),
        "quote stripped: {reply}"
    );
    // Timestamps are RFC 3339 UTC; Telegram uses date_unixtime.
    assert_eq!(
        by("Have you finished Note G")["timestamp"],
        "2024-03-20T10:05:00Z"
    );
    assert_eq!(
        by("Did you see my letter")["timestamp"],
        "2024-03-12T19:02:00Z"
    );

    let hits = json_lines(&ok(&data, &["search", "Bernoulli", "--json"]));
    assert!(hits.len() >= 2, "{hits:?}");
    for h in &hits {
        for field in ["record_id", "score", "snippet", "source"] {
            assert!(h.get(field).is_some(), "hit lacks {field}: {h}");
        }
        assert!(
            h["snippet"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("bernoulli"),
            "{h}"
        );
    }
    assert!(json_lines(&ok(&data, &["search", "zzyzx-no-such-word", "--json"])).is_empty());

    ok(
        &data,
        &[
            "memory",
            "add",
            "He mended clocks on Sunday mornings",
            "--by",
            "Ada Lovelace",
        ],
    );
    let hits = json_lines(&ok(&data, &["search", "clocks Sunday", "--json"]));
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["author_is_person"], true);

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&data, &["status", "--json"]))).unwrap();
    let dead = status["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{status}");
    assert_eq!(status["avatars"][0]["records_by_format"]["whatsapp"], 99);
    assert!(status["log"]["end_offset"].as_u64().unwrap() > 0);
    assert_eq!(
        status["log"]["checkpoints"]["sink"],
        status["log"]["end_offset"]
    );

    // Ingesting the same bytes again is a no-op.
    let before = status["log"]["end_offset"].as_u64().unwrap();
    ok(&data, &["ingest", samples().to_str().unwrap()]);
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&data, &["status", "--json"]))).unwrap();
    assert_eq!(status["log"]["end_offset"].as_u64().unwrap(), before);
    assert_eq!(
        json_lines(&ok(&data, &["records", "--json"])).len(),
        records.len() + 1
    );
}

#[test]
fn readable_errors_without_an_avatar_or_with_two() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = cmd(&data).args(["records"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("avatar init"),
        "{out:?}"
    );
    init_ada(&data);
    ok(&data, &["init", "--name", "Charles Babbage"]);
    let out = cmd(&data).args(["records"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--avatar"),
        "{out:?}"
    );
    ok(&data, &["--avatar", "charles-babbage", "records"]);
    let out = cmd(&data)
        .args(["init", "--name", "Ada Lovelace"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = cmd(&data)
        .args(["--avatar", "ada-lovelace", "ingest", "/no/such/path"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/path"));
}

#[test]
fn avatars_do_not_see_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["init", "--name", "Charles Babbage"]);
    ok(
        &data,
        &[
            "--avatar",
            "ada-lovelace",
            "ingest",
            samples().join("notes").to_str().unwrap(),
        ],
    );
    assert!(!json_lines(&ok(
        &data,
        &["--avatar", "ada-lovelace", "search", "Bernoulli", "--json"]
    ))
    .is_empty());
    assert!(json_lines(&ok(
        &data,
        &[
            "--avatar",
            "charles-babbage",
            "search",
            "Bernoulli",
            "--json"
        ]
    ))
    .is_empty());
    assert!(json_lines(&ok(
        &data,
        &["--avatar", "charles-babbage", "records", "--json"]
    ))
    .is_empty());
}

#[test]
fn demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["--quiet", "demo", "--train-steps", "1", "--keep"])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let s = stdout(&out);
    assert!(s.contains("byte-identical"), "{s}");
    assert!(s.contains("Bernoulli"), "{s}");
}

#[test]
fn identity_lists_participants_and_linking_an_alias_marks_existing_records() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&data, &["init", "--name", "Ada Lovelace"]); // no address yet
    ok(
        &data,
        &[
            "ingest",
            samples().join("mail").to_str().unwrap(),
            samples().join("chats").to_str().unwrap(),
        ],
    );
    let mine = |d: &std::path::Path| {
        json_lines(&ok(d, &["records", "--json"]))
            .iter()
            .filter(|r| r["format"] == "mbox" && r["author_is_person"] == true)
            .count()
    };
    assert_eq!(mine(&data), 0, "the mail address is not known yet");
    let people = json_lines(&ok(&data, &["identity", "--json"]));
    let charles = people
        .iter()
        .find(|p| {
            p["aliases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "Charles Babbage")
        })
        .unwrap();
    // The mail author "Charles Babbage <charles@example.org>" and the Telegram "Charles Babbage" are one participant.
    assert!(
        charles["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("charles@example.org")),
        "{charles}"
    );
    ok(&data, &["identity", "link", "ada@example.org", "--person"]);
    assert_eq!(mine(&data), 12, "Ada's sent mails are now hers");
    let people = json_lines(&ok(&data, &["identity", "--json"]));
    assert_eq!(people[0]["is_person"], true);
    // Replay honours the link.
    let copy = tmp.path().join("copy");
    ok(&data, &["replay", "--into", copy.to_str().unwrap()]);
    assert_eq!(mine(&copy), 12);
}

#[test]
fn a_git_repository_is_ingested_commit_by_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("engine");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("note_g.py"), "def bernoulli(n):\n    return n\n").unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=Ada Lovelace",
            "-c",
            "user.email=ada@example.org",
            "commit",
            "-q",
            "-m",
            "Compute the Bernoulli numbers",
        ],
    );
    std::fs::write(repo.join("mill.py"), "def mill():\n    pass\n").unwrap();
    git(&repo, &["add", "."]);
    git(
        &repo,
        &[
            "-c",
            "user.name=Charles Babbage",
            "-c",
            "user.email=charles@example.org",
            "commit",
            "-q",
            "-m",
            "Add the mill",
        ],
    );

    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", repo.to_str().unwrap()]);
    let records = json_lines(&ok(&data, &["records", "--json"]));
    let by = |needle: &str| {
        records
            .iter()
            .find(|r| r["text"].as_str().unwrap().contains(needle))
            .cloned()
    };
    let msg = by("Compute the Bernoulli numbers").expect("commit message record");
    assert_eq!(msg["author_is_person"], true, "{msg}");
    assert!(
        msg["source"].as_str().unwrap().starts_with("git://"),
        "{msg}"
    );
    let code = by("def bernoulli").expect("the code Ada added");
    assert_eq!(code["author_is_person"], true);
    assert_eq!(by("Add the mill").unwrap()["author_is_person"], false);
    // Ingesting the repository again adds nothing.
    let before = json_lines(&ok(&data, &["status", "--json"]))[0]["log"]["end_offset"].clone();
    ok(&data, &["ingest", repo.to_str().unwrap()]);
    assert_eq!(
        json_lines(&ok(&data, &["status", "--json"]))[0]["log"]["end_offset"],
        before
    );
}
