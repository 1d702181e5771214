//! Exports that are only readable whole ("bundles"): a Slack workspace export is a folder of
//! `users.json`, `channels.json` and one JSON file per channel and day, and a day file alone
//! names its authors only by id. Ingest asks [`bundle_kind`] whether a folder (or the entry
//! names of a zip) is such an export; if so it stores the whole export as ONE artifact (a zip,
//! with the kind as format hint) instead of one artifact per file, so the parser sees the user
//! list next to the messages.
//!
//! The rule lives here, beside the parsers, so ingest and sniffing agree on it.

use std::io::Cursor;

/// Which bundle the relative paths inside a folder or zip form, if any: `Some("slack")` when
/// `users.json` and `channels.json` sit at the root or together in one first-level folder
/// (the zip Slack gives out has them at the root; a zipped export folder has them one level
/// down). Separators may be `/` or `\`; a leading `./` is ignored.
pub fn bundle_kind(paths: &[&str]) -> Option<&'static str> {
    slack_root(paths.iter().copied()).map(|_| "slack")
}

/// The folder prefix (`""` or `"name/"`) under which a Slack export's `users.json` and
/// `channels.json` sit, for readers that need to find the rest of the export.
pub fn slack_root<'a>(paths: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut users: Vec<String> = Vec::new();
    let mut channels: Vec<String> = Vec::new();
    for raw in paths {
        let p = normalise(raw);
        let (dir, file) = match p.rsplit_once('/') {
            Some((d, f)) => (d, f),
            None => ("", p.as_str()),
        };
        // Root or exactly one folder deep; macOS resource forks are not the export.
        if dir.contains('/') || dir.starts_with("__MACOSX") {
            continue;
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        match file {
            "users.json" => users.push(prefix),
            "channels.json" => channels.push(prefix),
            _ => {}
        }
    }
    // The root wins over a sub-folder; among sub-folders the first in byte order, so the
    // answer does not depend on the order the names came in.
    let mut both: Vec<String> = users.into_iter().filter(|u| channels.contains(u)).collect();
    both.sort();
    both.into_iter().next()
}

/// [`bundle_kind`] of the entry names of the zip in `bytes`; `None` when it is not a zip or
/// its central directory cannot be read. Only the directory is read, not the entries.
pub fn zip_bundle_kind(bytes: &[u8]) -> Option<&'static str> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return None;
    }
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    bundle_kind(&names)
}

/// `a\b` -> `a/b`, without a leading `./` or `/`.
fn normalise(raw: &str) -> String {
    let mut p = raw.replace('\\', "/");
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_string();
    }
    p.trim_start_matches('/').to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slack_export_at_the_root_or_one_folder_down() {
        let root = ["users.json", "channels.json", "general/2020-01-01.json"];
        assert_eq!(bundle_kind(&root), Some("slack"));
        assert_eq!(slack_root(root.into_iter()).as_deref(), Some(""));
        let nested = [
            "My Export/channels.json",
            "My Export\\users.json",
            "__MACOSX/My Export/._users.json",
        ];
        assert_eq!(bundle_kind(&nested), Some("slack"));
        assert_eq!(
            slack_root(nested.into_iter()).as_deref(),
            Some("My Export/")
        );
        assert_eq!(
            slack_root(["./users.json", "./channels.json"].into_iter()).as_deref(),
            Some("")
        );
    }

    #[test]
    fn other_layouts_are_not_bundles() {
        assert_eq!(bundle_kind(&["users.json"]), None);
        assert_eq!(bundle_kind(&["a/users.json", "b/channels.json"]), None);
        assert_eq!(bundle_kind(&["a/b/users.json", "a/b/channels.json"]), None);
        assert_eq!(bundle_kind(&["xusers.json", "channels.json"]), None);
        assert_eq!(bundle_kind(&[]), None);
    }

    #[test]
    fn zip_entry_names_are_checked_without_reading_entries() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for name in ["export/users.json", "export/channels.json"] {
            w.start_file(name, opts).unwrap();
            w.write_all(b"[]").unwrap();
        }
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(zip_bundle_kind(&bytes), Some("slack"));
        assert_eq!(zip_bundle_kind(b"PK\x03\x04broken"), None);
        assert_eq!(zip_bundle_kind(b"[]"), None);
    }
}
