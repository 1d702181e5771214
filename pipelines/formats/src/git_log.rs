//! Git history as text: the commit patches the git source of `avatar-ingest` writes (one
//! artifact per commit), `git format-patch` output, and plain `git log` output in its
//! common shapes (`--pretty=medium` / `--pretty=fuller`, with `--raw`, `--numstat`, `--stat`
//! or `-p`), as the perceval samples in `shared/fixtures/git` have them.
//!
//! Shapes read:
//! - Patch: `From <sha> Mon Sep 17 00:00:00 2001` (git's fixed magic date), header lines
//!   (`Author:` or `From:`, `Date:` in RFC 2822, `Subject:`, optionally `Parents:` and
//!   `Truncated:`), a blank line, the message body (indented by four spaces in Avatar's own
//!   rendering, so no message line can be mistaken for the diff; unindented up to the `---`
//!   line in `git format-patch` output), then `diff --git` sections.
//! - Log: `commit <sha> [<parent>…] [(refs)]`, `Merge:`, `Author:`, `AuthorDate:`/`Date:`,
//!   `Commit:`, `CommitDate:`, a blank line, the message indented by four spaces, then raw,
//!   numstat, stat or diff lines, which are read only for `-p` diffs.
//!
//! What becomes an item:
//! - One [`RecordKind::Document`] per commit message: author as git names them
//!   (`Name <email>`), the author date (when the change was written, not when it was
//!   rebased), title = subject, `message_id` = the full sha, `thread` = the repository
//!   (the folder part of an artifact name `<repo>/<sha>.patch`, else the file's stem).
//! - One [`RecordKind::Document`] per file a diff adds lines to: the added lines under the
//!   file path, title `<path> @ <short sha>` (diff-based attribution: the author of a
//!   commit wrote the lines it adds). Binary files are skipped and counted.
//!
//! Choices:
//! - Merge commits whose message is git's own (`Merge branch 'x'`, `Merge tag …`,
//!   `Merge pull request #n from …` with no description, optionally a `Conflicts:` list)
//!   are skipped and counted like system messages: nobody wrote those words.
//! - Lines are decoded one by one: UTF-8 where valid, else Windows-1252, because old
//!   repositories mix both (perceval's `git_bad_encoding` sample) and a wrong guess on one
//!   line must not garble the others. Stray carriage returns inside a line are dropped.
//! - A commit that the file ends inside of before its message (a cut-off log), and a patch
//!   marked `Truncated:` by the ingest size cap, are reported as warnings; what was read of a
//!   truncated diff is kept.
//! - Hunks are read by their `@@ -a,b +c,d @@` counts, so an added line that itself starts
//!   with `++` or `--` is never taken for a file header.

use avatar_schemas::RecordKind;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

use crate::{ErrorKind, FormatError, Item, Parsed};

/// Length of the abbreviated sha in titles (what `git log --abbrev=12` and the Linux kernel
/// use: 7 characters collide in large repositories).
pub const SHORT_SHA: usize = 12;

/// The date `git format-patch` writes on every `From ` line.
const MAGIC_DATE: &str = "Mon Sep 17 00:00:00 2001";

/// Whether `head` (the start of the file, lossily decoded) named `name` looks like this format.
pub fn looks_like(_name: &str, head: &str) -> bool {
    let first = head
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    patch_start(first).is_some() || log_start(first).is_some()
}

/// Parse git log text or commit patches (see the module docs for the shapes).
pub fn parse(name: &str, bytes: &[u8]) -> Result<Parsed, FormatError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the git log is empty (no commits)"),
        ));
    }
    if bytes.contains(&0) {
        return Err(FormatError::new(
            ErrorKind::Binary,
            format!("{name}: NUL bytes in what should be git log text; is this a packed git object rather than `git log` output?"),
        ));
    }
    let lines = decode_lines(bytes);
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    if block_start(&lines[first]).is_none() {
        return Err(FormatError::new(
            ErrorKind::Malformed,
            format!(
                "{name}: does not start with `commit <sha>` or `From <sha> {MAGIC_DATE}`; export it with `git log` (any of the medium/fuller formats) or `git format-patch`"
            ),
        ));
    }
    let thread = repo_name(name);
    let mut out = Parsed {
        format: "git-log",
        ..Parsed::default()
    };
    let mut i = first;
    while i < lines.len() {
        if block_start(&lines[i]).is_none() {
            if !lines[i].trim().is_empty() {
                out.warnings
                    .push(format!("line {}: not part of a commit, ignored", i + 1));
            }
            i += 1;
            continue;
        }
        let (commit, next) = read_commit(&lines, i);
        i = next.max(i + 1);
        emit(commit, &thread, &mut out);
    }
    Ok(out)
}

/// What kind of block a line starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Patch,
    Log,
}

fn block_start(line: &str) -> Option<Start> {
    if patch_start(line).is_some() {
        Some(Start::Patch)
    } else if log_start(line).is_some() {
        Some(Start::Log)
    } else {
        None
    }
}

fn is_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `From <sha> Mon Sep 17 00:00:00 2001` → the sha.
fn patch_start(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("From ")?;
    let (sha, date) = rest.split_once(' ')?;
    (is_sha(sha) && date.trim() == MAGIC_DATE).then_some(sha)
}

/// `commit <sha> [<parent>…] [(refs)]` → the sha and the parents.
fn log_start(line: &str) -> Option<(&str, Vec<&str>)> {
    let rest = line.strip_prefix("commit ")?;
    let before_refs = rest.split(" (").next().unwrap_or(rest);
    let mut words = before_refs.split_whitespace();
    let sha = words.next()?;
    if !is_sha(sha) {
        return None;
    }
    let parents: Vec<&str> = words.take_while(|w| is_sha(w)).collect();
    Some((sha, parents))
}

/// One commit as read from the text.
#[derive(Debug, Default)]
struct Commit {
    sha: String,
    parents: usize,
    author: Option<String>,
    date: Option<String>,
    subject: Option<String>,
    message: String,
    files: Vec<FileDiff>,
    truncated: Option<String>,
    /// The text ended before the message (a cut-off log).
    incomplete: bool,
    /// The 1-based line of the commit's first line, for warnings.
    line: usize,
    /// Hunks that ended before their counts said.
    short_hunks: usize,
}

#[derive(Debug, Default)]
struct FileDiff {
    path: String,
    added: Vec<String>,
    binary: bool,
}

/// Reads the commit starting at `lines[start]`; returns it and the index after it.
fn read_commit(lines: &[String], start: usize) -> (Commit, usize) {
    let mut c = Commit {
        line: start + 1,
        ..Commit::default()
    };
    let kind = block_start(&lines[start]);
    match kind {
        Some(Start::Patch) => {
            c.sha = patch_start(&lines[start]).unwrap_or_default().to_string();
        }
        _ => {
            if let Some((sha, parents)) = log_start(&lines[start]) {
                c.sha = sha.to_string();
                c.parents = parents.len();
            }
        }
    }
    let patch = kind == Some(Start::Patch);
    let at_end = |i: usize| i >= lines.len() || block_start(&lines[i]).is_some();

    // Header lines up to the blank line; folded lines (leading blank) continue the previous.
    let mut i = start + 1;
    let mut last_key = String::new();
    let mut author_date = None;
    let mut plain_date = None;
    loop {
        if at_end(i) {
            c.incomplete = true;
            return (c, i);
        }
        let line = &lines[i];
        i += 1;
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if last_key == "subject" {
                if let Some(s) = c.subject.as_mut() {
                    s.push(' ');
                    s.push_str(line.trim());
                }
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim().to_string();
        last_key = key.trim().to_ascii_lowercase();
        match last_key.as_str() {
            "author" => c.author = Some(value),
            "from" if patch => c.author = Some(value),
            "authordate" => author_date = Some(value),
            "date" => plain_date = Some(value),
            "subject" if patch => c.subject = Some(strip_patch_prefix(&value).to_string()),
            "merge" => c.parents = value.split_whitespace().count(),
            "parents" => c.parents = value.split_whitespace().count(),
            "truncated" => c.truncated = Some(value),
            _ => {}
        }
    }
    c.date = author_date.or(plain_date);

    // The message: indented by four spaces (git log, Avatar's patches) or, in format-patch
    // output, unindented up to the `---` line.
    let mut body: Vec<&str> = Vec::new();
    let indented = lines[i..]
        .iter()
        .take_while(|l| !at_end_line(l))
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("    "));
    while !at_end(i) {
        let line = lines[i].as_str();
        if indented {
            if let Some(rest) = line.strip_prefix("    ") {
                body.push(rest);
            } else if line.trim().is_empty() {
                body.push("");
            } else {
                break;
            }
        } else {
            if line == "---" || line.starts_with("diff --git ") {
                break;
            }
            body.push(line);
        }
        i += 1;
    }
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    while body.first().is_some_and(|l| l.trim().is_empty()) {
        body.remove(0);
    }
    let body = body.join("\n");
    c.message = match &c.subject {
        Some(s) if body.is_empty() => s.clone(),
        Some(s) => format!("{s}\n\n{body}"),
        None => body,
    };

    // Whatever follows: diffs are read, raw/numstat/stat lines and signatures are not.
    while !at_end(i) {
        if lines[i].starts_with("diff --git ") {
            i = read_file_diff(lines, i, &mut c);
        } else {
            i += 1;
        }
    }
    (c, i)
}

fn at_end_line(line: &str) -> bool {
    block_start(line).is_some()
}

/// `[PATCH v2 3/7] subject` → `subject`, as `git am` does.
fn strip_patch_prefix(s: &str) -> &str {
    let t = s.trim_start();
    if t.starts_with("[PATCH") || t.starts_with("[RFC") {
        if let Some((_, rest)) = t.split_once(']') {
            return rest.trim_start();
        }
    }
    t
}

/// Reads one `diff --git` section starting at `lines[start]`; returns the index after it.
fn read_file_diff(lines: &[String], start: usize, c: &mut Commit) -> usize {
    let mut file = FileDiff {
        path: diff_git_path(&lines[start]),
        ..FileDiff::default()
    };
    let mut i = start + 1;
    let ends = |i: usize| {
        i >= lines.len() || block_start(&lines[i]).is_some() || lines[i].starts_with("diff --git ")
    };
    while !ends(i) {
        let line = lines[i].as_str();
        if let Some(p) = line.strip_prefix("+++ ") {
            if let Some(p) = p.strip_prefix("b/") {
                file.path = p.trim_end().to_string();
            }
        } else if let Some(p) = line.strip_prefix("rename to ") {
            file.path = p.to_string();
        } else if line.starts_with("Binary files ") || line == "GIT binary patch" {
            file.binary = true;
        } else if line.starts_with("@@ ") {
            if let Some((old, new)) = hunk_counts(line) {
                i = read_hunk(lines, i + 1, old, new, &mut file, c);
                continue;
            }
        }
        i += 1;
    }
    c.files.push(file);
    i
}

/// The `b/` path of `diff --git a/x b/x` (used when no `+++` line follows: mode changes,
/// binary files, pure renames).
fn diff_git_path(line: &str) -> String {
    let rest = line.strip_prefix("diff --git ").unwrap_or(line);
    match rest.rfind(" b/") {
        Some(at) => rest[at + 3..].to_string(),
        None => rest.to_string(),
    }
}

/// `@@ -a,b +c,d @@ …` → (b, d); a missing count means 1.
fn hunk_counts(line: &str) -> Option<(u64, u64)> {
    let inner = line.strip_prefix("@@ ")?;
    let (ranges, _) = inner.split_once(" @@")?;
    let (old, new) = ranges.split_once(' ')?;
    let count = |r: &str| -> Option<u64> {
        match r.split_once(',') {
            Some((_, n)) => n.parse().ok(),
            None => r.parse::<u64>().ok().map(|_| 1),
        }
    };
    Some((
        count(old.strip_prefix('-')?)?,
        count(new.strip_prefix('+')?)?,
    ))
}

fn read_hunk(
    lines: &[String],
    mut i: usize,
    mut old: u64,
    mut new: u64,
    file: &mut FileDiff,
    c: &mut Commit,
) -> usize {
    while old > 0 || new > 0 {
        let Some(line) = lines.get(i) else {
            c.short_hunks += 1;
            return i;
        };
        match line.as_bytes().first() {
            Some(b'+') if new > 0 => {
                file.added.push(line[1..].to_string());
                new -= 1;
            }
            Some(b'-') if old > 0 => old -= 1,
            Some(b' ') | None => {
                old = old.saturating_sub(1);
                new = new.saturating_sub(1);
            }
            Some(b'\\') => {}
            _ => {
                c.short_hunks += 1;
                return i;
            }
        }
        i += 1;
    }
    // `\ No newline at end of file` after the last line.
    while lines.get(i).is_some_and(|l| l.starts_with('\\')) {
        i += 1;
    }
    i
}

/// Whether a merge's message is git's own wording (nothing a person wrote).
fn generated_merge(message: &str) -> bool {
    let mut parts = message.splitn(2, "\n\n");
    let subject = parts.next().unwrap_or("").trim();
    let rest = parts.next().unwrap_or("").trim();
    let generated_subject = [
        "Merge branch ",
        "Merge branches ",
        "Merge tag ",
        "Merge remote-tracking branch ",
        "Merge remote branch ",
        "Merge commit ",
    ]
    .iter()
    .any(|p| subject.starts_with(p))
        || (subject.starts_with("Merge pull request #") && rest.is_empty());
    let rest_generated =
        rest.is_empty() || rest.starts_with("Conflicts:") || rest.starts_with("# Conflicts:");
    generated_subject && rest_generated
}

fn emit(c: Commit, thread: &str, out: &mut Parsed) {
    let short: String = c.sha.chars().take(SHORT_SHA).collect();
    if c.incomplete {
        out.warnings.push(format!(
            "line {}: commit {short} ends before its message (the log was cut off?); not read",
            c.line
        ));
        return;
    }
    if let Some(why) = &c.truncated {
        out.warnings
            .push(format!("commit {short}: the patch was truncated ({why})"));
    }
    if c.short_hunks > 0 {
        out.warnings.push(format!(
            "commit {short}: {} diff hunk(s) end early (truncated patch?); the lines read are kept",
            c.short_hunks
        ));
    }
    let timestamp = match c.date.as_deref() {
        Some(d) => {
            let t = parse_date(d);
            if t.is_none() {
                out.warnings
                    .push(format!("commit {short}: unreadable date {d:?}"));
            }
            t
        }
        None => None,
    };
    let author = c.author.filter(|a| !a.is_empty());
    let message = c.message.trim_end().to_string();
    if message.trim().is_empty() || (c.parents > 1 && generated_merge(&message)) {
        out.skipped += 1;
    } else {
        let title = message.lines().next().map(|s| s.trim().to_string());
        out.items.push(Item {
            kind: RecordKind::Document,
            thread: thread.to_string(),
            timestamp,
            author: author.clone(),
            text: message,
            title,
            message_id: Some(c.sha.clone()),
            in_reply_to: None,
            from_owner: false,
        });
    }
    for f in c.files {
        if f.binary {
            out.skipped += 1;
            continue;
        }
        if f.added.iter().all(|l| l.trim().is_empty()) {
            continue;
        }
        let mut text = String::with_capacity(
            f.path.len() + 2 + f.added.iter().map(|l| l.len() + 1).sum::<usize>(),
        );
        text.push_str(&f.path);
        text.push_str("\n\n");
        text.push_str(&f.added.join("\n"));
        out.items.push(Item {
            kind: RecordKind::Document,
            thread: thread.to_string(),
            timestamp,
            author: author.clone(),
            text,
            title: Some(format!("{} @ {short}", f.path)),
            message_id: Some(format!("{}:{}", c.sha, f.path)),
            in_reply_to: None,
            from_owner: false,
        });
    }
}

/// The repository an artifact belongs to: `avatar/0123abcd.patch` → `avatar`; a log file
/// `perceval_git_log.txt` → `perceval_git_log`.
pub fn repo_name(name: &str) -> String {
    let name = name.replace('\\', "/");
    let mut parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    let file = parts.pop().unwrap_or("");
    if file.ends_with(".patch") {
        if let Some(repo) = parts.last() {
            return repo.to_string();
        }
    }
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => file.to_string(),
    }
}

/// Git's date shapes: RFC 2822 (patches, `--date=rfc`), the default
/// `Tue Feb 11 22:10:39 2014 -0800`, ISO 8601 (`--date=iso`, `--date=iso-strict`) and raw
/// (`1392185439 -0800`).
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Ok(t) = DateTime::parse_from_rfc2822(&s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%a %b %d %H:%M:%S %Y %z", "%Y-%m-%d %H:%M:%S %z"] {
        if let Ok(t) = DateTime::parse_from_str(&s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    if let Some((secs, zone)) = s.split_once(' ') {
        let secs: i64 = secs.parse().ok()?;
        let zone = zone.trim();
        if zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')) {
            let at = DateTime::from_timestamp(secs, 0)?;
            return Some(at);
        }
    }
    // A naive date without zone is read as UTC rather than dropped.
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .and_then(|n| FixedOffset::east_opt(0)?.from_local_datetime(&n).single())
        .map(|t| t.with_timezone(&Utc))
}

/// Windows-1252's 0x80–0x9F (the rest of the byte range is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž', '\u{8f}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}', 'ž', 'Ÿ',
];

/// Splits into lines and decodes each: UTF-8 where valid, else Windows-1252. Stray `\r`
/// (CRLF endings, a bare CR inside a message) are dropped.
fn decode_lines(bytes: &[u8]) -> Vec<String> {
    // The final newline ends the last line; it does not start an empty one.
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .map(|raw| {
            let s = match std::str::from_utf8(raw) {
                Ok(s) => s.to_string(),
                Err(_) => raw
                    .iter()
                    .map(|&b| match b {
                        0x80..=0x9f => CP1252_HIGH[usize::from(b - 0x80)],
                        _ => char::from(b),
                    })
                    .collect(),
            };
            if s.contains('\r') {
                s.replace('\r', "")
            } else {
                s
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
