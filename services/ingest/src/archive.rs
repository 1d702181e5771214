//! Zip archives: every file entry becomes an artifact, read in memory (nothing is extracted to
//! disk) under limits, so a hostile or broken archive costs bounded memory and time and never
//! stops the run: what can be read is ingested, the rest is reported with the reason.

use crate::paths::{entry_uri, is_hidden, is_maildir_message, is_maildir_tmp, safe_entry_name};
use crate::{ArchiveLimits, IngestError, Run};
use std::collections::HashSet;
use std::io::{Cursor, Read};
use zip::read::{read_zipfile_from_stream, ZipFile};
use zip::ZipArchive;

/// Local file header signature: how a zip is recognised, whatever its name.
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Zip-based document formats: they are one document for a parser, not a folder to explode.
const DOCUMENT_EXTENSIONS: &[&str] = &[
    "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk",
];

/// Entries that expand to at most this many bytes are never refused for their compression
/// ratio: small, very repetitive text (a log, a CSV) legitimately compresses over 200x.
pub const RATIO_GRACE_BYTES: u64 = 1 << 20;

/// At most this much is reserved up front for an entry, whatever its header claims.
const MAX_PREALLOC: u64 = 64 << 20;

/// Whether `bytes` (a file or entry called `name`) is opened as an archive.
pub(crate) fn opens_as_archive(name: &str, bytes: &[u8]) -> bool {
    if !bytes.starts_with(ZIP_MAGIC) {
        return false;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    !ext.is_some_and(|e| DOCUMENT_EXTENSIONS.contains(&e.as_str()))
}

/// What one top-level archive (with everything nested in it) has used of its limits.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    entries: usize,
    bytes: u64,
}

/// Reads at most `limit` bytes from `r`. Returns the bytes and whether there was more: the
/// reader is wrapped in `Take(limit + 1)`, so a header that lies about the size cannot make
/// us inflate more than `limit + 1` bytes.
pub(crate) fn read_limited(
    r: impl Read,
    limit: u64,
    expected: u64,
) -> std::io::Result<(Vec<u8>, bool)> {
    let cap = expected.min(limit).min(MAX_PREALLOC);
    let mut buf = Vec::with_capacity(usize::try_from(cap).unwrap_or(0));
    r.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    let over = buf.len() as u64 > limit;
    if over {
        buf.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok((buf, over))
}

/// What became of one entry.
enum Outcome {
    /// Folders, hidden files, Maildir `tmp/`: nothing to do, nothing to report.
    Skip,
    Reject(String, String),
    Bytes {
        name: String,
        bytes: Vec<u8>,
        maildir: bool,
    },
}

/// Every folder implied by the entry names (`a/b/c.txt` gives `a` and `a/b`), for the Maildir
/// sibling checks.
fn folders<'a>(names: impl Iterator<Item = &'a str>) -> HashSet<String> {
    let mut set = HashSet::new();
    for raw in names {
        let Ok(clean) = safe_entry_name(raw) else {
            continue;
        };
        let parts: Vec<&str> = clean.split('/').collect();
        let explicit_dir = raw.ends_with('/') || raw.ends_with('\\');
        let n = if explicit_dir {
            parts.len()
        } else {
            parts.len() - 1
        };
        for i in 1..=n {
            set.insert(parts[..i].join("/"));
        }
    }
    set
}

/// `prefix/name` (or `name` at the top), the key [`folders`] uses.
fn child(prefix: &[&str], name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", prefix.join("/"))
    }
}

/// Checks and reads one entry under `lim`, charging `budget`.
fn examine<R: Read>(
    f: &mut ZipFile<'_, R>,
    lim: &ArchiveLimits,
    budget: &mut Budget,
    dirs: &HashSet<String>,
) -> Outcome {
    let raw = match f.name() {
        Ok(n) => n.into_owned(),
        Err(e) => {
            let shown = String::from_utf8_lossy(f.name_raw()).into_owned();
            return Outcome::Reject(shown, format!("unreadable entry name: {e}"));
        }
    };
    if f.is_dir() {
        return Outcome::Skip;
    }
    budget.entries += 1;
    let name = match safe_entry_name(&raw) {
        Ok(n) => n,
        Err(reason) => return Outcome::Reject(raw, reason.to_string()),
    };
    let parts: Vec<&str> = name.split('/').collect();
    if parts.iter().any(|p| is_hidden(p)) {
        return Outcome::Skip;
    }
    let has = |prefix: &[&str], s: &str| dirs.contains(&child(prefix, s));
    let dir_count = parts.len() - 1;
    if (0..dir_count).any(|i| is_maildir_tmp(parts[i], |s| has(&parts[..i], s))) {
        return Outcome::Skip;
    }
    if f.is_symlink() {
        return Outcome::Reject(name, "symbolic link entry: not followed".into());
    }
    if f.encrypted() {
        return Outcome::Reject(name, "encrypted entry: no password".into());
    }

    let declared = f.size();
    let compressed = f.compressed_size();
    let remaining = lim.max_total_bytes.saturating_sub(budget.bytes);
    let ratio_cap = compressed
        .saturating_mul(lim.max_ratio)
        .max(RATIO_GRACE_BYTES);
    let why = |limit: u64| -> String {
        if limit == ratio_cap && ratio_cap < lim.max_entry_bytes.min(remaining) {
            format!(
                "expands over max_ratio ({}x) of its {compressed} compressed bytes: compression bomb?",
                lim.max_ratio
            )
        } else if limit == remaining && remaining < lim.max_entry_bytes {
            format!(
                "archive expands over max_total_bytes ({})",
                lim.max_total_bytes
            )
        } else {
            format!("entry over max_entry_bytes ({})", lim.max_entry_bytes)
        }
    };
    let limit = lim.max_entry_bytes.min(remaining).min(ratio_cap);
    if declared > limit {
        return Outcome::Reject(name, format!("declared size {declared}: {}", why(limit)));
    }
    match read_limited(&mut *f, limit, declared) {
        Ok((bytes, over)) => {
            budget.bytes += bytes.len() as u64;
            if over {
                return Outcome::Reject(name, why(limit));
            }
            let maildir = dir_count >= 1
                && is_maildir_message(parts[dir_count - 1], parts[dir_count], |s| {
                    has(&parts[..dir_count - 1], s)
                });
            Outcome::Bytes {
                name,
                bytes,
                maildir,
            }
        }
        Err(e) => Outcome::Reject(name, format!("corrupt entry: {e}")),
    }
}

/// Where an archive sits: its URI, how the report names it, its nesting level (0 on disk).
pub(crate) struct Container<'a> {
    pub uri: &'a str,
    pub shown: &'a str,
    pub name: &'a str,
    pub level: u32,
}

impl Run<'_> {
    /// Ingests every entry of the zip in `bytes`. A zip whose central directory is lost
    /// (truncated download) is read entry by entry from its local headers up to the damage;
    /// one that cannot be read at all is stored as a raw artifact and reported.
    pub(crate) fn ingest_zip(
        &mut self,
        bytes: &[u8],
        at: &Container<'_>,
        budget: &mut Budget,
    ) -> Result<(), IngestError> {
        if self.ingest_zip_bundle(at.uri, at.name, bytes)? {
            return Ok(());
        }
        let lim = self.opts.archive.clone();
        let too_many = |n: usize| {
            format!(
                "more than max_entries ({}) entries: entries after the {n}th were not read",
                lim.max_entries
            )
        };
        match ZipArchive::new(Cursor::new(bytes)) {
            Ok(mut archive) => {
                let dirs = folders(archive.file_names_raw().map(|n| {
                    // Only for the sibling lookup; undecodable names are rejected later.
                    std::str::from_utf8(n).unwrap_or("")
                }));
                for i in 0..archive.len() {
                    if budget.entries >= lim.max_entries {
                        self.reject(at.shown, too_many(budget.entries));
                        break;
                    }
                    let opened = archive
                        .by_index(i)
                        .map(|mut f| examine(&mut f, &lim, budget, &dirs));
                    let outcome = match opened {
                        Ok(o) => o,
                        Err(e) => {
                            budget.entries += 1;
                            let name = match archive.name_for_index(i) {
                                Some(Ok(n)) => n.into_owned(),
                                _ => format!("entry {i}"),
                            };
                            Outcome::Reject(name, format!("unreadable entry: {e}"))
                        }
                    };
                    self.settle(outcome, at, budget)?;
                }
            }
            Err(whole) => {
                let mut cursor = Cursor::new(bytes);
                let none = HashSet::new();
                let mut read = 0usize;
                loop {
                    if budget.entries >= lim.max_entries {
                        self.reject(at.shown, too_many(budget.entries));
                        break;
                    }
                    let outcome = match read_zipfile_from_stream(&mut cursor) {
                        Ok(Some(mut f)) => examine(&mut f, &lim, budget, &none),
                        Ok(None) => break,
                        Err(e) if read == 0 => {
                            self.reject(
                                at.shown,
                                format!(
                                    "not a readable zip archive ({whole}; {e}): stored as one raw artifact"
                                ),
                            );
                            return self.emit(at.uri, at.name, false, bytes);
                        }
                        Err(e) => {
                            self.reject(
                                at.shown,
                                format!(
                                    "zip archive truncated or corrupt ({whole}): stopped after {read} entries: {e}"
                                ),
                            );
                            break;
                        }
                    };
                    read += 1;
                    self.settle(outcome, at, budget)?;
                }
            }
        }
        Ok(())
    }

    /// Emits, opens (nested zip) or reports one entry's outcome.
    fn settle(
        &mut self,
        outcome: Outcome,
        at: &Container<'_>,
        budget: &mut Budget,
    ) -> Result<(), IngestError> {
        match outcome {
            Outcome::Skip => Ok(()),
            Outcome::Reject(name, reason) => {
                self.reject(&format!("{}#{name}", at.shown), reason);
                Ok(())
            }
            Outcome::Bytes {
                name,
                bytes,
                maildir,
            } => {
                let uri = entry_uri(at.uri, &name);
                if opens_as_archive(&name, &bytes) {
                    let shown = format!("{}#{name}", at.shown);
                    if at.level < self.opts.archive.max_depth {
                        let inner = Container {
                            uri: &uri,
                            shown: &shown,
                            name: &name,
                            level: at.level + 1,
                        };
                        return self.ingest_zip(&bytes, &inner, budget);
                    }
                    self.reject(
                        &shown,
                        format!(
                            "nested archive deeper than max_depth ({}): not opened",
                            self.opts.archive.max_depth
                        ),
                    );
                    return Ok(());
                }
                self.emit(&uri, &name, maildir, &bytes)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_limited_stops_at_the_limit_on_endless_input() {
        // An endless reader stands in for a bomb whose header lies: if the Take were missing
        // this would never return.
        let (buf, over) = read_limited(std::io::repeat(0), 1000, u64::MAX).unwrap();
        assert!(over);
        assert_eq!(buf.len(), 1000);
        assert!(buf.capacity() < 1 << 20, "capacity {}", buf.capacity());
        let (buf, over) = read_limited(&b"hello"[..], 5, 5).unwrap();
        assert!(!over);
        assert_eq!(buf, b"hello");
    }

    #[test]
    fn archives_are_recognised_by_magic_not_name() {
        assert!(opens_as_archive("export", b"PK\x03\x04rest"));
        assert!(opens_as_archive("x.ZIP", b"PK\x03\x04rest"));
        assert!(!opens_as_archive("x.zip", b"not a zip"));
        assert!(!opens_as_archive("report.docx", b"PK\x03\x04rest"));
    }

    #[test]
    fn folders_are_implied_by_entry_names() {
        let set = folders(["Mail/cur/1:2,S", "Mail/new/", "top.txt"].into_iter());
        assert!(set.contains("Mail"));
        assert!(set.contains("Mail/cur"));
        assert!(set.contains("Mail/new"));
        assert!(!set.contains("top.txt"));
        assert!(!set.contains("Mail/cur/1:2,S"));
    }
}
