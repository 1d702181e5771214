//! iMessage / SMS history from a Mac's `~/Library/Messages/chat.db` (or `sms.db` from an
//! unencrypted iPhone backup): a SQLite database, opened in memory from the artifact's bytes
//! (`sqlite3_deserialize`, read-only), so nothing is written to disk and parsing stays a pure
//! function of the bytes.
//!
//! Tables read: `message` (one row per message, reaction and group event), `handle` (the
//! other party's phone number or e-mail, which becomes the author), `chat` (the thread:
//! `display_name` of a named group, else `chat_identifier`) and `chat_message_join`. Columns
//! have come and gone over macOS/iOS versions, so the query is built from the columns that
//! exist; only `text`, `date`, `is_from_me` and `handle_id` are required.
//!
//! - `is_from_me` marks the owner's messages without naming them: `from_owner`, no author.
//! - `date` counts from 2001-01-01 UTC (Apple's reference date) in nanoseconds since High
//!   Sierra, in seconds before: told apart by magnitude.
//! - Since Ventura `text` is often NULL and the words are only in `attributedBody`, an
//!   NSArchiver "typedstream" of an NSAttributedString; [`decode_attributed_body`] takes the
//!   string after the `NSString` class marker (the common, well-tested shortcut rather than a
//!   full typedstream decoder).
//! - Tapbacks and their removals (`associated_message_type` 1000-3999: stickers, 2000-2007
//!   love/like/…, 3000-3007 their removal), group events (`item_type` ≠ 0) and messages that
//!   are only attachments (U+FFFC placeholders) are skipped and counted.
//! - Replies: `thread_originator_guid` (an inline reply's original) and else `reply_to_guid`
//!   (what Messages recorded as the message answered) become `in_reply_to`; `guid` is the id.
//!
//! A WAL-mode file is opened as a rollback-journal one (header bytes 18-19 patched in the
//! copy): SQLite cannot deserialize WAL databases, and the `-wal` side file is not part of
//! the artifact anyway (quit Messages before copying chat.db to have everything in it).

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

use crate::{ErrorKind, FormatError, Item, Parsed};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Seconds from 1970-01-01 to Apple's reference date 2001-01-01 UTC.
const APPLE_EPOCH: i64 = 978_307_200;

const TABLES: [&str; 4] = ["message", "handle", "chat", "chat_message_join"];

/// Binary format, sniffed by its magic bytes in `sniff.rs`; nothing to see in text.
pub fn looks_like(_name: &str, _head: &str) -> bool {
    false
}

/// Parse a `chat.db` named `name`; format `imessage`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    if !bytes.starts_with(SQLITE_MAGIC) {
        let kind = if SQLITE_MAGIC.starts_with(bytes) {
            ErrorKind::Truncated
        } else {
            ErrorKind::Malformed
        };
        return Err(FormatError::new(
            kind,
            format!("{name}: not a SQLite database (no `SQLite format 3` header); an iMessage export is the chat.db file itself"),
        ));
    }
    if bytes.len() < 100 {
        return Err(FormatError::new(
            ErrorKind::Truncated,
            format!(
                "{name}: the SQLite file is cut short ({} bytes, less than its 100-byte header)",
                bytes.len()
            ),
        ));
    }
    let conn = open(name, bytes)?;
    let tables = table_names(&conn).map_err(|e| sql_error(name, &e))?;
    let missing: Vec<&str> = TABLES
        .iter()
        .copied()
        .filter(|t| !tables.iter().any(|have| have.eq_ignore_ascii_case(t)))
        .collect();
    if !missing.is_empty() {
        let found = if tables.is_empty() {
            "no tables".to_string()
        } else {
            let mut shown: Vec<&str> = tables.iter().map(String::as_str).take(8).collect();
            if tables.len() > 8 {
                shown.push("…");
            }
            format!("tables {}", shown.join(", "))
        };
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "{name}: a SQLite database that is not an iMessage chat.db (missing table {}; it has {found}); Avatar reads ~/Library/Messages/chat.db from a Mac or sms.db from an iPhone backup",
                missing.join(", ")
            ),
        ));
    }
    let columns = message_columns(&conn).map_err(|e| sql_error(name, &e))?;
    for required in ["text", "date", "is_from_me", "handle_id"] {
        if !columns.iter().any(|c| c.eq_ignore_ascii_case(required)) {
            return Err(FormatError::new(
                ErrorKind::Unsupported,
                format!("{name}: a chat.db whose `message` table has no `{required}` column; this version of Messages is not known to Avatar"),
            ));
        }
    }
    let sql = query(&columns);
    let mut stmt = conn.prepare(&sql).map_err(|e| sql_error(name, &e))?;
    let mut rows = stmt.query([]).map_err(|e| sql_error(name, &e))?;
    let mut parsed = Parsed {
        format: "imessage",
        ..Parsed::default()
    };
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                // A damaged page stops the scan; what was read is kept.
                parsed
                    .warnings
                    .push(format!("{name}: reading stopped early: {e}"));
                break;
            }
        };
        match read_row(row) {
            Some(item) => parsed.items.push(item),
            None => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

/// Opens `bytes` as a read-only in-memory database.
fn open(name: &str, bytes: &[u8]) -> Result<Connection, FormatError> {
    let too_big = || {
        FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "{name}: {} bytes is larger than the 2 GiB a chat.db can be opened with in memory",
                bytes.len()
            ),
        )
    };
    if i32::try_from(bytes.len()).is_err() {
        return Err(too_big());
    }
    let mut conn = Connection::open_in_memory().map_err(|e| sql_error(name, &e))?;
    // WAL (2) -> legacy (1) in the copy's header: the in-memory VFS has no WAL support.
    let mut header = [bytes[18], bytes[19]];
    for b in &mut header {
        if *b == 2 {
            *b = 1;
        }
    }
    let reader = std::io::Read::chain(
        std::io::Read::chain(&bytes[..18], &header[..]),
        &bytes[20..],
    );
    conn.deserialize_read_exact(rusqlite::MAIN_DB, reader, bytes.len(), true)
        .map_err(|e| {
            FormatError::new(
                ErrorKind::Malformed,
                format!("{name}: the SQLite database cannot be opened ({e})"),
            )
        })?;
    // A hostile file's schema must not run code of its own (views, triggers are never used).
    let _ = conn.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;");
    Ok(conn)
}

fn sql_error(name: &str, e: &rusqlite::Error) -> FormatError {
    FormatError::new(
        ErrorKind::Malformed,
        format!("{name}: the SQLite database is damaged or not a chat.db ({e})"),
    )
}

/// Real tables only: a view called `message` in a hostile file could cost unbounded time.
fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

fn message_columns(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('message')")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// Optional `message` columns, NULL where this version of the database lacks them.
const OPTIONAL: [&str; 6] = [
    "guid",
    "attributedBody",
    "associated_message_type",
    "item_type",
    "thread_originator_guid",
    "reply_to_guid",
];

/// The SELECT, in message order (date, then insertion). A message in several chats (rare:
/// merged conversations) is filed under the first.
fn query(columns: &[String]) -> String {
    let optional: Vec<String> = OPTIONAL
        .iter()
        .map(|c| {
            if columns.iter().any(|have| have.eq_ignore_ascii_case(c)) {
                format!("m.\"{c}\"")
            } else {
                "NULL".to_string()
            }
        })
        .collect();
    format!(
        "SELECT m.text, m.date, m.is_from_me, h.id, c.display_name, c.chat_identifier, {}
         FROM message m
         LEFT JOIN handle h ON h.ROWID = m.handle_id
         LEFT JOIN (SELECT message_id, MIN(chat_id) AS chat_id FROM chat_message_join GROUP BY message_id) j
           ON j.message_id = m.ROWID
         LEFT JOIN chat c ON c.ROWID = j.chat_id
         ORDER BY m.date, m.ROWID",
        optional.join(", ")
    )
}

/// One row -> an item, or `None` for what is skipped (reactions, events, attachments only).
fn read_row(row: &Row<'_>) -> Option<Item> {
    let get = |i: usize| row.get_ref(i).unwrap_or(ValueRef::Null);
    let associated = int(get(8)).unwrap_or(0);
    let item_type = int(get(9)).unwrap_or(0);
    if (1000..4000).contains(&associated) || item_type != 0 {
        return None;
    }
    let text = string(get(0))
        .filter(|t| !t.trim().is_empty())
        .or_else(|| blob(get(7)).and_then(decode_attributed_body))?;
    // U+FFFC marks where an attachment sat in the text.
    let text = text.replace('\u{fffc}', "").trim().to_string();
    if text.is_empty() {
        return None;
    }
    let from_me = int(get(2)).unwrap_or(0) != 0;
    let handle = string(get(3)).filter(|h| !h.trim().is_empty());
    let thread = string(get(4))
        .filter(|d| !d.trim().is_empty())
        .or_else(|| string(get(5)).filter(|c| !c.trim().is_empty()))
        .or_else(|| handle.clone())
        .unwrap_or_default();
    let in_reply_to = string(get(10))
        .filter(|g| !g.trim().is_empty())
        .or_else(|| string(get(11)).filter(|g| !g.trim().is_empty()));
    Some(Item {
        kind: RecordKind::Message,
        thread,
        timestamp: int(get(1)).and_then(apple_time),
        author: if from_me { None } else { handle },
        text,
        title: None,
        message_id: string(get(6)).filter(|g| !g.is_empty()),
        in_reply_to,
        from_owner: from_me,
    })
}

/// Apple time: nanoseconds (or, before macOS 10.13, seconds) since 2001-01-01 UTC; 0 = unset.
pub fn apple_time(value: i64) -> Option<DateTime<Utc>> {
    if value == 0 {
        return None;
    }
    // Seconds since 2001 stay below 1e10 until the year 2318; nanoseconds pass 1e12 after
    // 17 minutes: the magnitude tells them apart.
    let (secs, nanos) = if value.unsigned_abs() > 1_000_000_000_000 {
        (
            value.div_euclid(1_000_000_000),
            value.rem_euclid(1_000_000_000),
        )
    } else {
        (value, 0)
    };
    DateTime::from_timestamp(secs.checked_add(APPLE_EPOCH)?, u32::try_from(nanos).ok()?)
}

/// SQLite is dynamically typed: a hostile or odd file may store any type in any column.
fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        // `as` saturates: a huge REAL cannot wrap around.
        ValueRef::Real(f) if f.is_finite() => Some(f as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn string(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn blob(v: ValueRef<'_>) -> Option<&[u8]> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Some(b),
        _ => None,
    }
}

/// The plain text of an `attributedBody` (an NSArchiver typedstream of NSAttributedString).
///
/// After the `NSString` class name come a few class-version bytes and the type code `+`
/// (a C string), then the length: one byte below 0x80, or 0x81 and a 16-bit little-endian
/// length, or 0x82 and a 32-bit one; then that many bytes of UTF-8.
pub fn decode_attributed_body(blob: &[u8]) -> Option<String> {
    const MARKER: &[u8] = b"NSString";
    let at = blob.windows(MARKER.len()).position(|w| w == MARKER)?;
    let rest = blob.get(at + MARKER.len()..)?;
    // The `+` follows within a few bytes (`01 94 84 01 2b` in every file seen).
    let plus = rest.iter().take(12).position(|&b| b == b'+')?;
    let rest = rest.get(plus + 1..)?;
    let (len, skip): (usize, usize) = match *rest.first()? {
        0x81 => (
            usize::from(u16::from_le_bytes([*rest.get(1)?, *rest.get(2)?])),
            3,
        ),
        0x82 => {
            let b = rest.get(1..5)?;
            (
                usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()?,
                5,
            )
        }
        n if n < 0x80 => (usize::from(n), 1),
        _ => return None,
    };
    let text = rest.get(skip..skip.checked_add(len)?)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
