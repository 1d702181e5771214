//! GitHub REST API answers saved as JSON: pull request review comments
//! (`/pulls/{n}/comments`), reviews (`/pulls/{n}/reviews`), issue comments
//! (`/issues/{n}/comments`), a pull request or issue itself (`/pulls/{n}`), and a pull
//! request's commits (`/pulls/{n}/commits`): what tools such as perceval, `gh api` or a
//! GitHub data export write for the code review side of a person's work.
//!
//! Choices:
//! - Comments, reviews and pull request / issue descriptions are [`RecordKind::Message`]s
//!   with `author` = `user.login`, `thread` = the pull request or issue page
//!   (`https://github.com/o/r/pull/7`, taken from `pull_request_url`/`issue_url`, which name
//!   the conversation, rather than `html_url`, which names the comment), `message_id` = the
//!   comment id and `in_reply_to` = `in_reply_to_id`, so review threads keep their chains.
//! - Commits are [`RecordKind::Document`]s like in `git_log`: `Name <email>` of the commit
//!   author, message, sha.
//! - A comment without a user (a deleted "ghost" account) keeps its text with no author.
//!   Reviews without a body (a bare approval) and empty comments are skipped and counted.

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{ErrorKind, FormatError, Item, Parsed};

const API: &str = "https://api.github.com/repos/";

/// Whether `head` looks like a saved GitHub API answer: JSON naming api.github.com URLs.
pub fn looks_like(_name: &str, head: &str) -> bool {
    (head.starts_with('[') || head.starts_with('{')) && head.contains(API)
}

pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let kind = if e.is_eof() {
            ErrorKind::Truncated
        } else {
            ErrorKind::Malformed
        };
        FormatError::new(
            kind,
            format!("{name}: not valid JSON ({e}); save the GitHub API answer unchanged"),
        )
    })?;
    let mut out = Parsed {
        format: "github",
        ..Parsed::default()
    };
    match &value {
        Value::Array(list) => {
            for (i, v) in list.iter().enumerate() {
                entry(v, i, &mut out);
            }
        }
        Value::Object(_) => entry(&value, 0, &mut out),
        _ => {
            return Err(FormatError::new(
                ErrorKind::Unsupported,
                format!("{name}: JSON that is neither a GitHub object nor a list of them"),
            ))
        }
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn id_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn time_at(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    str_at(v, key)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `https://api.github.com/repos/o/r/pulls/7` → `https://github.com/o/r/pull/7`.
fn page(api_url: &str) -> String {
    match api_url.strip_prefix(API) {
        Some(rest) => format!(
            "https://github.com/{}",
            rest.replacen("/pulls/", "/pull/", 1)
        ),
        None => api_url.to_string(),
    }
}

fn login(v: &Value) -> Option<String> {
    v.get("user")
        .and_then(|u| str_at(u, "login"))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

fn entry(v: &Value, index: usize, out: &mut Parsed) {
    if !v.is_object() {
        out.warnings
            .push(format!("entry {index}: not an object, ignored"));
        return;
    }
    // A commit of `/pulls/{n}/commits`.
    if let (Some(sha), Some(commit)) = (str_at(v, "sha"), v.get("commit")) {
        let message = str_at(commit, "message").unwrap_or("").trim().to_string();
        if message.is_empty() {
            out.skipped += 1;
            return;
        }
        let who = commit.get("author");
        let author = who.map(|a| match (str_at(a, "name"), str_at(a, "email")) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => format!("<{e}>"),
            (None, None) => String::new(),
        });
        let thread = str_at(v, "html_url")
            .and_then(|u| u.split("/commit/").next())
            .unwrap_or("github")
            .to_string();
        out.items.push(Item {
            kind: RecordKind::Document,
            thread,
            timestamp: who.and_then(|a| time_at(a, "date")),
            author: author.filter(|a| !a.is_empty()),
            title: message.lines().next().map(str::to_string),
            text: message,
            message_id: Some(sha.to_string()),
            in_reply_to: None,
            from_owner: false,
        });
        return;
    }
    let body = str_at(v, "body").unwrap_or("").trim().to_string();
    let thread_url = str_at(v, "pull_request_url")
        .or_else(|| str_at(v, "issue_url"))
        .map(page);
    // A pull request or issue: it names itself.
    let is_conversation = v.get("number").is_some() && v.get("title").is_some();
    let thread = if is_conversation {
        str_at(v, "html_url").map(str::to_string).or(thread_url)
    } else {
        thread_url
            .or_else(|| str_at(v, "html_url").map(|u| u.split('#').next().unwrap_or(u).to_string()))
    };
    let Some(thread) = thread else {
        out.warnings.push(format!(
            "entry {index}: no pull request or issue URL; not a GitHub comment, review or pull request"
        ));
        return;
    };
    let title = if is_conversation {
        str_at(v, "title").map(str::to_string)
    } else {
        None
    };
    let text = match (&title, body.is_empty()) {
        (Some(t), true) => t.clone(),
        (Some(t), false) => format!("{t}\n\n{body}"),
        (None, _) => body,
    };
    if text.is_empty() {
        out.skipped += 1;
        return;
    }
    let timestamp = time_at(v, "created_at").or_else(|| time_at(v, "submitted_at"));
    out.items.push(Item {
        kind: RecordKind::Message,
        thread,
        timestamp,
        author: login(v),
        text,
        title,
        message_id: id_at(v, "id"),
        in_reply_to: id_at(v, "in_reply_to_id"),
        from_owner: false,
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/git");

    fn fixture(file: &str) -> Option<Vec<u8>> {
        if !std::path::Path::new(FIXTURES).is_dir() {
            eprintln!("skipping: ../shared/fixtures not found");
            return None;
        }
        Some(std::fs::read(format!("{FIXTURES}/{file}")).unwrap())
    }

    const PR1: &str = "https://github.com/zhquan_example/repo/pull/1";

    #[test]
    fn review_comments_keep_their_pull_request_and_authors() {
        let Some(b) = fixture("perceval__github__github_request_pull_request_1_comments.json")
        else {
            return;
        };
        let p = parse("c.json", &b).unwrap();
        assert_eq!(p.format, "github");
        assert_eq!(p.items.len(), 2);
        assert_eq!(
            p.items[0].text,
            "This module is not used. It should be removed."
        );
        assert_eq!(p.items[0].author.as_deref(), Some("zhquan_example"));
        assert_eq!(p.items[0].thread, PR1);
        assert_eq!(p.items[0].message_id.as_deref(), Some("1"));
        assert_eq!(p.items[0].kind, RecordKind::Message);
        assert_eq!(
            p.items[0].timestamp,
            Some(Utc.with_ymd_and_hms(2015, 12, 4, 19, 7, 22).unwrap())
        );
        assert!(p.items[1]
            .text
            .starts_with("It shouldn't be there any spaces around keywords"));

        let p = parse(
            "c.json",
            &fixture("perceval__github__github_request_pull_request_2_comments.json").unwrap(),
        )
        .unwrap();
        assert_eq!(p.items.len(), 4);
        assert!(p
            .items
            .iter()
            .all(|i| i.thread == "https://github.com/zhquan_example/repo/pull/2"));
        // Comment 5 has `user: {}`, comment 6 no user at all: text kept, no author.
        let authors: Vec<Option<&str>> = p.items.iter().map(|i| i.author.as_deref()).collect();
        assert_eq!(
            authors,
            [Some("zhquan_example"), Some("zhquan_example"), None, None]
        );
        let ids: Vec<Option<&str>> = p.items.iter().map(|i| i.message_id.as_deref()).collect();
        assert_eq!(ids, [Some("3"), Some("4"), Some("5"), Some("6")]);
        // No comment in these samples answers another.
        assert!(p.items.iter().all(|i| i.in_reply_to.is_none()));
        // A reply names the comment it answers (shape of GitHub's review comment API).
        let reply = br#"[{"id": 11, "in_reply_to_id": 10, "body": "Done.", "user": {"login": "ada"},
            "pull_request_url": "https://api.github.com/repos/o/r/pulls/7", "created_at": "2024-01-02T03:04:05Z"}]"#;
        let p = parse("c.json", reply).unwrap();
        assert_eq!(p.items[0].in_reply_to.as_deref(), Some("10"));
        assert_eq!(p.items[0].thread, "https://github.com/o/r/pull/7");
    }

    #[test]
    fn reviews_issue_comments_pull_request_and_commits() {
        let Some(b) = fixture("perceval__github__github_request_pull_request_1_reviews.json")
        else {
            return;
        };
        let p = parse("r.json", &b).unwrap();
        let texts: Vec<&str> = p.items.iter().map(|i| i.text.as_str()).collect();
        assert_eq!(texts, ["Looks good to me. Thanks!", "LGTM!"]);
        assert_eq!(
            p.items[0].thread,
            "https://github.com/zhquan_example/repo/pull/88"
        );
        assert_eq!(
            p.items[0].timestamp,
            Some(Utc.with_ymd_and_hms(2019, 2, 20, 12, 26, 10).unwrap())
        );
        assert_eq!(p.items[1].author, None);

        let p = parse(
            "r.json",
            &fixture("perceval__github__github_request_pull_request_2_reviews.json").unwrap(),
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.items[0].thread,
            "https://github.com/chaoss/wg-evolution/pull/88"
        );

        for (f, text, issue) in [
            (
                "perceval__github__github_issue_comments_1.json",
                "My first comment",
                1,
            ),
            (
                "perceval__github__github_issue_comments_2.json",
                "My second comment",
                2,
            ),
        ] {
            let p = parse(f, &fixture(f).unwrap()).unwrap();
            assert_eq!(p.items.len(), 1);
            assert_eq!(p.items[0].text, text);
            assert_eq!(
                p.items[0].thread,
                format!("https://github.com/zhquan_example/repo/issues/{issue}")
            );
        }

        let p = parse(
            "pr.json",
            &fixture("perceval__github__github_request_pull_request_1.json").unwrap(),
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.items[0].title.as_deref(),
            Some("Config files for a documentation, using Sphinx.")
        );
        assert!(p.items[0]
            .text
            .contains("\n\nBased on Sphynx, prepared for ReadTheDocs."));
        assert_eq!(p.items[0].thread, PR1);
        assert_eq!(p.items[0].author.as_deref(), Some("zhquan_example"));
        assert_eq!(
            p.items[0].timestamp,
            Some(Utc.with_ymd_and_hms(2016, 1, 3, 23, 46, 4).unwrap())
        );

        let p = parse(
            "commits.json",
            &fixture("perceval__github__github_request_pull_request_1_commits.json").unwrap(),
        )
        .unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].kind, RecordKind::Document);
        assert_eq!(
            p.items[0].message_id.as_deref(),
            Some("53b970ee04bbc435842c14a2cbfdd623faf74a65")
        );
    }

    #[test]
    fn every_github_fixture_is_sniffed_as_github() {
        let Some(_) = fixture("perceval__github__github_issue_comments_1.json") else {
            return;
        };
        for f in std::fs::read_dir(FIXTURES).unwrap() {
            let path = f.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("perceval__github__") {
                continue;
            }
            let p = crate::parse(&name, None, &std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(p.format, "github", "{name}");
            assert!(!p.items.is_empty(), "{name}");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(
            parse("x", b"[{\"body\":").unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(parse("x", b"nope").unwrap_err().kind, ErrorKind::Malformed);
        assert_eq!(parse("x", b"42").unwrap_err().kind, ErrorKind::Unsupported);
        let p = parse("x", b"[1, {\"body\": \"hi\"}]").unwrap();
        assert_eq!((p.items.len(), p.warnings.len()), (0, 2));
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
