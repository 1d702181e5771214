//! Outlook `.pst` mail stores, converted with Debian's `readpst` (package pst-utils, libpst).
//!
//! Why a tool and not a crate: when this was written, no Rust crate read PST messages with
//! libpst's coverage of real files (ANSI and Unicode stores, compressible encryption, broken
//! indexes), and the conversion is exactly what ingest wants: `readpst -e -q -o <dir> <file>`
//! writes one RFC 5322 `.eml` per message (attachments inside, as MIME), in one folder per
//! Outlook folder. Each `.eml` becomes an artifact with the source
//! `file:///path/x.pst#<folder>/<n>.eml` and the format hint `eml`, so the mail parser, the
//! dedup by sha256 and `avatar forget` work on PST mail as on any other mail.
//!
//! When `readpst` is not installed (or fails on the file), nothing is lost: the `.pst` is
//! stored as a raw artifact and the report says what to do. `AVATAR_READPST` may name
//! another `readpst` binary. Contacts and calendar entries (`.vcf`, `.ics`) are not mail and
//! are counted in the report, not ingested.

use crate::paths::entry_uri;
use crate::{read_file, IngestError, Run};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use walkdir::WalkDir;

/// First bytes of every Outlook PST/OST file (`!BDN`).
pub(crate) const PST_MAGIC: &[u8; 4] = b"!BDN";

/// The report's reason when `readpst` cannot be found.
pub const MISSING_READPST: &str =
    "install pst-utils (apt-get install pst-utils) to read Outlook .pst files";

/// Whether `bytes` are an Outlook data file.
pub(crate) fn is_pst(bytes: &[u8]) -> bool {
    bytes.starts_with(PST_MAGIC)
}

/// The `readpst` to run: `AVATAR_READPST` if set, else `readpst` from `PATH`.
fn readpst_program() -> OsString {
    std::env::var_os("AVATAR_READPST")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("readpst"))
}

/// Why a conversion gave no messages.
#[derive(Debug, PartialEq, Eq)]
enum ConvertError {
    /// The program does not exist (not installed).
    Missing,
    /// It ran and failed, or could not be started; the reason for the report.
    Failed(String),
}

/// Runs `readpst -e -q -o <out> <pst>`; `out` must exist and be empty.
fn convert(program: &OsString, pst: &Path, out: &Path) -> Result<(), ConvertError> {
    let output = Command::new(program)
        .arg("-e")
        .arg("-q")
        .arg("-o")
        .arg(out)
        .arg(pst)
        .stdin(Stdio::null())
        // readpst prints its errors ("Error opening File") on stdout; -q silences the rest.
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConvertError::Missing),
        Err(e) => {
            return Err(ConvertError::Failed(format!(
                "readpst could not be started: {e}"
            )))
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let said = said.trim();
    // The last lines say why; keep the report short.
    let tail: String = {
        let chars: Vec<char> = said.chars().collect();
        chars[chars.len().saturating_sub(300)..].iter().collect()
    };
    Err(ConvertError::Failed(format!(
        "readpst failed ({}){}",
        output.status,
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    )))
}

/// A folder under the system temp dir, removed (with what readpst wrote) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = None;
        for attempt in 0..100u32 {
            let dir = base.join(format!(
                "avatar-readpst-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary folder name")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files under `root` as (`/`-separated relative path, full path), sorted by relative path.
fn files_under(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(root).ok()?;
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            Some((rel.join("/"), e.path().to_path_buf()))
        })
        .collect();
    out.sort();
    out
}

impl Run<'_> {
    /// Ingests the `.pst` at `path` (already read as `bytes`): its messages as `.eml`
    /// artifacts, or the raw file with a reason when it cannot be converted.
    pub(crate) fn ingest_pst(
        &mut self,
        path: &Path,
        uri: &str,
        shown: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), IngestError> {
        self.ingest_pst_with(&readpst_program(), path, uri, shown, name, bytes)
    }

    fn ingest_pst_with(
        &mut self,
        program: &OsString,
        path: &Path,
        uri: &str,
        shown: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), IngestError> {
        let out = match TempDir::new() {
            Ok(d) => d,
            Err(e) => {
                self.emit(uri, name, false, bytes)?;
                self.reject(
                    shown,
                    format!("no temporary folder for readpst ({e}); the .pst was stored as is"),
                );
                return Ok(());
            }
        };
        match convert(program, path, &out.0) {
            Err(ConvertError::Missing) => {
                self.emit(uri, name, false, bytes)?;
                self.reject(shown, MISSING_READPST);
                return Ok(());
            }
            Err(ConvertError::Failed(reason)) => {
                self.emit(uri, name, false, bytes)?;
                self.reject(shown, format!("{reason}; the .pst was stored as is"));
                return Ok(());
            }
            Ok(()) => {}
        }
        let max_entries = self.opts.archive.max_entries;
        let max_bytes = self.opts.max_file_bytes;
        let (mut mails, mut other, mut over) = (0usize, 0usize, 0usize);
        for (rel, full) in files_under(&out.0) {
            if !rel.to_ascii_lowercase().ends_with(".eml") {
                other += 1;
                continue;
            }
            if mails >= max_entries {
                over += 1;
                continue;
            }
            let at = format!("{shown}#{rel}");
            match read_file(&full, max_bytes) {
                // The eml hint: readpst wrote RFC 5322 whatever the content looks like.
                Ok(eml) => {
                    self.emit(&entry_uri(uri, &rel), &rel, true, &eml)?;
                    mails += 1;
                }
                Err(reason) => self.reject(&at, reason),
            }
        }
        if over > 0 {
            self.reject(
                shown,
                format!("{over} more messages than max_entries ({max_entries}) were not ingested"),
            );
        }
        if other > 0 {
            self.reject(
                shown,
                format!("{other} contact, calendar or other non-mail items were not ingested"),
            );
        }
        if mails == 0 && over == 0 {
            self.emit(uri, name, false, bytes)?;
            self.reject(
                shown,
                "readpst found no messages in it; the .pst was stored as is",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{ingest_paths, IngestOptions, IngestReport};
    use avatar_runtime::{BlobStore, EventLog, MemoryBlobStore, MemoryEventLog};
    use avatar_schemas::{ArtifactReceived, Payload};
    use std::fs;

    fn artifacts(log: &dyn EventLog) -> Vec<(String, ArtifactReceived)> {
        log.read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter_map(|s| match s.event.payload {
                Payload::ArtifactReceived(a) => Some((s.event.source, a)),
                _ => None,
            })
            .collect()
    }

    /// Runs `ingest_pst_with` on `pst` (a file on disk) as `ingest_paths` would.
    fn run_with(
        program: &OsString,
        pst: &Path,
        log: &dyn EventLog,
        blobs: &dyn BlobStore,
        opts: &IngestOptions,
    ) -> IngestReport {
        let bytes = fs::read(pst).unwrap();
        let canonical = fs::canonicalize(pst).unwrap();
        let uri = crate::file_uri(&canonical);
        let shown = canonical.display().to_string();
        let mut run = Run::new(log, blobs, "ada", opts);
        run.ingest_pst_with(program, &canonical, &uri, &shown, "mail.pst", &bytes)
            .unwrap();
        run.flush().unwrap();
        run.report
    }

    /// A stand-in for `readpst` that writes what `readpst -e` writes for a store with an
    /// Inbox (two mails), a "Sent Items" folder (one mail) and a contact: one numbered file
    /// per item, in one folder per Outlook folder. It records its arguments in `args.txt`.
    #[cfg(unix)]
    fn fake_readpst(dir: &Path) -> OsString {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("readpst");
        let log = dir.join("args.txt");
        fs::write(
            &script,
            format!(
                r#"#!/bin/sh
echo "$@" > '{log}'
out=""
while [ $# -gt 1 ]; do
  if [ "$1" = "-o" ]; then out="$2"; shift; fi
  shift
done
top="$out/Personal Folders"
mkdir -p "$top/Inbox" "$top/Sent Items" "$top/Contacts"
printf 'From: Bo <bo@example.com>\r\nSubject: Hi\r\nMessage-ID: <1@x>\r\n\r\nHello Ada\r\n' > "$top/Inbox/1.eml"
printf 'From: Cy <cy@example.com>\r\nSubject: Lunch\r\nMessage-ID: <2@x>\r\n\r\nLunch?\r\n' > "$top/Inbox/2.eml"
printf 'From: Ada <ada@example.com>\r\nSubject: Re: Hi\r\nMessage-ID: <3@x>\r\n\r\nHi Bo!\r\n' > "$top/Sent Items/1.eml"
printf 'BEGIN:VCARD\r\nFN:Bo\r\nEND:VCARD\r\n' > "$top/Contacts/1.vcf"
"#,
                log = log.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        script.into_os_string()
    }

    fn fake_pst(dir: &Path) -> PathBuf {
        let pst = dir.join("mail.pst");
        // The magic, then bytes no real tool reads: only the fake converter sees it.
        fs::write(&pst, b"!BDN\x00\x00\x00\x00 not a real pst").unwrap();
        pst
    }

    #[cfg(unix)]
    #[test]
    fn converted_messages_become_eml_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let program = fake_readpst(dir.path());
        let pst = fake_pst(dir.path());
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run_with(&program, &pst, &log, &blobs, &IngestOptions::default());
        assert_eq!(report.artifacts_new, 3, "{:?}", report.rejected);
        assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
        assert!(report.rejected[0].1.starts_with("1 contact, calendar"));
        let args = fs::read_to_string(dir.path().join("args.txt")).unwrap();
        assert!(args.starts_with("-e -q -o "), "{args}");
        assert!(args.trim_end().ends_with("mail.pst"), "{args}");
        let base = crate::file_uri(&fs::canonicalize(&pst).unwrap());
        let got: Vec<(String, String, Option<String>)> = artifacts(&log)
            .into_iter()
            .map(|(src, a)| (src, a.name, a.format_hint))
            .collect();
        let eml = Some("eml".to_string());
        assert_eq!(
            got,
            vec![
                (
                    format!("{base}#Personal%20Folders/Inbox/1.eml"),
                    "Personal Folders/Inbox/1.eml".to_string(),
                    eml.clone()
                ),
                (
                    format!("{base}#Personal%20Folders/Inbox/2.eml"),
                    "Personal Folders/Inbox/2.eml".to_string(),
                    eml.clone()
                ),
                (
                    format!("{base}#Personal%20Folders/Sent%20Items/1.eml"),
                    "Personal Folders/Sent Items/1.eml".to_string(),
                    eml
                ),
            ]
        );
        // Ingesting again is a no-op: same bytes, same artifacts.
        let again = run_with(&program, &pst, &log, &blobs, &IngestOptions::default());
        assert_eq!(again.artifacts_new, 0);
        assert_eq!(again.artifacts_known, 3);
    }

    #[test]
    fn without_readpst_the_pst_is_stored_raw_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let pst = fake_pst(dir.path());
        let missing = dir.path().join("no-such-readpst").into_os_string();
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run_with(&missing, &pst, &log, &blobs, &IngestOptions::default());
        assert_eq!(report.artifacts_new, 1);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].1, MISSING_READPST);
        let arts = artifacts(&log);
        assert_eq!(arts[0].1.name, "mail.pst");
        assert_eq!(arts[0].1.format_hint, None);
        assert_eq!(arts[0].0, crate::file_uri(&fs::canonicalize(&pst).unwrap()));
        assert_eq!(
            blobs.get(&arts[0].1.sha256).unwrap(),
            fs::read(&pst).unwrap()
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_readpst_keeps_the_raw_pst() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("readpst");
        fs::write(
            &script,
            "#!/bin/sh\necho 'Error opening File' >&2\nexit 1\n",
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let pst = fake_pst(dir.path());
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run_with(
            &script.into_os_string(),
            &pst,
            &log,
            &blobs,
            &IngestOptions::default(),
        );
        assert_eq!(report.artifacts_new, 1);
        let reason = &report.rejected[0].1;
        assert!(reason.contains("Error opening File"), "{reason}");
        assert!(reason.ends_with("the .pst was stored as is"), "{reason}");
    }

    /// Through `ingest_paths` with whatever `readpst` this machine has: the real libpst tool
    /// refuses the fake store (no real PST sample is available to the tests), a machine
    /// without it gets the install hint. Either way the bytes are kept.
    #[test]
    fn ingest_paths_routes_pst_files_by_magic() {
        let dir = tempfile::tempdir().unwrap();
        let pst = fake_pst(dir.path());
        // Renamed: the magic decides, not the name.
        let renamed = dir.path().join("backup.dat");
        fs::rename(&pst, &renamed).unwrap();
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = ingest_paths(
            &log,
            &blobs,
            "ada",
            &[dir.path().to_path_buf()],
            &IngestOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.artifacts_new, 1, "{:?}", report.rejected);
        assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
        let reason = &report.rejected[0].1;
        if reason != MISSING_READPST {
            // libpst 0.6.76 says "Error opening File" (on stdout) and exits 1.
            assert!(
                reason.starts_with("readpst failed (exit status"),
                "{reason}"
            );
            assert!(reason.ends_with("the .pst was stored as is"), "{reason}");
        }
        println!("readpst on this machine: {reason}");
    }
}
