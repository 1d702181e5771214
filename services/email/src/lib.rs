//! Ask the avatar by email: `avatar serve email` reads questions from a mailbox over IMAP and
//! answers each over SMTP with the answer, the avatar's disclosure line and numbered sources.
//!
//! The pure parts (what a mail asks, who may ask, what the reply looks like) are plain
//! functions tested in milliseconds; the I/O sits behind three small traits ([`MailStore`],
//! [`MailSender`], [`Answerer`]) so the poll loop itself is tested with in-memory twins, and
//! the real IMAP/SMTP clients are tested end to end against Dovecot (`infra/email-test.sh`).
//!
//! Safety rules the loop enforces, because an answer reveals the person's data and a mail
//! robot can easily start loops:
//! - only senders on the allow-list are answered; others are marked read and logged, never
//!   answered (no backscatter);
//! - auto-replies, bounces, mailing lists and the avatar's own mail are never answered, and
//!   every reply carries `Auto-Submitted: auto-replied` so other robots leave it alone;
//! - what was handled is recorded by Message-ID before the reply goes out, so a restart never
//!   replies twice (at most once, by design).

mod allow;
mod imap_store;
mod poll;
mod question;
mod reply;
mod shutdown;
mod smtp;
mod state;

pub use allow::AllowList;
pub use imap_store::{ImapConfig, ImapStore};
pub use poll::{poll_once, Answerer, Event, MailSender, MailStore, PollStats, Poller};
pub use question::{parse_mail, Incoming, Question, SkipReason};
pub use reply::{compose_reply, reply_body, reply_subject, AnswerText, Source};
pub use shutdown::{shutdown_flag, sleep_unless};
pub use smtp::{SmtpConfig, SmtpSecurity, SmtpSender};
pub use state::{Outcome, State};

/// Errors of the mail service. Per-message problems never stop the loop; these are what the
/// loop reports (and what stops it only at start-up: bad config, unreachable state).
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The user's configuration is wrong (bad address, plaintext to a remote host, …).
    #[error("{0}")]
    Config(String),
    #[error("IMAP: {0}")]
    Imap(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the reply could not be built: {0}")]
    Compose(String),
    #[error("state database: {0}")]
    State(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, EmailError>;

pub use lettre::message::Mailbox;

/// The avatar's From mailbox, `Name (avatar) <address>`; an error when `address` is not one.
pub fn avatar_mailbox(name: &str, address: &str) -> Result<Mailbox> {
    let email: lettre::Address = address.trim().parse().map_err(|e| {
        EmailError::Config(format!(
            "`{address}` is not a mail address ({e}); give the avatar's address with --address"
        ))
    })?;
    Ok(Mailbox::new(Some(format!("{name} (avatar)")), email))
}

/// Whether `host` names this machine, where plaintext IMAP/SMTP cannot be sniffed on a network.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Splits `HOST:PORT` (or `[v6]:PORT`); `default_port` when no port is given.
pub fn split_host_port(addr: &str, default_port: u16) -> Result<(String, u16)> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(EmailError::Config("empty server address".into()));
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| EmailError::Config(format!("`{addr}`: unclosed `[`")))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => parse_port(addr, p)?,
            None if tail.is_empty() => default_port,
            None => return Err(EmailError::Config(format!("`{addr}` is not HOST:PORT"))),
        };
        return Ok((host.to_string(), port));
    }
    match addr.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => Ok((host.to_string(), parse_port(addr, p)?)),
        // A bare IPv6 address without brackets: no port part.
        Some(_) => Ok((addr.to_string(), default_port)),
        None => Ok((addr.to_string(), default_port)),
    }
}

fn parse_port(addr: &str, p: &str) -> Result<u16> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| EmailError::Config(format!("`{addr}`: `{p}` is not a port")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_avatar_mailbox_needs_an_address() {
        let m = avatar_mailbox("Ada Lovelace", "ada@x.org").unwrap();
        assert_eq!(m.to_string(), "\"Ada Lovelace (avatar)\" <ada@x.org>");
        assert!(avatar_mailbox("Ada", "ada").is_err());
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("imap.example.org"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("imap.x.org:993", 143).unwrap(),
            ("imap.x.org".into(), 993)
        );
        assert_eq!(
            split_host_port("imap.x.org", 993).unwrap(),
            ("imap.x.org".into(), 993)
        );
        assert_eq!(split_host_port("[::1]:25", 1).unwrap(), ("::1".into(), 25));
        assert!(split_host_port("x:notaport", 1).is_err());
        assert!(split_host_port("x:0", 1).is_err());
        assert!(split_host_port("", 1).is_err());
    }
}
