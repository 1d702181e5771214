//! The file drop source: files, folders, Maildir and zip archives become artifacts.
//!
//! Each file's bytes go to the [`BlobStore`] (claim check) and one `raw.artifact` event per
//! file goes to the [`EventLog`]; parsing happens later, in the processor, so ingest stays
//! fast and a parser fix only needs a replay. The sha256 is the idempotency key: the same
//! bytes for the same avatar are one artifact whatever path they came from, so rerunning an
//! interrupted ingest completes it without duplicates.
//!
//! One bad input never stops the run (ripgrep's rule): unreadable files, hostile or broken
//! archive entries and oversized files are listed in [`IngestReport::rejected`] with the
//! reason. Only a missing input path (the user's typo) and a failing store stop it.
//!
//! Source URIs are `file://` + the canonical absolute path, percent-encoded minimally (see
//! [`file_uri`]), with `#inner/path` appended for archive entries (`#a.zip#b.txt` when
//! nested), so they are the same string on every run.

use avatar_runtime::{BlobStore, EventLog, StoreError};
use avatar_schemas::{ArtifactReceived, DeadLetter, Envelope, MemoryAdded, Payload};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

mod archive;
mod bundle;
mod git;
mod paths;
mod pst;
mod targz;

pub use archive::RATIO_GRACE_BYTES;
pub use git::{ingest_git, GitError, GitOptions, GitProgress, GIT_FORMAT};
pub use paths::{entry_uri, file_uri, safe_entry_name};
pub use pst::MISSING_READPST;

/// Events per `append` call: one round trip per batch instead of per file.
pub const BATCH: usize = 256;

/// Source URI of hand-added memories.
pub const MEMORY_SOURCE: &str = "memory:";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input path the user named does not exist (checked before anything is ingested).
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("invalid avatar id {0:?}: it must not be empty")]
    InvalidAvatar(String),
    #[error("a memory needs some text")]
    EmptyMemory,
    /// The log or blob store failed: the system's fault; rerunning resumes where it stopped.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Limits that keep a hostile or broken archive from exhausting memory or time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// File entries read per archive on disk, nested archives included.
    pub max_entries: usize,
    /// Uncompressed bytes read per archive on disk, nested archives included.
    pub max_total_bytes: u64,
    /// Uncompressed bytes of one entry.
    pub max_entry_bytes: u64,
    /// Uncompressed/compressed size of one entry (checked above [`RATIO_GRACE_BYTES`]).
    pub max_ratio: u64,
    /// Levels of archives inside archives that are opened: 0 opens none, 2 opens a zip in a
    /// zip in the zip on disk. Deeper ones are reported, not stored.
    pub max_depth: u32,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_entries: 100_000,
            max_total_bytes: 8 << 30,
            max_entry_bytes: 2 << 30,
            max_ratio: 200,
            max_depth: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Files on disk larger than this are rejected (they are read into memory whole).
    pub max_file_bytes: u64,
    pub archive: ArchiveLimits,
    /// Follow symbolic links below the given paths (the given paths themselves always are).
    /// Off by default: a link is reported, not read, so a link to `/` cannot pull in a disk.
    pub follow_symlinks: bool,
    /// A format the user forces on every artifact of this run (overrides the Maildir hint).
    pub format_hint: Option<String>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_file_bytes: 2 << 30,
            archive: ArchiveLimits::default(),
            follow_symlinks: false,
            format_hint: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Artifacts appended to the log by this run.
    pub artifacts_new: usize,
    /// Artifacts whose bytes this avatar already had (from an earlier run or an earlier
    /// path of this run): nothing appended.
    pub artifacts_known: usize,
    /// Inputs not ingested (or, for an unreadable zip, stored only as raw bytes), each with
    /// the file path (`path#inner` for archive entries) and the reason.
    pub rejected: Vec<(String, String)>,
    /// Bytes of all artifacts handed to the store (new and known).
    pub bytes: u64,
}

/// Progress after each file on disk (an archive counts as one file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// [`IngestReport::bytes`] so far.
    pub bytes: u64,
    /// The file just finished.
    pub path: PathBuf,
}

/// A file found by the walk.
struct Found {
    /// Canonical absolute path: the URI and the sort key.
    canonical: PathBuf,
    /// The file name as the walk saw it (a link's own name): what the parser sniffs on.
    name: String,
    maildir: bool,
    /// Set for the root folder of an export read whole (see [`bundle`]): its files.
    bundle: Option<bundle::Bundle>,
}

/// State of one run: the stores, the report and the events not yet appended.
pub(crate) struct Run<'a> {
    log: &'a dyn EventLog,
    blobs: &'a dyn BlobStore,
    avatar: &'a str,
    pub(crate) opts: &'a IngestOptions,
    report: IngestReport,
    pending: Vec<Envelope>,
    /// Dead letters of refused inputs, appended with the next batch (not counted as artifacts).
    refused: Vec<Envelope>,
    /// sha256s this run has already emitted: counted as known without asking the log.
    seen: HashSet<String>,
}

impl<'a> Run<'a> {
    /// A run that appends to `log` and stores bytes in `blobs`, on behalf of `avatar`.
    pub(crate) fn new(
        log: &'a dyn EventLog,
        blobs: &'a dyn BlobStore,
        avatar: &'a str,
        opts: &'a IngestOptions,
    ) -> Run<'a> {
        Run {
            log,
            blobs,
            avatar,
            opts,
            report: IngestReport::default(),
            pending: Vec::with_capacity(BATCH),
            refused: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Refuses one input (a bomb entry, a traversal path, an unreadable file): listed in the
    /// report and kept in the log as a dead letter, so `avatar status` shows it later too.
    pub(crate) fn reject(&mut self, name: &str, reason: impl Into<String>) {
        let reason = reason.into();
        let source = if name.starts_with('/') {
            format!("file://{name}")
        } else {
            name.to_string()
        };
        self.refused.push(Envelope::new(
            self.avatar,
            source,
            Payload::DeadLetter(DeadLetter {
                artifact: None,
                name: name.to_string(),
                error_kind: "rejected".into(),
                reason: format!("{name}: {reason}"),
            }),
        ));
        self.report.rejected.push((name.to_string(), reason));
    }

    /// Stores `bytes` and queues their event. The blob is written before the event is
    /// queued, so an event in the log always has its bytes.
    pub(crate) fn emit(
        &mut self,
        uri: &str,
        name: &str,
        maildir: bool,
        bytes: &[u8],
    ) -> Result<(), IngestError> {
        self.emit_hinted(uri, name, maildir.then_some("eml"), bytes)
    }

    /// [`Run::emit`] with the format hint of the source (the user's `format_hint` wins).
    pub(crate) fn emit_hinted(
        &mut self,
        uri: &str,
        name: &str,
        hint: Option<&str>,
        bytes: &[u8],
    ) -> Result<(), IngestError> {
        let sha256 = self.blobs.put(bytes)?;
        self.report.bytes += bytes.len() as u64;
        if !self.seen.insert(sha256.clone()) {
            self.report.artifacts_known += 1;
            return Ok(());
        }
        let format_hint = self
            .opts
            .format_hint
            .clone()
            .or_else(|| hint.map(str::to_string));
        let payload = Payload::ArtifactReceived(ArtifactReceived {
            sha256,
            size: bytes.len() as u64,
            name: name.to_string(),
            format_hint,
        });
        self.pending.push(Envelope::new(self.avatar, uri, payload));
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends the queued events; those the log already had (same bytes) count as known.
    fn flush(&mut self) -> Result<(), IngestError> {
        if !self.refused.is_empty() {
            self.log.append(&self.refused)?;
            self.refused.clear();
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let appended = self.log.append(&self.pending)?;
        self.report.artifacts_new += appended.len();
        self.report.artifacts_known += self.pending.len().saturating_sub(appended.len());
        self.pending.clear();
        Ok(())
    }

    /// Reads one file and emits it, or opens it as an archive.
    fn ingest_file(&mut self, f: &Found) -> Result<(), IngestError> {
        if let Some(b) = &f.bundle {
            return self.ingest_bundle(f, b);
        }
        let shown = f.canonical.display().to_string();
        let bytes = match read_file(&f.canonical, self.opts.max_file_bytes) {
            Ok(b) => b,
            Err(reason) => {
                self.reject(&shown, reason);
                return Ok(());
            }
        };
        let uri = file_uri(&f.canonical);
        if pst::is_pst(&bytes) {
            return self.ingest_pst(&f.canonical, &uri, &shown, &f.name, &bytes);
        }
        if let Some(kind) = targz::tar_kind(&f.name, &bytes) {
            let at = archive::Container {
                uri: &uri,
                shown: &shown,
                name: &f.name,
                level: 0,
            };
            return self.ingest_tar(&bytes, kind, &at, &mut targz::TarBudget::default());
        }
        if archive::opens_as_archive(&f.name, &bytes) {
            let at = archive::Container {
                uri: &uri,
                shown: &shown,
                name: &f.name,
                level: 0,
            };
            return self.ingest_zip(&bytes, &at, &mut archive::Budget::default());
        }
        self.emit(&uri, &f.name, f.maildir, &bytes)
    }

    /// Walks `paths` into a sorted, de-duplicated list of files, reporting what it cannot walk.
    fn collect(&mut self, paths: &[PathBuf]) -> Vec<Found> {
        let follow = self.opts.follow_symlinks;
        let mut found = Vec::new();
        for root in paths {
            let walker = WalkDir::new(root)
                .follow_links(follow)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !skipped(e.path(), e.file_type().is_dir()));
            for entry in walker {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let at = e.path().unwrap_or(root).display().to_string();
                        self.reject(&at, format!("cannot walk: {e}"));
                        continue;
                    }
                };
                let path = entry.path();
                let kind = entry.file_type();
                if kind.is_dir() {
                    continue;
                }
                if kind.is_symlink() {
                    let shown = path.display().to_string();
                    self.reject(
                        &shown,
                        "symbolic link not followed (follow_symlinks is off)",
                    );
                    continue;
                }
                if !kind.is_file() {
                    // A FIFO would block the read forever; sockets and devices are not exports.
                    self.reject(&path.display().to_string(), "not a regular file");
                    continue;
                }
                let canonical = match std::fs::canonicalize(path) {
                    Ok(c) => c,
                    Err(e) => {
                        self.reject(&path.display().to_string(), format!("cannot resolve: {e}"));
                        continue;
                    }
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                found.push(Found {
                    maildir: maildir_on_disk(path, &name),
                    canonical,
                    name,
                    bundle: None,
                });
            }
        }
        found.sort_by(|a, b| a.canonical.cmp(&b.canonical));
        found.dedup_by(|a, b| a.canonical == b.canonical);
        found
    }
}

/// Whether the walk skips this entry: hidden files and folders, and Maildir `tmp/`.
fn skipped(path: &Path, is_dir: bool) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    if paths::is_hidden(&name) {
        return true;
    }
    is_dir && paths::is_maildir_tmp(&name, |s| sibling_dir(path, s))
}

/// Whether the folder holding `path` has a sub-folder `name` (a sibling of `path`).
fn sibling_dir(path: &Path, name: &str) -> bool {
    path.parent().is_some_and(|p| p.join(name).is_dir())
}

/// Whether the file `path` (named `name`) is a message in a Maildir on disk.
fn maildir_on_disk(path: &Path, name: &str) -> bool {
    let Some(dir) = path.parent() else {
        return false;
    };
    let Some(dir_name) = dir.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    paths::is_maildir_message(&dir_name, name, |s| sibling_dir(dir, s))
}

/// Reads a whole file of at most `max` bytes; the reason as text when it cannot.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    let too_big = || format!("larger than max_file_bytes ({max})");
    if len > max {
        return Err(too_big());
    }
    // `take` guards a file that grows while we read it.
    let (bytes, over) =
        archive::read_limited(file, max, len).map_err(|e| format!("cannot read: {e}"))?;
    if over {
        return Err(too_big());
    }
    Ok(bytes)
}

fn check_avatar(avatar: &str) -> Result<(), IngestError> {
    if avatar.trim().is_empty() {
        return Err(IngestError::InvalidAvatar(avatar.to_string()));
    }
    Ok(())
}

/// Walks `paths` (files or folders, recursively, sorted by canonical path so runs are
/// deterministic), puts each file's bytes into `blobs` and appends one `ArtifactReceived` per
/// file (per entry for zip archives) to `log`, in batches of [`BATCH`]. Bytes the avatar
/// already has are counted as known. `progress` is called after each file on disk.
///
/// Crash safety: blobs are written before their events, and events are appended in order, so
/// a crash loses at most the unappended tail; rerunning appends it (known bytes are no-ops).
/// When a store fails, the events already queued are appended before the error is returned.
pub fn ingest_paths(
    log: &dyn EventLog,
    blobs: &dyn BlobStore,
    avatar: &str,
    paths: &[PathBuf],
    opts: &IngestOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<IngestReport, IngestError> {
    check_avatar(avatar)?;
    for p in paths {
        if let Err(e) = std::fs::metadata(p) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Err(IngestError::NotFound(p.clone()));
            }
        }
    }
    let mut run = Run::new(log, blobs, avatar, opts);
    let found = bundle::group(run.collect(paths));
    let total = found.len();
    let mut outcome = Ok(());
    for (i, f) in found.iter().enumerate() {
        if let Err(e) = run.ingest_file(f) {
            outcome = Err(e);
            break;
        }
        progress(Progress {
            done: i + 1,
            total,
            bytes: run.report.bytes,
            path: f.canonical.clone(),
        });
    }
    let flushed = run.flush();
    outcome?;
    flushed?;
    Ok(run.report)
}

/// Ingests bytes that did not come from a file (a mail fetched over IMAP, an upload): stored,
/// then one artifact event with `uri` as its source. Same bytes again are a no-op.
pub fn ingest_bytes(
    log: &dyn EventLog,
    blobs: &dyn BlobStore,
    avatar: &str,
    uri: &str,
    name: &str,
    format_hint: Option<&str>,
    bytes: &[u8],
) -> Result<IngestReport, IngestError> {
    check_avatar(avatar)?;
    let opts = IngestOptions::default();
    let mut run = Run::new(log, blobs, avatar, &opts);
    if bytes.len() as u64 > opts.max_file_bytes {
        run.reject(name, format!("{} bytes is over the limit", bytes.len()));
    } else {
        run.emit_hinted(uri, name, format_hint, bytes)?;
    }
    run.flush()?;
    Ok(run.report)
}

/// Appends a memory the person (or someone who knew them) wrote by hand. Memories have no
/// dedup key: adding the same text twice is two memories, as the user asked twice.
pub fn add_memory(
    log: &dyn EventLog,
    avatar: &str,
    text: &str,
    title: Option<String>,
    added_by: Option<String>,
) -> Result<Envelope, IngestError> {
    check_avatar(avatar)?;
    if text.trim().is_empty() {
        return Err(IngestError::EmptyMemory);
    }
    let event = Envelope::new(
        avatar,
        MEMORY_SOURCE,
        Payload::Memory(MemoryAdded {
            text: text.to_string(),
            title,
            added_by,
        }),
    );
    log.append(std::slice::from_ref(&event))?;
    Ok(event)
}

#[cfg(test)]
mod tests;
