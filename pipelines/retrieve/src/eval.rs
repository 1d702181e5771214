//! Retrieval metrics over a hand-made test set, so a change to the chunker, the embedder or
//! the fusion weights is judged by numbers rather than by a few eyeballed queries.
//!
//! The test set is JSON lines: `{"query": "…", "relevant": ["record id", …]}`.

use crate::{Mode, RetrieveError};
use serde::{Deserialize, Serialize};

/// One line of the queries file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    pub query: String,
    pub relevant: Vec<String>,
    /// Free text for the people who maintain the set (why these records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Parse a JSON-lines queries file; blank lines are skipped, any other bad line is an error
/// naming its line number (a silently skipped query would inflate the scores).
pub fn parse_queries(text: &str) -> Result<Vec<EvalQuery>, RetrieveError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: EvalQuery = serde_json::from_str(line).map_err(|e| RetrieveError::BadQuery {
            line: n + 1,
            message: e.to_string(),
        })?;
        if q.query.trim().is_empty() || q.relevant.is_empty() {
            return Err(RetrieveError::BadQuery {
                line: n + 1,
                message: "a query needs text and at least one relevant record id".into(),
            });
        }
        out.push(q);
    }
    Ok(out)
}

/// Share of the relevant ids found in the first `k` of `ranked` (0 when `relevant` is empty).
pub fn recall_at_k(ranked: &[String], relevant: &[String], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let top = &ranked[..k.min(ranked.len())];
    let found = relevant.iter().filter(|r| top.contains(r)).count();
    found as f64 / relevant.len() as f64
}

/// Reciprocal rank of the first relevant id in `ranked` (0 when none is there): the
/// per-query term whose mean is MRR.
pub fn mrr(ranked: &[String], relevant: &[String]) -> f64 {
    ranked
        .iter()
        .position(|id| relevant.contains(id))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Mean recall@k and MRR over queries.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    k: usize,
    queries: usize,
    recall_sum: f64,
    rr_sum: f64,
}

/// The means, as printed by `avatar eval retrieval`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub queries: usize,
    pub k: usize,
    pub recall_at_k: f64,
    pub mrr: f64,
}

impl Summary {
    /// `{"recall_at_10": …, "mrr": …}` (the key names k).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(format!("recall_at_{}", self.k), self.recall_at_k.into());
        m.insert("mrr".into(), self.mrr.into());
        serde_json::Value::Object(m)
    }
}

impl Eval {
    pub fn new(k: usize) -> Eval {
        Eval {
            k,
            queries: 0,
            recall_sum: 0.0,
            rr_sum: 0.0,
        }
    }

    /// Score one query's ranking. A query without relevant ids is not counted.
    pub fn add(&mut self, ranked: &[String], relevant: &[String]) {
        if relevant.is_empty() {
            return;
        }
        self.queries += 1;
        self.recall_sum += recall_at_k(ranked, relevant, self.k);
        self.rr_sum += mrr(ranked, relevant);
    }

    pub fn summary(&self) -> Summary {
        let n = self.queries.max(1) as f64;
        Summary {
            queries: self.queries,
            k: self.k,
            recall_at_k: self.recall_sum / n,
            mrr: self.rr_sum / n,
        }
    }
}

/// One [`Summary`] per mode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub bm25: Summary,
    pub vector: Summary,
    pub hybrid: Summary,
}

impl EvalReport {
    /// Run every query in every mode. `search(query, mode, k)` returns record ids, best first
    /// (the CLI passes a closure over its stores and [`crate::fuse`]).
    pub fn run<E>(
        queries: &[EvalQuery],
        k: usize,
        mut search: impl FnMut(&str, Mode, usize) -> Result<Vec<String>, E>,
    ) -> Result<EvalReport, E> {
        let mut evals = [Eval::new(k), Eval::new(k), Eval::new(k)];
        for q in queries {
            for (mode, eval) in Mode::ALL.iter().zip(evals.iter_mut()) {
                let ranked = search(&q.query, *mode, k)?;
                eval.add(&ranked, &q.relevant);
            }
        }
        let [bm25, vector, hybrid] = evals.map(|e| e.summary());
        Ok(EvalReport {
            bm25,
            vector,
            hybrid,
        })
    }

    /// `{"bm25":{"recall_at_10":…,"mrr":…},"vector":{…},"hybrid":{…}}`
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bm25": self.bm25.to_json(),
            "vector": self.vector.to_json(),
            "hybrid": self.hybrid.to_json(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recall_counts_only_the_top_k() {
        let ranked = ids(&["a", "b", "c", "d"]);
        assert_eq!(recall_at_k(&ranked, &ids(&["a", "d"]), 2), 0.5);
        assert_eq!(recall_at_k(&ranked, &ids(&["a", "d"]), 10), 1.0);
        assert_eq!(recall_at_k(&ranked, &ids(&["z"]), 10), 0.0);
        assert_eq!(recall_at_k(&ranked, &[], 10), 0.0);
        assert_eq!(recall_at_k(&[], &ids(&["a"]), 10), 0.0);
    }

    #[test]
    fn reciprocal_rank_of_the_first_relevant() {
        let ranked = ids(&["a", "b", "c"]);
        assert_eq!(mrr(&ranked, &ids(&["c", "b"])), 0.5);
        assert_eq!(mrr(&ranked, &ids(&["a"])), 1.0);
        assert_eq!(mrr(&ranked, &ids(&["z"])), 0.0);
    }

    #[test]
    fn eval_averages_and_skips_empty_queries() {
        let mut e = Eval::new(1);
        e.add(&ids(&["a", "b"]), &ids(&["a"]));
        e.add(&ids(&["a", "b"]), &ids(&["b"]));
        e.add(&ids(&["a"]), &[]);
        let s = e.summary();
        assert_eq!(s.queries, 2);
        assert_eq!(s.recall_at_k, 0.5);
        assert_eq!(s.mrr, 0.75);
        assert_eq!(Eval::new(10).summary().mrr, 0.0);
    }

    #[test]
    fn parses_jsonl_and_names_bad_lines() {
        let text = "{\"query\": \"q1\", \"relevant\": [\"a\"]}\n\n{\"query\": \"q2\", \"relevant\": [\"b\", \"c\"], \"note\": \"x\"}\n";
        let q = parse_queries(text).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].relevant, ids(&["b", "c"]));
        let err = parse_queries("{\"query\": \"q\", \"relevant\": [\"a\"]}\nnot json").unwrap_err();
        assert!(
            matches!(err, RetrieveError::BadQuery { line: 2, .. }),
            "{err}"
        );
        let err = parse_queries("{\"query\": \"q\", \"relevant\": []}").unwrap_err();
        assert!(matches!(err, RetrieveError::BadQuery { line: 1, .. }));
        assert!(parse_queries("{\"query\": \"q\", \"relevant\": [\"a\"], \"x\": 1}").is_err());
    }

    #[test]
    fn report_runs_every_mode_and_prints_the_cli_shape() {
        let queries = parse_queries("{\"query\": \"q\", \"relevant\": [\"a\"]}").unwrap();
        let report = EvalReport::run(&queries, 10, |_, mode, _| {
            Ok::<_, ()>(match mode {
                Mode::Bm25 => ids(&["x", "a"]),
                Mode::Vector => ids(&["x"]),
                Mode::Hybrid => ids(&["a"]),
            })
        })
        .unwrap();
        assert_eq!(
            report.to_json(),
            serde_json::json!({
                "bm25": {"recall_at_10": 1.0, "mrr": 0.5},
                "vector": {"recall_at_10": 0.0, "mrr": 0.0},
                "hybrid": {"recall_at_10": 1.0, "mrr": 1.0},
            })
        );
        let failing = EvalReport::run(&queries, 10, |_, _, _| Err::<Vec<String>, _>("down"));
        assert_eq!(failing.unwrap_err(), "down");
    }
}

/// The shipped evaluation set must name records that exist: editing a sample changes its
/// record ids (sha256 of the bytes + position), and a stale id would silently lower scores.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod demo_set {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples");

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    /// The main set (tuned against) and the held-out set (written before the rerank was
    /// tuned, to show it was not fitted to the main set's queries).
    #[test]
    fn every_relevant_id_is_a_demo_record() {
        let mut queries = Vec::new();
        for (file, at_least) in [("retrieval.jsonl", 30), ("retrieval_holdout.jsonl", 12)] {
            let text = std::fs::read_to_string(format!("{ROOT}/eval/{file}")).unwrap();
            let set = parse_queries(&text).unwrap();
            assert!(set.len() >= at_least, "{file}: {} queries", set.len());
            queries.extend(set);
        }
        let mut texts: Vec<&str> = queries.iter().map(|q| q.query.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), queries.len(), "a query is in both sets");

        let mut paths = Vec::new();
        files(&Path::new(ROOT).join("demo"), &mut paths);
        let mut ids = HashSet::new();
        for p in paths {
            let bytes = std::fs::read(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let Ok(parsed) = avatar_formats::parse(&name, None, &bytes) else {
                continue; // the broken samples
            };
            let sha = hex::encode(Sha256::digest(&bytes));
            for n in 0..parsed.items.len() {
                ids.insert(avatar_schemas::artifact_record_id(
                    "ada-lovelace",
                    &sha,
                    n as u32,
                ));
            }
        }
        assert!(
            ids.len() >= 120,
            "the demo corpus has {} records",
            ids.len()
        );
        for q in &queries {
            for id in &q.relevant {
                assert!(ids.contains(id), "{:?}: {id} is not a demo record", q.query);
            }
        }
    }
}
