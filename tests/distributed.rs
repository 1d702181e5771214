//! Distributed mode against a real Kafka-protocol broker (tansu with its SQLite engine, which
//! `infra/kafka.sh` builds and `infra/test.sh` exports as TANSU_BIN):
//!
//! * the fault test: stream a corpus through `avatar ingest --log kafka://…` while a processor
//!   runs; SIGKILL the processor and restart the broker mid-stream; afterwards records, chunks
//!   and datasets equal those of the embedded mode on the same inputs (counts and content);
//! * scaling: two processors in one consumer group split the partitions and together produce
//!   the same stores.

mod common;
use common::kafka::{free_port, metric, Broker};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tansu() -> Option<PathBuf> {
    match std::env::var_os("TANSU_BIN") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("skipping: TANSU_BIN not set (infra/kafka.sh install builds tansu; infra/test.sh sets it)");
            None
        }
    }
}

/// `avatar --data DATA [--log URL]` with the embedding model when it is installed (chunks are
/// then compared too), without otherwise.
fn av(data: &Path, log: Option<&str>) -> Command {
    let mut c = cmd(data);
    if let Some(l) = log {
        c.arg("--log").arg(l);
    }
    match embed_model() {
        Some(m) => c.env("AVATAR_EMBED_MODEL", m),
        None => c.env("AVATAR_EMBED_MODEL", "none"),
    };
    c
}

fn run_ok(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_no_panic(&out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the processors a test started when the test ends, also when it fails (a panicking
/// test must not leave processors running).
#[derive(Default)]
struct Reaper(std::cell::RefCell<Vec<u32>>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in self.0.borrow().iter() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn processor(reap: &Reaper, data: &Path, log: &str, health: Option<u16>) -> Child {
    let mut c = av(data, Some(log));
    c.args(["serve", "processor", "--interval", "200ms"]);
    if let Some(port) = health {
        c.args(["--health", &format!("127.0.0.1:{port}")]);
    }
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("processor.log"))
        .unwrap();
    let child = c.stdout(Stdio::null()).stderr(err).spawn().unwrap();
    reap.0.borrow_mut().push(child.id());
    child
}

/// The two people and their files: Ada gets the demo corpus (and real mail and chats when the
/// fixtures are there), Bob a few notes. Each entry is ingested by its own command.
fn corpus() -> Vec<(&'static str, PathBuf)> {
    let s = samples();
    let mut out: Vec<(&str, PathBuf)> = Vec::new();
    for sub in ["mail", "chats", "notes", "broken"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(s.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|f| ("ada", f)));
    }
    for n in ["tea-cake.txt", "flyology.md", "remedies.md"] {
        out.push(("bob", s.join("notes").join(n)));
    }
    if let Some(fx) = fixtures() {
        out.push(("bob", fx.join("mbox/perceval__mbox_multipart.mbox")));
        out.push(("ada", fx.join("whatsapp/whatstk__pokemon.txt")));
    }
    out
}

fn init(data: &Path, log: Option<&str>) {
    for (id, name, alias) in [
        ("ada", "Ada Lovelace", "ada@example.org"),
        ("bob", "Bob Babbage", "bob@example.org"),
    ] {
        let mut c = av(data, log);
        c.args(["init", "--name", name, "--id", id, "--alias", alias]);
        run_ok(c, "init");
    }
}

fn ingest(data: &Path, log: Option<&str>, who: &str, file: &Path) {
    let mut c = av(data, log);
    c.args(["--avatar", who, "ingest"]).arg(file);
    run_ok(c, "ingest");
}

/// What must be equal between runs: every record (as JSON), the chunk count and the Parquet
/// dataset's bytes, per avatar.
#[derive(Debug, PartialEq)]
struct Outcome {
    records: Vec<String>,
    chunks: serde_json::Value,
    dataset_sha: String,
}

fn outcome(data: &Path, log: Option<&str>, who: &str) -> Outcome {
    let mut c = av(data, log);
    c.args(["--avatar", who, "records", "--json"]);
    let mut records: Vec<String> = run_ok(c, "records").lines().map(String::from).collect();
    records.sort();
    let mut c = av(data, log);
    c.args(["--avatar", who, "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&run_ok(c, "status")).unwrap();
    let me = status["avatars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == who)
        .unwrap()
        .clone();
    let bytes = std::fs::read(data.join("datasets").join(who).join("records.parquet")).unwrap();
    use sha2::Digest;
    Outcome {
        records,
        chunks: me["chunks"].clone(),
        dataset_sha: hex::encode(sha2::Sha256::digest(&bytes)),
    }
}

/// Records of `who` the distributed stores hold right now.
fn record_count(data: &Path, log: &str, who: &str) -> usize {
    // No embedding model: a reader beside the running processor stays out of the vector store.
    let mut c = cmd(data);
    c.args(["--log", log, "--avatar", who, "records", "--json"]);
    match c.output() {
        Ok(o) if o.status.success() => o.stdout.iter().filter(|b| **b == b'\n').count(),
        _ => 0,
    }
}

fn embedded_outcomes(root: &Path) -> Vec<Outcome> {
    let data = root.join("embedded");
    init(&data, None);
    for (who, f) in corpus() {
        ingest(&data, None, who, &f);
    }
    vec![outcome(&data, None, "ada"), outcome(&data, None, "bob")]
}

fn wait_for(expected: &[Outcome], data: &Path, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    for (who, want) in ["ada", "bob"].iter().zip(expected) {
        while record_count(data, log, who) < want.records.len() {
            assert!(
                Instant::now() < deadline,
                "processing did not finish within 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn stop(mut p: Child) {
    // Graceful shutdown: SIGTERM, and it exits 0.
    let _ = Command::new("kill").arg(p.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = p.try_wait().unwrap() {
            assert!(
                status.success(),
                "processor exited with {status} after SIGTERM"
            );
            return;
        }
        assert!(Instant::now() < deadline, "processor ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Partitions the processor with health port `port` owns (0 while it cannot answer).
fn owned(port: u16) -> u64 {
    metric(port, "avatar_processor_partitions").unwrap_or(0)
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn killed_processor_and_restarted_broker_lose_and_duplicate_nothing() {
    let Some(bin) = tansu() else { return };
    let reap = Reaper::default();
    let tmp = tempfile::tempdir().unwrap();
    let expected = embedded_outcomes(tmp.path());
    assert!(
        expected[0].records.len() > 50,
        "the corpus is big enough to matter"
    );

    let mut broker = Broker::start(&bin, &tmp.path().join("broker"));
    let log = broker.url("fault", 4);
    let data = tmp.path().join("distributed");
    init(&data, Some(&log));
    let files = corpus();
    let third = files.len() / 3;
    let health = free_port();
    let mut p = processor(&reap, &data, &log, Some(health));
    for (who, f) in &files[..third] {
        ingest(&data, Some(&log), who, f);
    }
    // Let it get going, then kill it without warning mid-stream.
    let t = Instant::now();
    while record_count(&data, &log, "ada") == 0 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(http_get(health, "/metrics").contains("avatar_processor_partitions"));
    p.kill().unwrap();
    p.wait().unwrap();
    let killed = Instant::now();
    for (who, f) in &files[third..2 * third] {
        ingest(&data, Some(&log), who, f);
    }
    // The replacement starts after the dead member's session (10 s) ran out, as an orchestrator
    // would restart it: tansu 0.6 never finishes a rebalance that waits for a dead member.
    std::thread::sleep(Duration::from_secs(12).saturating_sub(killed.elapsed()));
    // The broker goes down and comes back (same storage) while a new processor runs. It is
    // restarted once the new processor owns the partitions: tansu 0.6 forgets session timers
    // on restart, so a member that died just before would keep its partitions forever (a real
    // Kafka broker expires it after session.timeout.ms either way).
    let health2 = free_port();
    let p = processor(&reap, &data, &log, Some(health2));
    let deadline = Instant::now() + Duration::from_secs(90);
    while owned(health2) != 4 {
        assert!(
            Instant::now() < deadline,
            "the new processor never got the partitions"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    broker.restart();
    for (who, f) in &files[2 * third..] {
        ingest(&data, Some(&log), who, f);
    }
    wait_for(&expected, &data, &log);
    stop(p);
    // A last pass proves nothing was pending (and exercises --once).
    let mut once = av(&data, Some(&log));
    once.args(["serve", "processor", "--once"]);
    run_ok(once, "serve processor --once");

    for (who, want) in ["ada", "bob"].iter().zip(&expected) {
        let got = outcome(&data, Some(&log), who);
        assert_eq!(got.records.len(), want.records.len(), "{who}: record count");
        assert!(got.records == want.records, "{who}: record contents differ");
        assert_eq!(got.chunks, want.chunks, "{who}: chunk count");
        assert_eq!(got.dataset_sha, want.dataset_sha, "{who}: dataset bytes");
    }
}

#[test]
fn two_processors_share_the_partitions_and_agree_with_embedded() {
    let Some(bin) = tansu() else { return };
    let reap = Reaper::default();
    let tmp = tempfile::tempdir().unwrap();
    let expected = embedded_outcomes(tmp.path());
    let broker = Broker::start(&bin, &tmp.path().join("broker"));
    let log = broker.url("scale", 4);
    let data = tmp.path().join("distributed");
    init(&data, Some(&log));
    let (h1, h2) = (free_port(), free_port());
    let p1 = processor(&reap, &data, &log, Some(h1));
    let p2 = processor(&reap, &data, &log, Some(h2));
    for (who, f) in corpus() {
        ingest(&data, Some(&log), who, &f);
    }
    wait_for(&expected, &data, &log);
    // Both took part: the group gave each member partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(h1) + owned(h2) != 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        owned(h1) + owned(h2),
        4,
        "the 4 partitions are owned once in all"
    );
    assert!(
        owned(h1) > 0 && owned(h2) > 0,
        "both processors own partitions"
    );
    assert!(http_get(h1, "/healthz").starts_with("HTTP/1.1 200"));
    stop(p1);
    stop(p2);
    for (who, want) in ["ada", "bob"].iter().zip(&expected) {
        let got = outcome(&data, Some(&log), who);
        assert!(got.records == want.records, "{who}: record contents differ");
        assert_eq!(got.chunks, want.chunks, "{who}: chunk count");
        assert_eq!(got.dataset_sha, want.dataset_sha, "{who}: dataset bytes");
    }
    // Replay for data teams: a partition copied out of Kafka into a new embedded version,
    // and a consumer group moved back to the start.
    let copy = tmp.path().join("replayed");
    let mut c = av(&data, Some(&log));
    c.args(["--avatar", "ada", "replay", "--into"]).arg(&copy);
    run_ok(c, "replay from kafka");
    assert_eq!(outcome(&copy, None, "ada").records, expected[0].records);
    let mut c = av(&data, Some(&log));
    c.args(["replay", "--reset-group", "analytics", "--from-offset", "0"]);
    let out = run_ok(c, "replay --reset-group");
    assert_eq!(
        out.lines().filter(|l| l.contains("-> offset 0")).count(),
        4,
        "{out}"
    );
}

/// `avatar serve query` on a Kafka log serves the avatars of every partition from one
/// process: each request reads its avatar's partition stores, tokens stay scoped, and a memory
/// added through the API is appended for the processor to materialise.
#[test]
fn one_query_service_serves_avatars_of_every_partition() {
    let Some(bin) = tansu() else { return };
    let reap = Reaper::default();
    let tmp = tempfile::tempdir().unwrap();
    let broker = Broker::start(&bin, &tmp.path().join("broker"));
    let log = broker.url("query", 4);
    assert_ne!(
        avatar_adapters::partition_for("ada", 4),
        avatar_adapters::partition_for("bob", 4),
        "the test needs its two avatars in different partitions"
    );
    let data = tmp.path().join("data");
    init(&data, Some(&log));
    ingest(
        &data,
        Some(&log),
        "ada",
        &samples().join("notes/engine-notes.md"),
    );
    ingest(
        &data,
        Some(&log),
        "bob",
        &samples().join("notes/tea-cake.txt"),
    );
    let mut c = cmd(&data);
    c.args(["--log", &log, "serve", "processor", "--once"]);
    run_ok(c, "processor --once");

    let port = free_port();
    let server = cmd(&data)
        .args([
            "--log",
            &log,
            "serve",
            "query",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("query.log")).unwrap())
        .spawn()
        .unwrap();
    reap.0.borrow_mut().push(server.id());
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/healthz")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "no query service: {}",
            std::fs::read_to_string(tmp.path().join("query.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let token = |who: &str, role: &str| {
        let mut c = cmd(&data);
        c.args([
            "--log", &log, "--avatar", who, "token", "create", "--role", role,
        ]);
        run_ok(c, "token create").trim().to_string()
    };
    let get = |path: &str, token: &str| -> (u16, serde_json::Value) {
        match ureq::get(&format!("{url}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
        {
            Ok(r) => (
                r.status(),
                serde_json::from_str(&r.into_string().unwrap()).unwrap(),
            ),
            Err(ureq::Error::Status(code, r)) => (
                code,
                serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or_default(),
            ),
            Err(e) => panic!("{path}: {e}"),
        }
    };
    let (ada, bob) = (token("ada", "viewer"), token("bob", "editor"));
    let (s, avatars) = get("/api/avatars", &ada);
    assert_eq!(s, 200, "{avatars}");
    assert_eq!(
        avatars["avatars"].as_array().map(Vec::len),
        Some(1),
        "{avatars}"
    );
    assert_eq!(avatars["avatars"][0]["id"], "ada");
    let (s, hits) = get("/api/search?avatar=ada&q=engine&mode=bm25", &ada);
    assert_eq!(s, 200, "{hits}");
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "{hits}");
    let (s, hits) = get("/api/search?avatar=bob&q=tea+cake&mode=bm25", &bob);
    assert_eq!(s, 200, "{hits}");
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "{hits}");
    // Ada's token does not open Bob's partition.
    let (s, _) = get("/api/search?avatar=bob&q=tea&mode=bm25", &ada);
    assert!(s == 403 || s == 404, "{s}");

    // A memory through the API goes to Bob's partition; the processor makes it searchable.
    let added = ureq::post(&format!("{url}/api/memories?avatar=bob"))
        .set("Authorization", &format!("Bearer {bob}"))
        .set("Content-Type", "application/json")
        .send_string(r#"{"text": "Grandfather's quincemarmalade took nine quinces."}"#)
        .unwrap();
    assert!(added.status() == 200 || added.status() == 201);
    let mut c = cmd(&data);
    c.args(["--log", &log, "serve", "processor", "--once"]);
    run_ok(c, "processor --once");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, hits) = get("/api/search?avatar=bob&q=quincemarmalade&mode=bm25", &bob);
        if !hits["hits"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the memory never became searchable: {hits}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
