//! Sending replies with lettre's blocking SMTP transport over rustls. Which security to use is
//! decided here, once: implicit TLS on 465, plaintext only to loopback (a local relay) or when
//! the user insisted, STARTTLS (required, never opportunistic) everywhere else.

use crate::{is_loopback, EmailError, MailSender, Result};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::time::Duration;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plaintext, then `STARTTLS`; refuses to go on without it.
    StartTls,
    /// No TLS at all.
    Plain,
}

impl SmtpSecurity {
    /// Picks the security for `host:port`: `requested` is `tls`, `starttls`, `plain` or `None`
    /// (auto: 465 → tls, loopback → plain, else starttls). Plaintext to a remote host needs
    /// `insecure`.
    pub fn choose(
        requested: Option<&str>,
        host: &str,
        port: u16,
        insecure: bool,
    ) -> Result<SmtpSecurity> {
        let s = match requested.map(|r| r.trim().to_lowercase()).as_deref() {
            Some("tls") | Some("implicit") | Some("ssl") => SmtpSecurity::Implicit,
            Some("starttls") => SmtpSecurity::StartTls,
            Some("plain") | Some("none") => SmtpSecurity::Plain,
            Some(other) => {
                return Err(EmailError::Config(format!(
                    "--smtp-security `{other}`: use tls, starttls or plain"
                )))
            }
            None if port == 465 => SmtpSecurity::Implicit,
            None if is_loopback(host) => SmtpSecurity::Plain,
            None => SmtpSecurity::StartTls,
        };
        if s == SmtpSecurity::Plain && !is_loopback(host) && !insecure {
            return Err(EmailError::Config(format!(
                "SMTP to {host}:{port} without TLS would expose the mail and password: \
                 use --smtp-security tls|starttls, or --insecure if you really mean it"
            )));
        }
        Ok(s)
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// (user, password); `None` sends without logging in (a local relay).
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

/// Sends over SMTP; one connection per reply (replies are rare and slow to generate).
pub struct SmtpSender {
    transport: SmtpTransport,
}

impl SmtpSender {
    pub fn new(cfg: &SmtpConfig) -> Result<SmtpSender> {
        let tls = |host: &str| {
            TlsParameters::builder(host.to_string())
                .build_rustls()
                .map_err(|e| EmailError::Tls(e.to_string()))
        };
        let mut b = SmtpTransport::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .timeout(Some(cfg.timeout))
            .tls(match cfg.security {
                SmtpSecurity::Implicit => Tls::Wrapper(tls(&cfg.host)?),
                SmtpSecurity::StartTls => Tls::Required(tls(&cfg.host)?),
                SmtpSecurity::Plain => Tls::None,
            });
        if let Some((u, p)) = &cfg.credentials {
            b = b.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(SmtpSender {
            transport: b.build(),
        })
    }
}

impl MailSender for SmtpSender {
    fn send(&self, msg: &Message) -> Result<()> {
        self.transport
            .send(msg)
            .map(|_| ())
            .map_err(|e| EmailError::Smtp(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn security_is_chosen_safely() {
        use SmtpSecurity::*;
        assert_eq!(
            SmtpSecurity::choose(None, "smtp.x.org", 465, false).unwrap(),
            Implicit
        );
        assert_eq!(
            SmtpSecurity::choose(None, "smtp.x.org", 587, false).unwrap(),
            StartTls
        );
        assert_eq!(
            SmtpSecurity::choose(None, "127.0.0.1", 2525, false).unwrap(),
            Plain
        );
        assert_eq!(
            SmtpSecurity::choose(Some("starttls"), "127.0.0.1", 25, false).unwrap(),
            StartTls
        );
        assert!(SmtpSecurity::choose(Some("plain"), "smtp.x.org", 25, false).is_err());
        assert_eq!(
            SmtpSecurity::choose(Some("plain"), "smtp.x.org", 25, true).unwrap(),
            Plain
        );
        assert!(SmtpSecurity::choose(Some("bogus"), "127.0.0.1", 25, false).is_err());
    }

    #[test]
    fn a_closed_port_fails_the_send_not_the_process() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = SmtpSender::new(&SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::Plain,
            credentials: None,
            timeout: Duration::from_secs(2),
        })
        .unwrap();
        let msg = Message::builder()
            .from("a@x.org".parse().unwrap())
            .to("b@x.org".parse().unwrap())
            .subject("s")
            .body(String::from("b"))
            .unwrap();
        assert!(matches!(s.send(&msg), Err(EmailError::Smtp(_))));
    }
}
