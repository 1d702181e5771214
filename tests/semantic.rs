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

/// With a Qdrant server (`QDRANT_URL`; `eval "$(infra/qdrant.sh)"` starts one) the same corpus
/// gives the same vector hits and the same retrieval scores as the embedded store, filters run
/// on the server, and `forget` removes the vectors there too.
#[test]
fn a_qdrant_server_answers_as_the_embedded_store_does() {
    let Some(model) = embed_model() else { return };
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("skipped: QDRANT_URL is not set (eval \"$(infra/qdrant.sh)\" starts a server)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |data: &Path, on_server: bool, args: &[&str]| -> std::process::Output {
        let mut c = cmd(data);
        c.env("AVATAR_EMBED_MODEL", &model);
        if on_server {
            c.env("AVATAR_QDRANT_URL", &url);
        } else {
            c.env_remove("AVATAR_QDRANT_URL");
        }
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_panic(&out);
        out
    };
    let embedded = tmp.path().join("embedded");
    let server = tmp.path().join("server");
    for (data, on_server) in [(&embedded, false), (&server, true)] {
        run(
            data,
            on_server,
            &[
                "init",
                "--name",
                "Ada Lovelace",
                "--alias",
                "ada@example.org",
            ],
        );
        run(data, on_server, &["ingest", samples().to_str().unwrap()]);
    }
    // The vectors really are on the server: the data directory has no embedded store.
    assert!(embedded.join("vectors").is_dir());
    assert!(!server.join("vectors").exists());

    let ids = |data: &Path, on_server: bool, args: &[&str]| -> Vec<String> {
        json_lines(&run(data, on_server, args))
            .iter()
            .map(|h| h["record_id"].as_str().unwrap().to_string())
            .collect()
    };
    for query in [
        "betting on racing",
        "the analytical engine",
        "a letter to her mother",
    ] {
        let args = ["search", query, "--mode", "vector", "--json", "-k", "10"];
        let here = ids(&embedded, false, &args);
        assert_eq!(here.len(), 10, "{query}");
        assert_eq!(here, ids(&server, true, &args), "{query}");
    }
    let report = |data: &Path, on_server: bool| -> serde_json::Value {
        serde_json::from_str(&stdout(&run(
            data,
            on_server,
            &["eval", "retrieval", "--json"],
        )))
        .unwrap()
    };
    let (a, b) = (report(&embedded, false), report(&server, true));
    eprintln!("embedded: {a}\nserver:   {b}");
    for mode in ["vector", "hybrid"] {
        for key in ["recall_at_10", "mrr"] {
            let (x, y) = (
                a[mode][key].as_f64().unwrap(),
                b[mode][key].as_f64().unwrap(),
            );
            assert!((x - y).abs() < 1e-9, "{mode} {key}: {x} vs {y}");
        }
    }

    // A filter runs in the server's query, and forget removes the participant's vectors there.
    let william = "William King <william@example.org>";
    let by_william = |data: &Path| -> usize {
        json_lines(&run(
            data,
            true,
            &["search", "horses", "--mode", "vector", "--json", "-k", "50"],
        ))
        .iter()
        .filter(|h| h["author"] == william)
        .count()
    };
    let by_author = [
        "search", "horses", "--mode", "vector", "--json", "--author", william,
    ];
    let filtered = json_lines(&run(&server, true, &by_author));
    assert!(!filtered.is_empty());
    assert!(
        filtered.iter().all(|h| h["author"] == william),
        "{filtered:?}"
    );
    assert!(by_william(&server) > 0);
    run(
        &server,
        true,
        &["forget", "--participant", "William King", "--json"],
    );
    assert_eq!(
        by_william(&server),
        0,
        "forget left William's vectors on the server"
    );
    let after = json_lines(&run(&server, true, &by_author));
    assert!(after.is_empty(), "{after:?}");
}
