//! What was done with each mail, keyed by Message-ID, in SQLite under the data directory.
//! IMAP flags alone are not enough: another client may mark a mail unread again, and a crash
//! between sending and flagging would answer twice. A row is written *before* the reply is
//! sent (`sending`), so a crash mid-send leaves a mail unanswered rather than answered twice.

use crate::Result;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// What happened to a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reply was being sent when the process stopped: never retried.
    Sending,
    Answered,
    /// Not to be answered (robot, stranger, empty).
    Skipped,
    /// Answering failed; retried until the attempt limit, then given up.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Sending => "sending",
            Outcome::Answered => "answered",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "sending" => Outcome::Sending,
            "answered" => Outcome::Answered,
            "skipped" => Outcome::Skipped,
            _ => Outcome::Failed,
        }
    }
}

/// The state database (one per data directory and mailbox).
pub struct State {
    conn: Connection,
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        State::init(Connection::open(path)?)
    }

    /// An in-memory state (tests).
    pub fn in_memory() -> Result<State> {
        State::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<State> {
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS mails (
                 key TEXT PRIMARY KEY,
                 outcome TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0,
                 note TEXT NOT NULL DEFAULT '',
                 updated_at TEXT NOT NULL
             );",
        )?;
        Ok(State { conn })
    }

    /// The recorded outcome and failed attempts of a mail, if any.
    pub fn get(&self, key: &str) -> Result<Option<(Outcome, u32)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT outcome, attempts FROM mails WHERE key = ?1",
                params![key],
                |r| Ok((Outcome::parse(&r.get::<_, String>(0)?), r.get::<_, u32>(1)?)),
            )
            .optional()?)
    }

    /// Records an outcome (keeps the attempt count).
    pub fn set(&self, key: &str, outcome: Outcome, note: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO mails (key, outcome, note, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET outcome = ?2, note = ?3, updated_at = ?4",
            params![key, outcome.as_str(), note, now()],
        )?;
        Ok(())
    }

    /// Counts one more failed attempt and returns the total.
    pub fn fail(&self, key: &str, note: &str) -> Result<u32> {
        self.conn.execute(
            "INSERT INTO mails (key, outcome, attempts, note, updated_at) VALUES (?1, 'failed', 1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET outcome = 'failed', attempts = attempts + 1, note = ?2, updated_at = ?3",
            params![key, note, now()],
        )?;
        Ok(self.get(key)?.map(|(_, n)| n).unwrap_or(1))
    }

    /// Number of mails with this outcome.
    pub fn count(&self, outcome: Outcome) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM mails WHERE outcome = ?1",
            params![outcome.as_str()],
            |r| r.get(0),
        )?)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_attempts_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("email/state.db");
        {
            let s = State::open(&path).unwrap();
            assert_eq!(s.get("a@x").unwrap(), None);
            s.set("a@x", Outcome::Sending, "").unwrap();
            s.set("a@x", Outcome::Answered, "to b@x").unwrap();
            assert_eq!(s.fail("f@x", "model error").unwrap(), 1);
            assert_eq!(s.fail("f@x", "model error").unwrap(), 2);
        }
        let s = State::open(&path).unwrap();
        assert_eq!(s.get("a@x").unwrap(), Some((Outcome::Answered, 0)));
        assert_eq!(s.get("f@x").unwrap(), Some((Outcome::Failed, 2)));
        s.set("f@x", Outcome::Skipped, "gave up").unwrap();
        assert_eq!(s.get("f@x").unwrap(), Some((Outcome::Skipped, 2)));
        assert_eq!(s.count(Outcome::Answered).unwrap(), 1);
    }
}
