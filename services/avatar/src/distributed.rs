//! The distributed mode's processor service: `avatar serve processor --log kafka://…`.
//!
//! Each instance joins one consumer group; the broker gives it some of the topic's partitions
//! (an avatar's events all live in one). For every partition it owns, the instance runs the same
//! processor as the embedded mode over that partition (`App::open_kafka`), writing the
//! partition's own stores under `DIR/kafka/<topic>/p<N>/`. Start more instances to scale: the
//! group rebalances, and a partition whose owner dies moves to a survivor after the session
//! timeout, which resumes from the committed checkpoints (nothing lost, nothing doubled: every
//! write downstream of the log is idempotent).

use crate::app::App;
use crate::commands::Ctx;
use anyhow::{bail, Context, Result};
use avatar_adapters::{KafkaConfig, KafkaLog};
use avatar_runtime::{EventLog, RecordStore};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `avatar serve processor`.
#[derive(clap::Args, Debug)]
pub struct ProcessorArgs {
    /// Consumer group to join (instances with the same group share the partitions).
    #[arg(long, default_value = "processor", env = "AVATAR_PROCESSOR_GROUP")]
    pub group: String,
    /// Serve GET /healthz and GET /metrics (Prometheus text) on this address.
    #[arg(long, env = "AVATAR_PROCESSOR_HEALTH")]
    pub health: Option<SocketAddr>,
    /// How long to wait between looks at the log when there is nothing to do.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, env = "AVATAR_PROCESSOR_INTERVAL")]
    pub interval: Duration,
    /// Stop once every partition this instance owns is caught up (for scripts and tests).
    #[arg(long)]
    pub once: bool,
}

pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 500ms, 2s or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("`{s}`: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What /metrics reports.
#[derive(Default)]
struct Metrics {
    partitions: AtomicU64,
    artifacts: AtomicU64,
    records: AtomicU64,
    dead_letters: AtomicU64,
    chunks: AtomicU64,
    errors: AtomicU64,
    lag: AtomicU64,
    healthy: AtomicBool,
}

impl Metrics {
    fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# TYPE avatar_processor_partitions gauge\navatar_processor_partitions {}\n\
             # TYPE avatar_processor_artifacts_total counter\navatar_processor_artifacts_total {}\n\
             # TYPE avatar_processor_records_total counter\navatar_processor_records_total {}\n\
             # TYPE avatar_processor_dead_letters_total counter\navatar_processor_dead_letters_total {}\n\
             # TYPE avatar_processor_chunks_total counter\navatar_processor_chunks_total {}\n\
             # TYPE avatar_processor_errors_total counter\navatar_processor_errors_total {}\n\
             # TYPE avatar_processor_lag_events gauge\navatar_processor_lag_events {}\n",
            g(&self.partitions),
            g(&self.artifacts),
            g(&self.records),
            g(&self.dead_letters),
            g(&self.chunks),
            g(&self.errors),
            g(&self.lag),
        )
    }
}

/// A minimal HTTP responder for probes: one thread, one short response per connection.
fn serve_health(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for health"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let mut reader = BufReader::new(&conn);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path {
                    "/healthz" if metrics.healthy.load(Ordering::Relaxed) => ("200 OK", "ok\n".into()),
                    "/healthz" => ("503 Service Unavailable", "not ready\n".into()),
                    "/metrics" => ("200 OK", metrics.render()),
                    _ => ("404 Not Found", "not found\n".into()),
                };
                let mut w = &conn;
                let _ = write!(
                    w,
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })?;
    Ok(bound)
}

/// The Kafka log this command was given, or a readable error.
pub fn kafka_config(ctx: &Ctx, command: &str) -> Result<KafkaConfig> {
    match &ctx.log {
        Some(cfg) => Ok(cfg.clone()),
        None => bail!(
            "`{command}` runs on a Kafka log: pass --log kafka://HOST:PORT (or set AVATAR_LOG); \
             with the embedded log, `avatar up` does the processing"
        ),
    }
}

/// One owned partition: its stores, and the lock that keeps a second owner out during a
/// rebalance.
struct Owned {
    app: App,
    _lock: File,
}

fn open_partition(ctx: &Ctx, kafka: &Arc<KafkaLog>, p: i32) -> Result<Option<Owned>> {
    let log = kafka.partition(p)?;
    let dir = App::partition_dir(&ctx.data, &log);
    std::fs::create_dir_all(&dir)?;
    let lock = File::create(dir.join(".owner"))?;
    match lock.try_lock() {
        Ok(()) => {}
        // The previous owner is still finishing its batch; try again on the next round.
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let app = App::open_kafka(&ctx.data, log, crate::app::Vectors::Own)?;
    Ok(Some(Owned { app, _lock: lock }))
}

/// Events of `app`'s partition that some consumer has not processed yet.
fn lag(app: &App) -> Result<u64> {
    let end = app.log.end()?;
    let mut at = app
        .log
        .checkpoint(avatar_processor::PARSE)?
        .min(app.records.checkpoint(avatar_processor::SINK)?);
    if let Some(s) = &app.semantic {
        at = at.min(s.store.checkpoint()?);
    }
    Ok(end.saturating_sub(at))
}

pub fn serve_processor(ctx: &Ctx, args: &ProcessorArgs) -> Result<()> {
    let cfg = kafka_config(ctx, "serve processor")?;
    let kafka = KafkaLog::connect(&cfg)
        .with_context(|| format!("cannot connect to Kafka at {}", cfg.brokers))?;
    let member = kafka.join(&args.group)?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.health {
        let bound = serve_health(addr, Arc::clone(&metrics))?;
        eprintln!("health and metrics on http://{bound}/healthz and /metrics");
    }
    let stop = avatar_email::shutdown_flag();
    eprintln!(
        "processor in group `{}` on {} topic {} ({} partitions); Ctrl-C or SIGTERM stops it",
        args.group,
        cfg.brokers,
        cfg.topic,
        kafka.partitions()
    );
    let mut owned: HashMap<i32, Owned> = HashMap::new();
    let mut ever_owned = false;
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let parts = match member.poll(Duration::from_millis(100)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("warning: {e}");
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                avatar_email::sleep_unless(&stop, Duration::from_secs(1));
                continue;
            }
        };
        owned.retain(|p, _| parts.contains(p));
        metrics
            .partitions
            .store(parts.len() as u64, Ordering::Relaxed);
        ever_owned |= !parts.is_empty();
        let mut busy = false;
        let mut healthy = true;
        let mut total_lag = 0;
        for &p in &parts {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = owned.entry(p) {
                match open_partition(ctx, &kafka, p) {
                    Ok(Some(o)) => {
                        slot.insert(o);
                    }
                    Ok(None) => {
                        busy = true;
                        continue;
                    }
                    Err(e) => {
                        eprintln!("warning: partition {p}: {e:#}");
                        metrics.errors.fetch_add(1, Ordering::Relaxed);
                        healthy = false;
                        continue;
                    }
                }
            }
            let Some(o) = owned.get(&p) else { continue };
            let result = lag(&o.app).and_then(|behind| {
                if behind == 0 {
                    return Ok(0);
                }
                let report = o.app.process(&mut |_| {
                    // Keep the group membership alive during long batches.
                    let _ = member.poll(Duration::ZERO);
                })?;
                metrics.artifacts.fetch_add(report.artifacts as u64, Ordering::Relaxed);
                metrics.records.fetch_add(report.records as u64, Ordering::Relaxed);
                metrics
                    .dead_letters
                    .fetch_add(report.dead_letters.len() as u64, Ordering::Relaxed);
                metrics.chunks.fetch_add(report.chunks as u64, Ordering::Relaxed);
                if !args.once || report.artifacts > 0 {
                    eprintln!(
                        "partition {p}: {} artifact(s), {} record(s), {} dead letter(s), {} chunk(s)",
                        report.artifacts,
                        report.records,
                        report.dead_letters.len(),
                        report.chunks
                    );
                }
                Ok(behind)
            });
            match result {
                Ok(0) => {}
                Ok(_) => busy = true,
                Err(e) => {
                    // The broker may be restarting: drop the partition's stores, retry later.
                    eprintln!("warning: partition {p}: {e:#}");
                    metrics.errors.fetch_add(1, Ordering::Relaxed);
                    owned.remove(&p);
                    healthy = false;
                    busy = true;
                    avatar_email::sleep_unless(&stop, Duration::from_secs(1));
                }
            }
            if let Some(o) = owned.get(&p) {
                total_lag += lag(&o.app).unwrap_or(0);
            }
        }
        metrics.lag.store(total_lag, Ordering::Relaxed);
        metrics.healthy.store(healthy, Ordering::Relaxed);
        if args.once && ever_owned && !busy && healthy && total_lag == 0 {
            break;
        }
        if args.once && !ever_owned && started.elapsed() > Duration::from_secs(120) {
            bail!("no partition was assigned to this processor within 120 s");
        }
        if !busy {
            avatar_email::sleep_unless(&stop, args.interval);
        }
    }
    eprintln!("processor stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        m.records.store(7, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("avatar_processor_records_total 7\n"));
        assert!(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.split(' ').count() == 2));
    }
}
