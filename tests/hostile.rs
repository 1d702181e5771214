//! Hostile input end to end (issue 5): a zip bomb, path traversal in archives, deeply nested
//! JSON, an enormous line, invalid UTF-8, malformed MIME and a broken SQLite database, ingested
//! in one run next to a good file, under an address-space limit. Each bad file becomes a dead
//! letter with a reason (or, for an archive, loses only its bad entries); the good file and the
//! good entries are ingested; nothing panics, nothing is written outside the data directory,
//! and memory stays bounded (the limit would turn a runaway allocation into a failed run).

mod common;

use common::{assert_no_panic, cmd, ok};
use std::io::Write;
use std::path::Path;

/// The address space the ingest may use: generous for the binary and its mmaps, far below
/// what inflating the bomb or buffering many copies of the big line would take.
const AS_LIMIT: &str = "3000000000";

fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn bomb(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    z.start_file("notes/zeros.txt", opts).unwrap();
    let block = vec![b'a'; 1 << 20];
    for _ in 0..4096 {
        z.write_all(&block).unwrap(); // 4 GiB of one letter, a few MiB compressed
    }
    z.start_file("notes/fine.md", opts).unwrap();
    z.write_all(b"# Fine\n\nThe GOODENTRY inside the bomb archive.")
        .unwrap();
    z.finish().unwrap();
}

#[test]
fn hostile_files_become_dead_letters_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    ok(&data, &["init", "--name", "Ada Lovelace"]);

    std::fs::write(
        input.join("good.md"),
        "# Good\n\nThe GOODFILE loom weaves flowers.",
    )
    .unwrap();
    bomb(&input.join("bomb.zip"));
    zip_with(
        &input.join("traversal.zip"),
        &[
            ("../../escaped.md", b"# Escaped\n\nESCAPEDTEXT".as_slice()),
            ("/abs/escaped2.md", b"# Escaped\n\nESCAPEDTEXT".as_slice()),
            (
                "ok/inside.md",
                b"# Inside\n\nThe INSIDEENTRY stays.".as_slice(),
            ),
        ],
    );
    // 200k nested arrays in a Telegram-shaped export.
    let mut nested = String::from(r#"{"name":"Chat","type":"personal_chat","id":1,"messages":"#);
    nested.push_str(&"[".repeat(200_000));
    nested.push_str(&"]".repeat(200_000));
    nested.push('}');
    std::fs::write(input.join("result.json"), nested).unwrap();
    // One 64 MiB line.
    let mut line = "word ".repeat(64 << 20 >> 2);
    line.push('\n');
    std::fs::write(input.join("enormous.txt"), line).unwrap();
    // A WhatsApp export with invalid UTF-8 in the middle of a message.
    let mut wa = b"[01/02/2020, 10:00:00] Ada Lovelace: hello \xff\xfe\xc3 there\n".to_vec();
    wa.extend_from_slice(b"[01/02/2020, 10:01:00] Bob: \x80\x80\x80\n");
    std::fs::write(input.join("WhatsApp Chat with Bob.txt"), wa).unwrap();
    // Malformed MIME: an unterminated boundary, nested 5000 levels deep.
    let mut mime = String::from(
        "From: bob@example.org\r\nTo: ada@example.org\r\nSubject: deep\r\nMessage-ID: <deep@x>\r\n",
    );
    for i in 0..5000 {
        mime.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    mime.push_str("Content-Type: text/plain\r\n\r\nbody with no end");
    std::fs::write(input.join("deep.eml"), mime).unwrap();
    // A broken SQLite database where an iMessage chat.db is expected.
    let mut db = b"SQLite format 3\0".to_vec();
    db.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(input.join("chat.db"), db).unwrap();

    // The real run, under the address-space limit (prlimit from util-linux, when present).
    let mut c = if Path::new("/usr/bin/prlimit").exists() {
        let mut c = std::process::Command::new("/usr/bin/prlimit");
        c.arg(format!("--as={AS_LIMIT}"))
            .arg("--")
            .arg(common::bin());
        c.arg("--data").arg(&data).arg("--quiet");
        c.env_remove("AVATAR_DATA").env_remove("AVATAR_ID");
        c.env("AVATAR_EMBED_MODEL", "none");
        c
    } else {
        eprintln!("note: no prlimit; running without the address-space limit");
        cmd(&data)
    };
    let out = c.arg("ingest").arg(&input).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest failed: {err}");
    assert_no_panic(&out);

    let status: serde_json::Value =
        serde_json::from_slice(&ok(&data, &["status", "--json"]).stdout).unwrap();
    let letters = status["dead_letters"].as_array().unwrap();
    let reason_of = |name: &str| -> Option<String> {
        letters
            .iter()
            .find(|d| d.to_string().contains(name))
            .map(|d| d.to_string())
    };
    for name in ["result.json", "deep.eml", "chat.db"] {
        let r = reason_of(name).unwrap_or_else(|| panic!("no dead letter for {name}: {letters:?}"));
        assert!(r.len() > name.len() + 20, "no reason given: {r}");
    }
    assert!(
        reason_of("zeros.txt").is_some() || reason_of("bomb.zip").is_some(),
        "the bomb entry was not refused: {letters:?}"
    );
    let texts = String::from_utf8_lossy(&ok(&data, &["records", "--json"]).stdout).into_owned();
    for good in ["GOODFILE", "GOODENTRY", "INSIDEENTRY"] {
        assert!(texts.contains(good), "{good} was not ingested");
    }
    assert!(
        !texts.contains("ESCAPEDTEXT"),
        "a traversal entry was ingested"
    );
    assert!(!tmp.path().join("escaped.md").exists());
    assert!(!Path::new("/abs/escaped2.md").exists());
    // The WhatsApp chat is ingested with the bad bytes replaced, or dead-lettered: never lost
    // silently.
    assert!(
        texts.contains("hello") || reason_of("WhatsApp").is_some(),
        "the WhatsApp export vanished"
    );
    // The enormous line is searchable or dead-lettered with a reason.
    assert!(texts.contains("enormous") || reason_of("enormous.txt").is_some());
}
