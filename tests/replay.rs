//! Replay determinism: `replay --into` rebuilds every store from the log, giving
//! byte-identical Parquet datasets and the same search results.

mod common;
use common::*;

#[test]
fn replay_gives_identical_parquet_and_search_results() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", samples().to_str().unwrap()]);
    ok(
        &data,
        &["memory", "add", "She kept a pet parrot named Polly"],
    );
    if let Some(fx) = fixtures() {
        // Real mail and chats make the dataset big enough to matter.
        ok(
            &data,
            &[
                "ingest",
                fx.join("mbox/perceval__mbox_multipart.mbox")
                    .to_str()
                    .unwrap(),
            ],
        );
        ok(
            &data,
            &[
                "ingest",
                fx.join("whatsapp/whatstk__pokemon.txt").to_str().unwrap(),
            ],
        );
    }
    let copy = tmp.path().join("replayed");
    ok(&data, &["replay", "--into", copy.to_str().unwrap()]);

    let a = std::fs::read(data.join("datasets/ada-lovelace/records.parquet")).unwrap();
    let b = std::fs::read(copy.join("datasets/ada-lovelace/records.parquet")).unwrap();
    assert!(a.len() > 1000);
    assert!(
        a == b,
        "replayed Parquet differs ({} vs {} bytes)",
        a.len(),
        b.len()
    );

    let records = |d: &std::path::Path| stdout(&ok(d, &["records", "--json"]));
    assert_eq!(records(&data), records(&copy));
    for q in ["Bernoulli", "parrot", "tea cake", "engine"] {
        let hits = |d: &std::path::Path| {
            json_lines(&ok(d, &["search", q, "--json"]))
                .into_iter()
                .map(|h| (h["record_id"].clone(), h["snippet"].clone()))
                .collect::<Vec<_>>()
        };
        let original = hits(&data);
        assert!(!original.is_empty(), "no hits for {q}");
        assert_eq!(original, hits(&copy), "search {q:?} differs after replay");
    }
    // The replayed directory holds the same dead letters.
    let dead = |d: &std::path::Path| {
        let s: serde_json::Value =
            serde_json::from_str(&stdout(&ok(d, &["status", "--json"]))).unwrap();
        s["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["reason"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(dead(&data), dead(&copy));

    let out = cmd(&data)
        .args(["replay", "--into", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "replay into a non-empty directory must refuse"
    );
}

/// `replay --from-offset` and `--since` copy only the later inputs: a new version of the stores
/// that starts where the data team asks.
#[test]
fn replay_from_an_offset_or_a_time_keeps_only_later_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", samples().join("mail").to_str().unwrap()]);
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&ok(&data, &["status", "--json"]))).unwrap();
    let cut = status["log"]["end_offset"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = chrono::Utc::now().to_rfc3339();
    ok(
        &data,
        &["ingest", samples().join("notes").to_str().unwrap()],
    );
    let all = json_lines(&ok(&data, &["records", "--json"]));
    let notes = all.iter().filter(|r| r["format"] != "mbox").count();
    assert!(notes > 0 && notes < all.len());
    for (flag, value) in [("--from-offset", cut.to_string()), ("--since", since)] {
        let copy = tmp.path().join(flag.trim_start_matches('-'));
        ok(
            &data,
            &["replay", "--into", copy.to_str().unwrap(), flag, &value],
        );
        let got = json_lines(&ok(&copy, &["records", "--json"]));
        assert_eq!(got.len(), notes, "{flag}: only the notes");
        assert!(got.iter().all(|r| r["format"] != "mbox"), "{flag}");
    }
}
