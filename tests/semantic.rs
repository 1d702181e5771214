//! Semantic memory end to end with the real all-MiniLM-L6-v2 weights (CI fetches them with
//! infra/fetch-models.sh): records are chunked, embedded and stored in qdrant-edge during
//! ingest; vector and hybrid search find paraphrases; both evaluation sets show hybrid ahead of
//! BM25 and vectors alike, on recall@10 and on MRR.

mod common;
use common::*;
use std::path::Path;

#[test]
fn vector_and_hybrid_search_on_the_demo_corpus() {
    let Some(model) = embed_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = |args: &[&str]| {
        let out = cmd(&data)
            .env("AVATAR_EMBED_MODEL", &model)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_panic(&out);
        out
    };
    run(&[
        "init",
        "--name",
        "Ada Lovelace",
        "--alias",
        "ada@example.org",
    ]);
    run(&["ingest", samples().to_str().unwrap()]);

    // A paraphrase with none of the words of the answer: "wager ... horses" is in the corpus.
    let hits = json_lines(&run(&[
        "search",
        "betting on racing",
        "--mode",
        "vector",
        "--json",
        "-k",
        "5",
    ]));
    assert_eq!(hits.len(), 5);
    assert!(
        hits.iter().all(|h| h["vector_rank"].is_number()),
        "{hits:?}"
    );
    let text: String = hits
        .iter()
        .map(|h| h["snippet"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(
        text.contains("horse") || text.contains("wager") || text.contains("derby"),
        "{text}"
    );

    // Filters are applied in the store query: nothing from another author comes back.
    let only = "William King <william@example.org>";
    for h in json_lines(&run(&["search", "horses", "--json", "--author", only])) {
        assert_eq!(h["author"], only);
    }
    // A memory about the query is ranked first.
    run(&[
        "memory",
        "add",
        "Her favourite horse at Epsom was a grey mare called Calculus.",
    ]);
    let hits = json_lines(&run(&[
        "search",
        "which racehorse did she like best",
        "--json",
    ]));
    assert_eq!(hits[0]["memory"], true, "{hits:?}");

    // The main set (samples/eval/retrieval.jsonl, built in) and the held-out set, written
    // before the hybrid rerank was tuned: hybrid must beat both single rankings on both
    // measures, and on queries it was not tuned on.
    let holdout =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/eval/retrieval_holdout.jsonl");
    for extra in [None, Some(holdout.to_str().unwrap())] {
        let mut args = vec!["eval", "retrieval", "--json"];
        if let Some(file) = extra {
            args.extend(["--queries", file]);
        }
        let report: serde_json::Value = serde_json::from_str(&stdout(&run(&args))).unwrap();
        eprintln!("retrieval {extra:?}: {report}");
        let get = |m: &str, key: &str| report[m][key].as_f64().unwrap();
        assert!(
            get("vector", "recall_at_10") > get("bm25", "recall_at_10"),
            "{report}"
        );
        for key in ["recall_at_10", "mrr"] {
            for single in ["bm25", "vector"] {
                assert!(
                    get("hybrid", key) > get(single, key),
                    "hybrid must beat {single} on {key} ({extra:?}): {report}"
                );
            }
        }
    }
}

/// With AVATAR_QDRANT_URL the vectors go to a Qdrant server; one that cannot be reached is a
/// readable error naming it (the server suite itself runs with infra/qdrant.sh).
#[test]
fn an_unreachable_qdrant_server_is_a_clear_error() {
    let Some(model) = embed_model() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    init_ada(&data);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // bound, then dropped: nothing listens there
    let out = cmd(&data)
        .env("AVATAR_EMBED_MODEL", &model)
        .env("AVATAR_QDRANT_URL", format!("http://127.0.0.1:{port}"))
        .args(["search", "engine"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Qdrant server") && err.contains(&port.to_string()),
        "{err}"
    );
    assert_no_panic(&out);
}
