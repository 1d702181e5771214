//! Tar archives, plain or gzip-compressed (`.tar`, `.tar.gz`, `.tgz`): every file entry
//! becomes an artifact, read in memory under the same [`ArchiveLimits`](crate::ArchiveLimits)
//! as zips (see `archive.rs`), with what tar adds to worry about:
//! - A gzip stream has no per-entry compressed size, so the ratio limit applies to the whole
//!   stream: it may expand to `max_ratio` × its compressed size (at least
//!   [`RATIO_GRACE_BYTES`](crate::RATIO_GRACE_BYTES)) and no more. The cap sits under the tar
//!   reader, so skipping past a refused entry cannot inflate a bomb either.
//! - Symbolic and hard link entries are reported and not followed; devices, FIFOs and pax
//!   headers are not files and are passed over.
//! - Tar is read front to back, so a truncated download keeps every entry before the damage.
//! - Nested zips and tars open up to `max_depth`; nested tars share the top-level archive's
//!   budget, a nested zip gets a budget of its own (archive.rs keeps its counters private),
//!   its bytes already charged to the tar's.

use crate::archive::{read_limited, Budget, Container};
use crate::paths::{entry_uri, is_hidden, safe_entry_name};
use crate::{IngestError, Run, RATIO_GRACE_BYTES};
use std::io::Read;

const GZIP_MAGIC: &[u8; 2] = b"\x1f\x8b";

/// How a tar archive is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TarKind {
    Plain,
    Gzip,
}

/// `ustar` at offset 257: POSIX and GNU tars (v7 tars without it are recognised by name).
fn ustar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// Whether `bytes` (named `name`) is a tar archive to open, and how it is stored. Gzip data
/// counts when its first block is a tar header, or when its name says `.tar.gz`/`.tgz`.
pub(crate) fn tar_kind(name: &str, bytes: &[u8]) -> Option<TarKind> {
    let lower = name.to_ascii_lowercase();
    if bytes.starts_with(GZIP_MAGIC) {
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            return Some(TarKind::Gzip);
        }
        let mut head = Vec::with_capacity(512);
        let _ = flate2::read::GzDecoder::new(bytes)
            .take(512)
            .read_to_end(&mut head);
        return ustar(&head).then_some(TarKind::Gzip);
    }
    if ustar(bytes) || (lower.ends_with(".tar") && bytes.len() >= 512) {
        return Some(TarKind::Plain);
    }
    None
}

/// A reader that fails once more than `left` bytes have come out of it.
struct Capped<R> {
    inner: R,
    left: u64,
    why: String,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.left = 0;
            return Err(std::io::Error::other(self.why.clone()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What one top-level tar (with the tars nested in it) has used of its limits.
#[derive(Debug, Default)]
pub(crate) struct TarBudget {
    entries: usize,
    bytes: u64,
}

impl Run<'_> {
    /// Ingests every entry of the tar archive in `bytes`. One that cannot be read at all is
    /// stored as a raw artifact and reported, like an unreadable zip.
    pub(crate) fn ingest_tar(
        &mut self,
        bytes: &[u8],
        kind: TarKind,
        at: &Container<'_>,
        budget: &mut TarBudget,
    ) -> Result<(), IngestError> {
        let lim = self.opts.archive.clone();
        // The decompressed stream as a whole (headers and padding included: a real export
        // of many small files still compresses far less than `max_ratio`). A plain tar is
        // already in memory, so only the entry budget below applies to it.
        let total_left = lim.max_total_bytes.saturating_sub(budget.bytes);
        let headers = (lim.max_entries.saturating_sub(budget.entries) as u64 + 2) * 1024;
        let (cap, why) = match kind {
            TarKind::Gzip => {
                let ratio_cap = (bytes.len() as u64)
                    .saturating_mul(lim.max_ratio)
                    .max(RATIO_GRACE_BYTES);
                let total_cap = total_left.saturating_add(headers);
                if ratio_cap <= total_cap {
                    (
                        ratio_cap,
                        format!(
                            "expands over max_ratio ({}x) of its {} compressed bytes: compression bomb?",
                            lim.max_ratio,
                            bytes.len()
                        ),
                    )
                } else {
                    (
                        total_cap,
                        format!(
                            "archive expands over max_total_bytes ({})",
                            lim.max_total_bytes
                        ),
                    )
                }
            }
            TarKind::Plain => (u64::MAX, String::new()),
        };
        let stream: Box<dyn Read + '_> = match kind {
            TarKind::Gzip => Box::new(flate2::read::GzDecoder::new(bytes)),
            TarKind::Plain => Box::new(bytes),
        };
        let mut archive = tar::Archive::new(Capped {
            inner: stream,
            left: cap,
            why,
        });
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(e) => {
                self.reject(
                    at.shown,
                    format!("not a readable tar archive ({e}): stored as one raw artifact"),
                );
                return self.emit(at.uri, at.name, false, bytes);
            }
        };
        // `read`: entries read before this one.
        for (read, entry) in entries.enumerate() {
            if budget.entries >= lim.max_entries {
                self.reject(
                    at.shown,
                    format!(
                        "more than max_entries ({}) entries: entries after the {}th were not read",
                        lim.max_entries, budget.entries
                    ),
                );
                break;
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) if read == 0 => {
                    self.reject(
                        at.shown,
                        format!("not a readable tar archive ({e}): stored as one raw artifact"),
                    );
                    return self.emit(at.uri, at.name, false, bytes);
                }
                Err(e) => {
                    self.reject(
                        at.shown,
                        format!(
                            "tar archive truncated or corrupt: stopped after {read} entries: {e}"
                        ),
                    );
                    break;
                }
            };
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                continue;
            }
            if !(kind.is_file() || kind.is_contiguous() || kind.is_symlink() || kind.is_hard_link())
            {
                // Pax/GNU headers are folded into the next entry by `tar`; devices and
                // FIFOs carry no bytes.
                continue;
            }
            budget.entries += 1;
            let name = match safe_entry_name(&raw) {
                Ok(n) => n,
                Err(reason) => {
                    self.reject(&format!("{}#{raw}", at.shown), reason);
                    continue;
                }
            };
            if name.split('/').any(is_hidden) {
                continue;
            }
            let shown = format!("{}#{name}", at.shown);
            if kind.is_symlink() || kind.is_hard_link() {
                let what = if kind.is_symlink() {
                    "symbolic"
                } else {
                    "hard"
                };
                self.reject(&shown, format!("{what} link entry: not followed"));
                continue;
            }
            let declared = entry.size();
            let remaining = lim.max_total_bytes.saturating_sub(budget.bytes);
            let limit = lim.max_entry_bytes.min(remaining);
            let why = |limit: u64| {
                if limit == remaining && remaining < lim.max_entry_bytes {
                    format!(
                        "archive expands over max_total_bytes ({})",
                        lim.max_total_bytes
                    )
                } else {
                    format!("entry over max_entry_bytes ({})", lim.max_entry_bytes)
                }
            };
            if declared > limit {
                self.reject(&shown, format!("declared size {declared}: {}", why(limit)));
                continue;
            }
            let bytes = match read_limited(&mut entry, limit, declared) {
                Ok((b, over)) => {
                    budget.bytes += b.len() as u64;
                    if over {
                        self.reject(&shown, why(limit));
                        continue;
                    }
                    b
                }
                Err(e) => {
                    self.reject(&shown, format!("stopped reading the archive: {e}"));
                    break;
                }
            };
            let uri = entry_uri(at.uri, &name);
            let nested_tar = tar_kind(&name, &bytes);
            if nested_tar.is_some() || crate::archive::opens_as_archive(&name, &bytes) {
                if at.level >= lim.max_depth {
                    self.reject(
                        &shown,
                        format!(
                            "nested archive deeper than max_depth ({}): not opened",
                            lim.max_depth
                        ),
                    );
                    continue;
                }
                let inner = Container {
                    uri: &uri,
                    shown: &shown,
                    name: &name,
                    level: at.level + 1,
                };
                match nested_tar {
                    Some(k) => self.ingest_tar(&bytes, k, &inner, budget)?,
                    None => self.ingest_zip(&bytes, &inner, &mut Budget::default())?,
                }
                continue;
            }
            self.emit(&uri, &name, false, &bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
