//! `avatar serve ingest`: connectors that keep sources flowing in, from one TOML file.
//!
//! Every INTERVAL each connector looks for what is new since its last pass: files dropped into
//! an inbox folder (new, or changed since), recordings copied into a recordings folder (once
//! they stopped growing), new commits of git repositories, new mail in IMAP
//! folders (by UID, per UIDVALIDITY). What it finds is ingested like `avatar ingest` does
//! (blob, then event; the same bytes twice are a no-op) and its position is saved afterwards in
//! `DIR/connectors/state.json`, so a crash repeats at most one pass and loses nothing. With a
//! Kafka log the events go to the broker for the processors; with the embedded log this
//! process also processes them.

use crate::commands::Ctx;
use crate::distributed::parse_duration;
use anyhow::{bail, Context, Result};
use avatar_runtime::EventLog;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

/// Options of `avatar serve ingest`.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// The connectors file (TOML; see the example in `avatar serve ingest --help`).
    #[arg(long, env = "AVATAR_INGEST_CONNECTORS")]
    pub connectors: PathBuf,
    /// One pass over every connector, then exit (for cron and tests).
    #[arg(long)]
    pub once: bool,
}

/// The connectors file. Environment overrides: AVATAR_INGEST_INTERVAL.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorsConfig {
    /// Time between passes ("30s", "5m"); default 60s.
    #[serde(default)]
    pub interval: Option<String>,
    /// File-drop folders: every regular file (recursively) that is new or changed is ingested.
    #[serde(default)]
    pub inbox: Vec<InboxConfig>,
    /// Git repositories (work tree, bare, or a URL): ingested again when their HEAD moves;
    /// commits already ingested are no-ops.
    #[serde(default)]
    pub git: Vec<GitConfig>,
    /// IMAP mailboxes: new mail in the listed folders, by UID.
    #[serde(default)]
    pub imap: Vec<ImapSourceConfig>,
    /// Recordings folders (a phone's voice memos, a camcorder's card copied over): audio and
    /// video files only, each once it has not changed for `settle` (a copy in progress waits).
    #[serde(default)]
    pub recordings: Vec<RecordingsConfig>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    pub avatar: String,
    pub path: PathBuf,
    /// How long a file must be unchanged before it is read ("10s", the default).
    #[serde(default)]
    pub settle: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    pub avatar: String,
    pub path: PathBuf,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    pub avatar: String,
    pub repo: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImapSourceConfig {
    pub avatar: String,
    /// HOST[:PORT]; port 993 means implicit TLS (the default).
    pub server: String,
    pub user: String,
    /// Environment variable holding the password (never the password itself in the file).
    pub password_env: String,
    #[serde(default = "inbox_folder")]
    pub folders: Vec<String>,
    /// Implicit TLS; default: on unless the port is 143.
    #[serde(default)]
    pub tls: Option<bool>,
    /// Allow plaintext to a remote host.
    #[serde(default)]
    pub insecure: bool,
}

fn inbox_folder() -> Vec<String> {
    vec!["INBOX".into()]
}

impl ConnectorsConfig {
    pub fn parse(text: &str) -> Result<Self> {
        let cfg: ConnectorsConfig = toml::from_str(text)?;
        if cfg.inbox.is_empty()
            && cfg.git.is_empty()
            && cfg.imap.is_empty()
            && cfg.recordings.is_empty()
        {
            bail!("no connectors: add an [[inbox]], [[recordings]], [[git]] or [[imap]] section");
        }
        for r in &cfg.recordings {
            if let Some(s) = &r.settle {
                parse_duration(s).map_err(|e| anyhow::anyhow!("recordings settle: {e}"))?;
            }
        }
        Ok(cfg)
    }

    /// The interval, with AVATAR_INGEST_INTERVAL winning over the file.
    pub fn interval(&self) -> Result<Duration> {
        let text = std::env::var("AVATAR_INGEST_INTERVAL")
            .ok()
            .or_else(|| self.interval.clone())
            .unwrap_or_else(|| "60s".into());
        parse_duration(&text).map_err(|e| anyhow::anyhow!("interval: {e}"))
    }
}

/// Where each connector stands; saved after each pass.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct State {
    /// Inbox file path -> "size:mtime_ns" when it was ingested.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// Repository -> HEAD commit when it was ingested.
    #[serde(default)]
    git: BTreeMap<String, String>,
    /// "user@server/folder" -> (UIDVALIDITY, last UID ingested).
    #[serde(default)]
    imap: BTreeMap<String, (u32, u32)>,
}

fn state_path(data: &Path) -> PathBuf {
    data.join("connectors").join("state.json")
}

fn load_state(data: &Path) -> Result<State> {
    crate::json_file::read_or_default(&state_path(data))
}

fn save_state(data: &Path, s: &State) -> Result<()> {
    crate::json_file::write_atomic(&state_path(data), s)
}

/// What one pass found, per connector.
#[derive(Debug, Default)]
pub struct PassReport {
    pub new_artifacts: usize,
    pub lines: Vec<String>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // partial uploads (.part, .tmp) and hidden files
        }
        if t.is_dir() {
            walk(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn stamp(p: &Path) -> Option<String> {
    let m = std::fs::metadata(p).ok()?;
    let mtime = m
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{}:{mtime}", m.len()))
}

/// A folder connector: an inbox (`recordings: None`) or a recordings folder with its settle
/// time.
struct Folder<'a> {
    avatar: &'a str,
    path: &'a Path,
    recordings: Option<Duration>,
}

/// Runs every connector once.
pub fn pass(ctx: &Ctx, cfg: &ConnectorsConfig) -> Result<PassReport> {
    let mut state = load_state(&ctx.data)?;
    let mut report = PassReport::default();
    let mut touched: Vec<String> = Vec::new();
    // Inboxes take every file; recordings folders only audio/video that stopped changing.
    let folders = cfg
        .inbox
        .iter()
        .map(|i| Folder {
            avatar: &i.avatar,
            path: &i.path,
            recordings: None,
        })
        .chain(cfg.recordings.iter().map(|r| {
            Folder {
                avatar: &r.avatar,
                path: &r.path,
                recordings: Some(
                    r.settle
                        .as_deref()
                        .map(parse_duration)
                        .transpose()
                        .ok()
                        .flatten()
                        .unwrap_or(Duration::from_secs(10)),
                ),
            }
        }));
    for folder in folders {
        let label = if folder.recordings.is_some() {
            "recordings"
        } else {
            "inbox"
        };
        let mut files = Vec::new();
        walk(folder.path, &mut files)
            .with_context(|| format!("cannot read the {label} folder {}", folder.path.display()))?;
        files.sort();
        let now = std::time::SystemTime::now();
        let mut waiting = 0;
        let fresh: Vec<(PathBuf, String)> = files
            .into_iter()
            .filter(|f| match folder.recordings {
                None => true,
                Some(settle) => {
                    let name = f.to_string_lossy();
                    if !avatar_voice::is_recording(&name, b"") {
                        return false;
                    }
                    let age = std::fs::metadata(f)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .unwrap_or_default();
                    let settled = age >= settle;
                    if !settled {
                        waiting += 1;
                    }
                    settled
                }
            })
            .filter_map(|f| {
                let s = stamp(&f)?;
                let key = f.display().to_string();
                (state.files.get(&key) != Some(&s)).then_some((f, s))
            })
            .collect();
        if waiting > 0 {
            report.lines.push(format!(
                "{label} {}: {waiting} file(s) still changing, read on a later pass",
                folder.path.display()
            ));
        }
        if fresh.is_empty() {
            continue;
        }
        let app = ctx.open_for_emit(folder.avatar)?;
        app.avatar(Some(folder.avatar))?;
        let paths: Vec<PathBuf> = fresh.iter().map(|(f, _)| f.clone()).collect();
        let r = avatar_ingest::ingest_paths(
            &app.log,
            &app.blobs,
            folder.avatar,
            &paths,
            &avatar_ingest::IngestOptions::default(),
            &mut |_| {},
        )?;
        report.new_artifacts += r.artifacts_new;
        report.lines.push(format!(
            "{label} {}: {} new file(s), {} already known, {} skipped",
            folder.path.display(),
            r.artifacts_new,
            r.artifacts_known,
            r.rejected.len()
        ));
        for (f, s) in fresh {
            state.files.insert(f.display().to_string(), s);
        }
        touched.push(folder.avatar.to_string());
        save_state(&ctx.data, &state)?;
    }
    for g in &cfg.git {
        let app = ctx.open_for_emit(&g.avatar)?;
        app.avatar(Some(&g.avatar))?;
        let repo = if crate::commands::is_remote_repo(Path::new(&g.repo)) {
            crate::commands::clone_or_fetch(&app.dir, &g.repo)?
        } else {
            PathBuf::from(&g.repo)
        };
        let head = git_head(&repo)?;
        if state.git.get(&g.repo) == Some(&head) {
            continue;
        }
        let r = avatar_ingest::ingest_git(
            &app.log,
            &app.blobs,
            &g.avatar,
            &repo.to_string_lossy(),
            &avatar_ingest::GitOptions::default(),
            &mut |_| {},
        )?;
        report.new_artifacts += r.artifacts_new;
        report.lines.push(format!(
            "git {}: {} new commit(s) at {}",
            g.repo,
            r.artifacts_new,
            &head[..head.len().min(12)]
        ));
        state.git.insert(g.repo.clone(), head);
        touched.push(g.avatar.clone());
        save_state(&ctx.data, &state)?;
    }
    for m in &cfg.imap {
        let n = imap_pass(ctx, m, &mut state, &mut report)?;
        if n > 0 {
            touched.push(m.avatar.clone());
        }
    }
    // Embedded: this process is also the processor.
    if ctx.log.is_none() && !touched.is_empty() {
        touched.sort();
        touched.dedup();
        let app = ctx.open()?;
        let p = app.process(&mut |_| {})?;
        report.lines.push(format!(
            "processed: {} record(s), {} clip(s) of speech ({} transcribed), {} dead letter(s)",
            p.records,
            p.clips,
            p.transcribed,
            p.dead_letters.len()
        ));
    }
    Ok(report)
}

fn git_head(repo: &Path) -> Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .with_context(|| format!("cannot run git on {}", repo.display()))?;
    if !out.status.success() {
        bail!(
            "{} is not a git repository with commits: {}",
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn imap_pass(
    ctx: &Ctx,
    m: &ImapSourceConfig,
    state: &mut State,
    report: &mut PassReport,
) -> Result<usize> {
    let (host, port) = avatar_email::split_host_port(&m.server, 993)?;
    let password = std::env::var(&m.password_env).with_context(|| {
        format!(
            "the IMAP password of {} is read from ${}, which is not set",
            m.user, m.password_env
        )
    })?;
    let tls = m.tls.unwrap_or(port != 143);
    let first = m.folders.first().map(String::as_str).unwrap_or("INBOX");
    let cfg = avatar_email::ImapConfig {
        host: host.clone(),
        port,
        tls,
        insecure: m.insecure,
        user: m.user.clone(),
        password,
        folder: first.to_string(),
        timeout: Duration::from_secs(60),
    };
    let mut store = avatar_email::ImapStore::connect(&cfg)?;
    let app = ctx.open_for_emit(&m.avatar)?;
    app.avatar(Some(&m.avatar))?;
    let mut total = 0;
    for folder in &m.folders {
        store.select(folder)?;
        let key = format!("{}@{}:{}/{}", m.user, host, port, folder);
        let validity = store.uid_validity().unwrap_or(0);
        let last = match state.imap.get(&key) {
            Some((v, last)) if *v == validity => *last,
            _ => 0, // new folder, or UIDVALIDITY changed: every UID is new again (dedup by bytes)
        };
        let uids = store.uids_after(last)?;
        let mut new = 0;
        for uid in &uids {
            use avatar_email::MailStore;
            let Some(bytes) = store.fetch(*uid)? else {
                continue;
            };
            let uri = format!(
                "imap://{}@{}:{}/{};UIDVALIDITY={validity}/;UID={uid}",
                m.user, host, port, folder
            );
            let r = avatar_ingest::ingest_bytes(
                &app.log,
                &app.blobs,
                &m.avatar,
                &uri,
                &format!("{folder}-{uid}.eml"),
                Some("eml"),
                &bytes,
            )?;
            new += r.artifacts_new;
            // Saved per message: a crash refetches at most the one in flight.
            state.imap.insert(key.clone(), (validity, *uid));
            save_state(&ctx.data, state)?;
        }
        if !uids.is_empty() {
            report.lines.push(format!(
                "imap {key}: {new} new mail(s) of {} fetched",
                uids.len()
            ));
        }
        total += new;
    }
    store.logout();
    report.new_artifacts += total;
    let _ = app.log.end()?; // the log answered: the appends above are durable
    Ok(total)
}

pub fn serve_ingest(ctx: &Ctx, args: &IngestArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.connectors)
        .with_context(|| format!("cannot read {}", args.connectors.display()))?;
    let cfg = ConnectorsConfig::parse(&text).with_context(|| {
        format!(
            "{} is not a valid connectors file",
            args.connectors.display()
        )
    })?;
    let interval = cfg.interval()?;
    let stop = avatar_email::shutdown_flag();
    loop {
        match pass(ctx, &cfg) {
            Ok(r) => {
                for l in &r.lines {
                    println!("{l}");
                }
                if args.once {
                    println!("{} new artifact(s)", r.new_artifacts);
                }
            }
            Err(e) if args.once => return Err(e),
            // A server that is down now may be up next time.
            Err(e) => eprintln!("warning: {e:#}"),
        }
        if args.once || avatar_email::sleep_unless(&stop, interval) || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_refuses_typos_and_emptiness() {
        let cfg = ConnectorsConfig::parse(
            r#"
            interval = "5s"
            [[inbox]]
            avatar = "ada"
            path = "/drop/ada"
            [[git]]
            avatar = "ada"
            repo = "https://example.org/ada/engine.git"
            [[imap]]
            avatar = "ada"
            server = "imap.example.org"
            user = "ada@example.org"
            password_env = "ADA_PW"
            [[recordings]]
            avatar = "ada"
            path = "/family/voice-notes"
            settle = "30s"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.recordings[0].settle.as_deref(), Some("30s"));
        assert!(
            ConnectorsConfig::parse("[[recordings]]\navatar='a'\npath='/x'\nsettle='soon'\n")
                .is_err()
        );
        assert_eq!(cfg.inbox[0].path, PathBuf::from("/drop/ada"));
        assert_eq!(cfg.imap[0].folders, vec!["INBOX".to_string()]);
        assert!(ConnectorsConfig::parse("").is_err());
        let typo = ConnectorsConfig::parse("[[inbox]]\navatar='a'\npaht='/x'\n");
        assert!(format!("{:#}", typo.unwrap_err()).contains("paht"));
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::default();
        s.imap.insert("u@h:143/INBOX".into(), (7, 42));
        s.git.insert("r".into(), "abc".into());
        save_state(dir.path(), &s).unwrap();
        assert_eq!(load_state(dir.path()).unwrap(), s);
    }
}
