//! `avatar serve ingest`: the file-drop inbox and a git repository, polled with `--once`
//! passes (embedded log). Only what is new since the last pass is read; a file that changes is
//! read again; a new commit is ingested. (The IMAP connector is tested in tests/email.rs
//! against Dovecot.)

mod common;
use common::*;
use std::path::Path;

fn pass(data: &Path, config: &Path) -> String {
    stdout(&ok(
        data,
        &[
            "serve",
            "ingest",
            "--connectors",
            config.to_str().unwrap(),
            "--once",
        ],
    ))
}

fn count(data: &Path) -> usize {
    json_lines(&ok(data, &["records", "--json"])).len()
}

#[test]
fn inbox_and_git_connectors_read_only_what_is_new() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(drop.join("sub")).unwrap();
    std::fs::copy(
        samples().join("notes/tea-cake.txt"),
        drop.join("tea-cake.txt"),
    )
    .unwrap();
    std::fs::write(drop.join(".upload.part"), "half a file").unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(
        repo.join("engine.md"),
        "# The engine\nIt weaves algebraic patterns.\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "Notes on the engine"]);
    let config = tmp.path().join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "interval = \"1s\"\n[[inbox]]\navatar = \"ada-lovelace\"\npath = {:?}\n[[git]]\navatar = \"ada-lovelace\"\nrepo = {:?}\n",
            drop.display().to_string(),
            repo.display().to_string()
        ),
    )
    .unwrap();

    let first = pass(&data, &config);
    assert!(first.contains("1 new file(s)"), "{first}");
    assert!(first.contains("1 new commit(s)"), "{first}");
    let after_first = count(&data);
    assert!(after_first >= 2);
    let hits = stdout(&ok(&data, &["search", "algebraic patterns"]));
    assert!(hits.contains("engine"), "the commit is searchable: {hits}");

    // Nothing new: nothing read, nothing added.
    let idle = pass(&data, &config);
    assert!(idle.contains("0 new artifact(s)"), "{idle}");
    assert!(
        !idle.contains("inbox"),
        "unchanged files are not read again: {idle}"
    );
    assert_eq!(count(&data), after_first);

    // A new file, a changed file and a new commit.
    std::fs::copy(
        samples().join("notes/remedies.md"),
        drop.join("sub/remedies.md"),
    )
    .unwrap();
    std::fs::write(
        drop.join("tea-cake.txt"),
        "Tea cake, second version: more butter.\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("loom.md"),
        "Jacquard's loom weaves flowers and leaves.\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "The loom"]);
    let second = pass(&data, &config);
    assert!(second.contains("2 new file(s)"), "{second}");
    assert!(second.contains("1 new commit(s)"), "{second}");
    assert!(count(&data) > after_first);
    let hits = stdout(&ok(&data, &["search", "more butter"]));
    assert!(
        hits.contains("butter"),
        "the changed file was read again: {hits}"
    );
    let state = std::fs::read_to_string(data.join("connectors/state.json")).unwrap();
    assert!(
        !state.contains(".upload.part"),
        "hidden partial uploads are left alone"
    );
}

#[test]
fn a_bad_connectors_file_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let config = tmp.path().join("ingest.toml");
    std::fs::write(
        &config,
        "[[inbox]]\navatar = \"ada-lovelace\"\nfolder = \"/x\"\n",
    )
    .unwrap();
    let out = cmd(&data)
        .args([
            "serve",
            "ingest",
            "--connectors",
            config.to_str().unwrap(),
            "--once",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("folder"), "names the unknown key: {err}");
    assert_no_panic(&out);
}

/// The services' config file: `--config FILE` sets the flags' defaults; the environment and
/// the flags win over it.
#[test]
fn the_config_file_feeds_the_flags_and_the_environment_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::copy(
        samples().join("notes/tea-cake.txt"),
        drop.join("tea-cake.txt"),
    )
    .unwrap();
    let connectors = tmp.path().join("connectors.toml");
    std::fs::write(
        &connectors,
        format!(
            "[[inbox]]\navatar = \"ada-lovelace\"\npath = {:?}\n",
            drop.display().to_string()
        ),
    )
    .unwrap();
    let config = tmp.path().join("avatar.toml");
    std::fs::write(
        &config,
        format!(
            "data = {:?}\n[ingest]\nconnectors = {:?}\n",
            tmp.path().join("elsewhere").display().to_string(),
            connectors.display().to_string()
        ),
    )
    .unwrap();
    // --data (a flag) wins over the file's `data`; [ingest] connectors feeds --connectors.
    let out = ok(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "ingest",
            "--once",
        ],
    );
    assert!(stdout(&out).contains("1 new file(s)"), "{}", stdout(&out));
    assert!(!tmp.path().join("elsewhere").exists());
    // The environment wins over the file.
    let bad = cmd(&data)
        .env("AVATAR_INGEST_CONNECTORS", tmp.path().join("missing.toml"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "ingest",
            "--once",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.toml"));
    // A typo in the file is named.
    std::fs::write(&config, "[procesor]\ngroup = \"x\"\n").unwrap();
    let typo = cmd(&data)
        .args(["--config", config.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(!typo.status.success());
    assert!(String::from_utf8_lossy(&typo.stderr).contains("procesor"));
}
