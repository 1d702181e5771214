//! Optional encryption of the data directory at rest (issue 5).
//!
//! SQLite, tantivy, qdrant-edge, Parquet and the model files cannot encrypt themselves, so the
//! whole data directory is sealed as one unit: `DIR/sealed.avatar` holds an authenticated,
//! encrypted archive of every file (format in `src/stream.rs`, entries in `src/archive.rs`),
//! and the plaintext files are removed. A command on a sealed directory opens it with
//! [`Unsealed::open`], which decrypts into a private RAM-backed folder (`/dev/shm`), works
//! there, calls [`Unsealed::reseal`] (atomic: tmp file, fsync, rename) and drops the
//! [`Unsealed`], which wipes the folder. The disk only ever holds ciphertext.
//!
//! What this does not do: scrub the disk blocks that held the plaintext before the first
//! `seal` (SSDs and copy-on-write file systems keep them); seal on a fresh disk or combine
//! with full-disk encryption for that. Keys are held in memory while a command runs.

mod archive;
mod stream;

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use archive::{FsSink, NullSink};
use stream::{Header, Kdf, MasterKey, StreamReader, StreamWriter};

/// The one file a sealed data directory holds.
pub const SEALED_FILE: &str = "sealed.avatar";
/// Written in full, fsynced, then renamed over [`SEALED_FILE`]; a leftover is ciphertext only.
const TMP_FILE: &str = "sealed.avatar.tmp";
/// flock'ed while a process seals, unseals or works on the directory.
const LOCK_FILE: &str = "sealed.avatar.lock";
/// Unseal stages the plaintext here first, so a corrupt archive leaves DIR as it was.
const STAGING_PREFIX: &str = ".avatar-unseal-";
/// Set to `1` to allow the working folder on disk where `/dev/shm` is missing.
pub const ALLOW_DISK_ENV: &str = "AVATAR_ALLOW_DISK_UNSEAL";

/// Everything that can go wrong; messages are meant for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("wrong key or corrupted sealed data directory")]
    Authentication,
    #[error("wrong key: this data directory was sealed with {sealed_with}, but {given} was given")]
    KeyKind {
        sealed_with: &'static str,
        given: &'static str,
    },
    #[error("corrupted sealed data directory: {0}")]
    Corrupt(&'static str),
    #[error("not a sealed data directory file (bad magic or too short)")]
    NotSealedFile,
    #[error("sealed data directory format version {0} is not supported by this build")]
    UnsupportedVersion(u8),
    #[error("refusing archive path {path:?}: {why}")]
    BadPath { path: String, why: &'static str },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is already sealed")]
    AlreadySealed(PathBuf),
    #[error("{0} is not sealed (no {SEALED_FILE} in it)")]
    NotSealed(PathBuf),
    #[error("{0}: symlinks and special files cannot be sealed (sealing never follows a link out of the folder)")]
    SpecialFile(PathBuf),
    #[error("{0} changed while it was being sealed")]
    Changed(PathBuf),
    #[error("unsealing would overwrite {0}")]
    WouldOverwrite(PathBuf),
    #[error("the data directory {0} is in use by another avatar process")]
    Locked(PathBuf),
    #[error("/dev/shm is not available: refusing to decrypt the data directory to disk (set {ALLOW_DISK_ENV}=1 to allow it)")]
    NoRamDisk,
    #[error("the key is empty")]
    EmptyKey,
    #[error("cannot read key file {path}: {source}")]
    KeyFile { path: PathBuf, source: io::Error },
    #[error("the key in {0} is not valid UTF-8")]
    KeyNotUtf8(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("sealed, but could not remove the plaintext {path}: {source}")]
    PlaintextLeft { path: PathBuf, source: io::Error },
    #[error("I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for VaultError {
    /// The stream reader travels through `io::Read`; unwrap its own errors back out.
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<VaultError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(v) = inner.downcast::<VaultError>() {
                    return *v;
                }
            }
            return VaultError::Corrupt("lost an inner error");
        }
        VaultError::Io(e)
    }
}

/// Where the key comes from: a passphrase (stretched with PBKDF2) or 32 raw bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    Passphrase(String),
    Raw([u8; 32]),
}

impl std::fmt::Debug for KeySource {
    /// Never print the secret (this ends up in logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(<redacted>)"),
            KeySource::Raw(_) => f.write_str("KeySource::Raw(<redacted>)"),
        }
    }
}

/// What a seal or unseal moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Regular files.
    pub files: u64,
    /// Their total plaintext size.
    pub bytes: u64,
}

/// Whether `dir` is a sealed data directory.
pub fn is_sealed(dir: &Path) -> bool {
    dir.join(SEALED_FILE).is_file()
}

/// Reads a key text: 64 hex characters are a raw key, anything else a passphrase. Trailing
/// newlines are dropped (files written by `echo` have one); other whitespace is part of it.
pub fn parse_key(text: &str) -> Result<KeySource, VaultError> {
    let t = text.trim_end_matches(['\n', '\r']);
    if t.is_empty() {
        return Err(VaultError::EmptyKey);
    }
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(t, &mut raw).map_err(|_| VaultError::EmptyKey)?;
        return Ok(KeySource::Raw(raw));
    }
    Ok(KeySource::Passphrase(t.to_string()))
}

/// The key, from (in this order) `--key-file` (`key_file`), `AVATAR_KEY_FILE`, `AVATAR_KEY`;
/// `None` when none is set (an empty variable counts as unset).
pub fn key_from_env(key_file: Option<&Path>) -> Result<Option<KeySource>, VaultError> {
    let file = key_file.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("AVATAR_KEY_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    key_from(file, std::env::var_os("AVATAR_KEY"))
}

fn key_from(
    file: Option<PathBuf>,
    env_key: Option<OsString>,
) -> Result<Option<KeySource>, VaultError> {
    if let Some(path) = file {
        let bytes = fs::read(&path).map_err(|source| VaultError::KeyFile {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| VaultError::KeyNotUtf8(path.display().to_string()))?;
        return parse_key(&text).map(Some);
    }
    match env_key {
        Some(v) if !v.is_empty() => {
            let text = v
                .into_string()
                .map_err(|_| VaultError::KeyNotUtf8("AVATAR_KEY".into()))?;
            parse_key(&text).map(Some)
        }
        _ => Ok(None),
    }
}

/// The vault's own files at the top of DIR, which are never part of the archive.
fn is_vault_name(name: &OsStr) -> bool {
    name == SEALED_FILE
        || name == TMP_FILE
        || name == LOCK_FILE
        || name
            .as_encoded_bytes()
            .starts_with(STAGING_PREFIX.as_bytes())
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Takes the directory's advisory lock: two processes resealing one directory would each
/// throw away the other's writes.
fn lock(dir: &Path) -> Result<File, VaultError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(VaultError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(VaultError::Io(e)),
    }
}

/// A fresh 0700 folder `base/<prefix><random>` that no one else can have prepared for us.
fn make_private_dir(base: &Path, prefix: &str) -> Result<PathBuf, VaultError> {
    let name = format!("{prefix}{}", hex::encode(stream::random::<16>()?));
    let path = base.join(name);
    fs::DirBuilder::new().mode(0o700).create(&path)?;
    Ok(path)
}

/// Removes a folder we created, making read-only subfolders writable first if needed.
fn wipe(path: &Path) {
    if fs::remove_dir_all(path).is_ok() || !path.exists() {
        return;
    }
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        if entry.file_type().is_dir() {
            let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
        }
    }
    let _ = fs::remove_dir_all(path);
}

/// Wipes staging folders an interrupted unseal left behind (they hold plaintext). Called
/// with the lock held, so none of them belongs to a live process.
fn remove_stale_staging(dir: &Path) -> Result<(), VaultError> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name
            .as_encoded_bytes()
            .starts_with(STAGING_PREFIX.as_bytes())
            && entry.file_type()?.is_dir()
        {
            wipe(&entry.path());
        }
    }
    Ok(())
}

/// Checks a sealed file end to end without writing anything.
fn verify(path: &Path, master: &MasterKey) -> Result<SealReport, VaultError> {
    let mut file = File::open(path)?;
    let header = Header::read(&mut file)?;
    let mut reader = StreamReader::with_master(file, header, master)?;
    archive::unpack(&mut reader, &mut NullSink)
}

/// Archives `src` into `dir/sealed.avatar` atomically: tmp file, fsync, verify, rename, fsync
/// the directory. Returns what was archived, paths included, for plaintext removal.
fn write_sealed(
    src: &Path,
    dir: &Path,
    skip: &dyn Fn(&OsStr) -> bool,
    header: Header,
    master: &MasterKey,
) -> Result<(SealReport, Vec<(PathBuf, bool)>), VaultError> {
    let tmp = dir.join(TMP_FILE);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut writer = StreamWriter::new(file, header, master)?;
        let (report, packed) = archive::pack(src, skip, &mut writer)?;
        writer.finish()?.sync_all()?;
        // Read back before it replaces anything: the plaintext may be deleted next.
        if verify(&tmp, master)? != report {
            return Err(VaultError::Corrupt(
                "the sealed file does not read back as written",
            ));
        }
        fs::rename(&tmp, dir.join(SEALED_FILE))?;
        sync_dir(dir)?;
        Ok((report, packed))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Seals plaintext `dir` into `dir/sealed.avatar`, then removes the plaintext it archived
/// (only once the sealed file is durable and has read back correctly).
pub fn seal(dir: &Path, key: &KeySource) -> Result<SealReport, VaultError> {
    seal_with(
        dir,
        key,
        stream::PBKDF2_ITERATIONS,
        stream::DEFAULT_CHUNK_LOG2,
    )
}

fn seal_with(
    dir: &Path,
    key: &KeySource,
    iterations: u32,
    chunk_log2: u8,
) -> Result<SealReport, VaultError> {
    if !dir.is_dir() {
        return Err(VaultError::NotADirectory(dir.to_path_buf()));
    }
    if is_sealed(dir) {
        return Err(VaultError::AlreadySealed(dir.to_path_buf()));
    }
    let _lock = lock(dir)?;
    remove_stale_staging(dir)?;
    let kdf = Kdf::new(key, iterations)?;
    let master = kdf.master_key(key)?;
    let header = Header::new(kdf, chunk_log2)?;
    let (report, packed) = write_sealed(dir, dir, &is_vault_name, header, &master)?;
    // Contents before their folders: the walk listed folders first.
    for (rel, is_dir) in packed.iter().rev() {
        let path = dir.join(rel);
        let removed = if *is_dir {
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {}
            // Something appeared during sealing: it was not archived, so it stays.
            Err(e) if *is_dir && e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
            Err(source) => return Err(VaultError::PlaintextLeft { path, source }),
        }
    }
    sync_dir(dir)?;
    Ok(report)
}

/// Turns sealed `dir` back into plaintext files (fsynced) and removes `sealed.avatar`. A
/// wrong key or a corrupt file leaves `dir` untouched.
pub fn unseal(dir: &Path, key: &KeySource) -> Result<SealReport, VaultError> {
    if !is_sealed(dir) {
        return Err(VaultError::NotSealed(dir.to_path_buf()));
    }
    let _lock = lock(dir)?;
    remove_stale_staging(dir)?;
    let stage = make_private_dir(dir, STAGING_PREFIX)?;
    let result = (|| {
        let (mut reader, _master) = StreamReader::open(File::open(dir.join(SEALED_FILE))?, key)?;
        let mut sink = FsSink::new(&stage, true);
        let report = archive::unpack(&mut reader, &mut sink)?;
        sink.complete()?;
        let mut names = Vec::new();
        for entry in fs::read_dir(&stage)? {
            let name = entry?.file_name();
            if fs::symlink_metadata(dir.join(&name)).is_ok() {
                return Err(VaultError::WouldOverwrite(dir.join(&name)));
            }
            names.push(name);
        }
        for name in names {
            fs::rename(stage.join(&name), dir.join(&name))?;
        }
        sync_dir(dir)?;
        Ok(report)
    })();
    wipe(&stage);
    let report = result?;
    fs::remove_file(dir.join(SEALED_FILE))?;
    let _ = fs::remove_file(dir.join(LOCK_FILE));
    sync_dir(dir)?;
    Ok(report)
}

/// The private working folder; removing it on drop is what wipes the plaintext.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        wipe(&self.0);
    }
}

/// A sealed data directory opened for work: the plaintext lives in a private RAM folder
/// ([`Unsealed::path`]) until this is dropped. Dropping wipes it and does not reseal: the
/// caller decides whether the changes are kept.
pub struct Unsealed {
    dir: PathBuf,
    kdf: Kdf,
    chunk_log2: u8,
    master: MasterKey,
    /// Serialises `reseal` calls from several threads (they share one tmp file name).
    reseal_lock: Mutex<()>,
    /// Held for the lifetime: another process must not reseal over our work.
    _lock: File,
    // Last field: dropped after everything else (nothing else refers to it, but the order
    // makes the intent plain).
    work: WorkDir,
}

impl std::fmt::Debug for Unsealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsealed")
            .field("dir", &self.dir)
            .field("work", &self.work.0)
            .finish_non_exhaustive()
    }
}

/// `/dev/shm` when present; the temp dir only when the user allowed plaintext on disk.
fn work_base(shm: &Path, allow_disk: bool) -> Result<PathBuf, VaultError> {
    if shm.is_dir() {
        Ok(shm.to_path_buf())
    } else if allow_disk {
        Ok(std::env::temp_dir())
    } else {
        Err(VaultError::NoRamDisk)
    }
}

impl Unsealed {
    /// Decrypts sealed `dir` into `/dev/shm/avatar-<random>` (mode 0700).
    pub fn open(dir: &Path, key: &KeySource) -> Result<Unsealed, VaultError> {
        let allow = std::env::var_os(ALLOW_DISK_ENV).is_some_and(|v| v == "1");
        let base = work_base(Path::new("/dev/shm"), allow)?;
        Self::open_in(dir, key, &base)
    }

    fn open_in(dir: &Path, key: &KeySource, base: &Path) -> Result<Unsealed, VaultError> {
        if !is_sealed(dir) {
            return Err(VaultError::NotSealed(dir.to_path_buf()));
        }
        let lock = lock(dir)?;
        remove_stale_staging(dir)?;
        let (mut reader, master) = StreamReader::open(File::open(dir.join(SEALED_FILE))?, key)?;
        let header = *reader.header();
        // From here on an early return drops `work`, which wipes whatever was written.
        let work = WorkDir(make_private_dir(base, "avatar-")?);
        let mut sink = FsSink::new(&work.0, false);
        archive::unpack(&mut reader, &mut sink)?;
        sink.complete()?;
        Ok(Unsealed {
            dir: dir.to_path_buf(),
            kdf: header.kdf,
            chunk_log2: header.chunk_log2(),
            master,
            reseal_lock: Mutex::new(()),
            _lock: lock,
            work,
        })
    }

    /// The plaintext working folder: point every store here.
    pub fn path(&self) -> &Path {
        &self.work.0
    }

    /// The sealed data directory this came from.
    pub fn sealed_dir(&self) -> &Path {
        &self.dir
    }

    /// Atomically replaces `DIR/sealed.avatar` with the working folder's current contents
    /// (same key and KDF salt, fresh file key). Callable any number of times; the caller
    /// makes sure the stores are quiescent (e.g. SQLite checkpointed) while it runs.
    pub fn reseal(&self) -> Result<(), VaultError> {
        let _guard = self
            .reseal_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let header = Header::new(self.kdf, self.chunk_log2)?;
        write_sealed(&self.work.0, &self.dir, &|_| false, header, &self.master)?;
        Ok(())
    }
}

/// For the fuzz target: parses `data` as a sealed file under `key` and discards the output.
#[doc(hidden)]
pub fn check_sealed_bytes(data: &[u8], key: &KeySource) -> Result<SealReport, VaultError> {
    let (mut reader, _) = StreamReader::open(data, key)?;
    archive::unpack(&mut reader, &mut NullSink)
}

/// For the fuzz target: seals `plain` (taken as archive bytes, valid or not) in 1 KiB chunks,
/// so the parser behind authentication can be reached with arbitrary input.
#[doc(hidden)]
pub fn seal_archive_bytes(plain: &[u8], key: &KeySource) -> Result<Vec<u8>, VaultError> {
    let kdf = Kdf::new(key, 1)?;
    let master = kdf.master_key(key)?;
    let mut writer = StreamWriter::new(Vec::new(), Header::new(kdf, 10)?, &master)?;
    io::Write::write_all(&mut writer, plain)?;
    writer.finish()
}

/// For the fuzz target: parses `data` as a decrypted archive (what follows authentication).
#[doc(hidden)]
pub fn check_archive_bytes(data: &[u8]) -> Result<SealReport, VaultError> {
    archive::unpack(&mut &data[..], &mut NullSink)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write;

    const MARKER: &[u8] = b"PLAINTEXT-MARKER-8c1f2e";

    fn raw_key() -> KeySource {
        KeySource::Raw([0x42; 32])
    }

    fn pass_key() -> KeySource {
        KeySource::Passphrase("tr0ub4dor & 3".into())
    }

    /// (is_dir, mode, contents) by relative path.
    type Snapshot = BTreeMap<PathBuf, (bool, u32, Vec<u8>)>;

    /// Everything under `root` but the vault's own files.
    fn snapshot(root: &Path) -> Snapshot {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(root)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| !(e.depth() == 1 && is_vault_name(e.file_name())))
        {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            let body = if meta.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                (meta.is_dir(), meta.permissions().mode() & 0o777, body),
            );
        }
        out
    }

    fn populate(root: &Path) {
        fs::write(root.join("log.db"), [b"SQLite format 3\0", MARKER].concat()).unwrap();
        fs::write(root.join("empty.bin"), b"").unwrap();
        fs::create_dir_all(root.join("index/segments/deep")).unwrap();
        let blob: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(root.join("index/segments/deep/blob.dat"), &blob).unwrap();
        fs::write(root.join("index/meta.json"), b"{}").unwrap();
        fs::create_dir(root.join("empty_dir")).unwrap();
        let marked_name = format!("blobs/{}", String::from_utf8_lossy(MARKER));
        fs::create_dir(root.join("blobs")).unwrap();
        fs::write(root.join(marked_name), b"named after the marker").unwrap();
        fs::write(root.join("private.key"), b"k").unwrap();
        fs::set_permissions(root.join("private.key"), fs::Permissions::from_mode(0o640)).unwrap();
    }

    fn sealed_dir(key: &KeySource, chunk_log2: u8) -> (tempfile::TempDir, Snapshot) {
        let tmp = tempfile::tempdir().unwrap();
        populate(tmp.path());
        let before = snapshot(tmp.path());
        seal_with(tmp.path(), key, stream::PBKDF2_ITERATIONS, chunk_log2).unwrap();
        (tmp, before)
    }

    fn top_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn round_trip_with_passphrase_and_raw_key() {
        for key in [pass_key(), raw_key()] {
            let tmp = tempfile::tempdir().unwrap();
            populate(tmp.path());
            let before = snapshot(tmp.path());
            let report = seal(tmp.path(), &key).unwrap();
            assert_eq!(report.files, 6);
            assert_eq!(report.bytes, 16 + MARKER.len() as u64 + 70_000 + 2 + 22 + 1);
            assert!(is_sealed(tmp.path()));
            assert_eq!(top_names(tmp.path()), [SEALED_FILE, LOCK_FILE]);
            assert!(matches!(
                seal(tmp.path(), &key),
                Err(VaultError::AlreadySealed(_))
            ));
            assert_eq!(unseal(tmp.path(), &key).unwrap(), report);
            assert!(!is_sealed(tmp.path()));
            assert_eq!(snapshot(tmp.path()), before);
            assert!(!top_names(tmp.path())
                .iter()
                .any(|n| n.starts_with("sealed.avatar")));
        }
    }

    #[test]
    fn fuzz_helpers_agree_on_valid_and_broken_archives() {
        let mut archive = vec![2, 1, 0, b'd'];
        archive.extend_from_slice(&0o755u32.to_le_bytes());
        archive.extend_from_slice(&[1, 3, 0, b'd', b'/', b'f']);
        archive.extend_from_slice(&0o644u32.to_le_bytes());
        archive.extend_from_slice(&3000u64.to_le_bytes());
        archive.extend(std::iter::repeat_n(7u8, 3000));
        archive.push(0);
        let sealed = seal_archive_bytes(&archive, &raw_key()).unwrap();
        let want = SealReport {
            files: 1,
            bytes: 3000,
        };
        assert_eq!(check_archive_bytes(&archive).unwrap(), want);
        assert_eq!(check_sealed_bytes(&sealed, &raw_key()).unwrap(), want);
        let broken = &archive[..archive.len() - 1];
        assert!(check_archive_bytes(broken).is_err());
        let sealed = seal_archive_bytes(broken, &raw_key()).unwrap();
        assert!(check_sealed_bytes(&sealed, &raw_key()).is_err());
    }

    #[test]
    fn the_plaintext_never_reaches_the_disk_after_sealing() {
        let (tmp, _) = sealed_dir(&raw_key(), stream::DEFAULT_CHUNK_LOG2);
        for e in walkdir::WalkDir::new(tmp.path()) {
            let e = e.unwrap();
            assert!(!e
                .file_name()
                .as_encoded_bytes()
                .windows(MARKER.len())
                .any(|w| w == MARKER));
            if e.file_type().is_file() {
                let body = fs::read(e.path()).unwrap();
                assert!(
                    !body.windows(MARKER.len()).any(|w| w == MARKER),
                    "{:?}",
                    e.path()
                );
                assert!(!body.windows(15).any(|w| w == b"SQLite format 3"));
            }
        }
    }

    #[test]
    fn wrong_key_fails_cleanly_and_leaves_dir_sealed() {
        let (tmp, before) = sealed_dir(&pass_key(), stream::DEFAULT_CHUNK_LOG2);
        let sealed = fs::read(tmp.path().join(SEALED_FILE)).unwrap();
        for wrong in [
            KeySource::Passphrase("tr0ub4dor & 4".into()),
            KeySource::Raw([0x42; 32]),
        ] {
            let err = unseal(tmp.path(), &wrong).unwrap_err();
            assert!(
                matches!(err, VaultError::Authentication | VaultError::KeyKind { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("wrong key"), "{err}");
            assert!(Unsealed::open_in(tmp.path(), &wrong, tmp.path()).is_err());
        }
        assert_eq!(
            unseal(tmp.path(), &KeySource::Passphrase("nope".into()))
                .unwrap_err()
                .to_string(),
            "wrong key or corrupted sealed data directory"
        );
        assert_eq!(top_names(tmp.path()), [SEALED_FILE, LOCK_FILE]);
        assert_eq!(fs::read(tmp.path().join(SEALED_FILE)).unwrap(), sealed);
        unseal(tmp.path(), &pass_key()).unwrap();
        assert_eq!(snapshot(tmp.path()), before);
    }

    #[test]
    fn every_flipped_byte_truncation_and_appendix_is_detected() {
        // 1 KiB chunks so the ~71 KiB archive spans many chunks.
        let (tmp, _) = sealed_dir(&raw_key(), 10);
        let sealed = fs::read(tmp.path().join(SEALED_FILE)).unwrap();
        assert!(sealed.len() > 68 * (1024 + 16));
        assert!(check_sealed_bytes(&sealed, &raw_key()).is_ok());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(check_sealed_bytes(&bad, &raw_key()).is_err(), "flip at {i}");
        }
        for cut in (0..sealed.len())
            .step_by(7)
            .chain([sealed.len() - 1, 48 + 1040])
        {
            assert!(
                check_sealed_bytes(&sealed[..cut], &raw_key()).is_err(),
                "cut {cut}"
            );
        }
        for extra in [
            &[0u8][..],
            &[0u8; 16],
            &[0xffu8; 1040],
            &sealed[48..48 + 1040],
        ] {
            let longer = [&sealed[..], extra].concat();
            assert!(check_sealed_bytes(&longer, &raw_key()).is_err());
        }
        // Through the public entry point: refused, and the directory is left as it was.
        let mut bad = sealed.clone();
        let mid = sealed.len() / 2;
        bad[mid] ^= 0x80;
        fs::write(tmp.path().join(SEALED_FILE), &bad).unwrap();
        let err = unseal(tmp.path(), &raw_key()).unwrap_err();
        assert!(matches!(err, VaultError::Authentication), "{err}");
        assert_eq!(top_names(tmp.path()), [SEALED_FILE, LOCK_FILE]);
    }

    #[test]
    fn traversal_inside_an_authentic_archive_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        fs::create_dir(&dir).unwrap();
        let key = raw_key();
        let kdf = Kdf::new(&key, 1).unwrap();
        let master = kdf.master_key(&key).unwrap();
        let mut w = StreamWriter::new(Vec::new(), Header::new(kdf, 10).unwrap(), &master).unwrap();
        w.write_all(&[1]).unwrap();
        w.write_all(&9u16.to_le_bytes()).unwrap();
        w.write_all(b"../escape").unwrap();
        w.write_all(&0o644u32.to_le_bytes()).unwrap();
        w.write_all(&5u64.to_le_bytes()).unwrap();
        w.write_all(b"pwned\0").unwrap();
        fs::write(dir.join(SEALED_FILE), w.finish().unwrap()).unwrap();
        let err = unseal(&dir, &key).unwrap_err();
        assert!(matches!(err, VaultError::BadPath { .. }), "{err}");
        let err = Unsealed::open_in(&dir, &key, tmp.path()).unwrap_err();
        assert!(matches!(err, VaultError::BadPath { .. }), "{err}");
        assert!(!tmp.path().join("escape").exists());
        // Nothing but the data folder is left in tmp (the working folder was wiped).
        assert_eq!(top_names(tmp.path()), ["data"]);
        assert_eq!(top_names(&dir), [SEALED_FILE, LOCK_FILE]);
    }

    #[test]
    fn unsealed_works_in_ram_reseals_and_wipes_on_drop() {
        let (tmp, before) = sealed_dir(&pass_key(), stream::DEFAULT_CHUNK_LOG2);
        let first = fs::read(tmp.path().join(SEALED_FILE)).unwrap();
        let work;
        {
            let open = Unsealed::open(tmp.path(), &pass_key()).unwrap();
            work = open.path().to_path_buf();
            assert!(work.starts_with("/dev/shm") || work.starts_with(std::env::temp_dir()));
            assert_eq!(
                fs::metadata(&work).unwrap().permissions().mode() & 0o777,
                0o700
            );
            assert_eq!(snapshot(&work), before);
            // A second process (here: open file description) is kept out.
            assert!(matches!(
                Unsealed::open(tmp.path(), &pass_key()),
                Err(VaultError::Locked(_))
            ));
            fs::write(work.join("log.db"), b"changed").unwrap();
            fs::write(work.join("index/new.seg"), b"new").unwrap();
            fs::remove_file(work.join("empty.bin")).unwrap();
            open.reseal().unwrap();
            let second = fs::read(tmp.path().join(SEALED_FILE)).unwrap();
            open.reseal().unwrap();
            let third = fs::read(tmp.path().join(SEALED_FILE)).unwrap();
            assert_ne!(first, second);
            // Fresh file key each time: same plaintext, different ciphertext.
            assert_eq!(second.len(), third.len());
            assert_ne!(second, third);
            // Same KDF salt: no PBKDF2 rerun needed to reseal.
            assert_eq!(first[16..32], third[16..32]);
            assert!(!tmp.path().join(TMP_FILE).exists());
            assert_eq!(top_names(tmp.path()), [SEALED_FILE, LOCK_FILE]);
        }
        assert!(!work.exists(), "working folder survived the drop");
        let again = Unsealed::open(tmp.path(), &pass_key()).unwrap();
        let after = snapshot(again.path());
        assert_eq!(after[Path::new("log.db")].2, b"changed");
        assert_eq!(after[Path::new("index/new.seg")].2, b"new");
        assert!(!after.contains_key(Path::new("empty.bin")));
        assert_eq!(after.len(), before.len());
        let work = again.path().to_path_buf();
        drop(again);
        assert!(!work.exists());
    }

    #[test]
    fn drop_without_reseal_discards_changes_and_wipes_read_only_folders() {
        let (tmp, before) = sealed_dir(&raw_key(), stream::DEFAULT_CHUNK_LOG2);
        let base = tempfile::tempdir().unwrap();
        let open = Unsealed::open_in(tmp.path(), &raw_key(), base.path()).unwrap();
        fs::write(open.path().join("log.db"), b"lost").unwrap();
        fs::set_permissions(open.path().join("index"), fs::Permissions::from_mode(0o500)).unwrap();
        drop(open);
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
        unseal(tmp.path(), &raw_key()).unwrap();
        assert_eq!(snapshot(tmp.path()), before);
    }

    #[test]
    fn an_interrupted_unseal_leaves_no_plaintext_behind() {
        let (tmp, before) = sealed_dir(&raw_key(), stream::DEFAULT_CHUNK_LOG2);
        let stale = tmp.path().join(format!("{STAGING_PREFIX}0123"));
        fs::create_dir_all(stale.join("sub")).unwrap();
        fs::write(stale.join("sub/log.db"), MARKER).unwrap();
        drop(Unsealed::open(tmp.path(), &raw_key()).unwrap());
        assert!(!stale.exists());
        fs::create_dir(&stale).unwrap();
        unseal(tmp.path(), &raw_key()).unwrap();
        assert!(!stale.exists());
        assert_eq!(snapshot(tmp.path()), before);
    }

    #[test]
    fn seal_refuses_symlinks_and_keeps_the_plaintext() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("a"), b"a").unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("link")).unwrap();
        let err = seal(tmp.path(), &raw_key()).unwrap_err();
        assert!(matches!(err, VaultError::SpecialFile(_)), "{err}");
        assert!(!is_sealed(tmp.path()));
        assert!(!tmp.path().join(TMP_FILE).exists());
        assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"a");
    }

    #[test]
    fn unseal_refuses_to_overwrite_and_stays_sealed() {
        let (tmp, _) = sealed_dir(&raw_key(), stream::DEFAULT_CHUNK_LOG2);
        fs::write(tmp.path().join("log.db"), b"someone else's").unwrap();
        let err = unseal(tmp.path(), &raw_key()).unwrap_err();
        assert!(matches!(err, VaultError::WouldOverwrite(_)), "{err}");
        assert!(is_sealed(tmp.path()));
        assert_eq!(top_names(tmp.path()), ["log.db", SEALED_FILE, LOCK_FILE]);
        assert!(matches!(
            unseal(tmp.path().join("nope").as_path(), &raw_key()),
            Err(VaultError::NotSealed(_))
        ));
    }

    #[test]
    fn work_base_refuses_disk_unless_allowed() {
        let missing = Path::new("/nonexistent-shm-for-avatar-test");
        assert!(matches!(
            work_base(missing, false),
            Err(VaultError::NoRamDisk)
        ));
        assert_eq!(work_base(missing, true).unwrap(), std::env::temp_dir());
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(work_base(tmp.path(), false).unwrap(), tmp.path());
    }

    #[test]
    fn keys_parse_from_text_files_and_env() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let KeySource::Raw(raw) = parse_key(&format!("{hex64}\n")).unwrap() else {
            panic!("64 hex chars are a raw key")
        };
        assert_eq!(raw[1], 0x11);
        assert_eq!(raw[31], 0xff);
        assert_eq!(
            parse_key("my passphrase \r\n").unwrap(),
            KeySource::Passphrase("my passphrase ".into())
        );
        // 63 or 65 hex characters are a passphrase, not a malformed key.
        assert!(matches!(
            parse_key(&hex64[1..]).unwrap(),
            KeySource::Passphrase(_)
        ));
        assert!(matches!(parse_key("\n"), Err(VaultError::EmptyKey)));
        assert!(!format!("{:?}", parse_key("s3cret").unwrap()).contains("s3cret"));

        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("key");
        fs::write(&file, "from file\n").unwrap();
        let env = Some(OsString::from("from env"));
        assert_eq!(
            key_from(Some(file.clone()), env.clone()).unwrap(),
            Some(KeySource::Passphrase("from file".into()))
        );
        assert_eq!(
            key_from(None, env).unwrap(),
            Some(KeySource::Passphrase("from env".into()))
        );
        assert_eq!(key_from(None, Some(OsString::new())).unwrap(), None);
        assert_eq!(key_from(None, None).unwrap(), None);
        assert!(matches!(
            key_from(Some(tmp.path().join("missing")), None),
            Err(VaultError::KeyFile { .. })
        ));
        fs::write(&file, b"\xff\xfe").unwrap();
        assert!(matches!(
            key_from(Some(file), None),
            Err(VaultError::KeyNotUtf8(_))
        ));
    }

    /// `cargo test -p avatar-vault --release -- --ignored --nocapture throughput`
    #[test]
    #[ignore = "writes ~400 MB; run by hand to measure"]
    fn throughput() {
        let tmp = tempfile::tempdir().unwrap();
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut total = 0u64;
        for i in 0..200 {
            let sub = tmp.path().join(format!("d{}", i % 10));
            fs::create_dir_all(&sub).unwrap();
            let body: Vec<u8> = (0..1024 * 1024)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            fs::write(sub.join(format!("f{i}")), &body).unwrap();
            total += body.len() as u64;
        }
        let mb = total as f64 / 1e6;
        let key = KeySource::Raw([1; 32]);
        let t = std::time::Instant::now();
        seal(tmp.path(), &key).unwrap();
        let s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let open = Unsealed::open(tmp.path(), &key).unwrap();
        let o = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        open.reseal().unwrap();
        let r = t.elapsed().as_secs_f64();
        drop(open);
        let t = std::time::Instant::now();
        unseal(tmp.path(), &key).unwrap();
        let u = t.elapsed().as_secs_f64();
        println!(
            "{mb:.0} MB: seal {:.0} MB/s, open (to RAM) {:.0} MB/s, reseal {:.0} MB/s, unseal {:.0} MB/s",
            mb / s,
            mb / o,
            mb / r,
            mb / u
        );
    }
}
