//! One function per command. They print for people by default and JSON with `--json`.

use crate::app::{default_data_dir, App};
use crate::{
    Cli, Command, DatasetCommand, EvalCommand, ExportCommand, ForgetArgs, IdentityCommand,
    MemoryCommand, PrivacyCommand, ServeCommand, TokenCommand, TrainCommand, VoiceCommand,
};
use anyhow::{bail, Context, Result};
use avatar_runtime::{BlobStore, EventLog, RecordStore, SearchIndex};
use avatar_schemas::{AvatarCreated, Envelope, Payload, Record, RecordKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn run(cli: Cli) -> Result<()> {
    let data = match &cli.data {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let key_file = cli.key_file.as_deref();
    match cli.command {
        Command::Seal => return seal(&data, key_file),
        Command::Unseal => return unseal(&data, key_file),
        _ => {}
    }
    // A sealed directory is decrypted into memory for the command and sealed again after it,
    // also when the command failed (its stores are crash-safe; what it did stays).
    let unsealed =
        if avatar_vault::is_sealed(&data) {
            let key = vault_key(&data, key_file)?;
            Some(avatar_vault::Unsealed::open(&data, &key).with_context(|| {
                format!("cannot open the sealed data directory {}", data.display())
            })?)
        } else {
            None
        };
    let ctx = Ctx {
        data: unsealed
            .as_ref()
            .map(|u| u.path().to_path_buf())
            .unwrap_or(data),
        avatar: cli.avatar.clone(),
        quiet: cli.quiet,
        log: log_choice(cli.log.as_deref())?,
    };
    let audited = audited(&cli.command);
    let mut result = dispatch(&ctx, cli.command);
    if let Some((action, detail)) = audited {
        let audit = audit_local(&ctx, action, &detail, &result);
        if result.is_ok() {
            result = audit;
        }
    }
    if let Some(u) = &unsealed {
        let resealed = u.reseal().context("cannot seal the data directory again");
        if result.is_ok() {
            result = resealed;
        }
    }
    result
}

fn vault_key(data: &Path, key_file: Option<&Path>) -> Result<avatar_vault::KeySource> {
    avatar_vault::key_from_env(key_file)?.with_context(|| {
        format!(
            "{} is sealed (encrypted): give its key with --key-file FILE, AVATAR_KEY_FILE or AVATAR_KEY",
            data.display()
        )
    })
}

fn seal(data: &Path, key_file: Option<&Path>) -> Result<()> {
    if avatar_vault::is_sealed(data) {
        bail!("{} is already sealed", data.display());
    }
    if !data.join("log.db").is_file() {
        bail!(
            "{} is not an Avatar data directory (no log.db)",
            data.display()
        );
    }
    let key = avatar_vault::key_from_env(key_file)?.context(
        "sealing needs a key: --key-file FILE (a passphrase or 64 hex digits), AVATAR_KEY_FILE or AVATAR_KEY",
    )?;
    let r = avatar_vault::seal(data, &key)?;
    println!(
        "sealed {} file(s), {} bytes, into {}; keep the key safe: without it the data is gone",
        r.files,
        r.bytes,
        data.join(avatar_vault::SEALED_FILE).display()
    );
    Ok(())
}

fn unseal(data: &Path, key_file: Option<&Path>) -> Result<()> {
    if !avatar_vault::is_sealed(data) {
        bail!("{} is not sealed", data.display());
    }
    let key = vault_key(data, key_file)?;
    let r = avatar_vault::unseal(data, &key)?;
    println!(
        "unsealed {} file(s), {} bytes, in {}",
        r.files,
        r.bytes,
        data.display()
    );
    Ok(())
}

/// The commands that read or remove the person's data, for the audit log: (action, what).
fn audited(c: &Command) -> Option<(&'static str, String)> {
    Some(match c {
        Command::Search { query, .. } => ("search", query.clone()),
        Command::Ask { question, .. } => ("ask", question.clone()),
        Command::Chat { .. } => ("chat", String::new()),
        Command::Records { .. } => ("records", String::new()),
        Command::Forget(a) => (
            if a.dry_run {
                "forget.dry_run"
            } else {
                "forget"
            },
            [
                a.source.as_ref().map(|s| format!("source {s}")),
                a.record.as_ref().map(|s| format!("record {s}")),
                a.before.as_ref().map(|s| format!("before {s}")),
                a.participant.as_ref().map(|s| format!("participant {s}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        ),
        Command::Export { .. } => ("export", String::new()),
        Command::Dataset {
            command: DatasetCommand::Show { .. },
        } => ("dataset.show", String::new()),
        Command::Token {
            command: TokenCommand::Create { role },
        } => ("token.create", role.clone()),
        Command::Token {
            command: TokenCommand::Revoke { id },
        } => ("token.revoke", id.clone()),
        _ => return None,
    })
}

/// Appends a local command to DIR/audit.db (when the data directory exists). The command's
/// own error wins over an audit error; an unwritable audit log fails a successful command.
fn audit_local(ctx: &Ctx, action: &str, detail: &str, result: &Result<()>) -> Result<()> {
    if !ctx.data.join("log.db").is_file() {
        return Ok(());
    }
    let log = avatar_audit::AuditLog::open(&ctx.data.join("audit.db"))?;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    let written = log.append(
        &avatar_audit::local_actor(),
        ctx.avatar.as_deref(),
        action,
        detail,
        outcome,
    );
    match (written, result) {
        (Err(e), Ok(())) => Err(e).context("cannot write the audit log"),
        _ => Ok(()),
    }
}

/// Prints the audit log, or checks its hash chain.
fn audit(ctx: &Ctx, limit: usize, verify: bool, as_json: bool) -> Result<()> {
    let path = ctx.data.join("audit.db");
    if !path.is_file() {
        println!("no audit log yet in {}", ctx.data.display());
        return Ok(());
    }
    let log = avatar_audit::AuditLog::open(&path)?;
    if verify {
        let v = log.verify()?;
        if as_json {
            println!("{}", serde_json::to_string(&v)?);
        } else if let Some(seq) = v.first_broken {
            println!("the audit log was altered: entry {seq} does not match its hash chain");
        } else {
            println!(
                "the audit log is intact: {} entries, hash chain verified",
                v.entries
            );
        }
        if v.first_broken.is_some() {
            bail!("audit log verification failed");
        }
        return Ok(());
    }
    for e in log.list(ctx.avatar.as_deref(), limit)? {
        if as_json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            println!(
                "{:>5} {} {:<22} {:<14} {:<14} {:<12} {}",
                e.seq,
                e.at,
                e.actor,
                e.avatar.as_deref().unwrap_or("-"),
                e.action,
                e.outcome,
                e.detail.replace('\n', " ")
            );
        }
    }
    Ok(())
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Seal | Command::Unseal => {
            bail!("seal and unseal run on the data directory itself")
        }
        Command::Audit {
            limit,
            verify,
            json,
        } => audit(ctx, limit, verify, json),
        Command::Init { name, aliases, id } => init(ctx, &name, &aliases, id.as_deref()),
        Command::Ingest { paths, format } => ingest(ctx, &paths, format).map(|_| ()),
        Command::Records { json, mine, limit } => records(ctx, json, mine, limit),
        Command::Search {
            query,
            json,
            k,
            mode,
            source,
            author,
            since,
            until,
        } => {
            let filters = crate::semantic::Filters {
                source,
                author,
                since: since.as_deref().map(|d| parse_date(d, false)).transpose()?,
                until: until.as_deref().map(|d| parse_date(d, true)).transpose()?,
            };
            search(ctx, &query, json, k, &mode, &filters)
        }
        Command::Eval {
            command: EvalCommand::Retrieval { queries, k, json },
        } => eval_retrieval(ctx, queries, k, json),
        Command::Eval {
            command:
                EvalCommand::Llm {
                    samples,
                    base,
                    json,
                },
        } => crate::llm::eval_llm(ctx, base.as_deref(), samples, json),
        Command::Dataset { command } => match command {
            DatasetCommand::Build {
                base,
                json,
                keep_pii,
                redact_names,
            } => crate::llm::dataset_build(ctx, base.as_deref(), json, keep_pii, redact_names),
            DatasetCommand::Show { json, split, limit } => {
                crate::llm::dataset_show(ctx, json, split, limit)
            }
        },
        Command::Train {
            command:
                TrainCommand::Llm {
                    steps,
                    base,
                    rank,
                    lr,
                    seq_len,
                    batch,
                    grad_accum,
                    seed,
                    checkpoint_every,
                    fresh,
                    json,
                },
        } => crate::llm::train_llm(
            ctx,
            &crate::llm::TrainArgs {
                steps,
                base,
                rank,
                learning_rate: lr,
                seq_len,
                batch_size: batch,
                grad_accum,
                seed,
                checkpoint_every,
                fresh,
                json,
            },
        ),
        Command::Train {
            command: TrainCommand::Voice(args),
        } => crate::voice_train::run(ctx, &args),
        Command::Export {
            command:
                ExportCommand::Llm {
                    merged,
                    gguf,
                    dtype,
                    base,
                },
        } => crate::llm::export_llm(
            ctx,
            merged.as_deref(),
            gguf.as_deref(),
            &dtype,
            base.as_deref(),
        ),
        Command::Ask { question, opts } => crate::llm::ask(ctx, &question, &ask_args(opts)),
        Command::Chat { opts } => crate::llm::chat(ctx, &ask_args(opts)),
        Command::Voice { command } => match command {
            VoiceCommand::Clips {
                json,
                export,
                all,
                threshold,
            } => crate::voice::clips(
                ctx,
                crate::voice::ClipsArgs {
                    json,
                    export,
                    all,
                    threshold,
                },
            ),
            VoiceCommand::Person { clip, threshold } => crate::voice::person(ctx, &clip, threshold),
            VoiceCommand::Eval {
                json,
                voice,
                tts,
                tts_voice,
                threshold,
            } => crate::voice::eval(ctx, json, &tts, &tts_voice, voice.as_deref(), threshold),
        },
        Command::Transcribe {
            files,
            json,
            language,
            model,
        } => crate::voice::transcribe(&files, json, language, model.as_deref()),
        Command::Speak {
            text,
            output,
            voice,
            index,
            index_rate,
            tts,
            tts_voice,
            threshold,
        } => crate::voice::speak(
            ctx,
            crate::voice::SpeakArgs {
                text,
                output,
                voice,
                index,
                index_rate,
                tts,
                tts_voice,
                threshold,
            },
        ),
        Command::Memory { command } => match command {
            MemoryCommand::Add { text, title, by } => memory_add(ctx, &text, title, by),
            MemoryCommand::List { json } => memory_list(ctx, json),
        },
        Command::Replay {
            into,
            from_offset,
            since,
            reset_group,
        } => {
            let since = since
                .map(|s| crate::serve::parse_date(&s, false))
                .transpose()?;
            match (into, reset_group) {
                (_, Some(group)) => reset_consumer_group(ctx, &group, from_offset, since),
                (Some(into), None) => replay(ctx, &into, from_offset, since),
                (None, None) => {
                    bail!("replay needs --into DIR (or --reset-group NAME on a Kafka log)")
                }
            }
        }
        Command::Status { json } => status(ctx, json),
        Command::Identity { command, json } => match command {
            None => identity_list(ctx, json),
            Some(IdentityCommand::List { json: j }) => identity_list(ctx, json || j),
            Some(IdentityCommand::Link { aliases, person }) => identity_link(ctx, &aliases, person),
        },
        Command::Demo { keep, train_steps } => crate::demo::run(keep, ctx.quiet, train_steps),
        Command::Up { addr, base } => up(ctx, addr, base),
        Command::Serve {
            command: ServeCommand::Query { addr, base },
        } => match (&ctx.log, &ctx.avatar) {
            // Kafka: one service for the avatars of every partition.
            (Some(cfg), None) => serve_partitioned(ctx, cfg, addr, base),
            _ => serve(ctx, ctx.open()?, addr, base),
        },
        Command::Serve {
            command: ServeCommand::Trainer(args),
        } => crate::trainer_service::serve_trainer(ctx, &args),
        Command::Serve {
            command: ServeCommand::Ingest(args),
        } => crate::connectors::serve_ingest(ctx, &args),
        Command::Serve {
            command: ServeCommand::Processor(args),
        } => crate::distributed::serve_processor(ctx, &args),
        Command::Serve {
            command: ServeCommand::Email(args),
        } => crate::email::run(ctx, *args),
        Command::Forget(a) => forget(ctx, a),
        Command::Privacy {
            command: PrivacyCommand::Report { json },
        } => crate::privacy::report(ctx, json),
        Command::Token { command } => match command {
            TokenCommand::Create { role } => token_create(ctx, &role),
            TokenCommand::List { json } => token_list(ctx, json),
            TokenCommand::Revoke { id } => token_revoke(ctx, &id),
        },
        Command::Persona {
            about,
            style,
            disclosure,
            json,
        } => persona(ctx, about, style, disclosure, json),
    }
}

fn ask_args(o: crate::AskOpts) -> crate::llm::AskArgs {
    crate::llm::AskArgs {
        k: o.k,
        max_tokens: o.max_tokens,
        temperature: o.temperature,
        base: o.base,
        json: o.json,
    }
}

/// What every command needs to know.
pub struct Ctx {
    pub data: PathBuf,
    pub avatar: Option<String>,
    pub quiet: bool,
    /// The Kafka log given with --log / AVATAR_LOG; `None` is the embedded SQLite log.
    pub log: Option<avatar_adapters::KafkaConfig>,
}

/// `--log`: `sqlite:` (or nothing) is the embedded log, `kafka://…` the distributed one.
pub fn log_choice(url: Option<&str>) -> Result<Option<avatar_adapters::KafkaConfig>> {
    match url.map(str::trim) {
        None | Some("") | Some("sqlite:") | Some("sqlite") => Ok(None),
        Some(u) if u.starts_with("kafka://") => avatar_adapters::KafkaConfig::parse(u)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--log: {e}")),
        Some(u) => bail!("--log `{u}`: expected sqlite: or kafka://HOST:PORT[,HOST:PORT…][/TOPIC]"),
    }
}

impl Ctx {
    /// Opens the stores the command works on: the data directory (embedded), or with a Kafka
    /// log the partition holding the chosen avatar.
    pub fn open(&self) -> Result<App> {
        match (&self.log, &self.avatar) {
            (None, _) => App::open(&self.data),
            (Some(_), Some(a)) => self.open_for(a),
            (Some(cfg), None) => {
                let kafka = self.kafka(cfg)?;
                let mut found = Vec::new();
                for p in 0..kafka.partitions() {
                    for s in kafka
                        .partition(p)?
                        .all_of_kinds(&["identity.avatar_created"])?
                    {
                        if let Payload::AvatarCreated(c) = s.event.payload {
                            found.push(c.avatar_id);
                        }
                    }
                }
                found.sort();
                found.dedup();
                match found.as_slice() {
                    [one] => self.open_partition(&kafka, one, crate::app::Vectors::IfFree),
                    [] => bail!(
                        "no avatar yet in the Kafka log {}; create one first: avatar init --name \"Their Name\"",
                        cfg.brokers
                    ),
                    many => bail!(
                        "the Kafka log holds {} avatars ({}); choose one with --avatar ID",
                        many.len(),
                        many.join(", ")
                    ),
                }
            }
        }
    }

    /// Opens the stores that hold `avatar` (with a Kafka log: its partition's).
    pub fn open_for(&self, avatar: &str) -> Result<App> {
        self.open_for_with(avatar, crate::app::Vectors::IfFree)
    }

    /// [`Ctx::open_for`] for commands that only emit events: with a Kafka log they leave the
    /// partition's vector store to the processor that owns it.
    pub fn open_for_emit(&self, avatar: &str) -> Result<App> {
        self.open_for_with(avatar, crate::app::Vectors::Skip)
    }

    fn open_for_with(&self, avatar: &str, vectors: crate::app::Vectors) -> Result<App> {
        match &self.log {
            None => App::open(&self.data),
            Some(cfg) => self.open_partition(&self.kafka(cfg)?, avatar, vectors),
        }
    }

    /// The stores of the Kafka partition holding `avatar`, on an open connection.
    fn open_partition(
        &self,
        kafka: &std::sync::Arc<avatar_adapters::KafkaLog>,
        avatar: &str,
        vectors: crate::app::Vectors,
    ) -> Result<App> {
        App::open_kafka(
            &self.data,
            kafka.partition(kafka.partition_of(avatar))?,
            vectors,
        )
    }

    fn kafka(
        &self,
        cfg: &avatar_adapters::KafkaConfig,
    ) -> Result<std::sync::Arc<avatar_adapters::KafkaLog>> {
        avatar_adapters::KafkaLog::connect(cfg)
            .with_context(|| format!("cannot connect to the Kafka log at {}", cfg.brokers))
    }

    fn bar(&self, len: u64, what: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if self.quiet {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr()
            },
        );
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} ({eta})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_string());
        bar
    }
}

/// A URL- and file-name-safe id from a name: "Ada Lovelace" -> "ada-lovelace".
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

pub fn init(ctx: &Ctx, name: &str, aliases: &[String], id: Option<&str>) -> Result<()> {
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let id = id.map(str::to_string).unwrap_or_else(|| slug(name));
    if id.is_empty() || id != slug(&id) {
        bail!(
            "avatar id `{id}` must be lowercase letters, digits and dashes (try `{}`)",
            slug(&id)
        );
    }
    let app = ctx.open_for(&id)?;
    if app.avatars()?.iter().any(|a| a.avatar_id == id) {
        bail!("avatar `{id}` already exists in {}", ctx.data.display());
    }
    let event = Envelope::new(
        id.clone(),
        "cli:init",
        Payload::AvatarCreated(AvatarCreated {
            avatar_id: id.clone(),
            name: name.to_string(),
            aliases: aliases.to_vec(),
        }),
    );
    app.log.append(&[event])?;
    println!("created avatar `{id}` for {name} in {}", ctx.data.display());
    Ok(())
}

pub fn ingest(
    ctx: &Ctx,
    paths: &[PathBuf],
    format: Option<String>,
) -> Result<avatar_processor::Report> {
    let app = match (&ctx.log, &ctx.avatar) {
        (Some(_), Some(a)) => ctx.open_for_emit(a)?,
        _ => ctx.open()?,
    };
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let opts = avatar_ingest::IngestOptions {
        format_hint: format,
        ..Default::default()
    };
    // Git repositories (a work tree, a bare repository or a file:// URL) are read commit by
    // commit; everything else is files, folders and archives.
    let is_repo = |p: &PathBuf| {
        p.to_string_lossy().starts_with("file://")
            || p.join(".git").exists()
            || (p.join("HEAD").is_file() && p.join("objects").is_dir())
    };
    let (remote, paths): (Vec<PathBuf>, Vec<PathBuf>) =
        paths.iter().cloned().partition(|p| is_remote_repo(p));
    let (mut repos, files): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(is_repo);
    for url in &remote {
        repos.push(clone_or_fetch(&app.dir, &url.to_string_lossy())?);
    }
    let mut report = avatar_ingest::IngestReport::default();
    if !files.is_empty() {
        let bar = ctx.bar(0, "reading");
        report = avatar_ingest::ingest_paths(
            &app.log,
            &app.blobs,
            &avatar.avatar_id,
            &files,
            &opts,
            &mut |p| {
                bar.set_length(p.total as u64);
                bar.set_position(p.done as u64);
            },
        )?;
        bar.finish_and_clear();
    }
    for repo in &repos {
        let bar = ctx.bar(0, "commits");
        let r = avatar_ingest::ingest_git(
            &app.log,
            &app.blobs,
            &avatar.avatar_id,
            &repo.to_string_lossy(),
            &avatar_ingest::GitOptions::default(),
            &mut |p| bar.set_position(p.commits as u64),
        )?;
        bar.finish_and_clear();
        report.artifacts_new += r.artifacts_new;
        report.artifacts_known += r.artifacts_known;
        report.rejected.extend(r.rejected);
        report.bytes += r.bytes;
    }
    for (name, reason) in &report.rejected {
        eprintln!("skipped {name}: {reason}");
    }
    if let crate::app::AppLog::Kafka(k) = &app.log {
        // Distributed: ingest only emits; the processors (`avatar serve processor`) parse.
        println!(
            "emitted {} new file(s) ({} already known, {} skipped) to Kafka topic {} partition {}; \
             `avatar serve processor` processes them",
            report.artifacts_new,
            report.artifacts_known,
            report.rejected.len(),
            k.log().config().topic,
            k.partition()
        );
        return Ok(avatar_processor::Report::default());
    }
    let start = app.log.checkpoint(avatar_processor::PARSE)?;
    let bar = ctx.bar(app.log.end()?.saturating_sub(start), "processing");
    let processed = app.process(&mut |p| {
        bar.set_length(p.end.saturating_sub(start));
        bar.set_position(p.offset.saturating_sub(start));
    })?;
    bar.finish_and_clear();
    for (_name, reason) in &processed.dead_letters {
        eprintln!("dead letter: {reason}");
    }
    let clips = if processed.clips > 0 {
        format!(", {} clip(s) of speech", processed.clips)
    } else {
        String::new()
    };
    let clips = if processed.transcribed > 0 {
        format!("{clips}, {} clip(s) transcribed", processed.transcribed)
    } else {
        String::new()
    };
    println!(
        "ingested {} new file(s) ({} already known, {} skipped): {} record(s){clips}, {} dead letter(s)",
        report.artifacts_new,
        report.artifacts_known,
        report.rejected.len(),
        processed.records,
        processed.dead_letters.len()
    );
    Ok(processed)
}

pub(crate) fn is_remote_repo(p: &Path) -> bool {
    let s = p.to_string_lossy();
    ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|pre| s.starts_with(pre))
        || (s.starts_with("git@") && s.contains(':'))
}

/// A remote repository is mirrored once under `DIR/repos/` (then fetched on later runs) with
/// the `git` command, so its commits get stable source URIs and re-ingesting is a no-op.
pub(crate) fn clone_or_fetch(data: &Path, url: &str) -> Result<PathBuf> {
    let name: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dest = data.join("repos").join(name);
    let status = if dest.join("HEAD").is_file() {
        std::process::Command::new("git")
            .args(["--git-dir"])
            .arg(&dest)
            .args(["fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*"])
            .status()
    } else {
        std::fs::create_dir_all(data.join("repos"))?;
        std::process::Command::new("git")
            .args(["clone", "--quiet", "--bare", url])
            .arg(&dest)
            .status()
    };
    match status {
        Ok(s) if s.success() => Ok(dest),
        Ok(s) => bail!("`git` could not clone or fetch {url} ({s}); check the URL and your access"),
        Err(e) => bail!("cannot run `git` to clone {url}: {e}; install git or clone it yourself and ingest the folder"),
    }
}

fn record_json(r: &Record) -> serde_json::Value {
    json!({
        "id": r.id,
        "source": r.source,
        "format": r.format,
        "kind": r.kind,
        "thread": r.thread,
        "timestamp": r.timestamp,
        "author": r.author,
        "author_is_person": r.author_is_person,
        "title": r.title,
        "message_id": r.message_id,
        "in_reply_to": r.in_reply_to,
        "text": r.text,
    })
}

pub fn records(ctx: &Ctx, as_json: bool, mine: bool, limit: Option<usize>) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let all = app.records.records(&avatar.avatar_id)?;
    let mut out = std::io::stdout().lock();
    for r in all
        .iter()
        .filter(|r| !mine || r.author_is_person)
        .take(limit.unwrap_or(usize::MAX))
    {
        if as_json {
            writeln!(out, "{}", record_json(r))?;
        } else {
            let when = r
                .timestamp
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "—".into());
            let who = r.author.as_deref().unwrap_or("?");
            let first_line = r.text.lines().next().unwrap_or("");
            writeln!(
                out,
                "{when}  {:<9} {who}: {}",
                r.format,
                truncate(first_line, 100)
            )?;
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// A date bound: `YYYY-MM-DD` (start of day, or its end for an upper bound) or RFC 3339.
fn parse_date(s: &str, end_of_day: bool) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("`{s}` is not a date: use YYYY-MM-DD or RFC 3339"))?;
    let t = if end_of_day {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.context("valid time")?.and_utc())
}

fn parse_mode(mode: &str) -> Result<avatar_retrieve::Mode> {
    mode.parse::<avatar_retrieve::Mode>()
        .map_err(|_| anyhow::anyhow!("--mode must be bm25, vector or hybrid, not `{mode}`"))
}

pub fn search(
    ctx: &Ctx,
    query: &str,
    as_json: bool,
    k: usize,
    mode: &str,
    filters: &crate::semantic::Filters,
) -> Result<()> {
    let mode = parse_mode(mode)?;
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let hits = crate::semantic::search(&app, &avatar.avatar_id, query, mode, k, filters)?;
    let mut out = std::io::stdout().lock();
    if hits.is_empty() && !as_json {
        writeln!(out, "no results for {query:?}")?;
    }
    for (rank, h) in hits.iter().enumerate() {
        let r = &h.record;
        if as_json {
            writeln!(
                out,
                "{}",
                json!({
                    "rank": rank + 1,
                    "record_id": r.id,
                    "score": h.cited.score,
                    "bm25_rank": h.cited.bm25_rank,
                    "vector_rank": h.cited.vector_rank,
                    "memory": h.cited.memory,
                    "snippet": h.cited.snippet,
                    "source": r.source,
                    "format": r.format,
                    "thread": r.thread,
                    "timestamp": r.timestamp,
                    "author": r.author,
                    "author_is_person": r.author_is_person,
                    "title": r.title,
                })
            )?;
        } else {
            let when = r
                .timestamp
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "undated".into());
            writeln!(
                out,
                "{}. {}  [{} · {} · {}]\n   {}\n   source: {}  record: {}",
                rank + 1,
                r.title.as_deref().unwrap_or(&r.thread),
                r.author.as_deref().unwrap_or("unknown author"),
                when,
                r.format,
                h.cited.snippet.replace('\n', " "),
                r.source,
                r.id
            )?;
        }
    }
    Ok(())
}

fn eval_retrieval(ctx: &Ctx, queries: Option<PathBuf>, k: usize, as_json: bool) -> Result<()> {
    let text = match &queries {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => include_str!("../../../samples/eval/retrieval.jsonl").to_string(),
    };
    let queries = avatar_retrieve::eval::parse_queries(&text)?;
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    if app.semantic.is_none() {
        bail!("retrieval evaluation compares vector and hybrid search too: run `infra/fetch-models.sh` first");
    }
    let filters = crate::semantic::Filters::default();
    let report = avatar_retrieve::eval::EvalReport::run(&queries, k, |q, mode, k| {
        crate::semantic::search(&app, &avatar.avatar_id, q, mode, k, &filters)
            .map(|hits| hits.into_iter().map(|h| h.record.id).collect::<Vec<_>>())
    })?;
    if as_json {
        println!("{}", report.to_json());
    } else {
        println!("{} queries, k = {k}", queries.len());
        for (name, s) in [
            ("bm25", report.bm25),
            ("vector", report.vector),
            ("hybrid", report.hybrid),
        ] {
            println!(
                "  {name:<7} recall@{k} {:.3}  MRR {:.3}",
                s.recall_at_k, s.mrr
            );
        }
    }
    Ok(())
}

pub fn memory_add(ctx: &Ctx, text: &str, title: Option<String>, by: Option<String>) -> Result<()> {
    if text.trim().is_empty() {
        bail!("a memory needs some text");
    }
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let event = avatar_ingest::add_memory(&app.log, &avatar.avatar_id, text, title, by)?;
    app.process(&mut |_| {})?;
    println!(
        "added memory {} to `{}`",
        avatar_schemas::record_id(&event.id.to_string(), 0),
        avatar.avatar_id
    );
    Ok(())
}

fn memory_list(ctx: &Ctx, as_json: bool) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    for r in app
        .records
        .records(&avatar.avatar_id)?
        .iter()
        .filter(|r| r.kind == RecordKind::Memory)
    {
        if as_json {
            println!("{}", record_json(r));
        } else {
            println!("{}  {}", r.id, r.text);
        }
    }
    Ok(())
}

/// Alias groups the user linked, and the person's confirmed aliases, from the log.
fn linked_aliases(app: &App, avatar: &str) -> Result<Vec<Vec<String>>> {
    Ok(app
        .log
        .all_of_kinds(&["identity.aliases"])?
        .into_iter()
        .filter(|s| s.event.avatar == avatar)
        .filter_map(|s| match s.event.payload {
            Payload::AliasesLinked(l) => Some(l.aliases),
            _ => None,
        })
        .collect())
}

pub fn identity_list(ctx: &Ctx, as_json: bool) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let identity = avatar_processor::load_identities(&app.log)?
        .remove(&avatar.avatar_id)
        .unwrap_or_default();
    let mut authors = std::collections::BTreeMap::<String, u64>::new();
    for r in app.records.records(&avatar.avatar_id)? {
        if let Some(a) = r.author {
            *authors.entry(a).or_default() += 1;
        }
    }
    let authors: Vec<(String, u64)> = authors.into_iter().collect();
    let participants = avatar_identity::participants(
        &identity,
        &authors,
        &linked_aliases(&app, &avatar.avatar_id)?,
    );
    for p in &participants {
        if as_json {
            println!(
                "{}",
                json!({"aliases": p.aliases, "records": p.records, "is_person": p.is_person})
            );
        } else {
            println!(
                "{}{:>6}  {}",
                if p.is_person { "* " } else { "  " },
                p.records,
                p.aliases.join("  |  ")
            );
        }
    }
    if !as_json {
        println!(
            "(* = {}; link more aliases with `avatar identity link ALIAS... --person`)",
            avatar.name
        );
    }
    Ok(())
}

pub fn identity_link(ctx: &Ctx, aliases: &[String], person: bool) -> Result<()> {
    if aliases.len() < 2 && !person {
        bail!("give at least two aliases to link (or one with --person)");
    }
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let event = Envelope::new(
        avatar.avatar_id.clone(),
        "cli:identity",
        Payload::AliasesLinked(avatar_schemas::AliasesLinked {
            aliases: aliases.to_vec(),
            is_person: person,
        }),
    );
    app.log.append(&[event])?;
    app.process(&mut |_| {})?;
    println!(
        "linked {} alias(es){}",
        aliases.len(),
        if person {
            format!(" to {}", avatar.name)
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Moves a consumer group's offsets on a Kafka log (a replay for consumers outside Avatar).
fn reset_consumer_group(
    ctx: &Ctx,
    group: &str,
    from_offset: Option<u64>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    let cfg = crate::distributed::kafka_config(ctx, "replay --reset-group")?;
    let kafka = avatar_adapters::KafkaLog::connect(&cfg)?;
    let to = match since {
        Some(t) => avatar_adapters::ResetTo::TimeMs(t.timestamp_millis()),
        None => avatar_adapters::ResetTo::Offset(from_offset.unwrap_or(0)),
    };
    for (p, at) in kafka.reset_checkpoint(group, to)? {
        println!("group avatar.{group}: partition {p} -> offset {at}");
    }
    Ok(())
}

/// Copies the input events (all, or from an offset or a time on) of `ctx`'s log into a fresh
/// embedded data directory and processes them there: a new version of every store.
pub fn replay(
    ctx: &Ctx,
    into: &Path,
    from_offset: Option<u64>,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    if into.exists() && std::fs::read_dir(into)?.next().is_some() {
        bail!(
            "{} is not empty: replay rebuilds into a fresh directory",
            into.display()
        );
    }
    let from = ctx.open()?;
    let to = App::open(into)?;
    let mut next = 0;
    let mut copied = 0usize;
    loop {
        let batch = from.log.read(next, 1024)?;
        let Some(last) = batch.last() else { break };
        next = last.offset + 1;
        let inputs: Vec<Envelope> = batch
            .into_iter()
            .filter(|s| s.event.payload.is_input())
            .filter(|s| {
                let identity = matches!(
                    s.event.payload,
                    Payload::AvatarCreated(_) | Payload::AliasesLinked(_)
                );
                identity
                    || (from_offset.is_none_or(|o| s.offset >= o)
                        && since.is_none_or(|t| s.event.occurred_at >= t))
            })
            .map(|s| s.event)
            .collect();
        for e in &inputs {
            if let Payload::ArtifactReceived(a) = &e.payload {
                let bytes = from
                    .blobs
                    .get(&a.sha256)
                    .with_context(|| format!("artifact {} ({})", a.name, a.sha256))?;
                to.blobs.put(&bytes)?;
            }
        }
        copied += inputs.len();
        to.log.append(&inputs)?;
    }
    let bar = ctx.bar(to.log.end()?, "replaying");
    let report = to.process(&mut |p| {
        bar.set_length(p.end);
        bar.set_position(p.offset);
    })?;
    bar.finish_and_clear();
    println!(
        "replayed {copied} input event(s) from {} into {}: {} record(s), {} dead letter(s)",
        ctx.data.display(),
        into.display(),
        report.records,
        report.dead_letters.len()
    );
    Ok(())
}

/// The personal model's card (what it was trained on, how far), or null before `train llm`.
fn llm_card(data: &Path, avatar: &str) -> serde_json::Value {
    let p = crate::llm::card_path(data, avatar);
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|c| {
            json!({
                "base": c["base"], "steps": c["steps"], "final_loss": c["final_loss"],
                "trained_at": c["trained_at"], "dataset_sha256": c["dataset_sha256"],
            })
        })
        .unwrap_or(serde_json::Value::Null)
}

pub fn status_json(app: &App) -> Result<serde_json::Value> {
    let mut avatars = Vec::new();
    for a in app.avatars()? {
        let records = app.records.records(&a.avatar_id)?;
        let mut by_format = std::collections::BTreeMap::<String, u64>::new();
        let mut mine = 0u64;
        for r in &records {
            *by_format.entry(r.format.clone()).or_default() += 1;
            mine += u64::from(r.author_is_person);
        }
        avatars.push(json!({
            "id": a.avatar_id,
            "name": a.name,
            "aliases": a.aliases,
            "records": records.len(),
            "records_by_person": mine,
            "records_by_format": by_format,
            "dataset": app.dataset_path(&a.avatar_id),
            "llm": llm_card(&app.dir, &a.avatar_id),
            // Embedded chunks in the vector store (null without an embedding model).
            "chunks": match &app.semantic {
                Some(sem) => Some(sem.store.count(&a.avatar_id)?),
                None => None,
            },
        }));
    }
    let dead: Vec<serde_json::Value> = app
        .log
        .all_of_kinds(&["deadletter"])?
        .into_iter()
        .filter_map(|s| match &s.event.payload {
            Payload::DeadLetter(d) => Some(json!({
                "avatar": s.event.avatar,
                "offset": s.offset,
                "source": s.event.source,
                "name": d.name,
                "error_kind": d.error_kind,
                "reason": d.reason,
            })),
            _ => None,
        })
        .collect();
    let events_by_kind: serde_json::Map<String, serde_json::Value> = app
        .log
        .count_by_kind()?
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    Ok(json!({
        "data_dir": app.dir,
        "blobs": app.blobs.location(&app.dir),
        "avatars": avatars,
        "log": {
            "end_offset": app.log.end()?,
            "events_by_kind": events_by_kind,
            "checkpoints": {
                "parse": app.log.checkpoint(avatar_processor::PARSE)?,
                "sink": app.records.checkpoint(avatar_processor::SINK)?,
                "index": app.index.checkpoint()?,
            },
        },
        "dead_letters": dead,
    }))
}

pub fn status(ctx: &Ctx, as_json: bool) -> Result<()> {
    let app = ctx.open()?;
    let s = status_json(&app)?;
    if as_json {
        println!("{s}");
        return Ok(());
    }
    println!("data directory: {}", ctx.data.display());
    println!("blobs: {}", s["blobs"].as_str().unwrap_or(""));
    for a in s["avatars"].as_array().into_iter().flatten() {
        println!(
            "avatar {} ({}): {} records, {} written by them",
            a["id"].as_str().unwrap_or(""),
            a["name"].as_str().unwrap_or(""),
            a["records"],
            a["records_by_person"]
        );
        if let Some(m) = a["records_by_format"].as_object() {
            for (f, n) in m {
                println!("  {f:<10} {n}");
            }
        }
    }
    println!("log: {} events", s["log"]["end_offset"]);
    let dead = s["dead_letters"].as_array().map(Vec::len).unwrap_or(0);
    println!("dead letters: {dead}");
    for d in s["dead_letters"].as_array().into_iter().flatten() {
        println!(
            "  {} [{}]: {}",
            d["name"].as_str().unwrap_or(""),
            d["error_kind"].as_str().unwrap_or(""),
            d["reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `avatar up`: one process for everything. Pending log events are processed first so the
/// API answers over everything ingested so far.
fn up(ctx: &Ctx, addr: std::net::SocketAddr, base: Option<String>) -> Result<()> {
    let app = ctx.open()?;
    let start = app.log.checkpoint(avatar_processor::PARSE)?;
    let bar = ctx.bar(app.log.end()?.saturating_sub(start), "processing");
    let report = app.process(&mut |p| {
        bar.set_length(p.end.saturating_sub(start));
        bar.set_position(p.offset.saturating_sub(start));
    })?;
    bar.finish_and_clear();
    if report.records > 0 || !report.dead_letters.is_empty() {
        eprintln!(
            "processed pending events: {} record(s), {} dead letter(s)",
            report.records,
            report.dead_letters.len()
        );
    }
    serve(ctx, app, addr, base)
}

fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<()> {
    let as_json = a.json;
    let target = crate::forget::target(a.source, a.record, a.before, a.participant)?;
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    if a.dry_run {
        app.process(&mut |_| {})?;
        let covered: Vec<Record> = app
            .records
            .records(&avatar.avatar_id)?
            .into_iter()
            .filter(|r| target.covers(r))
            .collect();
        for r in &covered {
            if as_json {
                println!(
                    "{}",
                    json!({"id": r.id, "source": r.source, "author": r.author,
                           "timestamp": r.timestamp, "kind": r.kind})
                );
            } else {
                println!(
                    "{}  {}  {}  {}",
                    r.id,
                    r.timestamp
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_else(|| "undated".into()),
                    r.author.as_deref().unwrap_or("unknown author"),
                    r.source
                );
            }
        }
        if !as_json {
            println!(
                "{} record(s) would be forgotten (dry run: nothing changed)",
                covered.len()
            );
        }
        return Ok(());
    }
    let report = crate::forget::forget(&app, &avatar.avatar_id, target, a.reason, "cli:forget")?;
    drop(app);
    if a.retrain && report.model_removed {
        crate::forget::retrain(ctx, &ctx.data, &avatar.avatar_id)?;
    }
    if as_json {
        let mut v = serde_json::to_value(&report)?;
        v["retrained"] = serde_json::Value::Bool(a.retrain && report.model_removed);
        println!("{v}");
        return Ok(());
    }
    println!(
        "forgot {} record(s): removed from the records, index, vectors and datasets; {} event(s) \
         and {} raw file(s) deleted",
        report.records, report.events_removed, report.blobs_removed
    );
    if report.training_set_removed {
        println!("the training set held them and was removed; `avatar dataset build` rebuilds it");
    }
    if report.model_removed && a.retrain {
        println!("the personal model was trained on them: removed and trained again without them");
    } else if report.model_removed {
        println!(
            "the personal model was trained on them and was removed; retrain: avatar train llm \
             (or forget with --retrain)"
        );
    }
    if report.voice_model_removed {
        println!(
            "their voice model may have learned from the forgotten recordings and was removed; \
             retrain: avatar train voice"
        );
    }
    if report.records == 0 && !report.voice_model_removed {
        println!("(nothing matched; the tombstone stays in the log for replay)");
    }
    Ok(())
}

/// Serves the query API over `app` until Ctrl-C / SIGTERM.
fn serve(ctx: &Ctx, app: App, addr: std::net::SocketAddr, base: Option<String>) -> Result<()> {
    let tokens = std::sync::Arc::new(open_tokens(&app.dir)?);
    let avatar_list: Vec<String> = app.avatars()?.into_iter().map(|a| a.avatar_id).collect();
    let backend = std::sync::Arc::new(crate::serve::EmbeddedBackend::new(app, base));
    serve_backend(ctx, backend, tokens, &avatar_list, addr)
}

/// Serves the avatars of every partition of a Kafka log.
fn serve_partitioned(
    ctx: &Ctx,
    cfg: &avatar_adapters::KafkaConfig,
    addr: std::net::SocketAddr,
    base: Option<String>,
) -> Result<()> {
    let kafka = avatar_adapters::KafkaLog::connect(cfg)
        .with_context(|| format!("cannot connect to the Kafka log at {}", cfg.brokers))?;
    std::fs::create_dir_all(&ctx.data)
        .with_context(|| format!("cannot create data directory {}", ctx.data.display()))?;
    let tokens = std::sync::Arc::new(open_tokens(&ctx.data)?);
    let backend = std::sync::Arc::new(crate::query_router::PartitionedBackend::new(
        ctx.data.clone(),
        kafka,
        base,
    ));
    let avatar_list: Vec<String> = avatar_query::Backend::avatars(backend.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .map(|a| a.id)
        .collect();
    eprintln!(
        "serving {} avatar(s) from every partition of Kafka topic {}",
        avatar_list.len(),
        cfg.topic
    );
    serve_backend(ctx, backend, tokens, &avatar_list, addr)
}

fn serve_backend(
    ctx: &Ctx,
    backend: std::sync::Arc<dyn avatar_query::Backend>,
    tokens: std::sync::Arc<avatar_query::TokenStore>,
    avatar_list: &[String],
    addr: std::net::SocketAddr,
) -> Result<()> {
    eprintln!("web UI and API: http://{addr}/  (OpenAI-compatible: http://{addr}/v1)");
    let example = match avatar_list {
        [one] => format!(" --avatar {one}"),
        _ => " --avatar ID".to_string(),
    };
    eprintln!(
        "{} API token(s); create one with: avatar --data {} token create{example} --role viewer|editor|owner",
        tokens.list()?.len(),
        ctx.data.display()
    );
    let audit = avatar_audit::AuditLog::open(&ctx.data.join("audit.db"))
        .context("cannot open the audit log")?;
    let state = avatar_query::AppState::new(backend, tokens).with_audit(std::sync::Arc::new(audit));
    avatar_query::serve_blocking(addr, state).with_context(|| format!("cannot serve on {addr}"))?;
    Ok(())
}

fn open_tokens(data: &Path) -> Result<avatar_query::TokenStore> {
    std::fs::create_dir_all(data)?;
    let path = data.join("auth.db");
    avatar_query::TokenStore::open(&path)
        .with_context(|| format!("cannot open the token store {}", path.display()))
}

fn token_create(ctx: &Ctx, role: &str) -> Result<()> {
    let role: avatar_query::Role = role.parse()?;
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let token = open_tokens(&app.dir)?.create(&avatar.avatar_id, role)?;
    // The token alone on stdout (scripts capture it); the advice on stderr.
    println!("{token}");
    eprintln!(
        "{role} token for `{}`: shown once, keep it secret. Send it as `Authorization: Bearer <token>`.",
        avatar.avatar_id
    );
    Ok(())
}

fn token_list(ctx: &Ctx, as_json: bool) -> Result<()> {
    let list = open_tokens(&ctx.data)?.list()?;
    for t in &list {
        if as_json {
            println!("{}", serde_json::to_string(t)?);
        } else {
            println!("{}  {:<7} {}  {}", t.id, t.role, t.avatar, t.created_at);
        }
    }
    if list.is_empty() && !as_json {
        println!("no tokens; create one with `avatar token create --role viewer`");
    }
    Ok(())
}

fn token_revoke(ctx: &Ctx, id: &str) -> Result<()> {
    if !open_tokens(&ctx.data)?.revoke(id)? {
        bail!("no token with id `{id}` (see `avatar token list`)");
    }
    println!("revoked token {id}");
    Ok(())
}

fn persona(
    ctx: &Ctx,
    about: Option<String>,
    style: Option<String>,
    disclosure: Option<String>,
    as_json: bool,
) -> Result<()> {
    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let mut card = crate::serve::load_card(&app.dir, &avatar)?;
    let changed = about.is_some() || style.is_some() || disclosure.is_some();
    if let Some(t) = about {
        card.about = t;
    }
    if let Some(t) = style {
        card.style = t;
    }
    if let Some(t) = disclosure {
        card.disclosure = t;
    }
    if changed {
        crate::serve::save_card(&app.dir, &avatar.avatar_id, &card)?;
        // Read back so a blank disclosure shows the default it falls back to.
        card = crate::serve::load_card(&app.dir, &avatar)?;
    }
    if as_json {
        println!("{}", serde_json::to_string(&card)?);
    } else {
        println!("name:       {}", card.name);
        println!("about:      {}", card.about);
        println!("style:      {}", card.style);
        println!("disclosure: {}", card.disclosure);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::slug;

    /// Remote repositories are mirrored under DIR/repos with `git`: a local path stands in
    /// for the URL (git clones both the same way); the second call fetches.
    #[test]
    fn remote_repositories_are_mirrored_then_fetched() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("src");
        std::fs::create_dir_all(&repo).unwrap();
        let git = |args: &[&str]| {
            assert!(std::process::Command::new("git")
                .current_dir(&repo)
                .args(args)
                .status()
                .unwrap()
                .success());
        };
        git(&["init", "-q"]);
        std::fs::write(repo.join("a.txt"), "a").unwrap();
        git(&["add", "."]);
        git(&[
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@example.org",
            "commit",
            "-q",
            "-m",
            "one",
        ]);
        let data = tmp.path().join("data");
        let url = repo.to_string_lossy().into_owned();
        let dest = super::clone_or_fetch(&data, &url).unwrap();
        assert!(dest.join("HEAD").is_file());
        assert_eq!(super::clone_or_fetch(&data, &url).unwrap(), dest);
        assert!(super::clone_or_fetch(&data, "/no/such/repo").is_err());
        assert!(super::is_remote_repo(std::path::Path::new(
            "https://github.com/a/b"
        )));
        assert!(super::is_remote_repo(std::path::Path::new(
            "git@github.com:a/b.git"
        )));
        assert!(!super::is_remote_repo(std::path::Path::new("/home/a/b")));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Ada Lovelace"), "ada-lovelace");
        assert_eq!(slug("  José  María O'Neil "), "josé-maría-o-neil");
        assert_eq!(slug("---"), "");
    }
}
