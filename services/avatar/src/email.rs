//! `avatar serve email`: answers questions mailed to the avatar's address. This file only
//! turns flags into configs and the query backend into an [`avatar_email::Answerer`]; the mail
//! logic (who may ask, what is skipped, never answering twice) lives in `services/email`.

use crate::commands::Ctx;
use anyhow::{bail, Context, Result};
use avatar_email::{
    AllowList, AnswerText, Answerer, ImapConfig, ImapStore, Poller, Question, SmtpConfig,
    SmtpSecurity, SmtpSender, Source, State,
};
use avatar_query::{AskParams, Backend, Turn};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Failed attempts (model or send errors) after which a mail is marked read and given up.
const MAX_ATTEMPTS: u32 = 3;

/// Answer questions mailed to the avatar: every INTERVAL seconds, read unread mail in FOLDER
/// over IMAP, answer mail from allowed senders with the answer, the disclosure line and the
/// sources, over SMTP; mark it read (and answered). Mail from others is marked read and never
/// answered; auto-replies, bounces and mailing lists are ignored.
///
/// The password comes from an environment variable or a file, never from the command line.
///
/// Example:
///   MAIL_PASSWORD=… avatar serve email --imap imap.example.org:993 \
///     --smtp smtp.example.org:465 --user ada-avatar@example.org \
///     --password-env MAIL_PASSWORD --allow charles@example.org --allow @family.example
#[derive(clap::Args, Debug)]
pub struct EmailArgs {
    /// IMAP server, HOST[:PORT] (default port 993, implicit TLS).
    #[arg(long, value_name = "HOST:PORT")]
    pub imap: String,
    /// Use implicit TLS for IMAP (automatic on port 993).
    #[arg(long)]
    pub tls: bool,
    /// SMTP server, HOST[:PORT] (default port 465, implicit TLS).
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp: String,
    /// SMTP security: tls (implicit), starttls or plain. Default: tls on 465, plain on a
    /// loopback host, otherwise starttls (required).
    #[arg(long, value_name = "MODE")]
    pub smtp_security: Option<String>,
    /// Mailbox login (IMAP, and SMTP unless --smtp-user / --smtp-no-auth).
    #[arg(long)]
    pub user: String,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// SMTP login when it differs from --user (same password).
    #[arg(long)]
    pub smtp_user: Option<String>,
    /// Send without logging in to SMTP (a local relay that accepts mail from this host).
    #[arg(long)]
    pub smtp_no_auth: bool,
    /// The avatar's From address (default: --user, which must then be an address).
    #[arg(long)]
    pub address: Option<String>,
    /// Who may ask: an address (ada@example.org) or a whole domain (@example.org); repeat for
    /// more. Required: answers reveal the person's data.
    #[arg(long, value_name = "ADDR|@DOMAIN")]
    pub allow: Vec<String>,
    /// Folder to read questions from.
    #[arg(long, default_value = "INBOX")]
    pub folder: String,
    /// Seconds between checks for new mail.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub interval: u64,
    /// Check once, answer what is there, and exit (for cron and tests).
    #[arg(long)]
    pub once: bool,
    /// Allow IMAP/SMTP without TLS to a host that is not this machine.
    #[arg(long)]
    pub insecure: bool,
    /// Base model for answers (default: SmolLM2-135M-Instruct from infra/fetch-models.sh).
    #[arg(long)]
    pub base: Option<String>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: usize,
    /// Records retrieved as context and cited.
    #[arg(short = 'k', long, default_value_t = 4)]
    pub k: usize,
    /// Sampling temperature (0 = greedy, deterministic).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
}

pub fn run(ctx: &Ctx, args: EmailArgs) -> Result<()> {
    if args.allow.is_empty() {
        bail!(
            "refusing to start without --allow: mail answers reveal the person's data, so say who may ask \
             (--allow charles@example.org for one address, --allow @example.org for a domain; repeatable)"
        );
    }
    let allow = AllowList::new(&args.allow)?;
    let password = read_password(&args)?;
    let (imap_host, imap_port) = avatar_email::split_host_port(&args.imap, 993)?;
    let imap = ImapConfig {
        tls: args.tls || imap_port == 993,
        host: imap_host,
        port: imap_port,
        insecure: args.insecure,
        user: args.user.clone(),
        password: password.clone(),
        folder: args.folder.clone(),
        timeout: Duration::from_secs(60),
    };
    imap.check()?;
    let (smtp_host, smtp_port) = avatar_email::split_host_port(&args.smtp, 465)?;
    let smtp = SmtpConfig {
        security: SmtpSecurity::choose(
            args.smtp_security.as_deref(),
            &smtp_host,
            smtp_port,
            args.insecure,
        )?,
        host: smtp_host,
        port: smtp_port,
        credentials: (!args.smtp_no_auth).then(|| {
            (
                args.smtp_user.clone().unwrap_or_else(|| args.user.clone()),
                password.clone(),
            )
        }),
        timeout: Duration::from_secs(60),
    };
    let sender = SmtpSender::new(&smtp)?;

    let app = ctx.open()?;
    let avatar = app.avatar(ctx.avatar.as_deref())?;
    let state_path = ctx
        .data
        .join("email")
        .join(&avatar.avatar_id)
        .join("state.db");
    let state = State::open(&state_path)
        .with_context(|| format!("cannot open {}", state_path.display()))?;
    let address = args.address.clone().unwrap_or_else(|| args.user.clone());
    let own = avatar_email::avatar_mailbox(&avatar.name, &address)?;
    let poller = Poller {
        own,
        allow,
        max_attempts: MAX_ATTEMPTS,
    };
    let backend = crate::serve::EmbeddedBackend::new(app, args.base.clone());
    let answerer = BackendAnswerer {
        backend: &backend,
        avatar: avatar.avatar_id.clone(),
        params: AskParams {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            k: args.k,
            ..AskParams::default()
        },
    };
    if !ctx.quiet {
        eprintln!(
            "answering mail to {} as `{}`: {} {} on {}:{} every {} s, replies via {}:{} ({:?})",
            poller.own.email,
            avatar.avatar_id,
            if args.once {
                "one check of"
            } else {
                "checking"
            },
            args.folder,
            imap.host,
            imap.port,
            args.interval,
            smtp.host,
            smtp.port,
            smtp.security
        );
    }

    let stop = avatar_email::shutdown_flag();
    loop {
        let pass = (|| -> avatar_email::Result<avatar_email::PollStats> {
            let mut store = ImapStore::connect(&imap)?;
            let stats = avatar_email::poll_once(
                &poller,
                &mut store,
                &sender,
                &answerer,
                &state,
                &chrono::Utc::now,
                &mut |e| eprintln!("email: {e}"),
            );
            store.logout();
            stats
        })();
        match pass {
            Ok(s) => {
                if args.once || s.answered + s.skipped + s.failed > 0 {
                    eprintln!(
                        "email: {} answered, {} skipped, {} failed, {} already handled",
                        s.answered, s.skipped, s.failed, s.already
                    );
                }
            }
            Err(e) if args.once => return Err(e.into()),
            Err(e) => eprintln!("email: {e}; trying again in {} s", args.interval),
        }
        if args.once
            || stop.load(Ordering::SeqCst)
            || avatar_email::sleep_unless(&stop, Duration::from_secs(args.interval.max(1)))
        {
            break;
        }
    }
    Ok(())
}

fn read_password(args: &EmailArgs) -> Result<String> {
    let pw = match (&args.password_env, &args.password_file) {
        (Some(var), _) => std::env::var(var).with_context(|| {
            format!("--password-env: the environment variable {var} is not set")
        })?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--password-file: cannot read {}", path.display()))?;
            text.lines().next().unwrap_or("").to_string()
        }
        (None, None) => bail!(
            "give the mailbox password with --password-env VAR or --password-file PATH \
             (never on the command line, where other users can read it)"
        ),
    };
    if pw.is_empty() {
        bail!("the mailbox password is empty");
    }
    Ok(pw)
}

/// The query backend as the mail loop's answerer: the mail's new text is the one user turn.
struct BackendAnswerer<'a> {
    backend: &'a crate::serve::EmbeddedBackend,
    avatar: String,
    params: AskParams,
}

impl Answerer for BackendAnswerer<'_> {
    fn answer(&self, q: &Question) -> std::result::Result<AnswerText, String> {
        // Read per mail: the persona card may be edited while the service runs.
        let disclosure = self
            .backend
            .avatars()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|a| a.id == self.avatar)
            .map(|a| a.disclosure)
            .ok_or_else(|| format!("avatar `{}` is gone", self.avatar))?;
        let history = [Turn {
            role: "user".into(),
            content: q.text.clone(),
        }];
        let a = self
            .backend
            .ask(&self.avatar, &history, &self.params, &mut |_| true)
            .map_err(|e| e.to_string())?;
        Ok(AnswerText {
            text: a.text,
            disclosure,
            sources: a
                .citations
                .into_iter()
                .map(|c| Source {
                    source: c.source,
                    date: c.timestamp,
                    author: c.author,
                    title: c.title,
                    snippet: c.snippet,
                })
                .collect(),
        })
    }
}
