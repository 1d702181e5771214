//! The short load test (issue 4): 100 concurrent clients searching for 3 s against the real
//! `avatar up` on the demo data directory (plus a few asks when the base model is installed),
//! with zero errors. p50/p99 are printed, not asserted: timings belong to the machine. The long
//! run is `cargo bench --profile dev --bench load` (same driver).

#![allow(clippy::unwrap_used)] // tests may unwrap (house rules)

#[path = "../benches/load.rs"]
#[allow(dead_code)] // the bench's `main` and setup are not used here
mod driver;

use driver::{base_model_installed, encode, eval_queries, percentile, Config, Endpoint, Server};
use std::path::Path;
use std::time::Duration;

#[test]
fn a_hundred_clients_for_three_seconds_get_no_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_avatar"));
    // Words-only search: the server starts quicker and the test is about concurrency, not
    // ranking (tests/semantic.rs covers the embedding model).
    let mut server = Server::start_demo(bin, dir.path(), false).unwrap();
    let token = server.token(bin, "viewer").unwrap();
    let queries = eval_queries().unwrap();
    let asks = if base_model_installed() { 4 } else { 0 };
    let cfg = Config {
        clients: 100,
        duration: Duration::from_secs(3),
        ask_percent: 0,
        initial_asks: asks,
        ask_max_tokens: 16,
        client_timeout: Duration::from_secs(120),
    };
    let report = driver::run(&server.url, &token, &queries, &cfg);
    let rendered = report.render();
    println!("{rendered}");

    assert_eq!(
        report.total_errors(),
        0,
        "{rendered}\n{}",
        server.log_text()
    );
    let searches = report.endpoints.get(&Endpoint::Search).unwrap();
    // Every client got at least one answer: nobody was starved for the whole run.
    assert!(
        searches.ok.len() >= cfg.clients - asks,
        "{} searches from {} clients:\n{rendered}",
        searches.ok.len(),
        cfg.clients
    );
    if asks > 0 {
        assert_eq!(
            report.endpoints.get(&Endpoint::Ask).map(|s| s.ok.len()),
            Some(asks),
            "{rendered}"
        );
    }
    assert!(server.alive(), "the server died: {}", server.log_text());
    assert_eq!(server.server_errors().unwrap(), Vec::<String>::new());
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
    assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
    assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
    assert_eq!(percentile(&v[..1], 50.0), Some(Duration::from_millis(1)));
    assert_eq!(percentile(&[], 50.0), None);
}

#[test]
fn queries_are_percent_encoded() {
    assert_eq!(encode("Ada's cake & tea"), "Ada%27s%20cake%20%26%20tea");
    assert_eq!(encode("é"), "%C3%A9");
}
