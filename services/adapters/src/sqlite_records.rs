//! The materialised records of every avatar in a SQLite file (what `avatar records` lists and
//! the Parquet export reads), with the record processor's checkpoint in the same database so
//! that `apply` moves records and checkpoint in one transaction.
//!
//! Timestamps are stored as fixed-width RFC 3339 text with nine fractional digits and a `Z`:
//! exact (no precision lost) and, being fixed-width, ordered chronologically by plain text
//! comparison for every year from 0000 to 9999.

use crate::sqlite_log::{configure, read_checkpoint, write_checkpoint};
use crate::{record_kind_from_str, OrBackend};
use avatar_runtime::{Offset, RecordStore, Result, StoreError};
use avatar_schemas::Record;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS records (
    id               TEXT PRIMARY KEY,
    avatar           TEXT NOT NULL,
    source           TEXT NOT NULL,
    format           TEXT NOT NULL,
    kind             TEXT NOT NULL,
    thread           TEXT NOT NULL,
    timestamp        TEXT,
    author           TEXT,
    author_is_person INTEGER NOT NULL,
    text             TEXT NOT NULL,
    title            TEXT,
    message_id       TEXT,
    in_reply_to      TEXT,
    artifact         TEXT NOT NULL,
    ordinal          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_avatar
    ON records(avatar, timestamp, source, ordinal, id);
CREATE INDEX IF NOT EXISTS records_artifact ON records(artifact);
CREATE INDEX IF NOT EXISTS records_message_id ON records(avatar, message_id);
-- Ids (hashes, never content) of forgotten records with the sink offset that removed them, so
-- later consumers (the vector store) remove them too.
CREATE TABLE IF NOT EXISTS forgotten (
    id     TEXT PRIMARY KEY,
    "offset" INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
"#;

const COLUMNS: &str = "id, avatar, source, format, kind, thread, timestamp, author, \
    author_is_person, text, title, message_id, in_reply_to, artifact, ordinal";

/// [`RecordStore`] on a SQLite file.
pub struct SqliteRecordStore {
    conn: Mutex<Connection>,
}

impl SqliteRecordStore {
    /// Opens (creating if needed) the store at `path`; the parent folder must exist.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).backend()?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA).backend()?;
        Ok(SqliteRecordStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("record store mutex poisoned".into()))
    }

    /// Rewrites the file so deleted (forgotten) records leave no bytes behind.
    pub fn scrub(&self) -> Result<()> {
        crate::sqlite_log::scrub_file(&*self.lock()?)
    }

    /// Number of `avatar`'s records per format, sorted by format (for `avatar status`).
    pub fn avatars_counts(&self, avatar: &str) -> Result<Vec<(String, u64)>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT format, COUNT(*) FROM records WHERE avatar = ?1
                 GROUP BY format ORDER BY format",
            )
            .backend()?;
        let rows = stmt
            .query_map([avatar], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .backend()?;
        let mut out = Vec::new();
        for row in rows {
            let (format, n) = row.backend()?;
            out.push((format, n.max(0) as u64));
        }
        Ok(out)
    }
}

fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The raw columns of one row; decoded outside rusqlite so that bad data becomes a
/// [`StoreError`] with a reason rather than a generic conversion error.
struct RawRow {
    record: Record,
    kind: String,
    timestamp: Option<String>,
    ordinal: i64,
}

fn raw_row(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        record: Record {
            id: r.get(0)?,
            avatar: r.get(1)?,
            source: r.get(2)?,
            format: r.get(3)?,
            kind: avatar_schemas::RecordKind::Document,
            thread: r.get(5)?,
            timestamp: None,
            author: r.get(7)?,
            author_is_person: r.get::<_, i64>(8)? != 0,
            text: r.get(9)?,
            title: r.get(10)?,
            message_id: r.get(11)?,
            in_reply_to: r.get(12)?,
            artifact: r.get(13)?,
            ordinal: 0,
        },
        kind: r.get(4)?,
        timestamp: r.get(6)?,
        ordinal: r.get(14)?,
    })
}

fn decode(raw: RawRow) -> Result<Record> {
    let mut record = raw.record;
    let bad = |what: &str| StoreError::Backend(format!("record {}: bad {what}", record.id));
    record.kind = record_kind_from_str(&raw.kind).ok_or_else(|| bad("kind"))?;
    record.timestamp = match raw.timestamp {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| bad("timestamp"))?
                .with_timezone(&Utc),
        ),
    };
    record.ordinal = u32::try_from(raw.ordinal).map_err(|_| bad("ordinal"))?;
    Ok(record)
}

impl RecordStore for SqliteRecordStore {
    fn apply(
        &self,
        name: &str,
        next: Offset,
        records: &[Record],
        deletes: &[String],
    ) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .backend()?;
        {
            let mut upsert = tx
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO records ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ))
                .backend()?;
            for r in records {
                upsert
                    .execute(params![
                        r.id,
                        r.avatar,
                        r.source,
                        r.format,
                        r.kind.as_str(),
                        r.thread,
                        r.timestamp.as_ref().map(timestamp_text),
                        r.author,
                        r.author_is_person,
                        r.text,
                        r.title,
                        r.message_id,
                        r.in_reply_to,
                        r.artifact,
                        r.ordinal,
                    ])
                    .backend()?;
            }
            let mut delete = tx
                .prepare_cached("DELETE FROM records WHERE id = ?1")
                .backend()?;
            let mut remember = tx
                .prepare_cached(
                    r#"INSERT OR REPLACE INTO forgotten (id, "offset") VALUES (?1, ?2)"#,
                )
                .backend()?;
            for id in deletes {
                delete.execute([id]).backend()?;
                remember.execute(params![id, next as i64]).backend()?;
            }
        }
        write_checkpoint(&tx, name, next)?;
        tx.commit().backend()
    }

    fn checkpoint(&self, name: &str) -> Result<Offset> {
        read_checkpoint(&*self.lock()?, name)
    }

    fn records(&self, avatar: &str) -> Result<Vec<Record>> {
        let conn = self.lock()?;
        // SQLite sorts NULL before any value in ascending order: undated records come first.
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE avatar = ?1
                 ORDER BY timestamp, source, ordinal, id"
            ))
            .backend()?;
        let rows = stmt.query_map([avatar], raw_row).backend()?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(row.backend()?)?);
        }
        Ok(out)
    }

    fn records_of_artifact(&self, avatar: &str, artifact: &str) -> Result<Vec<Record>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE artifact = ?1 AND avatar = ?2
                 ORDER BY timestamp, source, ordinal, id"
            ))
            .backend()?;
        let rows = stmt.query_map([artifact, avatar], raw_row).backend()?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(row.backend()?)?);
        }
        Ok(out)
    }

    fn forgotten_since(&self, after: Offset) -> Result<Vec<String>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(r#"SELECT id FROM forgotten WHERE "offset" > ?1 ORDER BY id"#)
            .backend()?;
        let rows = stmt
            .query_map([after as i64], |r| r.get::<_, String>(0))
            .backend()?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.backend()?);
        }
        Ok(out)
    }

    fn find_by_message_id(&self, avatar: &str, message_id: &str) -> Result<Option<Record>> {
        let conn = self.lock()?;
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM records WHERE avatar = ?1 AND message_id = ?2 ORDER BY id LIMIT 1"),
                [avatar, message_id],
                raw_row,
            )
            .optional()
            .backend()?;
        raw.map(decode).transpose()
    }

    fn get(&self, id: &str) -> Result<Option<Record>> {
        let conn = self.lock()?;
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM records WHERE id = ?1"),
                [id],
                raw_row,
            )
            .optional()
            .backend()?;
        raw.map(decode).transpose()
    }

    fn get_of(&self, avatar: &str, id: &str) -> Result<Option<Record>> {
        let conn = self.lock()?;
        let raw = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM records WHERE avatar = ?1 AND id = ?2"),
                [avatar, id],
                raw_row,
            )
            .optional()
            .backend()?;
        raw.map(decode).transpose()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::record;
    use avatar_schemas::RecordKind;

    fn store() -> (tempfile::TempDir, SqliteRecordStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteRecordStore::open(&dir.path().join("records.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn get_of_answers_only_for_the_records_avatar() {
        let (_dir, s) = store();
        s.apply("records", 1, &[record("a", "ada", "mine")], &[])
            .unwrap();
        assert_eq!(s.get_of("ada", "a").unwrap().unwrap().text, "mine");
        assert_eq!(s.get_of("bob", "a").unwrap(), None);
        assert_eq!(s.get_of("ada", "nope").unwrap(), None);
    }

    #[test]
    fn scrub_leaves_no_bytes_of_deleted_records() {
        let (dir, s) = store();
        let mut rs: Vec<Record> = (0..40)
            .map(|i| record(&format!("k{i}"), "ada", &format!("kept record {i}")))
            .collect();
        rs.push(record("gone", "ada", "the vault code is ZEBRAQUARTZ7781"));
        s.apply("records", 1, &rs, &[]).unwrap();
        s.apply("records", 2, &[], &["gone".into()]).unwrap();
        s.scrub().unwrap();
        let mut bytes = std::fs::read(dir.path().join("records.db")).unwrap();
        if let Ok(w) = std::fs::read(dir.path().join("records.db-wal")) {
            bytes.extend(w);
        }
        let has = |n: &str| bytes.windows(n.len()).any(|w| w == n.as_bytes());
        assert!(!has("ZEBRAQUARTZ7781"));
        assert!(has("kept record 39"));
        assert_eq!(s.records("ada").unwrap().len(), 40);
        assert_eq!(s.checkpoint("records").unwrap(), 2);
    }

    #[test]
    fn apply_upserts_deletes_and_moves_the_checkpoint() {
        let (_dir, s) = store();
        assert_eq!(s.checkpoint("records").unwrap(), 0);
        let a = record("a", "ada", "first");
        let b = record("b", "ada", "second");
        s.apply("records", 5, &[a.clone(), b.clone()], &[]).unwrap();
        assert_eq!(s.checkpoint("records").unwrap(), 5);
        assert_eq!(s.checkpoint("other").unwrap(), 0);
        assert_eq!(s.get("a").unwrap(), Some(a.clone()));
        // Upsert replaces by id.
        let a2 = Record {
            text: "edited".into(),
            ..a
        };
        s.apply(
            "records",
            6,
            std::slice::from_ref(&a2),
            &["b".into(), "nope".into()],
        )
        .unwrap();
        assert_eq!(s.get("a").unwrap(), Some(a2.clone()));
        assert_eq!(s.get("b").unwrap(), None);
        assert_eq!(s.records("ada").unwrap(), [a2]);
        assert_eq!(s.checkpoint("records").unwrap(), 6);
    }

    #[test]
    fn every_field_round_trips() {
        let (_dir, s) = store();
        let full = Record {
            timestamp: Some("1999-12-31T23:59:59.123456789Z".parse().unwrap()),
            in_reply_to: Some("<parent@x>".into()),
            ordinal: u32::MAX,
            kind: RecordKind::Memory,
            text: "héllo 👋\n\"q\"".into(),
            ..record("full", "ada", "")
        };
        let bare = Record {
            timestamp: None,
            author: None,
            title: None,
            message_id: None,
            author_is_person: false,
            kind: RecordKind::Message,
            ..record("bare", "ada", "x")
        };
        s.apply("r", 1, &[full.clone(), bare.clone()], &[]).unwrap();
        assert_eq!(s.get("full").unwrap(), Some(full));
        assert_eq!(s.get("bare").unwrap(), Some(bare));
    }

    #[test]
    fn records_are_in_dataset_order_and_scoped_to_the_avatar() {
        let (_dir, s) = store();
        let at = |id: &str, ts: Option<&str>, source: &str, ordinal: u32| Record {
            timestamp: ts.map(|t| t.parse().unwrap()),
            source: source.into(),
            ordinal,
            ..record(id, "ada", id)
        };
        let want = vec![
            at("u1", None, "file:///a", 0),
            at("u2", None, "file:///a", 1),
            at("u0", None, "file:///b", 0),
            at("t0", Some("0999-01-01T00:00:00Z"), "file:///z", 0),
            at("t1", Some("2020-01-01T00:00:00Z"), "file:///a", 3),
            at("t2", Some("2020-01-01T00:00:00Z"), "file:///b", 0),
            at("t4", Some("2020-01-01T00:00:00.5Z"), "file:///a", 0),
            at("x", Some("2021-01-01T00:00:00Z"), "file:///a", 0),
            at("y", Some("2021-01-01T00:00:00Z"), "file:///a", 0),
        ];
        let mut shuffled = want.clone();
        shuffled.reverse();
        shuffled.swap(0, 4);
        shuffled.push(record("bob's", "bob", "not ada's"));
        s.apply("r", 1, &shuffled, &[]).unwrap();
        let got: Vec<String> = s
            .records("ada")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: Vec<String> = want.into_iter().map(|r| r.id).collect();
        assert_eq!(got, want);
        assert_eq!(s.records("bob").unwrap().len(), 1);
        assert!(s.records("nobody").unwrap().is_empty());
    }

    #[test]
    fn a_failed_apply_changes_nothing() {
        let (_dir, s) = store();
        s.apply("r", 1, &[record("a", "ada", "kept")], &[]).unwrap();
        // Make every insert fail halfway through the batch: the delete and the first upsert
        // must roll back together with the checkpoint.
        s.lock()
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER no_b BEFORE INSERT ON records WHEN NEW.id = 'b'
                 BEGIN SELECT RAISE(ABORT, 'boom'); END;",
            )
            .unwrap();
        let err = s.apply(
            "r",
            9,
            &[record("c", "ada", "c"), record("b", "ada", "b")],
            &["a".into()],
        );
        assert!(err.is_err());
        assert_eq!(s.checkpoint("r").unwrap(), 1);
        assert!(s.get("a").unwrap().is_some());
        assert!(s.get("c").unwrap().is_none());
    }

    #[test]
    fn counts_formats_per_avatar_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.db");
        {
            let s = SqliteRecordStore::open(&path).unwrap();
            let txt = |id: &str| Record {
                format: "text".into(),
                ..record(id, "ada", "")
            };
            s.apply(
                "r",
                3,
                &[
                    record("a", "ada", ""),
                    txt("b"),
                    txt("c"),
                    record("d", "bob", ""),
                ],
                &[],
            )
            .unwrap();
        }
        let s = SqliteRecordStore::open(&path).unwrap();
        assert_eq!(
            s.avatars_counts("ada").unwrap(),
            [("mbox".to_string(), 1), ("text".to_string(), 2)]
        );
        assert_eq!(s.checkpoint("r").unwrap(), 3);
    }
}
