use super::*;

/// The tables and columns Avatar reads, with the types and defaults `sqlite3
/// ~/Library/Messages/chat.db .schema` prints on macOS 13/14 (the same DDL is documented by
/// ReagentX/imessage-exporter and the many chat.db write-ups); other columns are left out.
const SCHEMA: &str = "
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL,
  country TEXT, service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT,
  UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
  style INTEGER, state INTEGER, account_id TEXT, properties BLOB, chat_identifier TEXT,
  service_name TEXT, room_name TEXT, account_login TEXT, is_archived INTEGER DEFAULT 0,
  last_addressed_handle TEXT, display_name TEXT, group_id TEXT);
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
  text TEXT, replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0,
  subject TEXT, country TEXT, attributedBody BLOB, version INTEGER DEFAULT 0,
  type INTEGER DEFAULT 0, service TEXT, account TEXT, account_guid TEXT,
  error INTEGER DEFAULT 0, date INTEGER, date_read INTEGER, date_delivered INTEGER,
  is_delivered INTEGER DEFAULT 0, is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0,
  is_from_me INTEGER DEFAULT 0, is_empty INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0,
  is_system_message INTEGER DEFAULT 0, is_sent INTEGER DEFAULT 0,
  cache_has_attachments INTEGER DEFAULT 0, item_type INTEGER DEFAULT 0,
  other_handle INTEGER DEFAULT 0, group_title TEXT, group_action_type INTEGER DEFAULT 0,
  associated_message_guid TEXT, associated_message_type INTEGER DEFAULT 0,
  balloon_bundle_id TEXT, payload_data BLOB, reply_to_guid TEXT,
  thread_originator_guid TEXT, thread_originator_part TEXT, date_edited INTEGER DEFAULT 0);
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
  message_date INTEGER DEFAULT 0, PRIMARY KEY (chat_id, message_id));
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
";

/// An `attributedBody` laid out as Messages writes it: the typedstream header, the
/// NSAttributedString / NSObject / NSMutableString / NSString class chain, `01 94 84 01 2b`,
/// the length and the UTF-8, then the attribute runs (abridged).
fn attributed_body(text: &str) -> Vec<u8> {
    let mut b = b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01\x40\x84\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject\x00\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01\x2b".to_vec();
    let n = text.len();
    if n < 0x80 {
        b.push(n as u8);
    } else if n <= 0xffff {
        b.push(0x81);
        b.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        b.push(0x82);
        b.extend_from_slice(&(n as u32).to_le_bytes());
    }
    b.extend_from_slice(text.as_bytes());
    b.extend_from_slice(b"\x86\x84\x02iI\x01\x05\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96\x1d__kIMMessagePartAttributeName\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86");
    b
}

/// Nanoseconds since 2001-01-01 for a Unix time.
fn ns(unix: i64) -> i64 {
    (unix - APPLE_EPOCH) * 1_000_000_000
}

fn chat_db() -> Vec<u8> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO handle (ROWID, id, service) VALUES (1, '+15551234567', 'iMessage'), (2, 'bo@example.com', 'iMessage');
         INSERT INTO chat (ROWID, guid, style, chat_identifier, display_name) VALUES
           (1, 'iMessage;-;+15551234567', 45, '+15551234567', ''),
           (2, 'iMessage;+;chat123', 43, 'chat123456789', 'Climbing crew');
         INSERT INTO message (ROWID, guid, text, handle_id, date, is_from_me) VALUES
           (1, 'G1', 'Are we still on for Saturday?', 1, {d1}, 0),
           (2, 'G2', 'Yes! 10am at the gym', 0, {d2}, 1);
         INSERT INTO message (ROWID, guid, text, handle_id, date, is_from_me, associated_message_guid, associated_message_type)
           VALUES (3, 'G3', 'Loved “Yes! 10am at the gym”', 1, {d3}, 0, 'p:0/G2', 2000);
         INSERT INTO message (ROWID, guid, text, attributedBody, handle_id, date, is_from_me, thread_originator_guid)
           VALUES (4, 'G4', NULL, ?1, 1, {d4}, 0, 'G2');
         INSERT INTO message (ROWID, guid, text, handle_id, date, is_from_me, cache_has_attachments)
           VALUES (5, 'G5', '\u{fffc}', 1, {d5}, 0, 1);
         INSERT INTO message (ROWID, guid, text, handle_id, date, is_from_me, item_type, group_title)
           VALUES (6, 'G6', NULL, 2, {d6}, 0, 2, 'Climbing crew');
         INSERT INTO message (ROWID, guid, text, handle_id, date, is_from_me, reply_to_guid)
           VALUES (7, 'G7', 'Who brings the rope?', 2, {d7}, 0, 'G6'),
                  (8, 'G8', 'I will \u{fffc}', 0, {d8}, 1, 'G7');
         INSERT INTO chat_message_join (chat_id, message_id) VALUES
           (1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 6), (2, 7), (2, 8);",
        d1 = ns(1_700_000_000),
        d2 = ns(1_700_000_060),
        d3 = ns(1_700_000_090),
        d4 = ns(1_700_000_120) + 500_000_000,
        d5 = ns(1_700_000_180),
        d6 = ns(1_700_001_000),
        d7 = ns(1_700_001_060),
        d8 = ns(1_700_001_120),
    )
    .replace("?1", &format!("X'{}'", hex(&attributed_body("Great, see you there 🧗")))))
    .unwrap();
    conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn reads_chats_owner_messages_replies_and_attributed_body() {
    let bytes = chat_db();
    // Sniffed by the SQLite magic, whatever the name.
    let p = crate::parse("chat.db", None, &bytes).unwrap();
    assert_eq!(p.format, "imessage");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // 8 rows: a tapback, an attachment-only message and a group rename are skipped.
    assert_eq!(p.skipped, 3, "{p:#?}");
    assert_eq!(p.items.len(), 5);
    let texts: Vec<&str> = p.items.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Are we still on for Saturday?",
            "Yes! 10am at the gym",
            "Great, see you there 🧗",
            "Who brings the rope?",
            "I will"
        ]
    );
    let first = &p.items[0];
    assert_eq!(first.kind, RecordKind::Message);
    assert_eq!(first.author.as_deref(), Some("+15551234567"));
    assert!(!first.from_owner);
    assert_eq!(first.thread, "+15551234567");
    assert_eq!(first.message_id.as_deref(), Some("G1"));
    assert_eq!(
        first.timestamp.map(|t| t.to_rfc3339()),
        Some("2023-11-14T22:13:20+00:00".to_string())
    );
    let mine = &p.items[1];
    assert_eq!(mine.author, None);
    assert!(mine.from_owner);
    let reply = &p.items[2];
    assert_eq!(reply.in_reply_to.as_deref(), Some("G2"));
    assert_eq!(
        reply.timestamp.map(|t| t.to_rfc3339()),
        Some("2023-11-14T22:15:20.500+00:00".to_string())
    );
    let group = &p.items[3];
    assert_eq!(group.thread, "Climbing crew");
    assert_eq!(group.author.as_deref(), Some("bo@example.com"));
    assert_eq!(p.items[4].in_reply_to.as_deref(), Some("G7"));
    assert!(p.items[4].from_owner);
}

#[test]
fn old_schema_with_seconds_and_wal_header() {
    // macOS 10.12 and earlier: dates in seconds, no attributedBody / reactions / replies.
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, service TEXT);
         CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, chat_identifier TEXT, display_name TEXT);
         CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, text TEXT, handle_id INTEGER, date INTEGER, is_from_me INTEGER);
         CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER);
         INSERT INTO handle VALUES (1, 'ann@example.org', 'iMessage');
         INSERT INTO message VALUES (1, 'A', 'old times', 1, 400000000, 0);",
    )
    .unwrap();
    let mut bytes = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    // As a Mac leaves it: journal_mode=WAL is recorded in header bytes 18-19.
    bytes[18] = 2;
    bytes[19] = 2;
    let p = parse("chat.db", &bytes).unwrap();
    assert_eq!(p.items.len(), 1);
    let m = &p.items[0];
    // No chat row: the handle is the thread.
    assert_eq!(m.thread, "ann@example.org");
    assert_eq!(m.message_id.as_deref(), Some("A"));
    assert_eq!(
        m.timestamp.map(|t| t.to_rfc3339()),
        Some("2013-09-04T15:06:40+00:00".to_string())
    );
}

#[test]
fn a_sqlite_file_that_is_not_chat_db_is_unsupported() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE notes (id INTEGER, body TEXT); CREATE VIEW message AS SELECT 1;",
    )
    .unwrap();
    let bytes = conn.serialize(rusqlite::MAIN_DB).unwrap().to_vec();
    let e = crate::parse("places.sqlite", None, &bytes).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("not an iMessage chat.db"), "{e}");
    assert!(e.message.contains("tables notes"), "{e}");
}

#[test]
fn broken_input_is_an_error() {
    assert_eq!(parse("c.db", b"").unwrap_err().kind, ErrorKind::Empty);
    assert_eq!(
        parse("c.db", b"SQLite for").unwrap_err().kind,
        ErrorKind::Truncated
    );
    assert_eq!(
        parse("c.db", b"SQLite format 3\0short").unwrap_err().kind,
        ErrorKind::Truncated
    );
    assert_eq!(
        parse("c.db", b"hello world").unwrap_err().kind,
        ErrorKind::Malformed
    );
    let bytes = chat_db();
    // Cut in half: pages are missing.
    assert!(parse("c.db", &bytes[..bytes.len() / 2]).is_err());
    let mut junk = SQLITE_MAGIC.to_vec();
    junk.extend(std::iter::repeat_n(0x5a, 4000));
    assert!(parse("c.db", &junk).is_err());
}

#[test]
fn attributed_body_lengths() {
    assert_eq!(
        decode_attributed_body(&attributed_body("hi")).as_deref(),
        Some("hi")
    );
    let long = "ü".repeat(200); // 400 bytes: 0x81 + 16-bit length
    assert_eq!(decode_attributed_body(&attributed_body(&long)), Some(long));
    let huge = "a".repeat(70_000); // 0x82 + 32-bit length
    assert_eq!(decode_attributed_body(&attributed_body(&huge)), Some(huge));
    assert_eq!(decode_attributed_body(b"no marker here"), None);
    // A length that runs past the blob.
    assert_eq!(
        decode_attributed_body(b"NSString\x01\x94\x84\x01+\x81\xff\xffabc"),
        None
    );
    assert_eq!(decode_attributed_body(b"NSString\x01\x94\x84\x01+"), None);
}

#[test]
fn apple_times() {
    assert_eq!(apple_time(0), None);
    assert_eq!(
        apple_time(1).map(|t| t.to_rfc3339()),
        Some("2001-01-01T00:00:01+00:00".into())
    );
    assert_eq!(
        apple_time(721_692_800_000_000_000).map(|t| t.to_rfc3339()),
        Some("2023-11-14T22:13:20+00:00".into())
    );
    // The largest nanosecond value is still a date (2293); no overflow either way.
    assert_eq!(
        apple_time(i64::MAX).map(|t| t.to_rfc3339()),
        Some("2293-04-11T23:47:16.854775807+00:00".into())
    );
    // Negative values are before 2001 (clock errors): still no overflow.
    assert!(apple_time(i64::MIN).is_some_and(|t| chrono::Datelike::year(&t) < 1800));
    assert_eq!(
        apple_time(-1).map(|t| t.to_rfc3339()),
        Some("2000-12-31T23:59:59+00:00".into())
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let _ = parse("c.db", &bytes);
        let mut with_magic = SQLITE_MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse("c.db", &with_magic);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let mut b = b"NSString".to_vec();
        b.extend_from_slice(&bytes);
        let _ = decode_attributed_body(&b);
    }
}

/// Damaged databases: flipped bytes give an error or fewer items, never a panic.
#[test]
fn damaged_database_never_panics() {
    let bytes = chat_db();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % b.len() as u64) as usize;
            b[at] = (seed >> 32) as u8;
        }
        let _ = parse("c.db", &b);
    }
}
