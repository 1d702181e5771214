//! Load test of the query service (issue 4, "must hold"): many concurrent clients on
//! `/api/search` and `/api/ask` against the real embedded server (`avatar up`) for a while, with
//! zero errors. Latency percentiles are printed, never asserted: the machine decides them.
//!
//! Run: `cargo bench --profile dev --bench load` (the dev profile reuses the debug build; the
//! bench profile would rebuild everything in release). Knobs: `AVATAR_LOAD_SECONDS` (30),
//! `AVATAR_LOAD_CLIENTS` (100), `AVATAR_LOAD_TIMEOUT`
//! (300 s per request), `AVATAR_BIN` (a prebuilt `avatar` instead of Cargo's).
//!
//! The same driver backs the short version in `tests/load.rs` (included there by path), so the
//! code below is a library plus a `main`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo's avatar (`avatar demo` creates "Ada Lovelace").
pub const AVATAR: &str = "ada-lovelace";

/// What a run does.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    pub duration: Duration,
    /// Share of requests (0–100) that are asks; the rest are searches.
    pub ask_percent: u32,
    /// Clients with an index below this send one ask before their loop (the short test's "a few
    /// asks" without making every client wait on the model).
    pub initial_asks: usize,
    /// `max_tokens` of each ask: short answers keep the model's queue moving.
    pub ask_max_tokens: usize,
    /// Per request. Generous: asks queue behind one another on a CPU model, and a slow answer
    /// is not an error; no answer is. With 100 closed-loop clients nearly all of them end up
    /// waiting in the ask queue, so an ask waits about `clients x one ask`: minutes on 2 cores.
    pub client_timeout: Duration,
}

impl Config {
    /// The bench's defaults, overridden by `AVATAR_LOAD_SECONDS` / `AVATAR_LOAD_CLIENTS`.
    pub fn from_env() -> Result<Config, String> {
        fn var(name: &str, default: u64) -> Result<u64, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a whole number")),
                Err(_) => Ok(default),
            }
        }
        Ok(Config {
            clients: var("AVATAR_LOAD_CLIENTS", 100)?.max(1) as usize,
            duration: Duration::from_secs(var("AVATAR_LOAD_SECONDS", 30)?),
            ask_percent: 20,
            initial_asks: 0,
            ask_max_tokens: 16,
            client_timeout: Duration::from_secs(var("AVATAR_LOAD_TIMEOUT", 300)?),
        })
    }
}

// ───────────────────────────── the server ─────────────────────────────

/// A demo data directory served by `avatar up`; the server is killed on drop, whatever happens.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// `avatar demo --keep ROOT/demo --train-steps 0`, then `avatar up` on its data on a free
    /// loopback port, waiting for `/healthz`. `embed`: let the server load the embedding model
    /// (hybrid search, as a user gets it) or not (words only: quicker to start).
    pub fn start_demo(bin: &Path, root: &Path, embed: bool) -> Result<Server, String> {
        let keep = root.join("demo");
        let mut demo = avatar(bin, None, embed);
        demo.args(["demo", "--keep"])
            .arg(&keep)
            .args(["--train-steps", "0"]);
        run_ok(demo, "avatar demo")?;
        let data = keep.join("data");
        if !data.is_dir() {
            return Err(format!("avatar demo left no {}", data.display()));
        }

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = root.join("server.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = avatar(bin, Some(&data), embed)
            .args(["up", "--addr", &addr])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut server = Server {
            child,
            url: format!("http://{addr}"),
            data,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "avatar up exited ({status}): {}",
                    server.log_text()
                ));
            }
            if let Ok(r) = ureq::get(&format!("{}/healthz", server.url))
                .timeout(Duration::from_secs(2))
                .call()
            {
                if r.status() == 200 {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no /healthz after 120 s: {}", server.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A fresh token for the demo avatar (`avatar token create`).
    pub fn token(&self, bin: &Path, role: &str) -> Result<String, String> {
        let mut c = avatar(bin, Some(&self.data), false);
        c.args(["--avatar", AVATAR, "token", "create", "--role", role]);
        let out = run_ok(c, "avatar token create")?;
        let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if t.starts_with("avt_") {
            Ok(t)
        } else {
            Err(format!("not a token: {t:?}"))
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running (a crash under load is an error too).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The `avatar_http_requests_total` lines with a 5xx status: the server's own count of the
    /// errors it answered, to cross-check what the clients saw.
    pub fn server_errors(&self) -> Result<Vec<String>, String> {
        let text = ureq::get(&format!("{}/metrics", self.url))
            .timeout(Duration::from_secs(30))
            .call()
            .map_err(|e| format!("GET /metrics: {e}"))?
            .into_string()
            .map_err(|e| format!("GET /metrics: {e}"))?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("avatar_http_requests_total") && l.contains("status=\"5"))
            .map(str::to_string)
            .collect())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn avatar(bin: &Path, data: Option<&Path>, embed: bool) -> Command {
    let mut c = Command::new(bin);
    if let Some(d) = data {
        c.arg("--data").arg(d);
    }
    c.arg("--quiet");
    c.env_remove("AVATAR_DATA").env_remove("AVATAR_ID");
    if !embed {
        c.env("AVATAR_EMBED_MODEL", "none");
    }
    c
}

fn run_ok(mut c: Command, what: &str) -> Result<std::process::Output, String> {
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

/// Whether the default base model is installed (asks answer 503 without it).
pub fn base_model_installed() -> bool {
    std::env::var_os("AVATAR_MODELS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/avatar/models")))
        .is_some_and(|b| b.join("SmolLM2-135M-Instruct").is_dir())
}

/// The retrieval eval's queries (`samples/eval/retrieval.jsonl`): varied, realistic searches.
pub fn eval_queries() -> Result<Vec<String>, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/eval/retrieval.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(q) = v["query"].as_str() {
            out.push(q.to_string());
        }
    }
    if out.is_empty() {
        return Err(format!("no queries in {}", path.display()));
    }
    Ok(out)
}

// ───────────────────────────── the clients ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    Search,
    Ask,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Search => "GET /api/search",
            Endpoint::Ask => "POST /api/ask",
        }
    }
}

/// What one endpoint saw: the latency of every successful request, errors by kind (with the
/// first message of each kind, to say what went wrong).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: Vec<Duration>,
    pub errors: BTreeMap<String, (u64, String)>,
}

impl Stats {
    fn error(&mut self, kind: String, detail: String) {
        self.errors.entry(kind).or_insert((0, detail)).0 += 1;
    }

    fn merge(&mut self, other: Stats) {
        self.ok.extend(other.ok);
        for (k, (n, d)) in other.errors {
            self.errors.entry(k).or_insert((0, d)).0 += n;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|(n, _)| n).sum()
    }

    pub fn requests(&self) -> u64 {
        self.ok.len() as u64 + self.error_count()
    }
}

/// Nearest-rank percentile of sorted latencies (`p` in 0–100).
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A whole run: per endpoint, and how long it took (until the last client finished).
#[derive(Debug, Default)]
pub struct Report {
    pub endpoints: BTreeMap<Endpoint, Stats>,
    pub elapsed: Duration,
    pub clients: usize,
}

impl Report {
    pub fn total_errors(&self) -> u64 {
        self.endpoints.values().map(Stats::error_count).sum()
    }

    /// Requests, errors by kind, p50/p90/p99/max and throughput per endpoint.
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "load: {} clients for {:.1} s\n{:<16} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            self.clients,
            secs,
            "endpoint",
            "requests",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "req/s"
        );
        for (e, st) in &self.endpoints {
            let mut lat = st.ok.clone();
            lat.sort();
            let ms = |p: f64| {
                percentile(&lat, p)
                    .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                    .unwrap_or_else(|| "-".into())
            };
            s.push_str(&format!(
                "{:<16} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9.1}\n",
                e.name(),
                st.requests(),
                st.error_count(),
                ms(50.0),
                ms(90.0),
                ms(99.0),
                ms(100.0),
                st.requests() as f64 / secs
            ));
            for (kind, (n, detail)) in &st.errors {
                s.push_str(&format!("    error {kind}: {n} (first: {detail})\n"));
            }
        }
        s
    }
}

/// xorshift64*: a per-client request mix without a `rand` dependency (reproducible per seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Percent-encoding of a query-string value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One request, timed: Ok(latency) when the answer is a 200 with the body the API promises.
fn one(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    endpoint: Endpoint,
    query: &str,
    cfg: &Config,
) -> Result<Duration, (String, String)> {
    let auth = format!("Bearer {token}");
    let start = Instant::now();
    let res = match endpoint {
        Endpoint::Search => agent
            .get(&format!(
                "{url}/api/search?avatar={AVATAR}&q={}",
                encode(query)
            ))
            .set("Authorization", &auth)
            .call(),
        Endpoint::Ask => {
            let body = serde_json::json!({
                "avatar": AVATAR,
                "question": query,
                "max_tokens": cfg.ask_max_tokens,
                "temperature": 0.7,
            });
            agent
                .post(&format!("{url}/api/ask"))
                .set("Authorization", &auth)
                .set("Content-Type", "application/json")
                .send_string(&body.to_string())
        }
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            return Err((format!("status {code}"), truncate(&body)));
        }
        Err(ureq::Error::Transport(t)) => {
            return Err((format!("transport {:?}", t.kind()), t.to_string()));
        }
    };
    // The whole body counts: a response cut short is an error, not a fast answer.
    let mut body = String::new();
    if let Err(e) = resp.into_reader().read_to_string(&mut body) {
        return Err(("body read".into(), e.to_string()));
    }
    let elapsed = start.elapsed();
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| {
        (
            "body not JSON".to_string(),
            format!("{e}: {}", truncate(&body)),
        )
    })?;
    let well_formed = match endpoint {
        Endpoint::Search => v["hits"].is_array(),
        Endpoint::Ask => v["answer"].is_string() && v["citations"].is_array(),
    };
    if !well_formed {
        return Err(("body malformed".into(), truncate(&body)));
    }
    Ok(elapsed)
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// Runs `cfg.clients` OS threads, each with its own HTTP agent (its own keep-alive
/// connection), looping mixed requests until `cfg.duration` has passed. A request in flight at
/// the deadline is finished and counted.
pub fn run(url: &str, token: &str, queries: &[String], cfg: &Config) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let queries: Arc<Vec<String>> = Arc::new(queries.to_vec());
    let start = Instant::now();
    let mut handles = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        let (stop, queries, cfg) = (Arc::clone(&stop), Arc::clone(&queries), cfg.clone());
        let (url, token) = (url.to_string(), token.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("load-client-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(cfg.client_timeout)
                    .timeout_connect(Duration::from_secs(30))
                    .build();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1000_0001));
                let mut stats: BTreeMap<Endpoint, Stats> = BTreeMap::new();
                let mut first = i < cfg.initial_asks;
                while first || !stop.load(Ordering::Relaxed) {
                    let endpoint = if first || (rng.below(100) as u32) < cfg.ask_percent {
                        Endpoint::Ask
                    } else {
                        Endpoint::Search
                    };
                    first = false;
                    let q = &queries[rng.below(queries.len())];
                    let st = stats.entry(endpoint).or_default();
                    match one(&agent, &url, &token, endpoint, q, &cfg) {
                        Ok(d) => st.ok.push(d),
                        Err((kind, detail)) => st.error(kind, detail),
                    }
                }
                stats
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // A client that never started is an error of the driver, counted as one.
                let mut st = Stats::default();
                st.error("client thread".into(), e.to_string());
                handles.push(std::thread::spawn(move || {
                    BTreeMap::from([(Endpoint::Search, st)])
                }));
            }
        }
    }
    std::thread::sleep(cfg.duration);
    stop.store(true, Ordering::Relaxed);
    let mut report = Report {
        clients: cfg.clients,
        ..Report::default()
    };
    for h in handles {
        match h.join() {
            Ok(stats) => {
                for (e, st) in stats {
                    report.endpoints.entry(e).or_default().merge(st);
                }
            }
            Err(_) => report
                .endpoints
                .entry(Endpoint::Search)
                .or_default()
                .error("client panicked".into(), String::new()),
        }
    }
    report.elapsed = start.elapsed();
    report
}

// ───────────────────────────── the bench ─────────────────────────────

/// Everything a run needs, and what it found; Err only for setup failures.
fn bench() -> Result<u64, String> {
    let cfg = Config::from_env()?;
    let bin = std::env::var_os("AVATAR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_avatar")));
    let root = std::env::temp_dir().join(format!("avatar-load-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let result = (|| {
        let mut cfg = cfg;
        if !base_model_installed() {
            println!("note: no base model (infra/fetch-models.sh smollm2): searches only");
            cfg.ask_percent = 0;
        }
        eprintln!("preparing the demo data directory in {} …", root.display());
        let mut server = Server::start_demo(&bin, &root, true)?;
        let token = server.token(&bin, "viewer")?;
        let queries = eval_queries()?;
        eprintln!(
            "{} clients, {} s, {} % asks (max_tokens {}), {} queries, server {}",
            cfg.clients,
            cfg.duration.as_secs(),
            cfg.ask_percent,
            cfg.ask_max_tokens,
            queries.len(),
            server.url
        );
        let report = run(&server.url, &token, &queries, &cfg);
        print!("{}", report.render());
        let mut errors = report.total_errors();
        if !server.alive() {
            println!("the server died under load:\n{}", server.log_text());
            errors += 1;
        } else {
            let five = server.server_errors()?;
            for l in &five {
                println!("server counted: {l}");
            }
            errors += five.len() as u64;
        }
        let log = server.log_text();
        for l in log.lines().filter(|l| {
            l.contains("panicked") || l.contains("locked") || l.contains("Too many open files")
        }) {
            println!("server log: {l}");
        }
        Ok(errors)
    })();
    let _ = std::fs::remove_dir_all(&root);
    result
}

#[allow(dead_code)] // tests/load.rs includes this file for its driver, not its `main`
fn main() {
    match bench() {
        Ok(0) => println!("load: zero errors"),
        Ok(n) => {
            println!("load: {n} error(s)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("load: setup failed: {e}");
            std::process::exit(2);
        }
    }
}
