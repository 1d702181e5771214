//! IRC logs, one line per event, as the common loggers write them:
//!
//! | logger | line |
//! |---|---|
//! | Supybot/Limnoria ChannelLogger | `2016-06-14T10:00:00+0000  <nick> text` |
//! | irssi | `10:00 <@nick> text`, `10:00 -!- nick [~u@h] has joined #chan`, `--- Day changed Wed Jun 15 2016` |
//! | WeeChat | `2016-06-14 10:00:00\tnick\ttext`, `…\t-->\tnick (~u@h) has joined #chan` |
//! | ZNC log module, mIRC, HexChat | `[10:00:00] <nick> text`, `[10:00] * nick waves`, `*** Joins: nick` |
//!
//! Choices a reader of the records should know about:
//! - `<nick> text` is a message; `* nick waves` (an action, `/me`) is kept as a message with
//!   the text `nick waves`, as it reads. Mode prefixes (`@`, `+`, ...) and `!user@host` are
//!   dropped from the nick.
//! - Joins, parts, quits, nick and mode changes, topic lines, notices (`-nick- text`: bots
//!   and services), log open/close markers and empty messages are skipped and counted.
//! - The date: from the line when it has one (Supybot, WeeChat); else from irssi's
//!   `--- Log opened …`/`--- Day changed …` lines, or from a date in the file name
//!   (`#ceph.2016-06-14.log`, `#ceph_20160614.log`, ZNC's `2016-06-14.log`). Lines with a
//!   time of day but no date anywhere get no timestamp (and a warning).
//! - Times with a zone (Supybot) are exact. Times without one are the logging client's
//!   local time and are read as UTC, with one warning saying so.
//! - The thread is the channel: from the file name (`#ceph…`), its folder (ZNC keeps
//!   `#chan/2016-06-14.log`), or the first `has joined #chan` line; else the file's stem.
//! - Logs saved from web pages sometimes keep `&lt;`/`&gt;`: a line that only reads after
//!   unescaping them is unescaped. A line that still cannot be read is reported (not glued to
//!   the line before), and the rest of the log is read.
//! - IRC has no encoding: lines that are not UTF-8 are read as Latin-1 (counted in a warning).
//! - IRC has no message ids or reply links: `message_id` and `in_reply_to` stay empty.

use avatar_schemas::RecordKind;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::{ErrorKind, FormatError, Item, Parsed};

/// Line numbers listed in the "could not be read" warning.
const SHOWN_LINES: usize = 10;

/// Whether `head` (named `name`) reads as an IRC log: most of its first lines are IRC lines
/// and at least two are someone's messages.
pub fn looks_like(name: &str, head: &str) -> bool {
    let _ = name;
    let mut lines = 0usize;
    let mut irc = 0usize;
    let mut messages = 0usize;
    for line in head
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .take(60)
    {
        lines += 1;
        let (stamp, body, tab) = split_stamp(line);
        let Some(kind) = classify(body, tab) else {
            continue;
        };
        match kind {
            Line::Message { .. } if !matches!(stamp, Stamp::None) => {
                irc += 1;
                messages += 1;
            }
            Line::Marker(_) => irc += 1,
            Line::System | Line::Empty if !matches!(stamp, Stamp::None) => irc += 1,
            _ => {}
        }
    }
    messages >= 2 && irc * 10 >= lines * 6
}

/// Parse an IRC log named `name` (the name gives the channel and, for time-only logs, the date).
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("irc: {name} has no lines"),
        ));
    }
    if bytes.contains(&0) {
        return Err(FormatError::new(
            ErrorKind::Binary,
            format!("irc: {name} contains NUL bytes: not a text log"),
        ));
    }
    let mut p = LogParser {
        date: date_in_name(name),
        ..LogParser::default()
    };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = match std::str::from_utf8(raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                p.latin1 += 1;
                std::borrow::Cow::Owned(raw.iter().map(|&b| char::from(b)).collect::<String>())
            }
        };
        p.line(i + 1, &line);
    }
    if p.items.is_empty() && p.skipped == 0 {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!(
                "irc: no line of {name} reads as an IRC log line (`[10:00] <nick> text`, `2016-06-14T10:00:00+0000  <nick> text`, ...)"
            ),
        ));
    }
    let thread = channel_in_name(name)
        .or(p.joined_channel.take())
        .unwrap_or_else(|| stem(name));
    for item in &mut p.items {
        item.thread.clone_from(&thread);
    }
    Ok(p.finish(name))
}

#[derive(Default)]
struct LogParser {
    items: Vec<Item>,
    skipped: usize,
    /// The day for lines that carry only a time.
    date: Option<NaiveDate>,
    joined_channel: Option<String>,
    bad_lines: Vec<usize>,
    bad_count: usize,
    no_date: usize,
    local_times: usize,
    latin1: usize,
}

impl LogParser {
    fn line(&mut self, number: usize, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let (stamp, body, tab) = split_stamp(line);
        let mut kind = classify(body, tab);
        if kind.is_none() && (body.contains("&gt;") || body.contains("&lt;")) {
            let unescaped = body
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            if let Some(Line::Message { nick, text }) = classify(&unescaped, tab) {
                self.message(stamp, nick.to_string(), text.to_string());
                return;
            }
        }
        match kind.take() {
            Some(Line::Message { nick, text }) => {
                let (nick, text) = (nick.to_string(), text.to_string());
                self.message(stamp, nick, text)
            }
            Some(Line::Marker(date)) => {
                if let Some(d) = date {
                    self.date = Some(d);
                }
                self.skipped += 1;
            }
            Some(Line::System) => {
                if self.joined_channel.is_none() {
                    self.joined_channel = joined_channel(body);
                }
                if let Stamp::Full(t) = stamp {
                    self.date = Some(t.date_naive());
                }
                self.skipped += 1;
            }
            Some(Line::Empty) => self.skipped += 1,
            None => {
                self.bad_count += 1;
                if self.bad_lines.len() < SHOWN_LINES {
                    self.bad_lines.push(number);
                }
            }
        }
    }

    fn message(&mut self, stamp: Stamp, nick: String, text: String) {
        let timestamp = match stamp {
            Stamp::Full(t) => Some(t),
            Stamp::Naive(dt) => {
                self.local_times += 1;
                Some(dt.and_utc())
            }
            Stamp::Time(t) => match self.date {
                Some(d) => {
                    self.local_times += 1;
                    Some(d.and_time(t).and_utc())
                }
                None => {
                    self.no_date += 1;
                    None
                }
            },
            Stamp::None => None,
        };
        self.items.push(Item {
            kind: RecordKind::Message,
            thread: String::new(),
            timestamp,
            author: Some(nick),
            text,
            title: None,
            message_id: None,
            in_reply_to: None,
            from_owner: false,
        });
    }

    fn finish(self, name: &str) -> Parsed {
        let mut warnings = Vec::new();
        if self.bad_count > 0 {
            let shown: Vec<String> = self.bad_lines.iter().map(usize::to_string).collect();
            let more = if self.bad_count > self.bad_lines.len() {
                ", …"
            } else {
                ""
            };
            warnings.push(format!(
                "irc: {} line(s) of {name} could not be read and were left out (line {}{more})",
                self.bad_count,
                shown.join(", ")
            ));
        }
        if self.no_date > 0 {
            warnings.push(format!(
                "irc: {} message(s) have a time of day but no date (none in the line, the file name or a `--- Day changed` line): they have no timestamp",
                self.no_date
            ));
        }
        if self.local_times > 0 {
            warnings.push(format!(
                "irc: {} message(s) have times without a zone (the logging computer's local time); they were read as UTC",
                self.local_times
            ));
        }
        if self.latin1 > 0 {
            warnings.push(format!(
                "irc: {} line(s) are not UTF-8 and were read as Latin-1",
                self.latin1
            ));
        }
        Parsed {
            format: "irc",
            items: self.items,
            skipped: self.skipped,
            warnings,
        }
    }
}

// ---- one line --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stamp {
    /// A date and time with a zone.
    Full(DateTime<Utc>),
    /// A date and time without a zone.
    Naive(NaiveDateTime),
    /// A time of day only.
    Time(NaiveTime),
    None,
}

#[derive(Debug, PartialEq)]
enum Line<'a> {
    Message {
        nick: &'a str,
        text: String,
    },
    /// Joins, parts, quits, modes, notices.
    System,
    /// A message or action with no text.
    Empty,
    /// irssi's `--- Log opened …`/`--- Day changed …` (with the day when it names one).
    Marker(Option<NaiveDate>),
}

/// Splits the leading time stamp off; the third value says whether a tab followed it
/// (WeeChat's `time\tprefix\ttext`).
fn split_stamp(line: &str) -> (Stamp, &str, bool) {
    let after = after_stamp;
    let b = line.as_bytes();
    // 2016-06-14T10:00:00+0000 / 2016-06-14 10:00:00 / ...Z / ...+02:00
    if b.len() >= 19 && is_date_at(b, 0) && matches!(b[10], b'T' | b' ') && is_time_at(b, 11, true)
    {
        let naive = NaiveDateTime::parse_from_str(&line[..19], "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(&line[..19], "%Y-%m-%d %H:%M:%S"));
        if let Ok(naive) = naive {
            let rest = &line[19..];
            let (zone_len, offset) = zone(rest);
            if let Some((body, tab)) = after(&rest[zone_len..]) {
                return match offset {
                    Some(secs) => match naive.checked_sub_signed(chrono::Duration::seconds(secs)) {
                        Some(t) => (Stamp::Full(t.and_utc()), body, tab),
                        None => (Stamp::Naive(naive), body, tab),
                    },
                    None => (Stamp::Naive(naive), body, tab),
                };
            }
        }
    }
    // [10:00] / [10:00:00] / [2016-06-14 10:00:00]
    if let Some(inner_end) = line.strip_prefix('[').and_then(|r| r.find(']')) {
        let inner = &line[1..1 + inner_end];
        let rest = &line[inner_end + 2..];
        if let Some((body, tab)) = after(rest) {
            if let Some(t) = time_of_day(inner) {
                return (Stamp::Time(t), body, tab);
            }
            if let Ok(dt) = NaiveDateTime::parse_from_str(inner, "%Y-%m-%d %H:%M:%S") {
                return (Stamp::Naive(dt), body, tab);
            }
        }
    }
    // 10:00 / 10:00:00
    for len in [8, 5] {
        if let Some(head) = line.get(..len) {
            if let Some(t) = time_of_day(head) {
                if let Some((body, tab)) = after(&line[len..]) {
                    return (Stamp::Time(t), body, tab);
                }
            }
        }
    }
    (Stamp::None, line, false)
}

/// The text after a time stamp, which must be followed by a space or tab (or end the line).
fn after_stamp(rest: &str) -> Option<(&str, bool)> {
    let tab = rest.starts_with('\t');
    let trimmed = rest.trim_start_matches([' ', '\t']);
    (trimmed.len() < rest.len() || rest.is_empty()).then_some((trimmed, tab))
}

/// A zone right after the time: `+0000`, `-02:30`, `Z`. Returns its length and offset in seconds.
fn zone(s: &str) -> (usize, Option<i64>) {
    let b = s.as_bytes();
    if b.first() == Some(&b'Z') {
        return (1, Some(0));
    }
    if let Some(&sign @ (b'+' | b'-')) = b.first() {
        let digits = |r: std::ops::Range<usize>| -> Option<i64> {
            s.get(r)
                .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))?
                .parse()
                .ok()
        };
        let (len, h, m) = if b.get(3) == Some(&b':') {
            (6, digits(1..3), digits(4..6))
        } else {
            (5, digits(1..3), digits(3..5))
        };
        if let (Some(h), Some(m)) = (h, m) {
            let secs = h * 3600 + m * 60;
            return (len, Some(if sign == b'-' { -secs } else { secs }));
        }
    }
    (0, None)
}

fn is_date_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 10
        && b[i + 4] == b'-'
        && b[i + 7] == b'-'
        && (0..10).all(|k| k == 4 || k == 7 || b[i + k].is_ascii_digit())
}

fn is_time_at(b: &[u8], i: usize, seconds: bool) -> bool {
    let n = if seconds { 8 } else { 5 };
    b.len() >= i + n
        && (0..n).all(|k| {
            if k == 2 || k == 5 {
                b[i + k] == b':'
            } else {
                b[i + k].is_ascii_digit()
            }
        })
}

fn time_of_day(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    match b.len() {
        8 if is_time_at(b, 0, true) => NaiveTime::parse_from_str(s, "%H:%M:%S").ok(),
        5 if is_time_at(b, 0, false) => NaiveTime::parse_from_str(s, "%H:%M").ok(),
        _ => None,
    }
}

/// What the part of a line after its time stamp is; `None` when it is nothing known.
fn classify(body: &str, tab: bool) -> Option<Line<'_>> {
    if tab {
        // WeeChat: prefix \t text.
        if let Some((prefix, text)) = body.split_once('\t') {
            let prefix = prefix.trim();
            return Some(match prefix {
                "-->" | "<--" | "--" | "=!=" | "" => Line::System,
                "*" => action(text.trim_start()),
                _ => match nick_of(prefix) {
                    Some(nick) => said(nick, text),
                    None => return None,
                },
            });
        }
    }
    let body = body.trim_start();
    if let Some(rest) = body.strip_prefix("---") {
        let rest = rest.trim();
        if let Some(d) = rest.strip_prefix("Log opened ") {
            let d = d.trim();
            let date = NaiveDateTime::parse_from_str(d, "%a %b %d %H:%M:%S %Y")
                .map(|dt| dt.date())
                .ok();
            return Some(Line::Marker(date));
        }
        if let Some(d) = rest.strip_prefix("Day changed ") {
            return Some(Line::Marker(
                NaiveDate::parse_from_str(d.trim(), "%a %b %d %Y").ok(),
            ));
        }
        if rest.starts_with("Log closed") {
            return Some(Line::Marker(None));
        }
        return Some(Line::System);
    }
    if body.starts_with("***")
        || body.starts_with("-!-")
        || body.starts_with("-->")
        || body.starts_with("<--")
        || body.starts_with("==")
    {
        return Some(Line::System);
    }
    if let Some(rest) = body.strip_prefix('<') {
        let end = rest.find('>')?;
        let nick = nick_of(&rest[..end])?;
        return Some(said(nick, &rest[end + 1..]));
    }
    if let Some(rest) = body.strip_prefix('*') {
        if rest.starts_with('*') {
            return None;
        }
        return Some(action(rest.trim_start()));
    }
    if let Some(rest) = body.strip_prefix('-') {
        // -nick- notice / -nick(host)- notice
        let end = rest.find('-')?;
        if end > 0 && !rest[..end].contains(char::is_whitespace) {
            return Some(Line::System);
        }
        return None;
    }
    None
}

/// `nick waves` -> a message by `nick` with that text; a bare `nick` is empty.
fn action(s: &str) -> Line<'_> {
    let s = s.trim_end();
    match s.split_once(char::is_whitespace) {
        Some((nick, rest)) if !rest.trim().is_empty() => match nick_of(nick) {
            Some(n) => Line::Message {
                nick: n,
                text: format!("{n} {}", rest.trim()),
            },
            None => Line::Empty,
        },
        _ => Line::Empty,
    }
}

fn said<'a>(nick: &'a str, text: &str) -> Line<'a> {
    let text = text.strip_prefix(' ').unwrap_or(text).trim_end();
    if text.trim().is_empty() {
        Line::Empty
    } else {
        Line::Message {
            nick,
            text: text.to_string(),
        }
    }
}

/// ` @nick`, `+nick!user@host` -> `nick`; `None` when it cannot be a nick.
fn nick_of(raw: &str) -> Option<&str> {
    let n = raw.trim().trim_start_matches(['@', '+', '%', '~', '&']);
    let n = n.split('!').next().unwrap_or(n);
    (!n.is_empty() && !n.contains(char::is_whitespace) && !n.contains(['<', '>'])).then_some(n)
}

/// `#chan` from `nick has joined #chan` / `Joins: nick (…) #chan`-style system lines.
fn joined_channel(body: &str) -> Option<String> {
    if !body.contains("joined") && !body.contains("Joins") {
        return None;
    }
    body.split_whitespace()
        .find(|w| w.starts_with('#') && w.len() > 1)
        .map(|w| w.trim_end_matches([',', '.', ')']).to_string())
}

// ---- the file name -----------------------------------------------------------------------

fn file_part(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// `#ceph.2016-06-14.log`, `#ceph_20160614.log`, WeeChat's `irc.libera.#ceph.weechatlog`
/// -> `#ceph`; ZNC's `#ceph/2016-06-14.log` -> `#ceph`.
fn channel_in_name(name: &str) -> Option<String> {
    let file = file_part(name);
    let b = file.as_bytes();
    let start = (0..b.len()).find(|&i| {
        matches!(b[i], b'#' | b'&') && (i == 0 || matches!(b[i - 1], b'.' | b'_' | b'-' | b' '))
    });
    if let Some(start) = start {
        let rest = &file[start..];
        let rb = rest.as_bytes();
        let end = (1..rb.len())
            .find(|&i| {
                rb[i] == b'.'
                    || rb[i] == b' '
                    || (rb[i] == b'_' && rb.get(i + 1).is_some_and(u8::is_ascii_digit))
            })
            .unwrap_or(rest.len());
        if end > 1 {
            return Some(rest[..end].to_string());
        }
    }
    let norm = name.replace('\\', "/");
    let mut parts = norm.rsplit('/');
    parts.next();
    parts
        .next()
        .filter(|d| d.starts_with('#') && d.len() > 1)
        .map(str::to_string)
}

/// The first `YYYY-MM-DD` or `YYYYMMDD` in the file name.
fn date_in_name(name: &str) -> Option<NaiveDate> {
    let b = file_part(name).as_bytes();
    for i in 0..b.len() {
        if i > 0 && b[i - 1].is_ascii_digit() {
            continue;
        }
        if is_date_at(b, i) {
            if let Ok(d) = NaiveDate::parse_from_str(&file_part(name)[i..i + 10], "%Y-%m-%d") {
                return Some(d);
            }
        }
        if b.len() >= i + 8
            && b[i..i + 8].iter().all(u8::is_ascii_digit)
            && !b.get(i + 8).is_some_and(u8::is_ascii_digit)
        {
            if let Ok(d) = NaiveDate::parse_from_str(&file_part(name)[i..i + 8], "%Y%m%d") {
                return Some(d);
            }
        }
    }
    None
}

fn stem(name: &str) -> String {
    let file = file_part(name);
    file.rsplit_once('.')
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
        .unwrap_or(file)
        .to_string()
}

#[cfg(test)]
mod tests;
