//! The git source: a repository on disk becomes one artifact per commit.
//!
//! Each artifact is a deterministic text rendering of one commit, close to `git format-patch`
//! (see `avatar_formats::git_log` for the reader):
//!
//! ```text
//! From <sha> Mon Sep 17 00:00:00 2001
//! Author: Name <email>
//! Date: Tue, 11 Feb 2014 22:10:39 -0800
//! Subject: first line of the message
//! Parents: <sha> [<sha>…]                 (when the commit has parents)
//! Truncated: …                            (when the size cap cut the diff)
//!
//!     the rest of the message, indented by four spaces so that no message line
//!     can be read as a diff line
//! ---
//! diff --git a/path b/path
//! …unified diff, 3 lines of context…
//! ```
//!
//! Why one artifact per commit and not per repository: the log stays the source of truth
//! and the processor stays a pure function of it; the same commit always renders to the same
//! bytes, so ingesting a repository again stores only the new commits (sha256 dedup), and a
//! bad commit becomes one dead letter, not a lost repository.
//!
//! Choices:
//! - Every commit reachable from `HEAD` is rendered, newest first, streaming (one commit in
//!   memory at a time): who wrote what is decided later from the person's aliases.
//! - Merge commits carry their message and no diff: the lines a merge brings in were written
//!   in the commits it merges, and those are rendered on their own.
//! - Binary files (a NUL byte in the first 8000 bytes, git's rule), files over
//!   [`GitOptions::max_blob_bytes`], symbolic links and submodules are named, not diffed.
//! - Renames are found by identical content, then by line similarity of at least 50% (like
//!   git's default) among a bounded number of candidate pairs, so a moved file is not
//!   attributed whole to the person who moved it.
//! - A patch over [`GitOptions::max_patch_bytes`] is cut at a line boundary and marked with
//!   a `Truncated:` header (vendored code, generated files).
//! - Remote URLs are not cloned here: cloning needs gix's network and transport features,
//!   which would more than double this crate's build; the error says to `git clone` first.

use crate::paths::percent_encode;
use crate::{IngestError, IngestOptions, IngestReport, Run};
use gix::bstr::ByteSlice;
use gix::ObjectId;
use similar::TextDiff;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The `--format` name the processor reads these artifacts with.
pub const GIT_FORMAT: &str = "git-log";

/// Length of the abbreviated sha in artifact names.
const SHORT_SHA: usize = 12;

/// Tree nesting deeper than this is refused (a hostile repository could nest without end).
const MAX_TREE_DEPTH: usize = 256;

/// Rename candidates compared by content per commit (deleted × added files).
const MAX_RENAME_PAIRS: usize = 100;

/// Files larger than this are not compared for renames (the comparison is quadratic).
const MAX_RENAME_BLOB: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitOptions {
    /// A commit's rendering is cut (and marked) past this many bytes.
    pub max_patch_bytes: usize,
    /// Files larger than this are named but not diffed.
    pub max_blob_bytes: u64,
    /// Stop after this many commits (newest first); `None` reads the whole history.
    pub max_commits: Option<usize>,
}

impl Default for GitOptions {
    fn default() -> Self {
        GitOptions {
            max_patch_bytes: 1 << 20,
            max_blob_bytes: 1 << 20,
            max_commits: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A URL: Avatar does not clone.
    #[error("{0} is a remote repository: Avatar reads local repositories only; run `git clone {0}` and ingest the folder it makes")]
    Remote(String),
    #[error("{} is not a git repository Avatar can open: {reason}", path.display())]
    NotARepository { path: PathBuf, reason: String },
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

/// Progress after each commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitProgress {
    /// Commits read so far.
    pub commits: usize,
    /// The commit just read.
    pub sha: String,
}

/// Reads the repository at `repo` (a path to a work tree, a `.git` folder or a bare
/// repository, or a `file://` URL) and appends one `ArtifactReceived` (format hint
/// `git-log`, name `<repo-name>/<short-sha>.patch`, source `git://<path>#<sha>`) per commit
/// reachable from `HEAD`, newest first. Commits that cannot be read are reported in
/// [`IngestReport::rejected`] and the walk goes on.
pub fn ingest_git(
    log: &dyn avatar_runtime::EventLog,
    blobs: &dyn avatar_runtime::BlobStore,
    avatar: &str,
    repo: &str,
    git: &GitOptions,
    progress: &mut dyn FnMut(GitProgress),
) -> Result<IngestReport, GitError> {
    crate::check_avatar(avatar)?;
    let path = local_path(repo)?;
    if std::fs::metadata(&path).is_err() {
        return Err(IngestError::NotFound(path).into());
    }
    let not_repo = |reason: String| GitError::NotARepository {
        path: path.clone(),
        reason,
    };
    let canonical = std::fs::canonicalize(&path).map_err(|e| not_repo(e.to_string()))?;
    let repository = gix::open_opts(&canonical, gix::open::Options::isolated())
        .map_err(|e| not_repo(e.to_string()))?;
    let name = repo_name(&repository, &canonical);
    let base_uri = format!(
        "git://{}",
        percent_encode(path_bytes(&canonical).as_slice())
    );

    let opts = IngestOptions {
        format_hint: Some(GIT_FORMAT.to_string()),
        ..IngestOptions::default()
    };
    let mut run = Run::new(log, blobs, avatar, &opts);
    let shown = canonical.display().to_string();
    let head = match repository.head_id() {
        Ok(id) => id,
        Err(e) => {
            run.reject(&shown, format!("no commits to read (HEAD: {e})"));
            return Ok(run.report);
        }
    };
    let walk = head
        .ancestors()
        // The default order is newest first; the queue holds only the walk's frontier.
        .sorting(gix::revision::walk::Sorting::ByCommitTime(
            Default::default(),
        ))
        .all()
        .map_err(|e| not_repo(e.to_string()))?;
    let mut outcome = Ok(());
    for (done, info) in walk.enumerate() {
        if git.max_commits.is_some_and(|max| done >= max) {
            break;
        }
        let id = match info {
            Ok(info) => info.id,
            Err(e) => {
                run.reject(&shown, format!("history walk stopped: {e}"));
                break;
            }
        };
        let commits = done + 1;
        let sha = id.to_string();
        let short = &sha[..SHORT_SHA.min(sha.len())];
        match render_commit(&repository, id, git) {
            Ok(bytes) => {
                let uri = format!("{base_uri}#{sha}");
                let artifact = format!("{name}/{short}.patch");
                if let Err(e) = run.emit(&uri, &artifact, false, &bytes) {
                    outcome = Err(e);
                    break;
                }
            }
            Err(reason) => run.reject(&format!("{shown}#{sha}"), reason),
        }
        progress(GitProgress { commits, sha });
    }
    let flushed = run.flush();
    outcome?;
    flushed?;
    Ok(run.report)
}

/// A local path from what the user typed; URLs that need the network are refused.
fn local_path(repo: &str) -> Result<PathBuf, GitError> {
    if let Some(rest) = repo.strip_prefix("file://") {
        return Ok(PathBuf::from(percent_decode(rest)));
    }
    let lower = repo.to_ascii_lowercase();
    let remote = [
        "http://",
        "https://",
        "ssh://",
        "git://",
        "git+ssh://",
        "ftp://",
    ]
    .iter()
    .any(|p| lower.starts_with(p));
    // scp-like `user@host:path` (but not a Windows drive `C:\…`).
    let scp = !repo.contains("://")
        && repo.split_once(':').is_some_and(|(host, _)| {
            host.contains('@') && !host.contains('/') && !Path::new(repo).exists()
        });
    if remote || scp {
        return Err(GitError::Remote(repo.to_string()));
    }
    Ok(PathBuf::from(repo))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn path_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().replace('\\', "/").into_bytes()
}

/// The work tree's folder name, or a bare repository's without `.git`.
fn repo_name(repo: &gix::Repository, canonical: &Path) -> String {
    let dir = repo
        .workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| canonical.to_path_buf());
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repository".to_string());
    let name = name.strip_suffix(".git").unwrap_or(&name).to_string();
    if name.is_empty() {
        "repository".to_string()
    } else {
        name
    }
}

/// One file's state on one side of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Side {
    mode: u16,
    id: ObjectId,
}

#[derive(Debug, Clone)]
struct Change {
    old_path: String,
    new_path: String,
    old: Option<Side>,
    new: Option<Side>,
    similarity: Option<u8>,
}

/// Renders one commit (see the module docs); the reason when it cannot be read.
pub(crate) fn render_commit(
    repo: &gix::Repository,
    id: ObjectId,
    git: &GitOptions,
) -> Result<Vec<u8>, String> {
    let commit = repo
        .find_commit(id)
        .map_err(|e| format!("cannot read commit: {e}"))?;
    let author = commit
        .author()
        .map_err(|e| format!("unreadable author: {e}"))?;
    let who = format!(
        "{} <{}>",
        decode(author.name.trim()),
        decode(author.email.trim())
    );
    let date = author
        .time()
        .ok()
        .and_then(|t| t.format(gix::date::time::format::RFC2822).ok())
        .unwrap_or_else(|| author.time.trim().to_string());
    let message = decode(
        commit
            .message_raw()
            .map_err(|e| format!("unreadable message: {e}"))?,
    );
    let parents: Vec<ObjectId> = commit.parent_ids().map(|p| p.detach()).collect();
    let tree = commit
        .tree_id()
        .map_err(|e| format!("unreadable tree: {e}"))?
        .detach();

    let (subject, body) = split_message(&message);
    let mut diff = String::new();
    let mut truncated = None;
    if parents.len() <= 1 {
        let old_tree = match parents.first() {
            Some(p) => Some(
                repo.find_commit(*p)
                    .and_then(|c| c.tree_id().map(|t| t.detach()))
                    .map_err(|e| format!("cannot read parent {p}: {e}"))?,
            ),
            None => None,
        };
        let mut changes = Vec::new();
        diff_trees(repo, old_tree, Some(tree), "", 0, &mut changes)?;
        let changes = find_renames(repo, changes);
        let total = changes.len();
        for (n, change) in changes.iter().enumerate() {
            let section = render_change(repo, change, git)?;
            let room = git.max_patch_bytes.saturating_sub(diff.len());
            if section.len() > room {
                let cut = section[..floor_char(&section, room)]
                    .rfind('\n')
                    .map_or(0, |i| i + 1);
                diff.push_str(&section[..cut]);
                truncated = Some(format!(
                    "patch over {} bytes; the diff stops in {} ({} of {total} files not shown)",
                    git.max_patch_bytes,
                    change.new_path,
                    total - n - 1
                ));
                break;
            }
            diff.push_str(&section);
        }
    }

    let mut out = String::with_capacity(diff.len() + message.len() + 256);
    let _ = writeln!(out, "From {id} Mon Sep 17 00:00:00 2001");
    let _ = writeln!(out, "Author: {who}");
    let _ = writeln!(out, "Date: {date}");
    let _ = writeln!(out, "Subject: {subject}");
    if !parents.is_empty() {
        let list: Vec<String> = parents.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "Parents: {}", list.join(" "));
    }
    if let Some(t) = &truncated {
        let _ = writeln!(out, "Truncated: {t}");
    }
    out.push('\n');
    for line in body.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push_str("---\n");
    out.push_str(&diff);
    Ok(out.into_bytes())
}

/// The largest index ≤ `at` on a char boundary.
fn floor_char(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Subject (first line) and body (after the blank line that follows it).
fn split_message(message: &str) -> (String, String) {
    let message = message.trim();
    let mut lines = message.lines();
    let subject = lines.next().unwrap_or("").trim().to_string();
    let body: Vec<&str> = lines.collect();
    let body = body.join("\n").trim_matches('\n').to_string();
    (subject, body)
}

/// UTF-8 where valid, else Windows-1252/Latin-1 (old repositories), with stray CRs dropped.
fn decode(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    let s = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes
            .iter()
            .map(|&b| match b {
                0x80..=0x9f => HIGH[usize::from(b - 0x80)],
                _ => char::from(b),
            })
            .collect(),
    };
    s.replace('\r', "")
}

type Entries = BTreeMap<String, Side>;

fn tree_entries(repo: &gix::Repository, id: Option<ObjectId>) -> Result<Entries, String> {
    let mut map = BTreeMap::new();
    let Some(id) = id else { return Ok(map) };
    let tree = repo
        .find_tree(id)
        .map_err(|e| format!("cannot read tree {id}: {e}"))?;
    for entry in tree.iter() {
        let entry = entry.map_err(|e| format!("corrupt tree {id}: {e}"))?;
        map.insert(
            decode(entry.inner.filename),
            Side {
                mode: entry.inner.mode.value(),
                id: entry.inner.oid.to_owned(),
            },
        );
    }
    Ok(map)
}

fn is_tree(mode: u16) -> bool {
    mode & 0o170000 == 0o040000
}

/// Regular and executable files: what is diffed (links and submodules are not code).
fn is_file(mode: u16) -> bool {
    mode & 0o170000 == 0o100000
}

/// Collects the file changes between two trees, in path order.
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<Change>,
) -> Result<(), String> {
    if depth > MAX_TREE_DEPTH {
        return Err(format!("trees nested deeper than {MAX_TREE_DEPTH} levels"));
    }
    if old == new {
        return Ok(());
    }
    let a = tree_entries(repo, old)?;
    let b = tree_entries(repo, new)?;
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let (o, n) = (a.get(name).copied(), b.get(name).copied());
        if o == n {
            continue;
        }
        let o_tree = o.filter(|s| is_tree(s.mode)).map(|s| s.id);
        let n_tree = n.filter(|s| is_tree(s.mode)).map(|s| s.id);
        if o_tree.is_some() || n_tree.is_some() {
            diff_trees(repo, o_tree, n_tree, &path, depth + 1, out)?;
        }
        let o_file = o.filter(|s| !is_tree(s.mode));
        let n_file = n.filter(|s| !is_tree(s.mode));
        if o_file.is_some() || n_file.is_some() {
            out.push(Change {
                old_path: path.clone(),
                new_path: path,
                old: o_file,
                new: n_file,
                similarity: None,
            });
        }
    }
    Ok(())
}

/// Blob bytes, or `None` when over `limit`.
fn blob(repo: &gix::Repository, id: ObjectId, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let header = repo
        .find_header(id)
        .map_err(|e| format!("cannot read blob {id}: {e}"))?;
    if header.size() > limit {
        return Ok(None);
    }
    let object = repo
        .find_object(id)
        .map_err(|e| format!("cannot read blob {id}: {e}"))?;
    Ok(Some(object.detach().data))
}

fn binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

/// Pairs deleted and added files into renames: identical content first, then similar text.
fn find_renames(repo: &gix::Repository, changes: Vec<Change>) -> Vec<Change> {
    let (mut deleted, mut rest): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| c.new.is_none() && c.old.is_some_and(|s| is_file(s.mode)));
    let mut out = Vec::with_capacity(rest.len() + deleted.len());
    for c in rest.iter_mut() {
        let Some(new) = c.new.filter(|s| is_file(s.mode)) else {
            continue;
        };
        if c.old.is_some() {
            continue;
        }
        if let Some(at) = deleted
            .iter()
            .position(|d| d.old.is_some_and(|o| o.id == new.id))
        {
            let d = deleted.remove(at);
            c.old_path = d.old_path;
            c.old = d.old;
            c.similarity = Some(100);
        }
    }
    let added: Vec<usize> = rest
        .iter()
        .enumerate()
        .filter(|(_, c)| c.old.is_none() && c.new.is_some_and(|s| is_file(s.mode)))
        .map(|(i, _)| i)
        .collect();
    if !deleted.is_empty() && deleted.len() * added.len() <= MAX_RENAME_PAIRS {
        let text = |id: ObjectId| -> Option<String> {
            let b = blob(repo, id, MAX_RENAME_BLOB as u64).ok()??;
            (!binary(&b)).then(|| String::from_utf8_lossy(&b).into_owned())
        };
        for i in added {
            let Some(new_text) = rest[i].new.and_then(|s| text(s.id)) else {
                continue;
            };
            let mut best: Option<(usize, f32)> = None;
            for (j, d) in deleted.iter().enumerate() {
                let Some(old_text) = d.old.and_then(|s| text(s.id)) else {
                    continue;
                };
                let ratio = TextDiff::from_lines(&old_text, &new_text).ratio();
                if ratio >= 0.5 && best.is_none_or(|(_, r)| ratio > r) {
                    best = Some((j, ratio));
                }
            }
            if let Some((j, ratio)) = best {
                let d = deleted.remove(j);
                rest[i].old_path = d.old_path;
                rest[i].old = d.old;
                rest[i].similarity = Some((ratio * 100.0).floor().clamp(0.0, 99.0) as u8);
            }
        }
    }
    out.extend(rest);
    out.extend(deleted);
    out.sort_by(|a, b| {
        a.new_path
            .cmp(&b.new_path)
            .then(a.old_path.cmp(&b.old_path))
    });
    out
}

/// One `diff --git` section.
fn render_change(repo: &gix::Repository, c: &Change, git: &GitOptions) -> Result<String, String> {
    let mut s = String::new();
    let _ = writeln!(s, "diff --git a/{} b/{}", c.old_path, c.new_path);
    match (c.old, c.new) {
        (None, Some(n)) => {
            let _ = writeln!(s, "new file mode {:06o}", n.mode);
        }
        (Some(o), None) => {
            let _ = writeln!(s, "deleted file mode {:06o}", o.mode);
        }
        (Some(o), Some(n)) => {
            if let Some(sim) = c.similarity {
                let _ = writeln!(s, "similarity index {sim}%");
                let _ = writeln!(s, "rename from {}", c.old_path);
                let _ = writeln!(s, "rename to {}", c.new_path);
            }
            if o.mode != n.mode {
                let _ = writeln!(s, "old mode {:06o}", o.mode);
                let _ = writeln!(s, "new mode {:06o}", n.mode);
            }
        }
        (None, None) => return Ok(String::new()),
    }
    let kind_of = |side: Option<Side>| side.map(|x| x.mode);
    if [kind_of(c.old), kind_of(c.new)]
        .iter()
        .flatten()
        .any(|&m| !is_file(m))
    {
        let _ = writeln!(
            s,
            "Not a regular file (symbolic link or submodule): not shown"
        );
        return Ok(s);
    }
    let load = |side: Option<Side>| -> Result<Option<Vec<u8>>, String> {
        match side {
            Some(x) => blob(repo, x.id, git.max_blob_bytes),
            None => Ok(Some(Vec::new())),
        }
    };
    let (Some(old), Some(new)) = (load(c.old)?, load(c.new)?) else {
        let _ = writeln!(s, "Large file over {} bytes: not shown", git.max_blob_bytes);
        return Ok(s);
    };
    if old == new {
        return Ok(s);
    }
    let a = if c.old.is_some() {
        format!("a/{}", c.old_path)
    } else {
        "/dev/null".to_string()
    };
    let b = if c.new.is_some() {
        format!("b/{}", c.new_path)
    } else {
        "/dev/null".to_string()
    };
    if binary(&old) || binary(&new) {
        let _ = writeln!(s, "Binary files {a} and {b} differ");
        return Ok(s);
    }
    let (old, new) = (decode(&old), decode(&new));
    let diff = TextDiff::from_lines(&old, &new);
    let _ = write!(
        s,
        "{}",
        diff.unified_diff().context_radius(3).header(&a, &b)
    );
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
