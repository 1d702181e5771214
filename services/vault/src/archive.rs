//! The plaintext inside the sealed stream: a flat sequence of entries, read and written in one
//! pass so memory stays bounded by the chunk size whatever the folder holds.
//!
//! ```text
//! entry  := 0x01 path mode:u32 len:u64 bytes[len]   (a regular file)
//!         | 0x02 path mode:u32                       (a directory, so empty ones survive)
//! path   := len:u16 bytes                           (relative, '/'-separated, raw unix bytes)
//! archive := entry* 0x00                            (explicit end: a complete archive says so)
//! ```
//!
//! Paths come back from disk, so unpacking treats them as hostile: see [`validate_path`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{SealReport, VaultError};

const TAG_END: u8 = 0;
const TAG_FILE: u8 = 1;
const TAG_DIR: u8 = 2;
const MAX_PATH: usize = 4096;
/// Only permission bits travel: setuid/setgid/sticky from a crafted archive are dropped.
const MODE_MASK: u32 = 0o777;

/// Checks an archived path and turns it into a relative `PathBuf` that cannot leave the root:
/// no absolute paths, no `..`, no `.`, no empty components, no NUL, bounded length.
pub(crate) fn validate_path(raw: &[u8]) -> Result<PathBuf, VaultError> {
    let bad = |why: &'static str| VaultError::BadPath {
        path: String::from_utf8_lossy(raw).into_owned(),
        why,
    };
    if raw.is_empty() || raw.len() > MAX_PATH {
        return Err(bad("empty or too long"));
    }
    if raw.contains(&0) {
        return Err(bad("contains NUL"));
    }
    if raw[0] == b'/' {
        return Err(bad("absolute"));
    }
    let mut out = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" => return Err(bad("empty component")),
            b"." | b".." => return Err(bad("dot component")),
            _ => out.push(OsStr::from_bytes(part)),
        }
    }
    // Belt and braces: what we built must be plain normal components.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("not a plain relative path"));
    }
    Ok(out)
}

fn put_path(w: &mut impl Write, rel: &Path) -> Result<(), VaultError> {
    let bytes = rel.as_os_str().as_bytes();
    // Validate on the way in too, so we never write an archive we would refuse to read.
    validate_path(bytes)?;
    let len = u16::try_from(bytes.len()).map_err(|_| VaultError::BadPath {
        path: rel.display().to_string(),
        why: "empty or too long",
    })?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(bytes)?;
    Ok(())
}

/// Writes one archive of everything under `root` into `w`, in sorted order. `skip` says which
/// top-level names belong to the vault itself. Symlinks and special files are refused: sealing
/// must not follow a link out of the folder, nor silently drop it and then delete the folder.
pub(crate) fn pack(
    root: &Path,
    skip: &dyn Fn(&OsStr) -> bool,
    w: &mut impl Write,
) -> Result<(SealReport, Vec<(PathBuf, bool)>), VaultError> {
    let mut report = SealReport::default();
    let mut packed = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && skip(e.file_name())));
    for entry in walker {
        let entry = entry.map_err(|e| VaultError::Io(io::Error::other(e)))?;
        let rel = entry
            .path()
            .strip_prefix(root)
            .map_err(|_| VaultError::Corrupt("walked outside the folder"))?
            .to_path_buf();
        let ft = entry.file_type();
        if ft.is_dir() {
            let mode = entry
                .metadata()
                .map_err(|e| VaultError::Io(io::Error::other(e)))?
                .permissions()
                .mode();
            w.write_all(&[TAG_DIR])?;
            put_path(w, &rel)?;
            w.write_all(&(mode & MODE_MASK).to_le_bytes())?;
        } else if ft.is_file() {
            let mut file = File::open(entry.path())?;
            let meta = file.metadata()?;
            let len = meta.len();
            w.write_all(&[TAG_FILE])?;
            put_path(w, &rel)?;
            w.write_all(&(meta.permissions().mode() & MODE_MASK).to_le_bytes())?;
            w.write_all(&len.to_le_bytes())?;
            let mut left = len;
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = file.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(VaultError::Changed(entry.path().to_path_buf()));
                }
                w.write_all(&buf[..n])?;
                left -= n as u64;
            }
            report.files += 1;
            report.bytes += len;
        } else {
            return Err(VaultError::SpecialFile(entry.path().to_path_buf()));
        }
        packed.push((rel, ft.is_dir()));
    }
    w.write_all(&[TAG_END])?;
    Ok((report, packed))
}

/// Where unpacked entries go: the real file system, or nowhere (verification, fuzzing).
pub(crate) trait Sink {
    type File: Write;
    fn dir(&mut self, rel: &Path, mode: u32) -> Result<(), VaultError>;
    fn create(&mut self, rel: &Path) -> Result<Self::File, VaultError>;
    fn finish(&mut self, file: Self::File, rel: &Path, mode: u32) -> Result<(), VaultError>;
}

/// Counts and discards: proves an archive parses and authenticates without touching disk.
pub(crate) struct NullSink;

impl Sink for NullSink {
    type File = io::Sink;
    fn dir(&mut self, _: &Path, _: u32) -> Result<(), VaultError> {
        Ok(())
    }
    fn create(&mut self, _: &Path) -> Result<io::Sink, VaultError> {
        Ok(io::sink())
    }
    fn finish(&mut self, _: io::Sink, _: &Path, _: u32) -> Result<(), VaultError> {
        Ok(())
    }
}

/// Writes entries under `root`, which must be a folder this process just created. Parents are
/// created one component at a time and must be real directories (never a symlink); files are
/// created with O_EXCL, which neither follows a symlink nor overwrites a duplicate entry.
pub(crate) struct FsSink {
    root: PathBuf,
    made: HashSet<PathBuf>,
    dir_modes: Vec<(PathBuf, u32)>,
    /// fsync every file and directory: needed when the sealed copy is deleted afterwards
    /// (unseal), pointless in a RAM working folder.
    durable: bool,
}

impl FsSink {
    pub(crate) fn new(root: &Path, durable: bool) -> Self {
        FsSink {
            root: root.to_path_buf(),
            made: HashSet::new(),
            dir_modes: Vec::new(),
            durable,
        }
    }

    fn ensure_dir(&mut self, rel: &Path) -> Result<(), VaultError> {
        let mut prefix = PathBuf::new();
        for part in rel.components() {
            prefix.push(part);
            if self.made.contains(&prefix) {
                continue;
            }
            let full = self.root.join(&prefix);
            match fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(_) => {
                    return Err(VaultError::BadPath {
                        path: rel.display().to_string(),
                        why: "a parent is not a directory",
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    DirBuilder::new().mode(0o700).create(&full)?;
                }
                Err(e) => return Err(e.into()),
            }
            self.made.insert(prefix.clone());
        }
        Ok(())
    }

    /// Applies directory modes last, deepest first, so a read-only directory does not stop
    /// its own contents from being written.
    /// Also makes the directory entries durable when asked to.
    pub(crate) fn complete(&mut self) -> Result<(), VaultError> {
        if self.durable {
            for rel in self.made.iter().chain(std::iter::once(&PathBuf::new())) {
                File::open(self.root.join(rel))?.sync_all()?;
            }
        }
        for (rel, mode) in self.dir_modes.drain(..).rev() {
            fs::set_permissions(self.root.join(rel), fs::Permissions::from_mode(mode))?;
        }
        Ok(())
    }
}

impl Sink for FsSink {
    type File = File;

    fn dir(&mut self, rel: &Path, mode: u32) -> Result<(), VaultError> {
        self.ensure_dir(rel)?;
        self.dir_modes.push((rel.to_path_buf(), mode & MODE_MASK));
        Ok(())
    }

    fn create(&mut self, rel: &Path) -> Result<File, VaultError> {
        if let Some(parent) = rel.parent() {
            self.ensure_dir(parent)?;
        }
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.root.join(rel))
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => VaultError::BadPath {
                    path: rel.display().to_string(),
                    why: "duplicate entry",
                },
                _ => VaultError::Io(e),
            })
    }

    fn finish(&mut self, file: File, _rel: &Path, mode: u32) -> Result<(), VaultError> {
        file.set_permissions(fs::Permissions::from_mode(mode & MODE_MASK))?;
        if self.durable {
            file.sync_all()?;
        }
        Ok(())
    }
}

fn read_array<const N: usize>(r: &mut impl Read) -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    r.read_exact(&mut out).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => VaultError::Corrupt("archive ends inside an entry"),
        _ => VaultError::from(e),
    })?;
    Ok(out)
}

fn read_path(r: &mut impl Read) -> Result<PathBuf, VaultError> {
    let len = u16::from_le_bytes(read_array(r)?) as usize;
    let mut raw = vec![0u8; len];
    r.read_exact(&mut raw).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => VaultError::Corrupt("archive ends inside an entry"),
        _ => VaultError::from(e),
    })?;
    validate_path(&raw)
}

/// Reads a whole archive from `r` into `sink`, then insists the input is exhausted (for a
/// sealed stream that is also what authenticates the final chunk).
pub(crate) fn unpack<R: BufRead, S: Sink>(
    r: &mut R,
    sink: &mut S,
) -> Result<SealReport, VaultError> {
    let mut report = SealReport::default();
    loop {
        let [tag] = read_array::<1>(r)?;
        match tag {
            TAG_END => break,
            TAG_DIR => {
                let rel = read_path(r)?;
                let mode = u32::from_le_bytes(read_array(r)?);
                sink.dir(&rel, mode)?;
            }
            TAG_FILE => {
                let rel = read_path(r)?;
                let mode = u32::from_le_bytes(read_array(r)?);
                let len = u64::from_le_bytes(read_array(r)?);
                let mut out = sink.create(&rel)?;
                let mut left = len;
                while left > 0 {
                    let avail = r.fill_buf().map_err(VaultError::from)?;
                    if avail.is_empty() {
                        return Err(VaultError::Corrupt("archive ends inside a file"));
                    }
                    let n = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.write_all(&avail[..n])?;
                    r.consume(n);
                    left -= n as u64;
                }
                sink.finish(out, &rel, mode)?;
                report.files += 1;
                report.bytes += len;
            }
            _ => return Err(VaultError::Corrupt("unknown archive entry")),
        }
    }
    if !r.fill_buf().map_err(VaultError::from)?.is_empty() {
        return Err(VaultError::Corrupt("data after the end of the archive"));
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(tag: u8, path: &[u8], body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(path.len() as u16).to_le_bytes());
        v.extend_from_slice(path);
        v.extend_from_slice(&0o644u32.to_le_bytes());
        if tag == TAG_FILE {
            v.extend_from_slice(&(body.len() as u64).to_le_bytes());
            v.extend_from_slice(body);
        }
        v
    }

    #[test]
    fn validate_path_refuses_escapes() {
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"..",
            b"../x",
            b"a/../../x",
            b"a/./b",
            b"a//b",
            b"a/",
            b"a\0b",
        ] {
            assert!(
                validate_path(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(validate_path(&vec![b'a'; MAX_PATH + 1]).is_err());
        assert_eq!(
            validate_path(b"index/seg.1..2").unwrap(),
            PathBuf::from("index/seg.1..2")
        );
        assert_eq!(validate_path(b"\xff\xfe").unwrap().as_os_str().len(), 2);
    }

    #[test]
    fn traversal_entries_are_refused_and_write_nothing_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        for path in [&b"../escape"[..], b"/tmp/escape", b"a/../../escape"] {
            let mut archive = entry(TAG_FILE, path, b"pwned");
            archive.push(TAG_END);
            let err = unpack(&mut &archive[..], &mut FsSink::new(&root, false)).unwrap_err();
            assert!(matches!(err, VaultError::BadPath { .. }), "{err}");
        }
        assert!(!tmp.path().join("escape").exists());
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }

    #[test]
    fn symlinked_parent_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let mut archive = entry(TAG_FILE, b"link/x", b"pwned");
        archive.push(TAG_END);
        assert!(unpack(&mut &archive[..], &mut FsSink::new(&root, false)).is_err());
        // A file entry named like the symlink itself is refused too (O_EXCL).
        let mut archive = entry(TAG_FILE, b"link", b"pwned");
        archive.push(TAG_END);
        assert!(unpack(&mut &archive[..], &mut FsSink::new(&root, false)).is_err());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn duplicates_truncation_and_trailing_data_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dup = entry(TAG_FILE, b"a", b"1");
        dup.extend(entry(TAG_FILE, b"a", b"2"));
        dup.push(TAG_END);
        assert!(unpack(&mut &dup[..], &mut FsSink::new(tmp.path(), false)).is_err());

        let mut ok = entry(TAG_DIR, b"d", b"");
        ok.extend(entry(TAG_FILE, b"d/f", b"body"));
        ok.push(TAG_END);
        let report = unpack(&mut &ok[..], &mut NullSink).unwrap();
        assert_eq!(report, SealReport { files: 1, bytes: 4 });
        for cut in 0..ok.len() {
            assert!(unpack(&mut &ok[..cut], &mut NullSink).is_err(), "cut {cut}");
        }
        let mut trailing = ok.clone();
        trailing.push(0);
        assert!(unpack(&mut &trailing[..], &mut NullSink).is_err());
        let mut unknown = ok.clone();
        unknown[0] = 9;
        assert!(unpack(&mut &unknown[..], &mut NullSink).is_err());
    }

    #[test]
    fn huge_declared_length_does_not_allocate() {
        let mut v = vec![TAG_FILE];
        v.extend_from_slice(&1u16.to_le_bytes());
        v.push(b'f');
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&u64::MAX.to_le_bytes());
        v.extend_from_slice(b"short");
        assert!(matches!(
            unpack(&mut &v[..], &mut NullSink),
            Err(VaultError::Corrupt(_))
        ));
    }
}
