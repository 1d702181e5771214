//! Crash safety: the ingest process is killed with SIGKILL at several points and rerun; the
//! final records are exactly those of a clean run — nothing lost, nothing duplicated.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A corpus big enough that a kill lands in the middle of the work: many chats and mails.
fn corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..60 {
        let mut chat = String::new();
        for m in 0..200 {
            let who = if m % 3 == 0 {
                "Ada Lovelace"
            } else {
                "Mary Somerville"
            };
            chat.push_str(&format!(
                "{:02}/{:02}/2023, {:02}:{:02} - {who}: chat {f} message {m} about engines and looms\n",
                1 + (m % 28),
                1 + (f % 12),
                m % 24,
                m % 60
            ));
            if m % 7 == 0 {
                chat.push_str("a second line of the same message\n");
            }
        }
        std::fs::write(dir.join(format!("WhatsApp Chat with Friend {f}.txt")), chat).unwrap();
        let mut mbox = String::new();
        for m in 0..20 {
            mbox.push_str(&format!(
                "From x@y Mon Jan  1 00:00:00 2024\nFrom: {}\nTo: someone@example.org\nSubject: letter {f}-{m}\nMessage-ID: <{f}-{m}@example.org>\nDate: Mon, 1 Jan 2024 {:02}:00:00 +0000\n\nLetter {m} of batch {f}: the engine computes tables.\n\n",
                if m % 2 == 0 { "Ada Lovelace <ada@example.org>" } else { "Charles <charles@example.org>" },
                m % 24
            ));
        }
        std::fs::write(dir.join(format!("mail-{f}.mbox")), mbox).unwrap();
    }
}

fn records(data: &Path) -> String {
    stdout(&ok(data, &["records", "--json"]))
}

#[test]
fn sigkill_during_ingest_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    corpus(&input);

    let clean = tmp.path().join("clean");
    init_ada(&clean);
    let started = Instant::now();
    ok(&clean, &["ingest", input.to_str().unwrap()]);
    let full = started.elapsed();
    let expected = records(&clean);
    assert_eq!(expected.lines().count(), 60 * 200 + 60 * 20);

    // Kill at several points of one run after another on the same data directory, then let
    // the last run finish.
    let data = tmp.path().join("killed");
    init_ada(&data);
    let mut killed = 0;
    for fraction in [0.05, 0.2, 0.4, 0.6, 0.8] {
        let mut child = cmd(&data)
            .args(["ingest", input.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(fraction).max(Duration::from_millis(20)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            killed += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        killed >= 2,
        "the kills should land while ingest runs (killed {killed} times)"
    );
    ok(&data, &["ingest", input.to_str().unwrap()]);
    let got = records(&data);
    assert_eq!(
        got.lines().count(),
        expected.lines().count(),
        "no loss, no duplicates"
    );
    assert!(
        got == expected,
        "records after crashes differ from a clean run"
    );

    let a = std::fs::read(clean.join("datasets/ada-lovelace/records.parquet")).unwrap();
    let b = std::fs::read(data.join("datasets/ada-lovelace/records.parquet")).unwrap();
    assert!(a == b, "Parquet after crashes differs from a clean run");
    let hits = |d: &Path| {
        stdout(&ok(
            d,
            &["search", "\"message 199\"", "--json", "-k", "100"],
        ))
    };
    assert_eq!(
        json_lines(&ok(
            &data,
            &["search", "\"message 199\"", "--json", "-k", "100"]
        ))
        .len(),
        60
    );
    assert_eq!(hits(&clean).lines().count(), hits(&data).lines().count());
}
