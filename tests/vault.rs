//! A sealed (encrypted) data directory end to end (issue 5, data at rest): after `avatar seal`
//! the disk holds only ciphertext; commands given the key work as before and keep their
//! changes; without the key, or with a wrong one, they fail with a clear message.

mod common;

use common::{assert_no_panic, cmd, files_containing, init_ada, ok, samples};
use std::path::{Path, PathBuf};

fn with_key(data: &Path, key: &Path, args: &[&str]) -> std::process::Output {
    let out = cmd(data)
        .arg("--key-file")
        .arg(key)
        .args(args)
        .output()
        .unwrap();
    assert_no_panic(&out);
    out
}

#[test]
fn a_sealed_data_directory_is_ciphertext_on_disk_and_works_with_its_key() {
    if !Path::new("/dev/shm").is_dir() {
        eprintln!("skipping: no /dev/shm for the in-memory working copy");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = tmp.path().join("key");
    std::fs::write(&key, "correct horse battery staple\n").unwrap();
    init_ada(&data);
    ok(&data, &["ingest", samples().to_str().unwrap()]);
    let before =
        String::from_utf8_lossy(&ok(&data, &["search", "bernoulli", "--json"]).stdout).into_owned();
    assert!(!before.is_empty());
    assert!(!files_containing(&data, "bernoulli").is_empty());

    // Without a key, sealing refuses; with it, only ciphertext is left.
    let out = cmd(&data)
        .arg("seal")
        .env_remove("AVATAR_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a key"));
    let out = with_key(&data, &key, &["seal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("log.db").exists());
    for word in ["bernoulli", "Lovelace", "SQLite format"] {
        assert_eq!(
            files_containing(&data, word),
            Vec::<PathBuf>::new(),
            "{word}"
        );
    }

    // Commands without the key, or with a wrong one, fail clearly and change nothing.
    let sealed = std::fs::read(data.join("sealed.avatar")).unwrap();
    let out = cmd(&data).args(["search", "bernoulli"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is sealed"));
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "tr0ub4dor&3").unwrap();
    let out = with_key(&data, &wrong, &["search", "bernoulli"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong key"));
    assert_eq!(std::fs::read(data.join("sealed.avatar")).unwrap(), sealed);

    // With the key: the same answers, and changes are kept (sealed again).
    let out = with_key(&data, &key, &["search", "bernoulli", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), before);
    let out = with_key(
        &data,
        &key,
        &[
            "memory",
            "add",
            "The QUOKKAMARINE recipe is in the blue tin",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files_containing(&data, "QUOKKAMARINE"),
        Vec::<PathBuf>::new()
    );
    let out = with_key(&data, &key, &["search", "QUOKKAMARINE", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(!files_containing(Path::new("/dev/shm"), "QUOKKAMARINE")
        .iter()
        .any(|p| p.to_string_lossy().contains("avatar-")));

    // Unsealed again, it is a plain data directory.
    let out = with_key(&data, &key, &["unseal"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("sealed.avatar").exists());
    let out = ok(&data, &["search", "QUOKKAMARINE", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}
