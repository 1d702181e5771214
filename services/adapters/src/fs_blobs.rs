//! Content-addressed blobs as plain files: `dir/ab/cdef…` for sha256 `abcdef…`.
//!
//! The two-character fan-out keeps folders small with hundreds of thousands of artifacts. A
//! blob is written to a temporary file in its final folder, fsynced, then renamed: rename is
//! atomic, so a crash never leaves a partial file under a blob's name, and a name that exists
//! always holds the complete bytes (which is why `put` can skip existing names).

use crate::{sync_dir, temp_name};
use avatar_runtime::{sha256_hex, BlobStore, Result, StoreError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// [`BlobStore`] on a local folder.
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) the store rooted at `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(FsBlobStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the blob `sha256` lives; `None` for anything that is not 64 lowercase hex digits,
    /// so a key can never name a path outside the store.
    fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        let (fan, rest) = crate::blob_key_parts(sha256)?;
        Some(self.dir.join(fan).join(rest))
    }
}

impl FsBlobStore {
    /// Removes the blob `sha256` (forgetting a source); false when it was not there.
    pub fn delete(&self, sha256: &str) -> Result<bool> {
        let Some(path) = self.path_of(sha256) else {
            return Ok(false);
        };
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(folder) = path.parent() {
                    sync_dir(folder)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String> {
        let key = sha256_hex(bytes);
        let path = self
            .path_of(&key)
            .ok_or_else(|| StoreError::Backend(format!("bad blob key {key}")))?;
        if path.is_file() {
            return Ok(key);
        }
        let folder = self.dir.join(&key[..2]);
        fs::create_dir_all(&folder)?;
        let tmp = folder.join(temp_name(&key[2..]));
        let written = (|| -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        sync_dir(&folder)?;
        Ok(key)
    }

    fn get(&self, sha256: &str) -> Result<Vec<u8>> {
        let Some(path) = self.path_of(sha256) else {
            return Err(StoreError::BlobMissing(sha256.to_string()));
        };
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::BlobMissing(sha256.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.path_of(sha256).is_some_and(|p| p.is_file()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use avatar_runtime::conformance::blob_store_suite;

    #[test]
    fn passes_the_blob_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        blob_store_suite(&FsBlobStore::open(&dir.path().join("blobs")).unwrap());
    }

    #[test]
    fn delete_removes_a_blob_once_and_refuses_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = store.put(b"forget me").unwrap();
        let kept = store.put(b"keep me").unwrap();
        assert!(store.delete(&key).unwrap());
        assert!(!store.contains(&key).unwrap());
        assert!(!store.delete(&key).unwrap(), "second delete finds nothing");
        assert!(!store.delete("../../etc/passwd").unwrap());
        assert_eq!(store.get(&kept).unwrap(), b"keep me");
    }

    #[test]
    fn lays_blobs_out_by_prefix_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = store.put(b"abc").unwrap();
        assert_eq!(
            key,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let path = dir.path().join("ba").join(&key[2..]);
        assert_eq!(fs::read(&path).unwrap(), b"abc");
        let names: Vec<_> = fs::read_dir(dir.path().join("ba"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "only the blob, no temp file: {names:?}");
        // A second store on the same folder sees it (it is just files).
        assert!(FsBlobStore::open(dir.path())
            .unwrap()
            .contains(&key)
            .unwrap());
    }

    #[test]
    fn concurrent_puts_of_the_same_bytes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let bytes = vec![7u8; 300_000];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| store.put(&bytes).unwrap());
            }
        });
        assert_eq!(store.get(&sha256_hex(&bytes)).unwrap(), bytes);
    }
}
