//! Bad input: truncated, binary, wrong-encoding and empty files become dead letters with a
//! clear reason; nothing panics; the other files of the same run are ingested.

mod common;
use common::*;

#[test]
fn bad_files_become_dead_letters_and_the_rest_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("good.md"), "# Good\n\nThe loom weaves flowers.").unwrap();
    std::fs::write(input.join("empty.txt"), "").unwrap();
    std::fs::write(
        input.join("binary.bin"),
        [0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254],
    )
    .unwrap();
    std::fs::write(
        input.join("latin1.txt"),
        b"Caf\xe9 cr\xe8me, na\xefve \xe0 la fran\xe7aise\n",
    )
    .unwrap();
    std::fs::write(
        input.join("result.json"),
        r#"{"name":"Chat","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date":"2020-01-01T00:00:00","text":"cut"#,
    )
    .unwrap();
    std::fs::write(
        input.join("half.eml"),
        "From: a@example.org\nTo: b@example.org\nSubject: cut\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\nThe beginning of a mail that was cut",
    )
    .unwrap();
    std::fs::write(
        input.join("WhatsApp Chat with Bob.txt"),
        "12/01/2020, 10:00 - Bob: hello\n12/01/2020, 10:01 - Bob: a message cut off in the mid",
    )
    .unwrap();

    let data = tmp.path().join("data");
    init_ada(&data);
    let out = ok(&data, &["ingest", input.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);

    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&data, &["status", "--json"]))).unwrap();
    let dead = status["dead_letters"].as_array().unwrap();
    let reason = |name: &str| {
        dead.iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no dead letter for {name}: {status}"))
            .clone()
    };
    assert_eq!(reason("empty.txt")["error_kind"], "empty");
    assert_eq!(reason("binary.bin")["error_kind"], "binary");
    assert_eq!(reason("latin1.txt")["error_kind"], "encoding");
    assert!(reason("latin1.txt")["reason"]
        .as_str()
        .unwrap()
        .contains("UTF-8"));
    assert_eq!(reason("result.json")["error_kind"], "truncated");
    for d in dead {
        let r = d["reason"].as_str().unwrap();
        assert!(r.len() > 15, "reason too terse: {r}");
        assert!(
            stderr.contains(d["name"].as_str().unwrap()),
            "{} not reported on stderr: {stderr}",
            d["name"]
        );
    }

    let records = json_lines(&ok(&data, &["records", "--json"]));
    let texts: Vec<&str> = records
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("The loom weaves flowers")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("The beginning of a mail")),
        "a cut mail keeps what it has: {texts:?}"
    );
    assert!(texts.iter().any(|t| *t == "hello"), "{texts:?}");
}
