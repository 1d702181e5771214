//! Prometheus metrics of the HTTP server, kept by hand: three series do not justify a metrics
//! crate. Routes are labelled by their pattern (`/api/records/{id}`), never by the raw path, so
//! the label set stays bounded whatever clients send.
//!
//! Latency is measured until the response head is ready: for a streamed chat that is the time
//! to the first token, which is what a user feels.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency histogram.
    latency: Mutex<BTreeMap<String, Histogram>>,
    in_flight: AtomicI64,
}

/// Decrements the in-flight gauge when the request ends, even if the handler panicked.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route.to_string()).or_default();
            let secs = elapsed.as_secs_f64();
            let slot = BUCKETS
                .iter()
                .position(|&b| secs <= b)
                .unwrap_or(BUCKETS.len());
            h.counts[slot] += 1;
            h.sum += secs;
            h.count += 1;
        }
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP avatar_http_requests_total HTTP requests by route pattern, method and status.\n");
        out.push_str("# TYPE avatar_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((route, method, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "avatar_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    escape(route),
                    escape(method)
                );
            }
        }
        out.push_str("# HELP avatar_http_request_duration_seconds Time until the response head, by route pattern.\n");
        out.push_str("# TYPE avatar_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                let route = escape(route);
                let mut cumulative = 0;
                for (i, b) in BUCKETS.iter().enumerate() {
                    cumulative += h.counts[i];
                    let _ = writeln!(
                        out,
                        "avatar_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "avatar_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "avatar_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "avatar_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP avatar_http_requests_in_flight Requests being handled now.\n");
        out.push_str("# TYPE avatar_http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "avatar_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_buckets_and_gauge() {
        let m = Metrics::default();
        {
            let _g = m.start();
            assert!(m.render().contains("avatar_http_requests_in_flight 1\n"));
        }
        m.observe("/healthz", "GET", 200, Duration::from_millis(3));
        m.observe("/healthz", "GET", 200, Duration::from_millis(300));
        m.observe("/api/search", "GET", 401, Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains(
            "avatar_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "avatar_http_requests_total{route=\"/api/search\",method=\"GET\",status=\"401\"} 1\n"
        ));
        assert!(text.contains(
            "avatar_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 0\n"
        ));
        assert!(text.contains(
            "avatar_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "avatar_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.5\"} 2\n"
        ));
        assert!(text.contains(
            "avatar_http_request_duration_seconds_bucket{route=\"/api/search\",le=\"10\"} 0\n"
        ));
        assert!(text.contains(
            "avatar_http_request_duration_seconds_bucket{route=\"/api/search\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("avatar_http_request_duration_seconds_count{route=\"/healthz\"} 2\n"));
        assert!(text.contains("avatar_http_requests_in_flight 0\n"));
    }
}
