//! Slack workspace exports: the zip Slack's "Export data" gives (or slackdump's export
//! layout), read whole: `users.json`, `channels.json`, `groups.json` (private channels),
//! `dms.json`, `mpims.json` (group DMs) and one `<channel folder>/<YYYY-MM-DD>.json` per
//! channel and day, each a JSON array of message objects. Ingest packs an export folder into
//! a zip and stores it as one artifact (see [`crate::bundle`]), because a day file alone names
//! its authors only by user id.
//!
//! Also read, for people who have only pieces: a lone day file (or one message object), and
//! the Web API's `conversations.history` answer (`{"ok":true,"messages":[…]}`, what perceval
//! stores). Both parse with a warning that `users.json` was missing: authors are then named
//! from the message's own `user_profile` where the export wrote one, else left as the id
//! (`U0123ABC`). The other Web API answers (`users.info`, `conversations.members`) and the
//! export's own metadata files hold no messages: they are recognised and refused with a
//! message saying to ingest the whole export.
//!
//! Choices a reader of the records should know about:
//! - Author names: `profile.real_name`, then `real_name`, `profile.display_name`, the user
//!   name. The real name is what matches the same person in mail and other chats.
//! - Thread: `#name` for channels and private channels, the participants' names (`Ann, Bo`)
//!   for DMs and group DMs, the folder name for a folder the metadata does not list.
//! - `message_id` is the message `ts` (unique per channel, what Slack permalinks use) and a
//!   thread reply's `in_reply_to` is its `thread_ts`, the parent's ts.
//! - Edited messages: the export holds only the final text, which is what is kept.
//! - Skipped and counted: every subtype except plain messages, `thread_broadcast`,
//!   `me_message`, `file_share` and the legacy `file_comment` (joins, topic changes, bot
//!   messages, tombstones of deleted parents, ...), messages with a `bot_id` whose user is not
//!   a known person, messages of users marked `is_bot`, and messages without text (files only).
//! - Text markup: `<@U123>` becomes `@Name`, `<#C1|general>` `#general`, `<!here>` `@here`,
//!   `<https://x|label>` `label (https://x)`, `<https://x>` `https://x`; `&lt; &gt; &amp;`
//!   are unescaped (the only three Slack escapes).
//! - Time is `ts` (epoch seconds with a microsecond fraction), UTC.
//! - A day file that cannot be read is a warning and the rest of the export is still read;
//!   zip entries are read under size and ratio limits (a hostile zip costs bounded memory).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{Cursor, Read};

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

use crate::{ErrorKind, FormatError, Item, Parsed};

/// One JSON file of the export is read into memory whole; larger ones are reported.
const MAX_ENTRY_BYTES: u64 = 512 << 20;
/// Uncompressed bytes read from one export in all.
const MAX_TOTAL_BYTES: u64 = 16 << 30;
/// An entry may expand to this many times its compressed size (above [`RATIO_GRACE`]).
const MAX_RATIO: u64 = 200;
const RATIO_GRACE: u64 = 1 << 20;

/// Subtypes that carry someone's own writing; every other subtype is skipped.
const KEPT_SUBTYPES: &[&str] = &[
    "thread_broadcast",
    "reply_broadcast",
    "me_message",
    "file_share",
    "file_comment",
];

/// Files at the root of an export that hold metadata, not messages.
const META_FILES: &[&str] = &[
    "users.json",
    "channels.json",
    "groups.json",
    "dms.json",
    "mpims.json",
    "integration_logs.json",
    "canvases.json",
    "org_users.json",
];

/// Whether `head` (named `name`) is a piece of a Slack export or a Slack Web API answer.
pub fn looks_like(name: &str, head: &str) -> bool {
    let t = head.trim_start_matches('\u{feff}').trim_start();
    if !(t.starts_with('[') || t.starts_with('{')) {
        return false;
    }
    // Messages: a `"ts": "1234.5678"` and a `"type": "message"`.
    if has_slack_ts(t) && has_pair(t, "type", "message") {
        return true;
    }
    // users.json / users.info: Slack's user objects.
    if t.contains("\"is_bot\"") && t.contains("\"profile\"") && t.contains("\"team_id\"") {
        return true;
    }
    // channels.json / groups.json / mpims.json: topic and purpose with `last_set`.
    if t.contains("\"topic\"") && t.contains("\"purpose\"") && t.contains("\"last_set\"") {
        return true;
    }
    // conversations.members: a list of user ids.
    if members_of_ids(t) {
        return true;
    }
    // An empty metadata file (`[]`) is only known by its name.
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    t.starts_with('[') && META_FILES.iter().any(|m| file.ends_with(m))
}

/// Parse a Slack export (zip) or one of the lone JSON pieces described in the module doc.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.starts_with(b"PK\x03\x04") {
        return parse_zip(name, bytes);
    }
    let text = json_text(name, bytes)?;
    let mut out = Builder::default();
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let first = text.trim_start().as_bytes().first().copied();
    let msgs = if first == Some(b'[') {
        let list: Vec<Msg> = serde_json::from_str(text).map_err(|e| json_error(name, &e, text))?;
        if let Some(meta) = META_FILES.iter().find(|m| file.ends_with(*m)) {
            if list.iter().all(|m| m.ts.is_none()) {
                return Err(metadata_only(name, meta));
            }
        }
        if !list.is_empty() && list.iter().all(|m| m.ts.is_none()) {
            let what = if list.iter().any(|m| m.profile) {
                "the user list (users.json)"
            } else if list.iter().any(|m| m.topic || m.members) {
                "a channel list (channels.json, groups.json, mpims.json or dms.json)"
            } else {
                "a JSON list without Slack messages"
            };
            return Err(metadata_only(name, what));
        }
        list
    } else {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| json_error(name, &e, text))?;
        lone_object(name, value)?
    };
    let thread = lone_thread(name);
    out.messages(&thread, msgs);
    out.warnings.insert(
        0,
        format!(
            "slack: {name} is not a whole export: users.json was missing, so {} author(s) are named from the message's own profile or left as Slack user ids, and mentions stay ids; ingest the whole export folder or zip to get names",
            out.authors.len()
        ),
    );
    Ok(out.finish())
}

/// A single message object, or a Web API answer.
fn lone_object(name: &str, value: serde_json::Value) -> Result<Vec<Msg>, FormatError> {
    let not_messages = |what: &str| {
        FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "slack: {name} is {what}, which holds no messages; ingest the whole Slack export (folder or zip) instead"
            ),
        )
    };
    let shape = |e: serde_json::Error| {
        FormatError::new(
            ErrorKind::Malformed,
            format!("slack: {name} does not have the layout of Slack messages: {e}"),
        )
    };
    match value {
        serde_json::Value::Object(map) if map.contains_key("messages") => {
            let msgs = map.get("messages").cloned().unwrap_or_default();
            serde_json::from_value(msgs).map_err(shape)
        }
        serde_json::Value::Object(map) if map.contains_key("ts") => {
            let m: Msg =
                serde_json::from_value(serde_json::Value::Object(map)).map_err(shape)?;
            Ok(vec![m])
        }
        serde_json::Value::Object(map) if map.get("user").is_some_and(|u| u.is_object()) => {
            Err(not_messages("a Slack Web API users.info answer (one user's profile)"))
        }
        serde_json::Value::Object(map) if map.contains_key("members") => Err(not_messages(
            "a Slack Web API conversations.members answer (a list of user ids)",
        )),
        _ => Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("slack: {name} is JSON but not a Slack export, day file or conversations.history answer"),
        )),
    }
}

fn metadata_only(name: &str, what: &str) -> FormatError {
    FormatError::new(
        ErrorKind::Unsupported,
        format!(
            "slack: {name} is {what} of a Slack export and holds no messages; ingest the whole export folder or zip, which Avatar reads as one"
        ),
    )
}

/// `general/2020-01-01.json` -> `#general`; otherwise the name as given.
fn lone_thread(name: &str) -> String {
    let norm = name.replace('\\', "/");
    let mut parts = norm.rsplit('/');
    let _file = parts.next();
    match parts.next() {
        Some(dir) if !dir.is_empty() && !dir.contains(':') => format!("#{dir}"),
        _ => name.to_string(),
    }
}

fn json_text<'a>(name: &str, bytes: &'a [u8]) -> Result<&'a str, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!(
                "slack: {name} is not valid UTF-8 at byte {}; Slack writes UTF-8, so the file was changed or is not an export",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("slack: {name} has no content"),
        ));
    }
    Ok(text)
}

fn json_error(name: &str, e: &serde_json::Error, text: &str) -> FormatError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => FormatError::new(
            ErrorKind::Truncated,
            format!(
                "slack: {name}: the JSON stops early at line {} column {}: the file was cut off; copy or export it again",
                e.line(),
                e.column()
            ),
        ),
        Category::Syntax | Category::Io => {
            FormatError::new(ErrorKind::Malformed, format!("slack: {name}: invalid JSON: {e}"))
        }
        Category::Data => {
            let first = text.trim_start().chars().next();
            if matches!(first, Some('[') | Some('{')) {
                FormatError::new(
                    ErrorKind::Malformed,
                    format!("slack: {name}: JSON that does not have the layout of Slack messages: {e}"),
                )
            } else {
                FormatError::new(
                    ErrorKind::Unsupported,
                    format!("slack: {name}: a Slack file is a JSON list or object; this is something else"),
                )
            }
        }
    }
}

// ---- the zip export ----------------------------------------------------------------------

fn parse_zip(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        let tail = &bytes[bytes.len().saturating_sub((64 << 10) + 22)..];
        let has_end = tail.windows(4).any(|w| w == b"PK\x05\x06");
        let kind = if has_end {
            ErrorKind::Malformed
        } else {
            ErrorKind::Truncated
        };
        FormatError::new(
            kind,
            format!("slack: {name} is not a readable zip ({e}); if it was downloaded, download it again"),
        )
    })?;
    // Normalised entry name -> index.
    let mut entries: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..archive.len() {
        if let Some(Ok(n)) = archive.name_for_index(i) {
            let n = n.replace('\\', "/");
            entries
                .entry(n.trim_start_matches("./").to_string())
                .or_insert(i);
        }
    }
    let Some(root) = crate::bundle::slack_root(entries.keys().map(String::as_str)) else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("slack: {name} is a zip without users.json and channels.json at its root (or in one folder): not a Slack workspace export"),
        ));
    };

    let mut out = Builder::default();
    let mut reader = EntryReader {
        archive: &mut archive,
        total: 0,
    };
    let mut read_meta = |file: &str, out: &mut Builder| -> Option<String> {
        let idx = *entries.get(&format!("{root}{file}"))?;
        match reader.read(idx) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(e) => {
                    out.warnings.push(format!(
                        "slack: {file} is not UTF-8 at byte {}; skipped",
                        e.utf8_error().valid_up_to()
                    ));
                    None
                }
            },
            Err(why) => {
                out.warnings.push(format!("slack: {file}: {why}"));
                None
            }
        }
    };

    // Users first: everything else names people through them.
    if let Some(text) = read_meta("users.json", &mut out) {
        match serde_json::from_str::<Vec<User>>(&text) {
            Ok(users) => {
                for u in users {
                    let Some(id) = u.id.clone() else { continue };
                    if u.is_bot {
                        out.bots.insert(id.clone());
                    }
                    if let Some(n) = u.display() {
                        out.names.insert(id, n);
                    }
                }
            }
            Err(e) => out.warnings.push(format!(
                "slack: users.json could not be read ({e}); authors are left as Slack user ids"
            )),
        }
    }
    out.have_users = true;

    // Folder name -> thread name.
    let mut threads: HashMap<String, String> = HashMap::new();
    for file in ["channels.json", "groups.json", "mpims.json", "dms.json"] {
        let Some(text) = read_meta(file, &mut out) else {
            continue;
        };
        let list = match serde_json::from_str::<Vec<Channel>>(&text) {
            Ok(l) => l,
            Err(e) => {
                out.warnings.push(format!(
                    "slack: {file} could not be read ({e}); its folders are named by folder"
                ));
                continue;
            }
        };
        for c in list {
            let people = || {
                let names: Vec<String> = c
                    .members
                    .iter()
                    .flatten()
                    .map(|id| out.names.get(id).cloned().unwrap_or_else(|| id.clone()))
                    .collect();
                (!names.is_empty()).then(|| names.join(", "))
            };
            let (folder, thread) = match file {
                "dms.json" => (c.id.clone(), people()),
                "mpims.json" => (c.name.clone(), people().or_else(|| c.name.clone())),
                _ => (c.name.clone(), c.name.as_ref().map(|n| format!("#{n}"))),
            };
            if let (Some(f), Some(t)) = (folder, thread) {
                threads.entry(f).or_insert(t);
            }
        }
    }

    // Day files: `<root><folder>/<YYYY-MM-DD>.json`, in name order (folder, then date).
    let mut other_json = 0usize;
    let days: Vec<(String, String, usize)> = entries
        .iter()
        .filter_map(|(n, &i)| {
            let rest = n.strip_prefix(root.as_str())?;
            let (folder, file) = rest.split_once('/')?;
            if folder.is_empty() || file.contains('/') || folder.starts_with("__MACOSX") {
                return None;
            }
            let stem = file.strip_suffix(".json")?;
            if !is_date(stem) {
                other_json += 1;
                return None;
            }
            Some((folder.to_string(), file.to_string(), i))
        })
        .collect();
    for (folder, file, idx) in days {
        let thread = threads
            .get(&folder)
            .cloned()
            .unwrap_or_else(|| folder.clone());
        let bytes = match reader.read(idx) {
            Ok(b) => b,
            Err(why) => {
                out.warnings.push(format!("slack: {folder}/{file}: {why}"));
                if reader.total >= MAX_TOTAL_BYTES {
                    break;
                }
                continue;
            }
        };
        let shown = format!("{folder}/{file}");
        let msgs = std::str::from_utf8(&bytes)
            .map_err(|e| format!("not UTF-8 at byte {}", e.valid_up_to()))
            .and_then(|t| serde_json::from_str::<Vec<Msg>>(t).map_err(|e| e.to_string()));
        match msgs {
            Ok(msgs) => out.messages(&thread, msgs),
            Err(why) => out.warnings.push(format!(
                "slack: {shown} could not be read and was skipped: {why}"
            )),
        }
    }
    if other_json > 0 {
        out.warnings.push(format!(
            "slack: {other_json} JSON file(s) in channel folders are not day files (YYYY-MM-DD.json) and were not read"
        ));
    }
    Ok(out.finish())
}

/// Reads entries under the limits.
struct EntryReader<'a, 'b> {
    archive: &'a mut zip::ZipArchive<Cursor<&'b [u8]>>,
    total: u64,
}

impl EntryReader<'_, '_> {
    fn read(&mut self, idx: usize) -> Result<Vec<u8>, String> {
        if self.total >= MAX_TOTAL_BYTES {
            return Err(format!(
                "not read: the export expands over {MAX_TOTAL_BYTES} bytes"
            ));
        }
        let f = self
            .archive
            .by_index(idx)
            .map_err(|e| format!("unreadable zip entry: {e}"))?;
        let limit = MAX_ENTRY_BYTES
            .min(
                f.compressed_size()
                    .saturating_mul(MAX_RATIO)
                    .max(RATIO_GRACE),
            )
            .min(MAX_TOTAL_BYTES - self.total);
        if f.size() > limit {
            return Err(format!(
                "declared size {} is over the limit of {limit} bytes for one file (or its compression ratio): not read",
                f.size()
            ));
        }
        let cap = usize::try_from(f.size().min(limit).min(64 << 20)).unwrap_or(0);
        let mut buf = Vec::with_capacity(cap);
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("corrupt zip entry: {e}"))?;
        self.total += buf.len() as u64;
        if buf.len() as u64 > limit {
            return Err(format!("expands over {limit} bytes: not read"));
        }
        Ok(buf)
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

// ---- messages -> items -------------------------------------------------------------------

#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    skipped: usize,
    no_dates: usize,
    /// User id -> name (from users.json).
    names: HashMap<String, String>,
    bots: HashSet<String>,
    /// Whether users.json was part of the input (a whole export).
    have_users: bool,
    /// Distinct authors seen (for the lone-file warning).
    authors: HashSet<String>,
    warnings: Vec<String>,
}

impl Builder {
    fn messages(&mut self, thread: &str, mut msgs: Vec<Msg>) {
        // API answers come newest first; day files are in order already (stable sort).
        if msgs.windows(2).any(|w| ts_key(&w[0]) > ts_key(&w[1])) {
            msgs.sort_by(|a, b| ts_key(a).total_cmp(&ts_key(b)));
        }
        self.items.reserve(msgs.len());
        for m in msgs {
            self.message(thread, m);
        }
    }

    fn message(&mut self, thread: &str, m: Msg) {
        if m.kind.as_deref().is_some_and(|k| k != "message") {
            self.skipped += 1;
            return;
        }
        if let Some(sub) = m.subtype.as_deref() {
            if !KEPT_SUBTYPES.contains(&sub) {
                self.skipped += 1;
                return;
            }
        }
        let (user, raw_text) = match (m.subtype.as_deref(), m.comment) {
            (Some("file_comment"), Some(c)) => (c.user, c.comment),
            (_, _) => (m.user, m.text),
        };
        let known_person = user
            .as_deref()
            .is_some_and(|u| self.names.contains_key(u) && !self.bots.contains(u));
        let from_bot_user = user.as_deref().is_some_and(|u| self.bots.contains(u));
        if from_bot_user || (m.bot_id.is_some() && !known_person) {
            self.skipped += 1;
            return;
        }
        let text = render(raw_text.as_deref().unwrap_or(""), &self.names);
        if text.trim().is_empty() {
            self.skipped += 1;
            return;
        }
        let timestamp = m.ts.as_deref().and_then(parse_ts);
        if timestamp.is_none() {
            self.no_dates += 1;
        }
        let author = user.as_deref().map(|u| {
            self.names
                .get(u)
                .cloned()
                .or_else(|| m.user_profile.as_ref().and_then(Profile::display))
                .unwrap_or_else(|| u.to_string())
        });
        let author = author.or(m.username.filter(|u| !u.trim().is_empty()));
        if let Some(a) = &author {
            if !self.authors.contains(a) {
                self.authors.insert(a.clone());
            }
        }
        let in_reply_to = m.thread_ts.filter(|t| Some(t) != m.ts.as_ref());
        self.items.push(Item {
            kind: RecordKind::Message,
            thread: thread.to_string(),
            timestamp,
            author,
            text,
            title: None,
            message_id: m.ts,
            in_reply_to,
            from_owner: false,
        });
    }

    fn finish(mut self) -> Parsed {
        if self.no_dates > 0 {
            self.warnings.push(format!(
                "slack: {} message(s) have no readable `ts`",
                self.no_dates
            ));
        }
        Parsed {
            format: "slack",
            items: self.items,
            skipped: self.skipped,
            warnings: self.warnings,
        }
    }
}

fn ts_key(m: &Msg) -> f64 {
    m.ts.as_deref()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .unwrap_or(f64::INFINITY)
}

/// `"1736478514.897649"` -> that instant (the fraction is microseconds, up to nanoseconds kept).
pub(crate) fn parse_ts(ts: &str) -> Option<DateTime<Utc>> {
    let ts = ts.trim();
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    DateTime::from_timestamp(secs, nanos)
}

/// Slack's message markup -> the text a person sees (see the module doc).
pub fn render(text: &str, names: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        unescape_into(&rest[..open], &mut out);
        let after = &rest[open + 1..];
        let Some(close) = after
            .find(['>', '<'])
            .filter(|&c| after.as_bytes()[c] == b'>')
        else {
            out.push('<');
            rest = after;
            continue;
        };
        let inner = &after[..close];
        rest = &after[close + 1..];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l).filter(|l| !l.is_empty())),
            None => (inner, None),
        };
        if let Some(id) = target.strip_prefix('@') {
            out.push('@');
            match names.get(id) {
                Some(n) => out.push_str(n),
                None => unescape_into(
                    label.map(|l| l.trim_start_matches('@')).unwrap_or(id),
                    &mut out,
                ),
            }
        } else if let Some(id) = target.strip_prefix('#') {
            out.push('#');
            unescape_into(label.unwrap_or(id), &mut out);
        } else if let Some(special) = target.strip_prefix('!') {
            match (special, label) {
                ("here" | "channel" | "everyone", _) => {
                    out.push('@');
                    out.push_str(special);
                }
                (_, Some(l)) => unescape_into(l, &mut out),
                (s, None) => {
                    let s = s.split('^').next().unwrap_or(s);
                    out.push('@');
                    unescape_into(s, &mut out);
                }
            }
        } else {
            let url = target;
            let bare = url
                .strip_prefix("mailto:")
                .or_else(|| url.strip_prefix("tel:"))
                .or_else(|| url.strip_prefix("https://"))
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or(url);
            match label {
                Some(l) if l != url && l != bare => {
                    unescape_into(l, &mut out);
                    out.push_str(" (");
                    unescape_into(url, &mut out);
                    out.push(')');
                }
                Some(l) => unescape_into(l, &mut out),
                None if url.starts_with("mailto:") || url.starts_with("tel:") => {
                    unescape_into(bare, &mut out)
                }
                None => unescape_into(url, &mut out),
            }
        }
    }
    unescape_into(rest, &mut out);
    out
}

fn unescape_into(s: &str, out: &mut String) {
    if !s.contains('&') {
        out.push_str(s);
        return;
    }
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (ch, len) = if tail.starts_with("&lt;") {
            ('<', 4)
        } else if tail.starts_with("&gt;") {
            ('>', 4)
        } else if tail.starts_with("&amp;") {
            ('&', 5)
        } else {
            ('&', 1)
        };
        out.push(ch);
        rest = &tail[len..];
    }
    out.push_str(rest);
}

// ---- sniffing helpers ------------------------------------------------------------------

/// `"ts"` followed by `:` and a string of digits with a dot: Slack's message timestamp.
fn has_slack_ts(t: &str) -> bool {
    let mut from = 0;
    while let Some(i) = t[from..].find("\"ts\"") {
        let after = t[from + i + 4..].trim_start();
        if let Some(v) = after.strip_prefix(':') {
            if let Some(v) = v.trim_start().strip_prefix('"') {
                let digits = v.bytes().take_while(u8::is_ascii_digit).count();
                if digits >= 9 && v.as_bytes().get(digits) == Some(&b'.') {
                    return true;
                }
            }
        }
        from += i + 4;
    }
    false
}

/// `"key": "value"` somewhere in `t` (whitespace around the colon allowed).
fn has_pair(t: &str, key: &str, value: &str) -> bool {
    let k = format!("\"{key}\"");
    let v = format!("\"{value}\"");
    let mut from = 0;
    while let Some(i) = t[from..].find(&k) {
        let after = t[from + i + k.len()..].trim_start();
        if let Some(rest) = after.strip_prefix(':') {
            if rest.trim_start().starts_with(&v) {
                return true;
            }
        }
        from += i + k.len();
    }
    false
}

/// `"members": ["U…"` or `"W…"`: conversations.members.
fn members_of_ids(t: &str) -> bool {
    let Some(i) = t.find("\"members\"") else {
        return false;
    };
    let after = t[i + 9..].trim_start();
    let Some(rest) = after.strip_prefix(':') else {
        return false;
    };
    let Some(rest) = rest.trim_start().strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with("\"U") || rest.starts_with("\"W")
}

// ---- the JSON shapes -------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct Msg {
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "scalar")]
    subtype: Option<String>,
    #[serde(deserialize_with = "scalar")]
    user: Option<String>,
    #[serde(deserialize_with = "scalar")]
    username: Option<String>,
    #[serde(deserialize_with = "scalar")]
    bot_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    text: Option<String>,
    #[serde(deserialize_with = "scalar")]
    ts: Option<String>,
    #[serde(deserialize_with = "scalar")]
    thread_ts: Option<String>,
    user_profile: Option<Profile>,
    comment: Option<Comment>,
    // Markers of the export's other JSON lists (read through the same struct).
    #[serde(deserialize_with = "present")]
    profile: bool,
    #[serde(deserialize_with = "present")]
    topic: bool,
    #[serde(deserialize_with = "present")]
    members: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Comment {
    #[serde(deserialize_with = "scalar")]
    user: Option<String>,
    #[serde(deserialize_with = "scalar")]
    comment: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct User {
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    real_name: Option<String>,
    #[serde(deserialize_with = "flag")]
    is_bot: bool,
    profile: Option<Profile>,
}

impl User {
    fn display(&self) -> Option<String> {
        let p = self.profile.as_ref();
        [
            p.and_then(|p| p.real_name.as_deref()),
            self.real_name.as_deref(),
            p.and_then(|p| p.display_name.as_deref()),
            self.name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Profile {
    #[serde(deserialize_with = "scalar")]
    real_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    display_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
}

impl Profile {
    fn display(&self) -> Option<String> {
        [&self.real_name, &self.display_name, &self.name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .map(str::to_string)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Channel {
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
    #[serde(deserialize_with = "ids")]
    members: Option<Vec<String>>,
}

/// True whenever the key is there, whatever its value.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// `true` only for JSON `true`; anything else (missing, null, "yes") is false.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(matches!(
        serde_json::Value::deserialize(d)?,
        serde_json::Value::Bool(true)
    ))
}

/// A list of ids: strings kept, other entries dropped, `null` or a non-list as `None`.
fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    })
}

/// A string, number or bool as a string; null, objects and arrays as `None`: exports from
/// different tools disagree on such details, and being lenient costs nothing.
pub(crate) fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, number, bool or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(V)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests;
