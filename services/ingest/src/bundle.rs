//! Exports that are read whole ("bundles", see [`avatar_formats::bundle`]): a Slack workspace
//! export is `users.json` + `channels.json` + one JSON file per channel and day, and a day
//! file alone names people only by id. So a folder that is a bundle root becomes ONE artifact:
//! its JSON files packed into a zip in memory, with the bundle kind as format hint; and a zip
//! whose entry names form a bundle is stored whole with that hint instead of being expanded.
//!
//! The packed zip is deterministic (entries sorted by path, stored uncompressed, fixed
//! timestamp and permissions, no extra fields), so the same export folder always gives the
//! same bytes, hence the same sha256: ingesting it twice, or from another path, is a no-op.
//! Stored rather than deflated so the bytes cannot change with a compression library update.
//! Files in the folder that are not JSON (downloaded attachments) stay separate artifacts.

use crate::{read_file, Found, IngestError, Run};
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// A bundle found by the walk: its root folder and the files packed into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bundle {
    pub kind: &'static str,
    /// `relative/path.json` (with `/`) -> the file on disk.
    pub members: BTreeMap<String, PathBuf>,
}

/// Replaces the files of every bundle root among `found` by one [`Found`] for the root
/// folder (its `bundle` set), keeping the list sorted by canonical path.
pub(crate) fn group(found: Vec<Found>) -> Vec<Found> {
    // Folders and the names of the files directly in them.
    let mut children: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    for f in &found {
        if let (Some(dir), Some(name)) = (f.canonical.parent(), f.canonical.file_name()) {
            children
                .entry(dir)
                .or_default()
                .push(name.to_str().unwrap_or(""));
        }
    }
    let roots: Vec<(PathBuf, &'static str)> = children
        .iter()
        .filter_map(|(dir, names)| {
            avatar_formats::bundle::bundle_kind(names).map(|k| (dir.to_path_buf(), k))
        })
        .collect();
    if roots.is_empty() {
        return found;
    }
    let mut bundles: BTreeMap<PathBuf, Bundle> = roots
        .iter()
        .map(|(r, k)| {
            let b = Bundle {
                kind: k,
                members: BTreeMap::new(),
            };
            (r.clone(), b)
        })
        .collect();
    let mut rest = Vec::with_capacity(found.len());
    for f in found {
        // The deepest root above the file, if the file is a JSON file at most one folder down.
        let root = roots
            .iter()
            .filter(|(r, _)| f.canonical.starts_with(r))
            .max_by_key(|(r, _)| r.components().count());
        let member = root.and_then(|(r, _)| {
            let rel = f.canonical.strip_prefix(r).ok()?;
            let parts: Vec<&str> = rel
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<_>>()?;
            let json = parts
                .last()
                .is_some_and(|n| n.to_ascii_lowercase().ends_with(".json"));
            (json && parts.len() <= 2).then(|| (r.clone(), parts.join("/")))
        });
        match member {
            Some((r, rel)) => {
                if let Some(b) = bundles.get_mut(&r) {
                    b.members.insert(rel, f.canonical);
                }
            }
            None => rest.push(f),
        }
    }
    for (root, bundle) in bundles {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| bundle.kind.to_string());
        rest.push(Found {
            canonical: root,
            name,
            maildir: false,
            bundle: Some(bundle),
        });
    }
    rest.sort_by(|a, b| a.canonical.cmp(&b.canonical));
    rest
}

/// The packed zip and the members left out, with why.
type Packed = (Vec<u8>, Vec<(String, String)>);

/// The members of `bundle` as one deterministic zip. Members that cannot be read are
/// returned as (path, reason) and left out; `Err` when the whole is over `max_bytes` or
/// `max_entries`.
pub(crate) fn pack(bundle: &Bundle, max_bytes: u64, max_entries: usize) -> Result<Packed, String> {
    if bundle.members.len() > max_entries {
        return Err(format!(
            "{} export with {} JSON files: over max_entries ({max_entries})",
            bundle.kind,
            bundle.members.len()
        ));
    }
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let mut total = 0u64;
    let mut failed = Vec::new();
    for (rel, path) in &bundle.members {
        let bytes = match read_file(path, max_bytes.saturating_sub(total)) {
            Ok(b) => b,
            Err(reason) if reason.starts_with("larger than") => {
                return Err(format!(
                    "{} export larger than max_file_bytes ({max_bytes}) in all: not packed",
                    bundle.kind
                ));
            }
            Err(reason) => {
                failed.push((path.display().to_string(), reason));
                continue;
            }
        };
        total += bytes.len() as u64;
        let opts = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(DateTime::default())
            .unix_permissions(0o644)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        w.start_file(rel.as_str(), opts)
            .and_then(|()| w.write_all(&bytes).map_err(Into::into))
            .map_err(|e| format!("cannot pack {rel}: {e}"))?;
    }
    let cursor = w.finish().map_err(|e| format!("cannot pack: {e}"))?;
    Ok((cursor.into_inner(), failed))
}

impl Run<'_> {
    /// Packs a bundle folder and emits it as one artifact with its kind as format hint.
    pub(crate) fn ingest_bundle(&mut self, f: &Found, bundle: &Bundle) -> Result<(), IngestError> {
        let shown = f.canonical.display().to_string();
        match pack(
            bundle,
            self.opts.max_file_bytes,
            self.opts.archive.max_entries,
        ) {
            Ok((bytes, failed)) => {
                for (path, reason) in failed {
                    self.reject(
                        &path,
                        format!("{reason} (left out of the {} export)", bundle.kind),
                    );
                }
                let uri = crate::file_uri(&f.canonical);
                self.emit_hinted(&uri, &f.name, Some(bundle.kind), &bytes)
            }
            Err(reason) => {
                self.reject(&shown, reason);
                Ok(())
            }
        }
    }

    /// A zip whose entries form a bundle is stored whole with the bundle's hint; `Ok(false)`
    /// when it is not one (then it is expanded as usual).
    pub(crate) fn ingest_zip_bundle(
        &mut self,
        uri: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<bool, IngestError> {
        match avatar_formats::bundle::zip_bundle_kind(bytes) {
            Some(kind) => self
                .emit_hinted(uri, name, Some(kind), bytes)
                .map(|()| true),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::*;
    use avatar_runtime::{MemoryBlobStore, MemoryEventLog};
    use std::fs;

    /// The hand-written sample export of the Slack parser's tests.
    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/formats/tests/samples/slack/export"
    );
    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/slack"
    );

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy_dir(&p, &dest);
            } else {
                fs::copy(&p, &dest).unwrap();
            }
        }
    }

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

    fn run(log: &dyn EventLog, blobs: &dyn BlobStore, paths: &[PathBuf]) -> IngestReport {
        ingest_paths(
            log,
            blobs,
            "ada",
            paths,
            &IngestOptions::default(),
            &mut |_| {},
        )
        .unwrap()
    }

    fn blob(blobs: &MemoryBlobStore, sha: &str) -> Vec<u8> {
        blobs.get(sha).unwrap()
    }

    #[test]
    fn an_export_folder_is_one_deterministic_artifact() {
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("inbox/Acme Slack export");
        copy_dir(Path::new(SAMPLE), &export);
        fs::write(
            export.join("general/whiteboard.txt"),
            b"a downloaded attachment",
        )
        .unwrap();
        fs::write(tmp.path().join("inbox/notes.txt"), b"not part of it").unwrap();
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run(&log, &blobs, &[tmp.path().join("inbox")]);
        assert_eq!(report.artifacts_new, 3, "{report:?}");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let arts = artifacts(&log);
        let (uri, slack) = &arts[0];
        assert_eq!(slack.name, "Acme Slack export");
        assert_eq!(slack.format_hint.as_deref(), Some("slack"));
        assert!(uri.ends_with("/inbox/Acme%20Slack%20export"), "{uri}");
        assert_eq!(arts[1].1.name, "whiteboard.txt");
        assert_eq!(arts[1].1.format_hint, None);
        assert_eq!(arts[2].1.name, "notes.txt");

        let bytes = blob(&blobs, &slack.sha256);
        let p = avatar_formats::parse(&slack.name, slack.format_hint.as_deref(), &bytes).unwrap();
        assert_eq!(p.items.len(), 7);
        // Sniffing agrees without the hint.
        assert_eq!(
            avatar_formats::parse(&slack.name, None, &bytes)
                .unwrap()
                .format,
            "slack"
        );

        // Again, and from a fresh copy elsewhere (new mtimes, new path): nothing new.
        let again = run(&log, &blobs, &[tmp.path().join("inbox")]);
        assert_eq!((again.artifacts_new, again.artifacts_known), (0, 3));
        let copy = tmp.path().join("elsewhere/export");
        copy_dir(Path::new(SAMPLE), &copy);
        let other = run(&log, &blobs, &[copy]);
        assert_eq!(
            (other.artifacts_new, other.artifacts_known),
            (0, 1),
            "{other:?}"
        );
    }

    #[test]
    fn packed_zip_has_sorted_stored_entries_with_fixed_times() {
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("e");
        copy_dir(Path::new(SAMPLE), &export);
        let found = vec![];
        let mut found: Vec<Found> = found;
        for rel in [
            "users.json",
            "channels.json",
            "general/2024-03-01.json",
            "D024BE91L/2024-03-01.json",
        ] {
            found.push(Found {
                canonical: fs::canonicalize(export.join(rel)).unwrap(),
                name: rel.rsplit('/').next().unwrap().to_string(),
                maildir: false,
                bundle: None,
            });
        }
        let grouped = bundle::group(found);
        assert_eq!(grouped.len(), 1);
        let b = grouped[0].bundle.as_ref().unwrap();
        let (bytes, failed) = bundle::pack(b, 1 << 30, 100).unwrap();
        assert!(failed.is_empty());
        let (bytes2, _) = bundle::pack(b, 1 << 30, 100).unwrap();
        assert_eq!(bytes, bytes2);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
        let names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "D024BE91L/2024-03-01.json");
        for i in 0..z.len() {
            let f = z.by_index(i).unwrap();
            assert_eq!(f.compression(), zip::CompressionMethod::Stored);
            assert_eq!(f.last_modified(), Some(zip::DateTime::default()));
        }
        // Limits: too many files, too many bytes.
        assert!(bundle::pack(b, 1 << 30, 3)
            .unwrap_err()
            .contains("max_entries"));
        assert!(bundle::pack(b, 100, 100)
            .unwrap_err()
            .contains("max_file_bytes"));
    }

    #[test]
    fn a_slack_zip_is_stored_whole_also_inside_another_zip() {
        let mut entries = Vec::new();
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for rel in [
            "users.json",
            "channels.json",
            "dms.json",
            "general/2024-03-01.json",
        ] {
            let bytes = fs::read(Path::new(SAMPLE).join(rel)).unwrap();
            use std::io::Write;
            w.start_file(format!("export/{rel}"), opts).unwrap();
            w.write_all(&bytes).unwrap();
            entries.push(rel);
        }
        let slack_zip = w.finish().unwrap().into_inner();
        let mut outer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        {
            use std::io::Write;
            outer.start_file("backups/slack.zip", opts).unwrap();
            outer.write_all(&slack_zip).unwrap();
            outer.start_file("readme.txt", opts).unwrap();
            outer.write_all(b"my backups").unwrap();
        }
        let outer = outer.finish().unwrap().into_inner();

        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("Slack export.zip"), &slack_zip).unwrap();
        fs::write(tmp.path().join("Backups.zip"), &outer).unwrap();
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run(&log, &blobs, &[tmp.path().to_path_buf()]);
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let arts = artifacts(&log);
        let got: Vec<(&str, Option<&str>)> = arts
            .iter()
            .map(|(_, a)| (a.name.as_str(), a.format_hint.as_deref()))
            .collect();
        // Backups.zip (first in path order): the inner Slack zip whole + readme; then
        // Slack export.zip, whose bytes are those of the inner one: counted as known.
        assert_eq!(
            got,
            [("backups/slack.zip", Some("slack")), ("readme.txt", None)]
        );
        assert_eq!(report.artifacts_known, 1);
        let bytes = blob(&blobs, &arts[0].1.sha256);
        assert_eq!(bytes, slack_zip);
        let p = avatar_formats::parse(&arts[0].1.name, Some("slack"), &bytes).unwrap();
        assert_eq!(p.items.len(), 3);
    }

    #[test]
    fn the_slack_fixture_export_folder() {
        let dir = Path::new(FIXTURES);
        if !dir.exists() {
            eprintln!("skipping: ../shared/fixtures not found");
            return;
        }
        // The fixture folder keeps slackdump's export flat; lay it out as the export was.
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("slackdump export");
        for (from, to) in [
            ("slackdump__users.json", "users.json"),
            ("slackdump__channels.json", "channels.json"),
            ("slackdump__groups.json", "groups.json"),
            ("slackdump__dms.json", "dms.json"),
            ("slackdump__mpims.json", "mpims.json"),
            (
                "slackdump__B75B4C7__2025-01-10.json",
                "B75B4C7/2025-01-10.json",
            ),
            (
                "slackdump__B75B4C7__2025-01-11.json",
                "B75B4C7/2025-01-11.json",
            ),
            (
                "slackdump__B75B4C7__2025-01-18.json",
                "B75B4C7/2025-01-18.json",
            ),
            (
                "slackdump__B75B4C7__2025-01-24.json",
                "B75B4C7/2025-01-24.json",
            ),
        ] {
            let dest = export.join(to);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(dir.join(from), dest).unwrap();
        }
        let (log, blobs) = (MemoryEventLog::new(), MemoryBlobStore::default());
        let report = run(&log, &blobs, std::slice::from_ref(&export));
        assert_eq!(report.artifacts_new, 1, "{report:?}");
        let arts = artifacts(&log);
        assert_eq!(arts[0].1.format_hint.as_deref(), Some("slack"));
        let bytes = blob(&blobs, &arts[0].1.sha256);
        let p = avatar_formats::parse(&arts[0].1.name, Some("slack"), &bytes).unwrap();
        assert_eq!((p.items.len(), p.skipped), (12, 4));
        assert!(p.items.iter().all(|i| i.thread == "#B75B4C7"));
        let again = run(&log, &blobs, &[export]);
        assert_eq!((again.artifacts_new, again.artifacts_known), (0, 1));
    }
}
