//! Pure helpers about names: source URIs, safe archive entry names, hidden files and the
//! Maildir layout. Kept free of I/O so the rules can be tested on strings.

use std::path::Path;

/// Bytes kept verbatim in a source URI: RFC 3986 `pchar` (unreserved, sub-delims, `:` `@`) and
/// `/`. Everything else (space, `#`, `?`, `%`, non-ASCII, ...) is percent-encoded, so `#` can
/// separate an archive from its inner path and the URI is the same string on every run.
fn keep_verbatim(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// Percent-encodes `bytes` minimally (see [`keep_verbatim`]).
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if keep_verbatim(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `file://` URI of an absolute (canonical) path: `file:///home/ada/My%20Mail/1:2,S`.
///
/// Maildir names (`:2,S`) stay readable; space, `#`, `%` and non-ASCII bytes are
/// percent-encoded. On Windows the path is written `file:///C:/Users/...`.
/// The CLI should use this to build the `--source` of a forget request, so it matches.
pub fn file_uri(path: &Path) -> String {
    #[cfg(unix)]
    let bytes: Vec<u8> = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes: Vec<u8> = {
        let s = path.to_string_lossy().replace('\\', "/");
        let s = s.strip_prefix("//?/").unwrap_or(&s).to_string();
        if s.starts_with('/') {
            s.into_bytes()
        } else {
            format!("/{s}").into_bytes()
        }
    };
    format!("file://{}", percent_encode(&bytes))
}

/// The source URI of an entry inside an archive whose URI is `archive_uri`.
pub fn entry_uri(archive_uri: &str, inner: &str) -> String {
    format!("{archive_uri}#{}", percent_encode(inner.as_bytes()))
}

/// Why an archive entry name is refused.
pub const REASON_TRAVERSAL: &str = "unsafe entry name: path traversal (`..`)";
pub const REASON_ABSOLUTE: &str = "unsafe entry name: absolute path";
pub const REASON_DRIVE: &str = "unsafe entry name: drive letter";
pub const REASON_NUL: &str = "unsafe entry name: NUL byte";
pub const REASON_EMPTY: &str = "empty entry name";

/// Checks an archive entry name and returns it cleaned (`/`-separated, no `.` or empty
/// components). We never write entries to disk, but the name becomes `ArtifactReceived.name`
/// and part of the source URI, which later tools may turn into paths: a name that could climb
/// out of a folder is refused rather than repaired, so the report shows the archive is hostile.
pub fn safe_entry_name(raw: &str) -> Result<String, &'static str> {
    if raw.contains('\0') {
        return Err(REASON_NUL);
    }
    // Windows tools write `\`; treat it as a separator so `..\..\x` is caught too.
    let name = raw.replace('\\', "/");
    if name.starts_with('/') {
        return Err(REASON_ABSOLUTE);
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(REASON_DRIVE);
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(REASON_TRAVERSAL),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(REASON_EMPTY);
    }
    Ok(parts.join("/"))
}

/// Whether a file or folder name is hidden (`.DS_Store`, `.git`, `._resource-fork`).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Whether a file named `file_name` in folder `dir_name` is a Maildir message.
///
/// `dir_name` must be `cur` or `new`, and either the folder above has another of the Maildir
/// folders (`cur`, `new`, `tmp`; `has_sibling` answers for a name), or the file is in `cur`
/// and carries Maildir info (`:2,` flags) — git and zip drop empty `new/` and `tmp/` folders,
/// so a copied Maildir often has only `cur/`.
pub fn is_maildir_message(
    dir_name: &str,
    file_name: &str,
    has_sibling: impl Fn(&str) -> bool,
) -> bool {
    if dir_name != "cur" && dir_name != "new" {
        return false;
    }
    let sibling = ["cur", "new", "tmp"]
        .iter()
        .any(|s| *s != dir_name && has_sibling(s));
    sibling || (dir_name == "cur" && file_name.contains(":2,"))
}

/// Whether a folder named `dir_name` is a Maildir `tmp/` (files being delivered: skipped).
pub fn is_maildir_tmp(dir_name: &str, has_sibling: impl Fn(&str) -> bool) -> bool {
    dir_name == "tmp" && (has_sibling("cur") || has_sibling("new"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uris_encode_only_what_they_must() {
        assert_eq!(
            file_uri(Path::new("/home/ada/My Mail/cur/1:2,S")),
            "file:///home/ada/My%20Mail/cur/1:2,S"
        );
        assert_eq!(file_uri(Path::new("/a/#b%c")), "file:///a/%23b%25c");
        assert_eq!(file_uri(Path::new("/é")), "file:///%C3%A9");
        assert_eq!(
            entry_uri("file:///x.zip", "in ner/a#b.txt"),
            "file:///x.zip#in%20ner/a%23b.txt"
        );
    }

    #[test]
    fn entry_names_that_climb_are_refused() {
        assert_eq!(safe_entry_name("../evil.txt"), Err(REASON_TRAVERSAL));
        assert_eq!(safe_entry_name("a/../../evil.txt"), Err(REASON_TRAVERSAL));
        assert_eq!(
            safe_entry_name("a\\..\\..\\evil.txt"),
            Err(REASON_TRAVERSAL)
        );
        assert_eq!(safe_entry_name("/etc/passwd"), Err(REASON_ABSOLUTE));
        assert_eq!(safe_entry_name("\\\\server\\share"), Err(REASON_ABSOLUTE));
        assert_eq!(safe_entry_name("C:/Windows/x"), Err(REASON_DRIVE));
        assert_eq!(safe_entry_name("c:x"), Err(REASON_DRIVE));
        assert_eq!(safe_entry_name("a\0b"), Err(REASON_NUL));
        assert_eq!(safe_entry_name("./"), Err(REASON_EMPTY));
        assert_eq!(
            safe_entry_name("./a//b/./c.txt").as_deref(),
            Ok("a/b/c.txt")
        );
        assert_eq!(safe_entry_name("notes\\x.md").as_deref(), Ok("notes/x.md"));
        assert_eq!(safe_entry_name("..hidden").as_deref(), Ok("..hidden"));
    }

    #[test]
    fn maildir_rules() {
        let all = |_: &str| true;
        let none = |_: &str| false;
        assert!(is_maildir_message("cur", "1", all));
        assert!(is_maildir_message("new", "1", |s| s == "tmp"));
        assert!(!is_maildir_message("new", "1", |s| s == "new"));
        assert!(!is_maildir_message("cur", "1", none));
        assert!(is_maildir_message("cur", "1354585346.000260:2,", none));
        assert!(!is_maildir_message("new", "1:2,", none));
        assert!(!is_maildir_message("inbox", "1:2,S", all));
        assert!(is_maildir_tmp("tmp", |s| s == "cur"));
        assert!(!is_maildir_tmp("tmp", none));
        assert!(!is_maildir_tmp("cur", all));
    }
}
