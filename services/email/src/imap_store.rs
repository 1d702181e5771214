//! The mailbox over IMAP (imap 2.x, without its native-tls feature: TLS is rustls + ring, the
//! stack the rest of the workspace already builds). Mail is fetched with `BODY.PEEK[]` so a
//! mail that fails stays unread for the next pass; flags are set only once it was handled.

use crate::{is_loopback, EmailError, MailStore, Result};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Where and how to read mail.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    /// Implicit TLS (IMAPS, port 993).
    pub tls: bool,
    /// Allow plaintext to a host that is not loopback (the password crosses the network).
    pub insecure: bool,
    pub user: String,
    pub password: String,
    pub folder: String,
    /// Connect/read/write timeout, so a dead server cannot hang the loop.
    pub timeout: Duration,
}

impl ImapConfig {
    /// Refuses plaintext to a remote host unless `insecure` was asked for.
    pub fn check(&self) -> Result<()> {
        if !self.tls && !self.insecure && !is_loopback(&self.host) {
            return Err(EmailError::Config(format!(
                "IMAP to {}:{} without TLS would send the password in clear: use --tls (or port 993), \
                 or --insecure if you really mean it",
                self.host, self.port
            )));
        }
        Ok(())
    }
}

/// Anything the IMAP client can talk over: a TCP or a TLS stream.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A logged-in IMAP session with the folder selected.
pub struct ImapStore {
    session: imap::Session<Box<dyn Stream>>,
    uid_validity: Option<u32>,
}

fn imap_err(what: &str) -> impl Fn(imap::error::Error) -> EmailError + '_ {
    move |e| EmailError::Imap(format!("{what}: {e}"))
}

impl ImapStore {
    /// Connects, logs in and selects the folder.
    pub fn connect(cfg: &ImapConfig) -> Result<ImapStore> {
        cfg.check()?;
        let tcp = connect_tcp(&cfg.host, cfg.port, cfg.timeout)?;
        let stream: Box<dyn Stream> = if cfg.tls {
            Box::new(tls_stream(&cfg.host, tcp)?)
        } else {
            Box::new(tcp)
        };
        let mut client = imap::Client::new(stream);
        client
            .read_greeting()
            .map_err(imap_err("no greeting from the server"))?;
        let session = client
            .login(&cfg.user, &cfg.password)
            .map_err(|(e, _)| EmailError::Imap(format!("login as `{}` failed: {e}", cfg.user)))?;
        let mut store = ImapStore {
            session,
            uid_validity: None,
        };
        store.select(&cfg.folder)?;
        Ok(store)
    }

    /// Selects another folder (the connector reads several).
    pub fn select(&mut self, folder: &str) -> Result<()> {
        let mailbox = self
            .session
            .select(folder)
            .map_err(|e| EmailError::Imap(format!("cannot select `{folder}`: {e}")))?;
        self.uid_validity = mailbox.uid_validity;
        Ok(())
    }

    /// The selected folder's UIDVALIDITY: when it changes, every UID seen before is void.
    pub fn uid_validity(&self) -> Option<u32> {
        self.uid_validity
    }

    /// UIDs above `last` in the selected folder, ascending (read or not: the connector keeps
    /// its own position and never touches flags).
    pub fn uids_after(&mut self, last: u32) -> Result<Vec<u32>> {
        let from = last.saturating_add(1);
        let mut uids: Vec<u32> = self
            .session
            .uid_search(format!("UID {from}:*"))
            .map_err(imap_err("UID SEARCH"))?
            .into_iter()
            // `n:*` always includes the highest UID, even when it is below n.
            .filter(|u| *u > last)
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Ends the session politely (errors ignored: the pass is over anyway).
    pub fn logout(mut self) {
        let _ = self.session.logout();
    }
}

impl MailStore for ImapStore {
    fn unseen(&mut self) -> Result<Vec<u32>> {
        let mut uids: Vec<u32> = self
            .session
            .uid_search("UNSEEN")
            .map_err(imap_err("UID SEARCH UNSEEN"))?
            .into_iter()
            .collect();
        uids.sort_unstable();
        Ok(uids)
    }

    fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>> {
        let fetches = self
            .session
            .uid_fetch(uid.to_string(), "BODY.PEEK[]")
            .map_err(imap_err("UID FETCH"))?;
        Ok(fetches
            .iter()
            .find(|f| f.uid == Some(uid) || f.uid.is_none())
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec))
    }

    fn mark(&mut self, uid: u32, answered: bool) -> Result<()> {
        let flags = if answered {
            "+FLAGS.SILENT (\\Seen \\Answered)"
        } else {
            "+FLAGS.SILENT (\\Seen)"
        };
        self.session
            .uid_store(uid.to_string(), flags)
            .map_err(imap_err("UID STORE"))?;
        Ok(())
    }
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| EmailError::Imap(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(EmailError::Imap(format!(
        "cannot connect to {host}:{port}: {}",
        last.map(|e| e.to_string())
            .unwrap_or_else(|| "no address".into())
    )))
}

/// A rustls client stream verified against the Mozilla roots (webpki-roots).
fn tls_stream(
    host: &str,
    tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // An explicit provider: the process-wide default is ambiguous when several are linked.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EmailError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| EmailError::Tls(format!("`{host}` is not a server name: {e}")))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| EmailError::Tls(e.to_string()))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(host: &str, tls: bool, insecure: bool) -> ImapConfig {
        ImapConfig {
            host: host.into(),
            port: 143,
            tls,
            insecure,
            user: "u".into(),
            password: "p".into(),
            folder: "INBOX".into(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn plaintext_only_on_loopback_or_when_asked() {
        assert!(cfg("127.0.0.1", false, false).check().is_ok());
        assert!(cfg("imap.example.org", true, false).check().is_ok());
        assert!(cfg("imap.example.org", false, true).check().is_ok());
        let e = cfg("imap.example.org", false, false).check().unwrap_err();
        assert!(e.to_string().contains("--tls"), "{e}");
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_hang() {
        // Bind then drop: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = cfg("127.0.0.1", false, false);
        c.port = port;
        assert!(matches!(ImapStore::connect(&c), Err(EmailError::Imap(_))));
    }

    #[test]
    fn tls_config_builds_for_a_host_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(tls_stream("imap.example.org", tcp).is_ok());
    }
}
