//! Events per second through ingest → processor, on the embedded SQLite log and on Kafka
//! (tansu, SQLite engine) with 1, 2 and 4 processor instances in one consumer group.
//!
//!   infra/kafka.sh install      # once: builds tansu into ~/.cache/avatar
//!   cargo bench --bench events  # AVATAR_BENCH_FILES=N changes the corpus size (default 600)
//!
//! The corpus is N small notes spread over 8 avatars; each note is one artifact event, which the
//! processor parses into record events. Embedding is off (AVATAR_EMBED_MODEL=none): this measures
//! the log path, not the embedding model (its own bench is `cargo bench -p avatar-embed`).
//! The clock runs from the first `avatar ingest` to the moment every partition is caught up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/kafka.rs"]
mod kafka;
use kafka::{free_port, metric, Broker};

const AVATARS: usize = 8;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_avatar")
}

fn avatar(data: &Path, log: Option<&str>) -> Command {
    let mut c = Command::new(bin());
    c.arg("--data").arg(data).arg("--quiet");
    if let Some(l) = log {
        c.arg("--log").arg(l);
    }
    c.env("AVATAR_EMBED_MODEL", "none").env_remove("AVATAR_LOG");
    c
}

fn run(mut c: Command) {
    let out = c.output().expect("run avatar");
    if !out.status.success() {
        panic!("{:?} failed: {}", c, String::from_utf8_lossy(&out.stderr));
    }
}

fn corpus(root: &Path, files: usize) -> Vec<PathBuf> {
    let words = [
        "engine",
        "bernoulli",
        "numbers",
        "loom",
        "cards",
        "poetry",
        "science",
        "horses",
        "music",
        "operations",
        "variables",
        "tables",
        "letters",
        "garden",
        "tea",
    ];
    let mut dirs = Vec::new();
    for a in 0..AVATARS {
        let d = root.join(format!("corpus/p{a}"));
        std::fs::create_dir_all(&d).expect("corpus dir");
        dirs.push(d);
    }
    for i in 0..files {
        let mut text = format!("# Note {i}\n\n");
        for para in 0..4 {
            for w in 0..40 {
                text.push_str(words[(i * 7 + para * 13 + w * 3) % words.len()]);
                text.push(' ');
            }
            text.push_str(&format!("({i}.{para})\n\n"));
        }
        std::fs::write(dirs[i % AVATARS].join(format!("note-{i:05}.md")), text).expect("write");
    }
    dirs
}

fn init_all(data: &Path, log: Option<&str>) {
    for a in 0..AVATARS {
        let mut c = avatar(data, log);
        c.args([
            "init",
            "--name",
            &format!("Person {a}"),
            "--id",
            &format!("p{a}"),
        ]);
        run(c);
    }
}

fn ingest_all(data: &Path, log: Option<&str>, dirs: &[PathBuf]) {
    for (a, d) in dirs.iter().enumerate() {
        let mut c = avatar(data, log);
        c.args(["--avatar", &format!("p{a}"), "ingest"]).arg(d);
        run(c);
    }
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tansu() -> Option<PathBuf> {
    let p = std::env::var_os("TANSU_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/avatar/tansu-libsql/bin/tansu"))
        })?;
    p.is_file().then_some(p)
}

/// Seconds for the Kafka run with `n` processors (the same events as the SQLite run: identity,
/// artifacts, records).
fn kafka_run(tansu: &Path, root: &Path, dirs: &[PathBuf], files: usize, n: usize) -> f64 {
    let broker = Broker::start(tansu, &root.join(format!("broker{n}")));
    let mut guard = Kill(Vec::new());
    let log = broker.url("bench", 8);
    let data = root.join(format!("kafka{n}"));
    init_all(&data, Some(&log));
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    for p in &ports {
        let mut c = avatar(&data, Some(&log));
        c.args(["serve", "processor", "--interval", "100ms", "--health"])
            .arg(format!("127.0.0.1:{p}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        guard.0.push(c.spawn().expect("start processor"));
    }
    // Wait until the group has handed out every partition before starting the clock.
    let deadline = Instant::now() + Duration::from_secs(120);
    while ports
        .iter()
        .map(|p| metric(*p, "avatar_processor_partitions").unwrap_or(0))
        .sum::<u64>()
        < 8
    {
        assert!(Instant::now() < deadline, "partitions were not assigned");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    ingest_all(&data, Some(&log), dirs);
    loop {
        let done: u64 = ports
            .iter()
            .map(|p| metric(*p, "avatar_processor_artifacts_total").unwrap_or(0))
            .sum();
        let lag: u64 = ports
            .iter()
            .map(|p| metric(*p, "avatar_processor_lag_events").unwrap_or(1))
            .sum();
        if done >= files as u64 && lag == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "kafka run did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t.elapsed().as_secs_f64();
    drop(guard);
    drop(broker);
    secs
}

fn main() {
    let files: usize = std::env::var("AVATAR_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let tmp = std::env::temp_dir().join(format!("avatar-bench-events-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let dirs = corpus(&tmp, files);

    // Embedded: ingest and process in the same command, SQLite log.
    let data = tmp.join("sqlite");
    init_all(&data, None);
    let t = Instant::now();
    ingest_all(&data, None, &dirs);
    let sqlite_secs = t.elapsed().as_secs_f64();
    let mut c = avatar(&data, None);
    c.args(["--avatar", "p0", "status", "--json"]);
    let out = c.output().expect("status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let events = status["log"]["end_offset"].as_u64().unwrap_or(0);
    println!("corpus: {files} notes over {AVATARS} avatars; {events} events in the SQLite log");
    println!(
        "sqlite log, embedded (1 process):   {sqlite_secs:7.2} s  {:8.0} events/s  {:7.0} artifacts/s",
        events as f64 / sqlite_secs,
        files as f64 / sqlite_secs
    );
    let Some(tansu) = tansu() else {
        println!("kafka: skipped (no tansu; run infra/kafka.sh install or set TANSU_BIN)");
        return;
    };
    for n in [1, 2, 4] {
        let secs = kafka_run(&tansu, &tmp, &dirs, files, n);
        println!(
            "kafka (tansu), {n} processor(s):      {secs:7.2} s  {:8.0} events/s  {:7.0} artifacts/s  ({:.2}x the sqlite log)",
            events as f64 / secs,
            files as f64 / secs,
            sqlite_secs / secs
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
