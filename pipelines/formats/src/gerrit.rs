//! Gerrit code review exports as `ssh gerrit query --format=JSON --comments --patch-sets`
//! (and perceval) write them: one JSON object per line, one line per change, the last line
//! possibly a `{"type":"stats","rowCount":…}` summary row (ignored).
//!
//! Choices:
//! - Each entry of a change's `comments[]` is a [`RecordKind::Message`]: author =
//!   `name <email>` of the `reviewer` when both exist (else whichever exists, else the
//!   `username`; Gerrit writes `"email": ""` for bots, which counts as absent), timestamp =
//!   the epoch `timestamp`, text = the whole `message` (the `Patch Set 2: Code-Review+1` vote
//!   line is kept: it is part of what the reviewer said), thread = the change `url` (else
//!   `project/number`), title = the change `subject`, message_id = `<change id>#<index in
//!   comments[]>`.
//! - Bot/CI comments (jenkins-bot, Zuul) are kept: they are the review conversation as the
//!   person saw it, and the identity step decides who is a person.
//! - A comment that is one line and is only a vote or a Gerrit notice (`Patch Set 2:
//!   Code-Review+2`, `Patch Set 1: Cherry Picked from branch master.`, `Uploaded patch set 1.`,
//!   `Change has been successfully merged by …`, `Removed reviewer …`) carries no one's words:
//!   skipped and counted. A vote followed by text (`Patch Set 1: Verified+1\n\nphan failure is
//!   unrelated`) is kept.
//! - The change's `commitMessage` is one [`RecordKind::Document`]: author = `owner`,
//!   timestamp = `createdOn`, message_id = the change `id` (`I…` Change-Id).
//! - A line that is not JSON is reported as a warning and the other lines are kept; a file
//!   where no line reads gives a [`FormatError`].

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{ErrorKind, FormatError, Item, Parsed};

/// One-line Gerrit notices that are not anyone's writing.
const NOTICES: &[&str] = &[
    "Uploaded patch set ",
    "Change has been successfully ",
    "Removed ",
    "Topic set to ",
    "Topic changed ",
    "Topic removed",
    "Restored",
    "Abandoned",
    "Reverted",
    "Created a revert of this change",
    "Change could not be merged",
];

/// Whether `head` looks like `gerrit query --format=JSON` output: a JSON object line naming
/// a change's `project`, `owner` and `commitMessage`/`patchSets`.
pub fn looks_like(_name: &str, head: &str) -> bool {
    head.starts_with('{')
        && head.contains("\"project\"")
        && head.contains("\"owner\"")
        && (head.contains("\"commitMessage\"")
            || head.contains("\"patchSets\"")
            || head.contains("\"currentPatchSet\""))
}

pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FormatError::new(
            ErrorKind::Encoding,
            format!("{name}: not UTF-8 ({e}); Gerrit writes UTF-8 JSON, save its output unchanged"),
        )
    })?;
    let mut out = Parsed {
        format: "gerrit",
        ..Parsed::default()
    };
    let mut read = 0usize;
    let mut last_error: Option<(ErrorKind, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                let kind = if e.is_eof() {
                    ErrorKind::Truncated
                } else {
                    ErrorKind::Malformed
                };
                let msg = format!("line {}: not valid JSON ({e})", n + 1);
                out.warnings.push(msg.clone());
                last_error = Some((kind, msg));
                continue;
            }
        };
        if !value.is_object() {
            out.warnings
                .push(format!("line {}: not a JSON object, ignored", n + 1));
            continue;
        }
        read += 1;
        if str_at(&value, "type") == Some("stats") {
            continue;
        }
        change(&value, &mut out);
    }
    if read == 0 {
        let (kind, msg) =
            last_error.unwrap_or((ErrorKind::Unsupported, "no JSON object lines".to_string()));
        return Err(FormatError::new(
            kind,
            format!("{name}: not Gerrit query output ({msg}); export with `ssh <host> gerrit query --format=JSON --comments --patch-sets`"),
        ));
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn epoch_at(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key)
        .and_then(Value::as_i64)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// `name <email>`, whichever exists, else the username.
fn person(v: Option<&Value>) -> Option<String> {
    let v = v?;
    match (str_at(v, "name"), str_at(v, "email")) {
        (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
        (Some(n), None) => Some(n.to_string()),
        (None, Some(e)) => Some(e.to_string()),
        (None, None) => str_at(v, "username").map(str::to_string),
    }
}

/// One line that only records a vote or a Gerrit event.
fn is_notice(message: &str) -> bool {
    if message.contains('\n') {
        return false;
    }
    if let Some(rest) = message.strip_prefix("Patch Set ") {
        return rest.contains(':');
    }
    NOTICES.iter().any(|p| message.starts_with(p))
}

fn change(v: &Value, out: &mut Parsed) {
    let id = str_at(v, "id").map(str::to_string).unwrap_or_else(|| {
        match (str_at(v, "project"), v.get("number")) {
            (Some(p), Some(n)) => format!("{p}/{n}"),
            _ => "gerrit".to_string(),
        }
    });
    let thread = str_at(v, "url").map(str::to_string).unwrap_or_else(|| {
        match (str_at(v, "project"), v.get("number")) {
            (Some(p), Some(n)) => format!("{p}/{n}"),
            _ => id.clone(),
        }
    });
    let title = str_at(v, "subject").map(str::to_string);
    if let Some(message) = str_at(v, "commitMessage") {
        out.items.push(Item {
            kind: RecordKind::Document,
            thread: thread.clone(),
            timestamp: epoch_at(v, "createdOn"),
            author: person(v.get("owner")),
            text: message.to_string(),
            title: title.clone(),
            message_id: Some(id.clone()),
            in_reply_to: None,
            from_owner: false,
        });
    }
    let Some(comments) = v.get("comments").and_then(Value::as_array) else {
        return;
    };
    for (i, c) in comments.iter().enumerate() {
        let message = str_at(c, "message").unwrap_or("");
        if message.is_empty() || is_notice(message) {
            out.skipped += 1;
            continue;
        }
        out.items.push(Item {
            kind: RecordKind::Message,
            thread: thread.clone(),
            timestamp: epoch_at(c, "timestamp"),
            author: person(c.get("reviewer")),
            text: message.to_string(),
            title: title.clone(),
            message_id: Some(format!("{id}#{i}")),
            in_reply_to: None,
            from_owner: false,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/git/perceval__gerrit_reviews_page_1.jsonl"
    );

    fn fixture() -> Option<Vec<u8>> {
        if !std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures"
        ))
        .is_dir()
        {
            eprintln!("skipping: ../shared/fixtures not found");
            return None;
        }
        Some(std::fs::read(FIXTURE).unwrap())
    }

    #[test]
    fn perceval_gerrit_page() {
        let Some(b) = fixture() else { return };
        let p = parse("gerrit_reviews_page_1.jsonl", &b).unwrap();
        assert_eq!(p.format, "gerrit");
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        // Two changes: 5 + 26 comments; 4 + 4 are one-line votes or notices.
        assert_eq!(p.skipped, 8);
        let docs: Vec<&Item> = p
            .items
            .iter()
            .filter(|i| i.kind == RecordKind::Document)
            .collect();
        let msgs: Vec<&Item> = p
            .items
            .iter()
            .filter(|i| i.kind == RecordKind::Message)
            .collect();
        assert_eq!((docs.len(), msgs.len()), (2, 23));

        let d = docs[0];
        assert_eq!(
            d.message_id.as_deref(),
            Some("I99a07b8e55560db3ddc00e0c8c30c62b65136556")
        );
        assert_eq!(
            d.author.as_deref(),
            Some("Gehel <guillaume.lederrey@example.com>")
        );
        assert_eq!(d.thread, "https://gerrit.wikimedia.org/r/416443");
        assert_eq!(
            d.title.as_deref(),
            Some("wdqs: wrong escaping of quotes in prometheus check")
        );
        assert!(d
            .text
            .starts_with("wdqs: wrong escaping of quotes in prometheus check\n\nChange-Id:"));
        assert_eq!(d.timestamp, Some(Utc.timestamp_opt(1520260711, 0).unwrap()));

        // First change: only jenkins-bot's build report (index 2) has words.
        let first = msgs[0];
        assert_eq!(first.author.as_deref(), Some("jenkins-bot"));
        assert_eq!(
            first.message_id.as_deref(),
            Some("I99a07b8e55560db3ddc00e0c8c30c62b65136556#2")
        );
        assert!(first
            .text
            .starts_with("Patch Set 2: Verified+2\n\nMain test build succeeded."));
        assert_eq!(
            first.timestamp,
            Some(Utc.timestamp_opt(1520260754, 0).unwrap())
        );

        // Second change: a vote with words is kept, with its author and thread.
        let thiemo = msgs
            .iter()
            .find(|m| {
                m.message_id.as_deref() == Some("I9ad743250f37c3be369888b1b9be80d8d332f62f#4")
            })
            .unwrap();
        assert_eq!(
            thiemo.author.as_deref(),
            Some("Thiemo Kreuz (WMDE) <thiemo.kreuz@example.com>")
        );
        assert!(thiemo
            .text
            .starts_with("Patch Set 1: Code-Review+1\n\nThe CI error is unrelated"));
        assert_eq!(thiemo.thread, "https://gerrit.wikimedia.org/r/415319");
        assert_eq!(
            thiemo.title.as_deref(),
            Some("Fix empty condition list in metadata lookup")
        );
        let addshore = msgs
            .iter()
            .find(|m| {
                m.message_id.as_deref() == Some("I9ad743250f37c3be369888b1b9be80d8d332f62f#15")
            })
            .unwrap();
        assert_eq!(
            addshore.text,
            "Patch Set 1: Verified+1\n\nphan failure is very unrelated :)"
        );
        // Skipped: #0 cherry-pick notice, #12 removed vote, #14 bare vote, #25 removed reviewer.
        for skipped in [0, 12, 14, 25] {
            let id = format!("I9ad743250f37c3be369888b1b9be80d8d332f62f#{skipped}");
            assert!(msgs.iter().all(|m| m.message_id.as_deref() != Some(&id)));
        }
    }

    #[test]
    fn fixture_is_sniffed_as_gerrit() {
        let Some(b) = fixture() else { return };
        let p = crate::parse("perceval__gerrit_reviews_page_1.jsonl", None, &b).unwrap();
        assert_eq!(p.format, "gerrit");
        let p = crate::parse("out.txt", None, &b).unwrap();
        assert_eq!(p.format, "gerrit");
    }

    #[test]
    fn authors_fall_back_and_votes_are_skipped() {
        let b = br#"{"project":"p","number":7,"id":"Iabc","subject":"s","owner":{"username":"ada"},"commitMessage":"s\n","createdOn":1,"comments":[{"timestamp":2,"reviewer":{"email":"b@x"},"message":"Patch Set 1:\n\nwhy?"},{"timestamp":3,"reviewer":{"username":"cy"},"message":"Patch Set 1: Code-Review-1"},{"timestamp":4,"reviewer":{"name":"Di","email":""},"message":"ok then"}]}
{"type":"stats","rowCount":1}"#;
        let p = parse("x", b).unwrap();
        assert_eq!(p.skipped, 1);
        let authors: Vec<Option<&str>> = p.items.iter().map(|i| i.author.as_deref()).collect();
        assert_eq!(authors, [Some("ada"), Some("b@x"), Some("Di")]);
        assert!(p.items.iter().all(|i| i.thread == "p/7"));
        assert_eq!(p.items[2].message_id.as_deref(), Some("Iabc#2"));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(
            parse("x", b"{\"project\":").unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(parse("x", b"nope").unwrap_err().kind, ErrorKind::Malformed);
        assert_eq!(
            parse("x", b"[1]\n2").unwrap_err().kind,
            ErrorKind::Unsupported
        );
        assert_eq!(parse("x", b"  \n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(parse("x", b"\xff{}").unwrap_err().kind, ErrorKind::Encoding);
        // One bad line among good ones: reported, the rest kept.
        let p = parse("x", b"{\"id\":\"I1\",\"commitMessage\":\"m\"}\n{oops\n").unwrap();
        assert_eq!((p.items.len(), p.warnings.len()), (1, 1));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse("x", &bytes);
            }
        }
    }
}
