//! The audit log: who asked what of which avatar, and when — for the owner of the data to see,
//! and for anyone to check that nobody rewrote it.
//!
//! One SQLite table in `DIR/audit.db`. Append-only twice over: triggers refuse UPDATE and
//! DELETE through SQLite, and every entry carries the sha256 of its content chained to the
//! previous entry's hash, so an edit of the file by other means (or a deleted row in the
//! middle) shows in [`AuditLog::verify`]. What is logged is what was asked (the query, the
//! question) and by whom (a token id, never the token; or the local user), not the answers.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the audit log lock is poisoned")]
    Poisoned,
}

pub type Result<T> = std::result::Result<T, AuditError>;

/// The longest `detail` kept (a pasted document as a question is cut, not stored whole).
pub const MAX_DETAIL: usize = 2000;

/// One thing somebody did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    /// `token:<id>` (the id `avatar token list` shows), `cli:<user>`, or `anonymous`.
    pub actor: String,
    pub avatar: Option<String>,
    /// `search`, `ask`, `chat`, `memory.add`, `forget`, … or `denied`.
    pub action: String,
    /// What was asked: the query, the question, the record id.
    pub detail: String,
    /// `ok`, or the HTTP status / error class.
    pub outcome: String,
    pub hash: String,
}

/// What [`AuditLog::verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub entries: u64,
    /// The first entry whose hash does not match its content and predecessor, if any.
    pub first_broken: Option<i64>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit (
    seq     INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    avatar  TEXT,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    hash    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_avatar ON audit(avatar, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// The hash chained over an entry's content and its predecessor's hash. Fields are
/// length-prefixed so that moving text between fields changes the hash.
fn chain_hash(prev: &str, e: &Entry) -> String {
    let mut h = Sha256::new();
    let avatar = e.avatar.as_deref().unwrap_or("");
    for part in [
        prev,
        &e.seq.to_string(),
        &e.at,
        &e.actor,
        avatar,
        &e.action,
        &e.detail,
        &e.outcome,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub struct AuditLog {
    conn: Mutex<Connection>,
}

impl AuditLog {
    /// Opens (creating if needed) the audit log at `path`.
    pub fn open(path: &Path) -> Result<AuditLog> {
        Self::init(Connection::open(path)?)
    }

    pub fn in_memory() -> Result<AuditLog> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<AuditLog> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(AuditLog {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| AuditError::Poisoned)
    }

    /// Appends one entry and returns it (with its sequence number and hash).
    pub fn append(
        &self,
        actor: &str,
        avatar: Option<&str>,
        action: &str,
        detail: &str,
        outcome: &str,
    ) -> Result<Entry> {
        self.append_at(Utc::now(), actor, avatar, action, detail, outcome)
    }

    fn append_at(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        avatar: Option<&str>,
        action: &str,
        detail: &str,
        outcome: &str,
    ) -> Result<Entry> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (prev_seq, prev_hash) = last.unwrap_or((0, String::new()));
        let mut e = Entry {
            seq: prev_seq + 1,
            at: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            actor: cut(actor, 200),
            avatar: avatar.map(|a| cut(a, 200)),
            action: cut(action, 100),
            detail: cut(detail, MAX_DETAIL),
            outcome: cut(outcome, 100),
            hash: String::new(),
        };
        e.hash = chain_hash(&prev_hash, &e);
        tx.execute(
            "INSERT INTO audit (seq, at, actor, avatar, action, detail, outcome, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![e.seq, e.at, e.actor, e.avatar, e.action, e.detail, e.outcome, e.hash],
        )?;
        tx.commit()?;
        Ok(e)
    }

    /// The newest `limit` entries (of one avatar, or all), oldest first.
    pub fn list(&self, avatar: Option<&str>, limit: usize) -> Result<Vec<Entry>> {
        let conn = self.conn()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, avatar, action, detail, outcome, hash FROM audit
             WHERE (?1 IS NULL OR avatar = ?1) ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut out = stmt
            .query_map(params![avatar, limit], row)?
            .collect::<rusqlite::Result<Vec<Entry>>>()?;
        out.reverse();
        Ok(out)
    }

    /// Recomputes the chain from the first entry; the first mismatch is reported.
    pub fn verify(&self) -> Result<Verification> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, avatar, action, detail, outcome, hash FROM audit ORDER BY seq",
        )?;
        let mut prev = String::new();
        let mut entries = 0;
        for (expected_seq, e) in (1..).zip(stmt.query_map([], row)?) {
            let e = e?;
            entries += 1;
            if e.seq != expected_seq || chain_hash(&prev, &e) != e.hash {
                return Ok(Verification {
                    entries,
                    first_broken: Some(e.seq),
                });
            }
            prev = e.hash;
        }
        Ok(Verification {
            entries,
            first_broken: None,
        })
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        avatar: r.get(3)?,
        action: r.get(4)?,
        detail: r.get(5)?,
        outcome: r.get(6)?,
        hash: r.get(7)?,
    })
}

/// The actor of a command run on this machine: `cli:<user>`.
pub fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn filled() -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        log.append("token:abc", Some("ada"), "search", "engine", "ok")
            .unwrap();
        log.append("token:abc", Some("ada"), "ask", "what did you build?", "ok")
            .unwrap();
        log.append("cli:root", Some("bob"), "forget", "participant", "ok")
            .unwrap();
        (dir, log)
    }

    #[test]
    fn entries_are_chained_listed_and_verified() {
        let (_d, log) = filled();
        let all = log.list(None, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(all[1].detail, "what did you build?");
        assert_ne!(all[0].hash, all[1].hash);
        assert_eq!(log.list(Some("bob"), 10).unwrap().len(), 1);
        assert_eq!(
            log.list(None, 2).unwrap()[0].seq,
            2,
            "newest two, oldest first"
        );
        assert_eq!(
            log.verify().unwrap(),
            Verification {
                entries: 3,
                first_broken: None
            }
        );
    }

    #[test]
    fn updates_and_deletes_are_refused() {
        let (_d, log) = filled();
        let conn = log.conn().unwrap();
        let err = conn
            .execute("UPDATE audit SET detail = 'nothing' WHERE seq = 2", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(conn.execute("DELETE FROM audit WHERE seq = 1", []).is_err());
        drop(conn);
        assert_eq!(log.verify().unwrap().first_broken, None);
    }

    #[test]
    fn an_edit_behind_the_triggers_back_is_detected() {
        let (_d, log) = filled();
        {
            let conn = log.conn().unwrap();
            conn.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
            conn.execute("UPDATE audit SET detail = 'innocent' WHERE seq = 2", [])
                .unwrap();
        }
        assert_eq!(log.verify().unwrap().first_broken, Some(2));
        // A deleted row in the middle breaks the sequence.
        let (_d2, log2) = filled();
        {
            let conn = log2.conn().unwrap();
            conn.execute_batch("DROP TRIGGER audit_no_delete;").unwrap();
            conn.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
        }
        assert_eq!(log2.verify().unwrap().first_broken, Some(3));
    }

    #[test]
    fn long_details_are_cut_on_a_char_boundary() {
        let log = AuditLog::in_memory().unwrap();
        let long = "é".repeat(MAX_DETAIL);
        let e = log.append("a", None, "ask", &long, "ok").unwrap();
        assert!(e.detail.len() <= MAX_DETAIL + '…'.len_utf8());
        assert!(e.detail.ends_with('…'));
        assert_eq!(log.verify().unwrap().first_broken, None);
    }
}
