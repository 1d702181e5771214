//! Mattermost exports, in the two shapes people have:
//!
//! - The bulk export (`mmctl export create`, or `mattermost export bulk`): JSON Lines, one
//!   object per line tagged by `type`: `version`, `team`, `channel`, `user`, `post` (with its
//!   thread `replies` inside), `direct_channel`, `direct_post`. Users are named by username
//!   there, and the `user` lines give their real names.
//! - A posts answer of the REST API (`GET /api/v4/channels/{id}/posts`: `{"order": […],
//!   "posts": {id: post}}`), which is what perceval and most scripts save. It names users and
//!   the channel only by id, so items keep those ids (with a warning).
//!
//! Choices a reader of the records should know about:
//! - Author: "First Last" from the bulk export's `user` line, else the username; the user id
//!   for API answers.
//! - Thread: the channel's display name (`Town Square`), the members' names for direct and
//!   group messages (`Ann Lindqvist, Bo`), the channel id for API answers.
//! - Reply chains: API posts keep their ids and `in_reply_to` is `parent_id` (or `root_id`).
//!   Bulk posts have no ids, so each gets a stable one made of channel, time and user
//!   (`town-square/1709283660000/ann`), and a reply's `in_reply_to` is its root's.
//! - Skipped and counted: system posts (a non-empty `type`: joins, header changes, ...),
//!   deleted posts (`delete_at`), bot and webhook posts (`props.from_bot`,
//!   `props.from_webhook`), and posts with no text (files only).
//! - Times are `create_at`, milliseconds since the epoch, UTC. Edited posts carry their final
//!   text in both shapes.
//! - A bulk line that cannot be read is a warning; the rest of the export is still read.

use std::collections::HashMap;

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::slack::{present, scalar};
use crate::{ErrorKind, FormatError, Item, Parsed};

/// Line numbers named in the "could not be read" warning.
const SHOWN_LINES: usize = 10;

/// Whether `head` (named `name`) is a Mattermost bulk export or API posts answer.
pub fn looks_like(name: &str, head: &str) -> bool {
    let _ = name;
    let t = head.trim_start_matches('\u{feff}').trim_start();
    if !t.starts_with('{') {
        return false;
    }
    let api = t.contains("\"order\"")
        && t.contains("\"posts\"")
        && t.contains("\"create_at\"")
        && t.contains("\"channel_id\"");
    let first = t.lines().next().unwrap_or("");
    let bulk = (first.contains("\"version\"") && has_type(first, "version"))
        || t.lines().take(50).any(|l| {
            ["post", "direct_post", "channel", "direct_channel"]
                .iter()
                .any(|k| has_type(l, k))
                && (l.contains("\"create_at\"")
                    || l.contains("\"team\"")
                    || l.contains("\"members\""))
        });
    api || bulk
}

/// `"type": "<value>"` in one line.
fn has_type(line: &str, value: &str) -> bool {
    let Some(i) = line.find("\"type\"") else {
        return false;
    };
    let rest = line[i + 6..].trim_start();
    rest.strip_prefix(':')
        .map(|r| r.trim_start().starts_with(&format!("\"{value}\"")))
        .unwrap_or(false)
}

/// Parse a Mattermost bulk export (JSONL) or a REST API posts answer.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!(
                "mattermost: {name} is not valid UTF-8 at byte {}; Mattermost writes UTF-8, so the file was changed or is not an export",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("mattermost: {name} has no content"),
        ));
    }
    // A bulk export is JSON Lines, each a `{"type": …}` object; the API answer is one object.
    let bulk = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(5)
        .any(|l| serde_json::from_str::<Tagged>(l).is_ok_and(|t| t.kind.is_some() && !t.posts));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let json_lines = lines
        .next()
        .is_some_and(|l| serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok())
        && lines.next().is_some();
    if !bulk && json_lines {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("mattermost: {name} is JSON Lines without Mattermost's `type` tags: not a bulk export"),
        ));
    }
    if !bulk {
        parse_api(name, text)
    } else {
        parse_bulk(name, text)
    }
}

/// Just enough of a line to tell a bulk line from an API answer.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Tagged {
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    #[serde(deserialize_with = "present")]
    posts: bool,
}

// ---- REST API posts answer ---------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiAnswer {
    posts: Option<HashMap<String, ApiPost>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiPost {
    #[serde(deserialize_with = "scalar")]
    id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    create_at: Option<String>,
    #[serde(deserialize_with = "scalar")]
    delete_at: Option<String>,
    #[serde(deserialize_with = "scalar")]
    user_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    channel_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    root_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    parent_id: Option<String>,
    #[serde(deserialize_with = "scalar")]
    message: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    props: Option<Props>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Props {
    #[serde(deserialize_with = "scalar")]
    from_bot: Option<String>,
    #[serde(deserialize_with = "scalar")]
    from_webhook: Option<String>,
    #[serde(deserialize_with = "present")]
    override_username: bool,
}

impl Props {
    fn automated(&self) -> bool {
        let yes = |v: &Option<String>| v.as_deref() == Some("true");
        yes(&self.from_bot) || yes(&self.from_webhook) || self.override_username
    }
}

fn parse_api(name: &str, text: &str) -> Result<Parsed, FormatError> {
    let answer: ApiAnswer = serde_json::from_str(text).map_err(|e| json_error(name, &e))?;
    let Some(posts) = answer.posts else {
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("mattermost: {name} is JSON without `posts`: not a Mattermost posts answer or bulk export"),
        ));
    };
    let mut posts: Vec<ApiPost> = posts.into_values().collect();
    posts.sort_by(|a, b| (millis(&a.create_at), &a.id).cmp(&(millis(&b.create_at), &b.id)));
    let mut out = Builder::default();
    let mut users = std::collections::HashSet::new();
    for p in posts {
        if p.kind.as_deref().is_some_and(|k| !k.is_empty())
            || millis(&p.delete_at).is_some_and(|d| d != 0)
            || p.props.as_ref().is_some_and(Props::automated)
        {
            out.skipped += 1;
            continue;
        }
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        if let Some(u) = &p.user_id {
            users.insert(u.clone());
        }
        out.push(Post {
            thread: p.channel_id.clone().unwrap_or_else(|| name.to_string()),
            author: p.user_id,
            text: p.message.unwrap_or_default(),
            create_at: millis(&p.create_at),
            id: p.id,
            reply_to: nonempty(p.parent_id).or(nonempty(p.root_id)),
        });
    }
    out.warnings.push(format!(
        "mattermost: {name} is a REST API posts answer, which names the channel and its {} author(s) only by id; a bulk export (`mmctl export create`) gives names",
        users.len()
    ));
    Ok(out.finish())
}

fn json_error(name: &str, e: &serde_json::Error) -> FormatError {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Eof => ErrorKind::Truncated,
        Category::Syntax | Category::Io | Category::Data => ErrorKind::Malformed,
    };
    let hint = if kind == ErrorKind::Truncated {
        ": the file was cut off; copy or export it again"
    } else {
        ""
    };
    FormatError::new(kind, format!("mattermost: {name}: {e}{hint}"))
}

// ---- bulk export (JSONL) -----------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkLine {
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    user: Option<BulkUser>,
    channel: Option<BulkChannel>,
    post: Option<BulkPost>,
    direct_post: Option<BulkPost>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkUser {
    #[serde(deserialize_with = "scalar")]
    username: Option<String>,
    #[serde(deserialize_with = "scalar")]
    first_name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    last_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkChannel {
    #[serde(deserialize_with = "scalar")]
    team: Option<String>,
    #[serde(deserialize_with = "scalar")]
    name: Option<String>,
    #[serde(deserialize_with = "scalar")]
    display_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct BulkPost {
    #[serde(deserialize_with = "scalar")]
    team: Option<String>,
    #[serde(deserialize_with = "scalar")]
    channel: Option<String>,
    channel_members: Option<Vec<String>>,
    #[serde(deserialize_with = "scalar")]
    user: Option<String>,
    #[serde(deserialize_with = "scalar")]
    message: Option<String>,
    #[serde(deserialize_with = "scalar")]
    create_at: Option<String>,
    #[serde(rename = "type", deserialize_with = "scalar")]
    kind: Option<String>,
    props: Option<Props>,
    replies: Option<Vec<BulkPost>>,
}

fn parse_bulk(name: &str, text: &str) -> Result<Parsed, FormatError> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut channels: HashMap<(String, String), String> = HashMap::new();
    let mut posts: Vec<BulkPost> = Vec::new();
    let mut bad: Vec<usize> = Vec::new();
    let mut bad_count = 0usize;
    let mut known = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed: BulkLine = match serde_json::from_str(line) {
            Ok(l) => l,
            Err(_) => {
                bad_count += 1;
                if bad.len() < SHOWN_LINES {
                    bad.push(i + 1);
                }
                continue;
            }
        };
        if parsed.kind.is_some() {
            known += 1;
        }
        if let Some(u) = parsed.user {
            if let Some(username) = u.username {
                let full = [u.first_name, u.last_name]
                    .into_iter()
                    .flatten()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                if !full.is_empty() {
                    names.insert(username, full);
                }
            }
        }
        if let Some(c) = parsed.channel {
            if let Some(n) = c.name {
                let shown = c
                    .display_name
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(|| n.clone());
                channels.insert((c.team.unwrap_or_default(), n), shown);
            }
        }
        if let Some(p) = parsed.post.or(parsed.direct_post) {
            posts.push(p);
        }
    }
    if known == 0 {
        return Err(FormatError::new(
            if bad_count > 0 { ErrorKind::Malformed } else { ErrorKind::Unsupported },
            format!("mattermost: no line of {name} is a Mattermost bulk export line (`{{\"type\": \"post\", …}}`)"),
        ));
    }
    let display = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_string());
    let mut out = Builder::default();
    for p in posts {
        let (thread, key) = match (&p.channel, &p.channel_members) {
            (Some(c), _) => {
                let team = p.team.clone().unwrap_or_default();
                let shown = channels
                    .get(&(team, c.clone()))
                    .cloned()
                    .unwrap_or_else(|| c.clone());
                (shown, c.clone())
            }
            (None, Some(members)) => {
                let shown: Vec<String> = members.iter().map(|m| display(m)).collect();
                (shown.join(", "), members.join("+"))
            }
            (None, None) => (name.to_string(), name.to_string()),
        };
        let root_id = bulk_id(&key, &p);
        let replies = p.replies.unwrap_or_default();
        let root = BulkPost { replies: None, ..p };
        out.bulk_post(root, &thread, &key, None, &display);
        for r in replies {
            out.bulk_post(r, &thread, &key, Some(root_id.clone()), &display);
        }
    }
    if bad_count > 0 {
        let shown: Vec<String> = bad.iter().map(usize::to_string).collect();
        let more = if bad_count > bad.len() { ", …" } else { "" };
        out.warnings.push(format!(
            "mattermost: {bad_count} line(s) of {name} are not JSON and were left out (line {}{more})",
            shown.join(", ")
        ));
    }
    Ok(out.finish())
}

/// A bulk post's stable id: channel key, time, user.
fn bulk_id(key: &str, p: &BulkPost) -> String {
    format!(
        "{key}/{}/{}",
        p.create_at.as_deref().unwrap_or("?"),
        p.user.as_deref().unwrap_or("?")
    )
}

// ---- items -------------------------------------------------------------------------------

struct Post {
    thread: String,
    author: Option<String>,
    text: String,
    create_at: Option<i64>,
    id: Option<String>,
    reply_to: Option<String>,
}

#[derive(Default)]
struct Builder {
    items: Vec<Item>,
    skipped: usize,
    no_dates: usize,
    warnings: Vec<String>,
}

impl Builder {
    fn bulk_post(
        &mut self,
        p: BulkPost,
        thread: &str,
        key: &str,
        reply_to: Option<String>,
        display: &dyn Fn(&str) -> String,
    ) {
        if p.kind.as_deref().is_some_and(|k| !k.is_empty())
            || p.props.as_ref().is_some_and(Props::automated)
        {
            self.skipped += 1;
            return;
        }
        let id = bulk_id(key, &p);
        self.push(Post {
            thread: thread.to_string(),
            author: p.user.as_deref().map(display),
            text: p.message.unwrap_or_default(),
            create_at: millis(&p.create_at),
            id: Some(id),
            reply_to,
        });
    }

    fn push(&mut self, p: Post) {
        if p.text.trim().is_empty() {
            self.skipped += 1;
            return;
        }
        let timestamp = p.create_at.and_then(DateTime::<Utc>::from_timestamp_millis);
        if timestamp.is_none() {
            self.no_dates += 1;
        }
        self.items.push(Item {
            kind: RecordKind::Message,
            thread: p.thread,
            timestamp,
            author: p.author.filter(|a| !a.is_empty()),
            text: p.text,
            title: None,
            message_id: p.id,
            in_reply_to: p.reply_to,
            from_owner: false,
        });
    }

    fn finish(mut self) -> Parsed {
        if self.no_dates > 0 {
            self.warnings.push(format!(
                "mattermost: {} post(s) have no readable `create_at`",
                self.no_dates
            ));
        }
        Parsed {
            format: "mattermost",
            items: self.items,
            skipped: self.skipped,
            warnings: self.warnings,
        }
    }
}

fn millis(v: &Option<String>) -> Option<i64> {
    v.as_deref()?.trim().parse().ok()
}

#[cfg(test)]
mod tests;
