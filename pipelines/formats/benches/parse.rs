//! Parse benchmark: messages per second of `mbox::parse` and `whatsapp::parse` against
//! Python's `mailbox` + `email` and `whatstk`, and of `slack::parse` (a workspace export zip)
//! and `discord::parse` (a DiscordChatExporter JSON file) against json + simple loops (no
//! maintained PyPI parser exists for those), on the same generated corpus, in the same run.
//! The goal set by the issue is at least 20x the Python rate.
//!
//! Run: `cargo bench -p avatar-formats --bench parse`. The corpus is generated (deterministic,
//! seeded) into a temporary folder so no real mail is needed and the numbers are comparable
//! between machines. `AVATAR_BENCH_SCALE=0.1` makes it ten times smaller for a quick look;
//! `AVATAR_BENCH_PY_REPEAT` (default 3) sets how many runs the Python side takes its best of.
//! The Python environment comes from `infra/bench/setup.sh` (a venv with whatstk, made once);
//! set `AVATAR_BENCH_PYTHON` to use another interpreter, `AVATAR_BENCH_KEEP=1` to keep the corpus.
//! Without Python the Rust numbers are still printed.
//!
//! This is a plain `main` (harness = false) and does nothing unless cargo passes `--bench`,
//! so `cargo test --all-targets` does not spend minutes here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, FixedOffset, Offset, TimeZone, Utc};

const MAILS: usize = 20_000;
const CHAT_MESSAGES: usize = 200_000;
const RUNS: usize = 3;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("parse benchmark: run it with `cargo bench -p avatar-formats --bench parse`");
        return;
    }
    let scale: f64 = std::env::var("AVATAR_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let py_repeat: usize = std::env::var("AVATAR_BENCH_PY_REPEAT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RUNS);
    let mails = ((MAILS as f64 * scale) as usize).max(10);
    let chat = ((CHAT_MESSAGES as f64 * scale) as usize).max(10);

    let dir = TempDir::new();
    let t = Instant::now();
    let mbox_path = dir.0.join("bench.mbox");
    let mbox = gen_mbox(mails);
    std::fs::write(&mbox_path, mbox.as_bytes()).expect("write mbox corpus");
    let wa_path = dir.0.join("WhatsApp Chat with Bench Group.txt");
    let wa = gen_whatsapp(chat);
    std::fs::write(&wa_path, wa.text.as_bytes()).expect("write whatsapp corpus");
    eprintln!(
        "corpus: {} mails ({:.1} MB), {} chat lines ({:.1} MB: {} messages, {} system lines) in {:.1}s at {}",
        mails,
        mbox.len() as f64 / 1e6,
        wa.messages + wa.system,
        wa.text.len() as f64 / 1e6,
        wa.messages,
        wa.system,
        t.elapsed().as_secs_f64(),
        dir.0.display()
    );

    let python = python();
    let mut rows = Vec::new();

    // mbox: every generated mail is one message on both sides.
    let rust = time_rust(|| {
        avatar_formats::mbox::parse(mbox.as_bytes())
            .map(|p| (p.items.len() + p.skipped, p.warnings.len()))
    });
    let py = python
        .as_ref()
        .and_then(|py| time_python(py, "mbox", &mbox_path, py_repeat));
    rows.push(Row {
        format: "mbox",
        generated: mails,
        bytes: mbox.len(),
        rust,
        py,
    });

    // WhatsApp: whatstk drops system lines and keeps media placeholders and deleted-message
    // notices as rows; Avatar counts all three in `skipped`. So the Rust count compared is
    // items + skipped - system lines, which must equal the generated messages.
    let system = wa.system;
    let rust = time_rust(|| {
        avatar_formats::whatsapp::parse("WhatsApp Chat with Bench Group.txt", wa.text.as_bytes())
            .map(|p| {
                (
                    (p.items.len() + p.skipped).saturating_sub(system),
                    p.warnings.len(),
                )
            })
    });
    let py = python
        .as_ref()
        .and_then(|py| time_python(py, "whatsapp", &wa_path, py_repeat));
    rows.push(Row {
        format: "whatsapp",
        generated: wa.messages,
        bytes: wa.text.len(),
        rust,
        py,
    });

    // Slack and Discord: every generated message object (system, bot and file-only ones
    // included) is counted on both sides, so Rust's items + skipped must equal it.
    let slack = gen_slack(chat);
    let slack_path = dir.0.join("Bench Slack export.zip");
    std::fs::write(&slack_path, &slack.zip).expect("write slack corpus");
    let rust = time_rust(|| {
        avatar_formats::slack::parse("Bench Slack export.zip", &slack.zip)
            .map(|p| (p.items.len() + p.skipped, p.warnings.len()))
    });
    let py = python
        .as_ref()
        .and_then(|py| time_python(py, "slack", &slack_path, py_repeat));
    rows.push(Row {
        format: "slack",
        generated: slack.messages,
        bytes: slack.zip.len(),
        rust,
        py,
    });

    let discord = gen_discord(chat);
    let discord_path = dir.0.join("Bench guild - general [1].json");
    std::fs::write(&discord_path, discord.text.as_bytes()).expect("write discord corpus");
    let rust = time_rust(|| {
        avatar_formats::discord::parse("Bench guild - general [1].json", discord.text.as_bytes())
            .map(|p| (p.items.len() + p.skipped, p.warnings.len()))
    });
    let py = python
        .as_ref()
        .and_then(|py| time_python(py, "discord", &discord_path, py_repeat));
    rows.push(Row {
        format: "discord",
        generated: discord.messages,
        bytes: discord.text.len(),
        rust,
        py,
    });

    print_table(&rows);
}

struct Row {
    format: &'static str,
    generated: usize,
    bytes: usize,
    rust: Result<RustRun, String>,
    py: Option<(usize, f64)>,
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>13} {:>13} {:>8}",
        "format",
        "generated",
        "rust n",
        "rust warn",
        "python n",
        "MB",
        "rust msg/s",
        "python msg/s",
        "ratio"
    );
    for r in rows {
        let (rn, rwarn, rrate) = match &r.rust {
            Ok(run) => (
                run.messages.to_string(),
                run.warnings.to_string(),
                Some(r.generated as f64 / run.seconds),
            ),
            Err(e) => {
                eprintln!("{}: Rust parser failed: {e}", r.format);
                ("error".to_string(), "-".to_string(), None)
            }
        };
        let (pn, prate) = match r.py {
            Some((n, s)) => (n.to_string(), Some(r.generated as f64 / s)),
            None => ("n/a".to_string(), None),
        };
        let ratio = match (rrate, prate) {
            (Some(a), Some(b)) => format!("{:.1}x", a / b),
            _ => "n/a".to_string(),
        };
        println!(
            "{:<9} {:>9} {:>9} {:>9} {:>9} {:>8.1} {:>13} {:>13} {:>8}",
            r.format,
            r.generated,
            rn,
            rwarn,
            pn,
            r.bytes as f64 / 1e6,
            rrate.map_or("n/a".to_string(), |x| format!("{x:.0}")),
            prate.map_or("n/a".to_string(), |x| format!("{x:.0}")),
            ratio
        );
        let counts_agree = matches!((&r.rust, r.py), (Ok(run), Some((b, _))) if run.messages == r.generated && b == r.generated);
        if !counts_agree {
            println!(
                "  ^ message counts differ from the generated {}: compare the parsers' rules",
                r.generated
            );
        }
    }
    println!("(msg/s = generated messages / best of {RUNS} wall-clock parse times; ratio = Rust / Python; goal >= 20x)");
}

/// Best of [`RUNS`] wall-clock runs of `f`, which returns (messages, warnings).
fn time_rust<E: std::fmt::Display>(
    mut f: impl FnMut() -> Result<(usize, usize), E>,
) -> Result<RustRun, String> {
    let mut best = f64::INFINITY;
    let mut counts = (0, 0);
    for _ in 0..RUNS {
        let t = Instant::now();
        counts = f().map_err(|e| e.to_string())?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(RustRun {
        messages: counts.0,
        warnings: counts.1,
        seconds: best,
    })
}

struct RustRun {
    messages: usize,
    warnings: usize,
    seconds: f64,
}

fn time_python(python: &Path, format: &str, corpus: &Path, repeat: usize) -> Option<(usize, f64)> {
    let script = repo_root().join("infra/bench/parse_baseline.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(format)
        .arg(corpus)
        .arg("--repeat")
        .arg(repeat.to_string())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "python {format} baseline failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            eprintln!("python {format} baseline did not start: {e}");
            return None;
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["messages"].as_u64()? as usize, v["seconds"].as_f64()?))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `AVATAR_BENCH_PYTHON`, or the venv that `infra/bench/setup.sh` makes (run here; it is a
/// no-op when the venv exists).
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AVATAR_BENCH_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let setup = repo_root().join("infra/bench/setup.sh");
    match Command::new("bash").arg(&setup).status() {
        Ok(s) if s.success() => {}
        other => {
            eprintln!(
                "python baselines skipped: {} failed ({other:?})",
                setup.display()
            );
            return None;
        }
    }
    let venv = std::env::var("AVATAR_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                .join(".cache/avatar/bench-venv")
        });
    Some(venv.join("bin/python"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("avatar-parse-bench-{}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("AVATAR_BENCH_KEEP").is_some() {
            eprintln!("corpus kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---- corpus ----------------------------------------------------------------------------

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "a", "we", "you", "I", "it", "this", "that", "meeting", "tomorrow", "today", "project",
    "report", "think", "should", "could", "would", "maybe", "really", "great", "thanks", "please",
    "send", "review", "draft", "budget", "plan", "team", "weekend", "dinner", "train", "late", "early",
    "coffee", "idea", "from", "about", "with", "before", "after", "again", "still", "just", "need",
    "want", "know", "see", "call", "later", "quick", "question", "answer", "file", "attached",
    "version", "final", "notes", "café", "naïve", "Zürich", "señor", "crème", "brûlée", "Ærø",
    "Straße", "déjà", "vu", "Kraków", "numbers", "2024", "42", "3pm", "10:30", "e.g.", "etc.", "OK",
    "sure", "sounds", "good", "agreed",
];

const EMOJI: &[&str] = &["😀", "👍", "🎉", "❤️", "😂", "🙏", "🌸", "☕"];

fn sentence(rng: &mut Rng, out: &mut String) {
    let n = rng.range(4, 14);
    for i in 0..n {
        let w = *rng.pick(WORDS);
        if i == 0 {
            let mut cs = w.chars();
            if let Some(c) = cs.next() {
                out.extend(c.to_uppercase());
                out.push_str(cs.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(w);
        }
    }
    out.push_str(rng.pick::<&str>(&[".", ".", ".", "?", "!"]));
}

fn paragraph(rng: &mut Rng, sentences: usize) -> String {
    let mut s = String::new();
    for i in 0..sentences {
        if i > 0 {
            s.push(' ');
        }
        sentence(rng, &mut s);
    }
    s
}

/// Wrap at ~72 columns like a mail client.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for w in text.split(' ') {
        if col > 0 && col + 1 + w.chars().count() > 72 {
            out.push('\n');
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(w);
        col += w.chars().count();
    }
    out
}

const PEOPLE: &[(&str, &str)] = &[
    ("Ana Souza", "ana.souza@example.org"),
    ("Ben Okafor", "ben@okafor.example.net"),
    ("Chloé Martin", "chloe.martin@example.fr"),
    ("Dmitri Ivanov", "d.ivanov@example.com"),
    ("Eva Lindqvist", "eva@lindqvist.example.se"),
    ("Farah Haddad", "farah.h@example.org"),
];

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn b64_lines(data: &[u8]) -> String {
    let s = b64(data);
    let mut out = String::new();
    for (i, c) in s.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(std::str::from_utf8(c).unwrap_or_default());
    }
    out
}

fn quoted_printable(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for b in line.bytes() {
            let mut enc = String::new();
            if b == b'=' || b >= 127 {
                let _ = write!(enc, "={b:02X}");
            } else {
                enc.push(b as char);
            }
            if col + enc.len() > 75 {
                out.push_str("=\n");
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
    }
    out
}

/// RFC 2047 "Q" encoding for one header word.
fn q_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b' ' => out.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b',' | b'-' | b'!' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "={b:02X}");
            }
        }
    }
    out
}

/// mboxo escaping: a body line that starts with "From " would start a new message.
fn escape_from(body: &str) -> String {
    body.split('\n')
        .map(|l| {
            if l.starts_with("From ") {
                format!(">{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn gen_mbox(n: usize) -> String {
    let mut rng = Rng(0x5EED_0001);
    let mut out = String::with_capacity(n * 2200);
    let mut t: DateTime<Utc> = Utc
        .with_ymd_and_hms(2019, 3, 4, 8, 0, 0)
        .single()
        .unwrap_or_default();
    let zones = [3600, -5 * 3600, 0, 2 * 3600, 9 * 3600, -8 * 3600];
    let mut prev: Vec<(String, String, String, String)> = Vec::new(); // id, subject, from, quoted text
    for i in 0..n {
        t += Duration::seconds(rng.range(60, 6 * 3600) as i64);
        let (name, addr) = *rng.pick(PEOPLE);
        let (to_name, to_addr) = *rng.pick(PEOPLE);
        let zone = FixedOffset::east_opt(*rng.pick(&zones)).unwrap_or_else(|| Utc.fix());
        let local = t.with_timezone(&zone);
        let date = local.format("%a, %d %b %Y %H:%M:%S %z").to_string();
        let id = format!(
            "<{}.{:08x}@{}>",
            i,
            rng.next() as u32,
            addr.split('@').nth(1).unwrap_or("example.org")
        );
        let kind = i % 12;
        let reply = kind == 5 || kind == 11;
        let text = {
            let paras = rng.range(1, 4);
            (0..paras)
                .map(|_| wrap(&paragraph(&mut rng, rng_sentences(i))))
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let (subject, reply_headers, body_text) = if reply && !prev.is_empty() {
            let (pid, psub, pfrom, ptext) = rng.pick(&prev).clone();
            let quoted: String = ptext.lines().take(8).map(|l| format!("> {l}\n")).collect();
            let subject = if psub.starts_with("Re: ") {
                psub.clone()
            } else {
                format!("Re: {psub}")
            };
            let body = format!("{text}\n\nOn {date}, {pfrom} wrote:\n{quoted}\n-- \n{name}\n");
            (
                subject,
                format!("In-Reply-To: {pid}\nReferences: {pid}\n"),
                body,
            )
        } else {
            let mut s = String::new();
            sentence(&mut rng, &mut s);
            (
                s.trim_end_matches(['.', '?', '!']).to_string(),
                String::new(),
                format!("{text}\n\n-- \n{name}\n"),
            )
        };
        let subject_header = match i % 7 {
            3 => format!("=?UTF-8?B?{}?=", b64(subject.as_bytes())),
            5 => format!("=?UTF-8?Q?{}?=", q_encode(&subject)),
            _ => subject.clone(),
        };
        let from_header = if name.is_ascii() {
            format!("{name} <{addr}>")
        } else {
            format!("=?UTF-8?Q?{}?= <{addr}>", q_encode(name))
        };
        let _ = writeln!(out, "From {addr} {}", t.format("%a %b %e %H:%M:%S %Y"));
        let mut m = String::new();
        let _ = writeln!(m, "Return-Path: <{addr}>");
        let _ = writeln!(
            m,
            "Received: from mail.example.org (mail.example.org [192.0.2.{}])\n\tby mx.example.com with ESMTPS id {:x}\n\tfor <{to_addr}>; {date}",
            i % 250,
            rng.next()
        );
        let _ = writeln!(m, "Date: {date}\nFrom: {from_header}\nTo: {to_name} <{to_addr}>\nSubject: {subject_header}\nMessage-ID: {id}");
        m.push_str(&reply_headers);
        m.push_str("MIME-Version: 1.0\n");
        match kind {
            // Plain 7-bit/8-bit text, the most common case.
            0 | 1 | 5 | 6 | 11 => {
                m.push_str("Content-Type: text/plain; charset=utf-8; format=flowed\nContent-Transfer-Encoding: 8bit\n\n");
                m.push_str(&body_text);
            }
            2 | 7 => {
                m.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n");
                m.push_str(&quoted_printable(&body_text));
                m.push('\n');
            }
            3 => {
                m.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n");
                m.push_str(&b64_lines(body_text.as_bytes()));
                m.push('\n');
            }
            4 | 8 | 9 => {
                let b = format!("=_alt_{i:x}");
                let html: String = body_text
                    .split("\n\n")
                    .map(|p| {
                        format!(
                            "<p>{}</p>",
                            p.replace('&', "&amp;")
                                .replace('<', "&lt;")
                                .replace('\n', "<br>\n")
                        )
                    })
                    .collect();
                let _ = write!(
                    m,
                    "Content-Type: multipart/alternative; boundary=\"{b}\"\n\nThis is a multi-part message in MIME format.\n\n--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n{}\n--{b}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n{}\n--{b}--\n",
                    quoted_printable(&body_text),
                    quoted_printable(&format!("<html><head><meta charset=\"utf-8\"></head><body>{html}</body></html>"))
                );
            }
            _ => {
                // multipart/mixed: text plus a small binary attachment.
                let b = format!("=_mixed_{i:x}");
                let blob: Vec<u8> = (0..rng.range(1500, 4000))
                    .map(|_| rng.next() as u8)
                    .collect();
                let _ = write!(
                    m,
                    "Content-Type: multipart/mixed; boundary=\"{b}\"\n\n--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{}\n--{b}\nContent-Type: application/pdf; name=\"notes-{i}.pdf\"\nContent-Disposition: attachment; filename=\"notes-{i}.pdf\"\nContent-Transfer-Encoding: base64\n\n{}\n--{b}--\n",
                    body_text,
                    b64_lines(&blob)
                );
            }
        }
        m.push('\n');
        // The MTA's mboxo escaping applies to the encoded message, as it is stored.
        out.push_str(&escape_from(&m));
        if prev.len() < 64 {
            prev.push((id, subject, format!("{name} <{addr}>"), text));
        } else {
            let k = rng.below(64);
            prev[k] = (id, subject, format!("{name} <{addr}>"), text);
        }
    }
    out
}

fn rng_sentences(i: usize) -> usize {
    1 + (i * 7 + 3) % 4
}

struct Chat {
    text: String,
    /// Lines with a sender: text, media placeholders, deleted-message notices.
    messages: usize,
    /// Lines without a sender ("X added Y").
    system: usize,
}

/// An Android export (`dd/mm/yyyy, HH:MM - Name: text`) of a busy group: mostly one-liners,
/// some multi-line messages, links, emoji, media placeholders and deleted messages, and a
/// system line now and then.
fn gen_whatsapp(n: usize) -> Chat {
    let mut rng = Rng(0x5EED_0002);
    let names = [
        "Ana Souza",
        "Ben",
        "Chloé Martin",
        "+44 7700 900123",
        "Dmitri",
        "Eva 🌸",
        "Farah",
    ];
    let mut t: DateTime<Utc> = Utc
        .with_ymd_and_hms(2016, 1, 3, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let mut text = String::with_capacity(n * 80);
    let mut system = 0;
    let header = |t: &DateTime<Utc>| t.format("%d/%m/%Y, %H:%M - ").to_string();
    let _ = writeln!(
        text,
        "{}Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
        header(&t)
    );
    system += 1;
    for i in 0..n {
        t += Duration::seconds(rng.range(5, 2400) as i64);
        if i > 0 && i % 5000 == 0 {
            let _ = writeln!(
                text,
                "{}{} added {}",
                header(&t),
                rng.pick(&names),
                rng.pick(&names)
            );
            system += 1;
        }
        let who = *rng.pick(&names);
        let _ = write!(text, "{}{who}: ", header(&t));
        let roll = rng.below(100);
        if roll < 4 {
            text.push_str("<Media omitted>");
        } else if roll < 5 {
            text.push_str("This message was deleted");
        } else if roll < 15 {
            // Multi-line: continuation lines never look like a header.
            for l in 0..rng.range(2, 4) {
                if l > 0 {
                    text.push('\n');
                }
                sentence(&mut rng, &mut text);
            }
        } else if roll < 20 {
            sentence(&mut rng, &mut text);
            let _ = write!(text, " https://example.com/p/{:x}", rng.next() as u32);
        } else {
            sentence(&mut rng, &mut text);
            if rng.chance(20) {
                text.push(' ');
                text.push_str(rng.pick::<&str>(EMOJI));
            }
        }
        text.push('\n');
    }
    Chat {
        text,
        messages: n,
        system,
    }
}

// ---- Slack and Discord corpora ---------------------------------------------------------

struct SlackCorpus {
    zip: Vec<u8>,
    messages: usize,
}

/// A workspace export zip as Slack writes it: users.json, channels.json and day files of
/// ~200 messages in 8 channels, with joins, bot posts, thread replies, mentions, links and
/// edits in realistic proportions, and the fields real exports carry around the text.
fn gen_slack(n: usize) -> SlackCorpus {
    use serde_json::json;
    use std::io::Write as _;
    let mut rng = Rng(0x5eed_51ac);
    let users: Vec<(String, &str)> = (0..40)
        .map(|i| (format!("U{:08X}", 0x1000 + i), PEOPLE[i % PEOPLE.len()].0))
        .collect();
    let users_json = serde_json::Value::Array(
        users
            .iter()
            .map(|(id, name)| {
                json!({"id": id, "team_id": "T0BENCH", "name": name.to_lowercase().replace(' ', "."),
                       "deleted": false, "real_name": name, "tz": "Europe/Berlin",
                       "profile": {"real_name": name, "display_name": "", "email": "x@example.org"},
                       "is_bot": false, "is_app_user": false})
            })
            .collect(),
    );
    let channels = [
        "general", "random", "dev", "design", "ops", "sales", "support", "travel",
    ];
    let channels_json = serde_json::Value::Array(
        channels
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"id": format!("C0{i}BENCH"), "name": c, "created": 1_600_000_000, "creator": users[0].0,
                       "is_archived": false, "is_general": i == 0, "members": [],
                       "topic": {"value": "", "creator": "", "last_set": 0},
                       "purpose": {"value": "", "creator": "", "last_set": 0}})
            })
            .collect(),
    );
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, v: &serde_json::Value| {
        w.start_file(name, opts).expect("zip entry");
        w.write_all(serde_json::to_string_pretty(v).expect("json").as_bytes())
            .expect("zip write");
    };
    put("users.json", &users_json);
    put("channels.json", &channels_json);
    put("groups.json", &json!([]));
    put("dms.json", &json!([]));
    put("mpims.json", &json!([]));
    let per_day = 200;
    let mut made = 0;
    let mut day = 0;
    let mut ts = 1_600_000_000u64;
    while made < n {
        let channel = channels[day % channels.len()];
        let date = Utc
            .timestamp_opt(1_600_000_000 + (day / channels.len()) as i64 * 86_400, 0)
            .single()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let mut msgs = Vec::new();
        let mut parent: Option<String> = None;
        for _ in 0..per_day.min(n - made) {
            ts += rng.range(5, 300) as u64;
            let t = format!("{ts}.{:06}", rng.below(1_000_000));
            let (uid, _) = rng.pick(&users).clone();
            let m = if rng.chance(4) {
                json!({"type": "message", "subtype": "channel_join", "user": uid, "ts": t,
                       "text": format!("<@{uid}> has joined the channel")})
            } else if rng.chance(3) {
                json!({"type": "message", "subtype": "bot_message", "bot_id": "B0BENCH", "username": "deploybot",
                       "ts": t, "text": "Deploy finished: 42 services green"})
            } else {
                let sentences = rng.range(1, 3);
                let mut text = paragraph(&mut rng, sentences);
                if rng.chance(10) {
                    let (other, _) = rng.pick(&users);
                    text = format!("<@{other}> {text}");
                }
                if rng.chance(5) {
                    text.push_str(" <https://example.org/doc/42|the doc> &amp; more");
                }
                let mut m = json!({"client_msg_id": format!("{:016x}", rng.next()), "type": "message",
                                   "text": text, "user": uid, "ts": t, "team": "T0BENCH",
                                   "blocks": [], "user_team": "T0BENCH", "source_team": "T0BENCH"});
                if rng.chance(2) {
                    m["edited"] = json!({"user": uid, "ts": format!("{}.000000", ts + 30)});
                }
                match &parent {
                    Some(p) if rng.chance(25) => {
                        m["thread_ts"] = json!(p);
                        m["parent_user_id"] = json!(uid);
                    }
                    _ if rng.chance(10) => {
                        m["thread_ts"] = json!(t);
                        m["reply_count"] = json!(1);
                        parent = Some(t.clone());
                    }
                    _ => {}
                }
                m
            };
            msgs.push(m);
        }
        made += msgs.len();
        put(
            &format!("{channel}/{date}.json"),
            &serde_json::Value::Array(msgs),
        );
        day += 1;
    }
    let zip = w.finish().expect("zip finish").into_inner();
    SlackCorpus {
        zip,
        messages: made,
    }
}

struct DiscordCorpus {
    text: String,
    messages: usize,
}

/// One DiscordChatExporter JSON channel file: joins, bot messages, replies, pins-free
/// ordinary messages, with every field the exporter writes.
fn gen_discord(n: usize) -> DiscordCorpus {
    use serde_json::json;
    let mut rng = Rng(0x0d15_c0bd);
    let authors: Vec<serde_json::Value> = PEOPLE
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            json!({"id": format!("52148647698515{i:04}"), "name": name.to_lowercase().replace(' ', "_"),
                   "discriminator": "0000", "nickname": name, "color": null, "isBot": false,
                   "avatarUrl": "https://cdn.discordapp.com/embed/avatars/0.png"})
        })
        .collect();
    let bot = json!({"id": "1", "name": "bench-bot", "discriminator": "0000", "nickname": "Bench Bot",
                     "color": null, "isBot": true, "avatarUrl": ""});
    let mut msgs = Vec::with_capacity(n);
    let start = Utc
        .timestamp_opt(1_672_531_200, 0)
        .single()
        .unwrap_or_default();
    let mut secs = 0i64;
    for i in 0..n {
        secs += rng.range(5, 600) as i64;
        let ts = (start + Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%S%.3f+00:00")
            .to_string();
        let id = format!("{}", 1_045_178_587_575_242_772u64 + i as u64);
        let sentences = rng.range(1, 3);
        let mut m = json!({"id": id, "type": "Default", "timestamp": ts, "timestampEdited": null,
                           "callEndedTimestamp": null, "isPinned": false,
                           "content": paragraph(&mut rng, sentences),
                           "author": rng.pick(&authors).clone(),
                           "attachments": [], "embeds": [], "stickers": [], "reactions": [], "mentions": []});
        if rng.chance(3) {
            m["type"] = json!("GuildMemberJoin");
            m["content"] = json!("");
        } else if rng.chance(2) {
            m["author"] = bot.clone();
        } else if i > 0 && rng.chance(15) {
            m["type"] = json!("Reply");
            m["reference"] = json!({"messageId": format!("{}", 1_045_178_587_575_242_772u64 + rng.below(i) as u64),
                                    "channelId": "1012224565567721552", "guildId": "748545324524575035"});
        }
        msgs.push(m);
    }
    let doc = json!({"guild": {"id": "748545324524575035", "name": "Bench guild", "iconUrl": ""},
                     "channel": {"id": "1012224565567721552", "type": "GuildTextChat", "categoryId": "1",
                                 "category": "Text Channels", "name": "general", "topic": null},
                     "dateRange": {"after": null, "before": null},
                     "messages": msgs, "messageCount": n});
    DiscordCorpus {
        text: serde_json::to_string_pretty(&doc).expect("json"),
        messages: n,
    }
}
