//! The embedded event log: one SQLite file holding the events and every consumer's checkpoint.
//!
//! Keeping checkpoints in the same database as the events is what makes `commit` atomic: a
//! processor's output and its new position are one SQLite transaction, so a crash (the
//! end-to-end test SIGKILLs the process mid-ingest) leaves either both or neither. WAL mode lets
//! readers (`avatar status`) run while a writer appends; `synchronous=FULL` makes a committed
//! transaction survive power loss too, not just process death.

use crate::OrBackend;
use avatar_runtime::{EventLog, Offset, Result, StoreError, Stored};
use avatar_schemas::Envelope;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a writer waits for another process holding the database lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    "offset"  INTEGER PRIMARY KEY,
    id        TEXT NOT NULL,
    avatar    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    dedup_key TEXT UNIQUE,
    json      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind, "offset");
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
"#;

/// [`EventLog`] on a SQLite file. Offsets are the table's rowid, assigned densely inside the
/// writing transaction.
pub struct SqliteEventLog {
    conn: Mutex<Connection>,
}

impl SqliteEventLog {
    /// Opens (creating if needed) the log at `path`; the parent folder must exist.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).backend()?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA).backend()?;
        Ok(SqliteEventLog {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("event log mutex poisoned".into()))
    }

    /// Physically removes every event `remove` selects (what a forget tombstone covers: the
    /// derived records, memories, and artifacts all of whose records are forgotten), then
    /// rewrites the file so the bytes are gone from disk too, not just unlinked from the table.
    /// Offsets of the remaining events do not change; consumers' checkpoints stay valid.
    /// Returns how many events were removed. Events that do not decode are kept.
    pub fn purge(&self, remove: &dyn Fn(&Envelope) -> bool) -> Result<usize> {
        let conn = self.lock()?;
        let mut doomed: Vec<i64> = Vec::new();
        {
            let mut stmt = conn
                .prepare(r#"SELECT "offset", json FROM events ORDER BY "offset""#)
                .backend()?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .backend()?;
            for row in rows {
                let (offset, json) = row.backend()?;
                if let Ok(e) = Envelope::from_json(&json) {
                    if remove(&e) {
                        doomed.push(offset);
                    }
                }
            }
        }
        if !doomed.is_empty() {
            let tx = conn.unchecked_transaction().backend()?;
            {
                let mut del = tx
                    .prepare(r#"DELETE FROM events WHERE "offset" = ?1"#)
                    .backend()?;
                for o in &doomed {
                    del.execute([o]).backend()?;
                }
            }
            tx.commit().backend()?;
        }
        scrub_file(&conn)?;
        Ok(doomed.len())
    }

    /// Like [`EventLog::read`] but only events whose kind is one of `kinds`; offsets keep
    /// their gaps. Lets a consumer that cares about one topic skip the rest in SQL.
    pub fn read_kinds(&self, from: Offset, max: usize, kinds: &[&str]) -> Result<Vec<Stored>> {
        if kinds.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; kinds.len()].join(",");
        let sql = format!(
            r#"SELECT "offset", json FROM events WHERE "offset" >= ? AND kind IN ({marks})
               ORDER BY "offset" LIMIT ?"#
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::with_capacity(kinds.len() + 2);
        args.push(to_sql_offset(from).into());
        args.extend(
            kinds
                .iter()
                .map(|k| rusqlite::types::Value::from(k.to_string())),
        );
        args.push(to_sql_limit(max).into());
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(&sql).backend()?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .backend()?;
        decode_rows(rows)
    }

    /// Number of events per kind, sorted by kind (for `avatar status`).
    pub fn count_by_kind(&self) -> Result<Vec<(String, u64)>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached("SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind")
            .backend()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .backend()?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, n) = row.backend()?;
            out.push((kind, n.max(0) as u64));
        }
        Ok(out)
    }
}

/// Pragmas shared by the log and the record store.
pub(crate) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).backend()?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .backend()?;
    // An in-memory database answers "memory"; anything else means WAL is unavailable and the
    // crash-safety and concurrent-reader assumptions would silently not hold.
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::Backend(format!(
            "SQLite refused WAL mode (journal_mode={mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL").backend()?;
    Ok(())
}

/// Makes deleted rows unrecoverable from the file: `secure_delete` zeroes freed pages, the WAL
/// (which still holds old page images) is checkpointed and truncated, and VACUUM rewrites the
/// database without free pages. Costs a full rewrite: for forgetting, not for every write.
pub(crate) fn scrub_file(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "secure_delete", "ON").backend()?;
    conn.execute_batch("VACUUM;").backend()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .backend()?;
    Ok(())
}

/// SQLite integers are i64; offsets beyond that cannot exist in the table anyway.
pub(crate) fn to_sql_offset(o: Offset) -> i64 {
    i64::try_from(o).unwrap_or(i64::MAX)
}

fn to_sql_limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_offset(o: i64) -> Result<Offset> {
    Offset::try_from(o).map_err(|_| StoreError::Backend(format!("negative offset {o} in store")))
}

fn decode_rows(rows: impl Iterator<Item = rusqlite::Result<(i64, String)>>) -> Result<Vec<Stored>> {
    let mut out = Vec::new();
    for row in rows {
        let (offset, json) = row.backend()?;
        let offset = from_sql_offset(offset)?;
        let event = Envelope::from_json(&json).map_err(|e| StoreError::BadEvent {
            offset,
            reason: e.to_string(),
        })?;
        out.push(Stored { offset, event });
    }
    Ok(out)
}

/// Inserts `events` at the end of the log inside `tx`, skipping those whose dedup key is
/// already present (including earlier in the same batch). Returns the offsets used.
fn insert_events(tx: &rusqlite::Transaction<'_>, events: &[Envelope]) -> Result<Vec<Offset>> {
    let mut next: i64 = tx
        .query_row(
            r#"SELECT COALESCE(MAX("offset") + 1, 0) FROM events"#,
            [],
            |r| r.get(0),
        )
        .backend()?;
    let mut stmt = tx
        .prepare_cached(
            r#"INSERT OR IGNORE INTO events ("offset", id, avatar, kind, dedup_key, json)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
        )
        .backend()?;
    let mut offsets = Vec::new();
    for e in events {
        let json = e.to_json().backend()?;
        let changed = stmt
            .execute(params![
                next,
                e.id.to_string(),
                e.avatar,
                e.kind(),
                e.dedup_key(),
                json
            ])
            .backend()?;
        if changed == 1 {
            offsets.push(from_sql_offset(next)?);
            next += 1;
        }
    }
    Ok(offsets)
}

impl EventLog for SqliteEventLog {
    fn read_kinds(&self, from: Offset, max: usize, kinds: &[&str]) -> Result<Vec<Stored>> {
        SqliteEventLog::read_kinds(self, from, max, kinds)
    }

    fn append(&self, events: &[Envelope]) -> Result<Vec<Offset>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.lock()?;
        // IMMEDIATE takes the write lock up front, so two processes cannot both compute the
        // same next offset.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .backend()?;
        let offsets = insert_events(&tx, events)?;
        tx.commit().backend()?;
        Ok(offsets)
    }

    fn read(&self, from: Offset, max: usize) -> Result<Vec<Stored>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                r#"SELECT "offset", json FROM events WHERE "offset" >= ?1
                   ORDER BY "offset" LIMIT ?2"#,
            )
            .backend()?;
        let rows = stmt
            .query_map(params![to_sql_offset(from), to_sql_limit(max)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .backend()?;
        decode_rows(rows)
    }

    fn end(&self) -> Result<Offset> {
        let conn = self.lock()?;
        let end: i64 = conn
            .query_row(
                r#"SELECT COALESCE(MAX("offset") + 1, 0) FROM events"#,
                [],
                |r| r.get(0),
            )
            .backend()?;
        from_sql_offset(end)
    }

    fn checkpoint(&self, name: &str) -> Result<Offset> {
        let conn = self.lock()?;
        read_checkpoint(&conn, name)
    }

    fn commit(&self, name: &str, next: Offset, output: &[Envelope]) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .backend()?;
        insert_events(&tx, output)?;
        write_checkpoint(&tx, name, next)?;
        tx.commit().backend()
    }
}

/// A consumer's checkpoint from a `checkpoints(name, next)` table; 0 when it never committed.
pub(crate) fn read_checkpoint(conn: &Connection, name: &str) -> Result<Offset> {
    let next: Option<i64> = conn
        .query_row(
            "SELECT next FROM checkpoints WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .backend()?;
    next.map_or(Ok(0), from_sql_offset)
}

pub(crate) fn write_checkpoint(conn: &Connection, name: &str, next: Offset) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (name, next) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET next = excluded.next",
    )
    .backend()?
    .execute(params![name, to_sql_offset(next)])
    .backend()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use avatar_runtime::conformance;
    use avatar_schemas::{ArtifactReceived, MemoryAdded, Payload};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn artifact(avatar: &str, sha: &str) -> Envelope {
        Envelope::new(
            avatar,
            "file:///x.txt",
            Payload::ArtifactReceived(ArtifactReceived {
                sha256: sha.into(),
                size: 1,
                name: "x.txt".into(),
                format_hint: None,
            }),
        )
    }

    /// Every byte of the database and its WAL, to check that purged text is really gone.
    fn file_bytes(db: &std::path::Path) -> Vec<u8> {
        let mut out = std::fs::read(db).unwrap();
        let wal = db.with_extension("db-wal");
        if let Ok(w) = std::fs::read(wal) {
            out.extend(w);
        }
        out
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn purge_removes_the_events_and_their_bytes_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let log = SqliteEventLog::open(&path).unwrap();
        let memory = |text: &str| {
            Envelope::new(
                "ada",
                "memory:",
                Payload::Memory(MemoryAdded {
                    text: text.into(),
                    title: None,
                    added_by: None,
                }),
            )
        };
        // Enough filler that the doomed rows share pages with kept ones.
        let mut events = vec![artifact("ada", "aa")];
        for i in 0..50 {
            events.push(memory(&format!("kept memory number {i} about the engine")));
        }
        events.push(memory("the vault code is ZEBRAQUARTZ7781"));
        events.push(memory("keep KESTRELFJORD too"));
        log.append(&events).unwrap();
        log.commit("parse", 10, &[]).unwrap();
        assert!(contains(&file_bytes(&path), "ZEBRAQUARTZ7781"));

        let removed = log
            .purge(&|e| match &e.payload {
                Payload::Memory(m) => m.text.contains("ZEBRAQUARTZ"),
                _ => false,
            })
            .unwrap();
        assert_eq!(removed, 1);
        let bytes = file_bytes(&path);
        assert!(
            !contains(&bytes, "ZEBRAQUARTZ7781"),
            "purged text left on disk"
        );
        assert!(contains(&bytes, "KESTRELFJORD"));
        // Offsets keep their gap, the rest reads as before, checkpoints survive.
        let all = log.read(0, 1000).unwrap();
        assert_eq!(all.len(), 52);
        assert_eq!(all.last().unwrap().offset, 52);
        assert_eq!(log.end().unwrap(), 53);
        assert_eq!(log.checkpoint("parse").unwrap(), 10);
        drop(log);
        let log = SqliteEventLog::open(&path).unwrap();
        assert_eq!(log.read(0, 1000).unwrap().len(), 52);
        assert_eq!(log.purge(&|_| false).unwrap(), 0);
    }

    #[test]
    fn passes_the_event_log_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        let make = || -> Box<dyn EventLog> {
            let i = n.fetch_add(1, Ordering::Relaxed);
            Box::new(SqliteEventLog::open(&dir.path().join(format!("log{i}.db"))).unwrap())
        };
        conformance::event_log_suite(&make);
        assert!(n.load(Ordering::Relaxed) > 1, "the suite made fresh logs");
    }

    #[test]
    fn events_checkpoints_and_dedup_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let a = artifact("ada", "aa");
        {
            let log = SqliteEventLog::open(&path).unwrap();
            assert_eq!(
                log.append(&[a.clone(), artifact("ada", "bb")]).unwrap(),
                [0, 1]
            );
            log.commit("parse", 2, &[]).unwrap();
        }
        let log = SqliteEventLog::open(&path).unwrap();
        assert_eq!(log.end().unwrap(), 2);
        assert_eq!(log.checkpoint("parse").unwrap(), 2);
        assert_eq!(log.read(0, 1).unwrap()[0].event, a);
        assert!(log.append(&[a]).unwrap().is_empty(), "dedup keys persist");
        assert_eq!(log.append(&[artifact("ada", "cc")]).unwrap(), [2]);
    }

    #[test]
    fn is_in_wal_mode_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::open(&dir.path().join("log.db")).unwrap();
        let conn = log.lock().unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }

    #[test]
    fn a_corrupt_row_is_a_bad_event_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::open(&dir.path().join("log.db")).unwrap();
        log.append(&[artifact("ada", "aa")]).unwrap();
        log.lock()
            .unwrap()
            .execute(
                r#"INSERT INTO events ("offset", id, avatar, kind, json) VALUES (1, 'x', 'ada', 'raw.artifact', '{nope')"#,
                [],
            )
            .unwrap();
        assert_eq!(log.read(0, 1).unwrap().len(), 1);
        match log.read(0, 10) {
            Err(StoreError::BadEvent { offset, .. }) => assert_eq!(offset, 1),
            other => panic!("expected BadEvent, got {other:?}"),
        }
    }

    #[test]
    fn read_kinds_filters_and_counts_group_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let log = SqliteEventLog::open(&dir.path().join("log.db")).unwrap();
        let memory = |t: &str| {
            Envelope::new(
                "ada",
                "memory:",
                Payload::Memory(MemoryAdded {
                    text: t.into(),
                    title: None,
                    added_by: None,
                }),
            )
        };
        log.append(&[
            artifact("ada", "aa"),
            memory("one"),
            artifact("ada", "bb"),
            memory("two"),
        ])
        .unwrap();
        let got = log.read_kinds(0, 10, &["records.memory"]).unwrap();
        assert_eq!(
            got.iter().map(|s| s.offset).collect::<Vec<_>>(),
            [1, 3],
            "offsets keep their gaps"
        );
        assert_eq!(
            log.read_kinds(2, 1, &["records.memory"]).unwrap()[0].offset,
            3
        );
        assert!(log.read_kinds(0, 10, &[]).unwrap().is_empty());
        assert_eq!(
            log.count_by_kind().unwrap(),
            [
                ("raw.artifact".to_string(), 2),
                ("records.memory".to_string(), 2)
            ]
        );
    }
}
