//! Content-addressed blobs on object storage (S3 or a local/mounted folder) through
//! `object_store`: the distributed mode's blob store, where processors on several machines
//! must read the bytes an ingest service on another machine wrote.
//!
//! Keys use the same fan-out as [`crate::FsBlobStore`] (`prefix/ab/cdef…`), so a `file://` URL
//! on an embedded data directory's `blobs/` folder reads the blobs it already holds, and a
//! folder can be copied to a bucket (`aws s3 sync DIR/blobs s3://bucket/prefix`) as it is.
//!
//! `object_store` is async; the store keeps a current-thread tokio runtime and blocks on it, as
//! the Qdrant server store does, because the processor and the trait are synchronous.
//!
//! URLs: `file:///abs/path` or `s3://BUCKET[/PREFIX][?key=value&…]`, where the keys are
//! `object_store`'s S3 options (`endpoint`, `region`, `allow_http`, `access_key_id`, …) and
//! everything not given is read from the usual `AWS_*` environment variables (credentials
//! belong there, not in a URL that ends up in logs).

use avatar_runtime::{sha256_hex, BlobStore, Result, StoreError};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::str::FromStr;
use std::sync::Arc;

/// [`BlobStore`] on any `object_store` backend.
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    /// Folder inside the bucket ("" for its root).
    prefix: String,
    /// The URL without its query (which may carry credentials), for messages.
    shown: String,
    rt: tokio::runtime::Runtime,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Bucket, prefix and options of an `s3://` URL.
type S3Parts = (String, String, Vec<(String, String)>);

/// Splits `s3://bucket/some/prefix?a=b` into ("bucket", "some/prefix", [("a", "b")]).
fn split_s3(url: &str) -> std::result::Result<S3Parts, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (location, query) = match rest.split_once('?') {
        Some((l, q)) => (l, q),
        None => (rest, ""),
    };
    let (bucket, prefix) = match location.split_once('/') {
        Some((b, p)) => (b, p.trim_matches('/')),
        None => (location, ""),
    };
    if bucket.is_empty() {
        return Err(format!(
            "{url}: the URL names no bucket (s3://BUCKET/PREFIX)"
        ));
    }
    let mut options = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{url}: option `{pair}` has no value (key=value)"))?;
        options.push((k.to_string(), v.to_string()));
    }
    Ok((bucket.to_string(), prefix.to_string(), options))
}

impl ObjectBlobStore {
    /// Opens the store at `url` (`file:///abs/path` or `s3://BUCKET[/PREFIX][?options]`).
    /// An S3 bucket is listed once here, so a wrong endpoint, bucket or credentials fail at
    /// start with the URL in the message (S3 answers 404 for a missing bucket as for a missing
    /// key: checked later, it would look like lost blobs).
    pub fn open(url: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(backend)?;
        let (store, prefix, shown): (Arc<dyn ObjectStore>, String, String) =
            if let Some(path) = url.strip_prefix("file://") {
                if !path.starts_with('/') {
                    return Err(StoreError::Backend(format!(
                        "{url}: a file:// blob URL needs an absolute path (file:///srv/blobs)"
                    )));
                }
                std::fs::create_dir_all(path)?;
                let local = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| StoreError::Backend(format!("{url}: {e}")))?;
                (Arc::new(local), String::new(), url.to_string())
            } else if url.starts_with("s3://") {
                install_crypto_provider();
                let (bucket, prefix, options) = split_s3(url).map_err(StoreError::Backend)?;
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                for (k, v) in options {
                    let key = AmazonS3ConfigKey::from_str(&k).map_err(|_| {
                        StoreError::Backend(format!(
                            "{url}: unknown S3 option `{k}` (endpoint, region, allow_http, …)"
                        ))
                    })?;
                    builder = builder.with_config(key, v);
                }
                let s3 = builder
                    .build()
                    .map_err(|e| StoreError::Backend(format!("s3://{bucket}: {e}")))?;
                let shown = url.split('?').next().unwrap_or(url).to_string();
                let folder = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
                rt.block_on(s3.list_with_delimiter(folder.as_ref()))
                    .map_err(|e| {
                        StoreError::Backend(format!("{shown}: cannot list the bucket: {e}"))
                    })?;
                (Arc::new(s3), prefix, shown)
            } else {
                return Err(StoreError::Backend(format!(
                    "{url}: unknown blob store (file:///PATH or s3://BUCKET/PREFIX)"
                )));
            };
        Ok(ObjectBlobStore {
            store,
            prefix,
            shown,
            rt,
        })
    }

    /// The URL the store was opened with, less any options.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The object key of blob `sha256` (the file store's layout under the prefix); `None` for
    /// a malformed key, which so never escapes the prefix.
    fn location(&self, sha256: &str) -> Option<ObjectPath> {
        let (fan, rest) = crate::blob_key_parts(sha256)?;
        let key = if self.prefix.is_empty() {
            format!("{fan}/{rest}")
        } else {
            format!("{}/{fan}/{rest}", self.prefix)
        };
        Some(ObjectPath::from(key))
    }

    fn err(&self, what: &str, sha256: &str, e: object_store::Error) -> StoreError {
        StoreError::Backend(format!("{} {what} {sha256}: {e}", self.shown))
    }

    /// Removes the blob `sha256` (forgetting a source); false when it was not there.
    pub fn delete(&self, sha256: &str) -> Result<bool> {
        let Some(location) = self.location(sha256) else {
            return Ok(false);
        };
        if !self.contains(sha256)? {
            return Ok(false);
        }
        self.rt
            .block_on(self.store.delete(&location))
            .map_err(|e| self.err("delete", sha256, e))?;
        Ok(true)
    }
}

impl BlobStore for ObjectBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String> {
        let key = sha256_hex(bytes);
        let location = self
            .location(&key)
            .ok_or_else(|| StoreError::Backend(format!("bad blob key {key}")))?;
        // Content-addressed: a present key holds these very bytes, and a put is atomic in
        // object_store (a single PUT on S3, temp file + rename locally).
        if self.contains(&key)? {
            return Ok(key);
        }
        self.rt
            .block_on(self.store.put(&location, PutPayload::from(bytes.to_vec())))
            .map_err(|e| self.err("put", &key, e))?;
        Ok(key)
    }

    fn get(&self, sha256: &str) -> Result<Vec<u8>> {
        let location = self
            .location(sha256)
            .ok_or_else(|| StoreError::BlobMissing(sha256.to_string()))?;
        let got = self.rt.block_on(async {
            let result = self.store.get(&location).await?;
            result.bytes().await
        });
        match got {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(StoreError::BlobMissing(sha256.to_string()))
            }
            Err(e) => Err(self.err("get", sha256, e)),
        }
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        let Some(location) = self.location(sha256) else {
            return Ok(false);
        };
        match self.rt.block_on(self.store.head(&location)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("head", sha256, e)),
        }
    }
}

/// reqwest is built without a TLS crypto provider of its own (the default would compile
/// aws-lc, minutes on 2 cores); ring, already in the build for rustls elsewhere, serves https.
fn install_crypto_provider() {
    // Err means a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FsBlobStore;
    use avatar_runtime::conformance::blob_store_suite;

    #[test]
    fn s3_urls_split_into_bucket_prefix_and_options() {
        let (b, p, o) = split_s3("s3://bucket/a/b/?endpoint=http://h:9000&region=eu").unwrap();
        assert_eq!((b.as_str(), p.as_str()), ("bucket", "a/b"));
        assert_eq!(
            o,
            vec![
                ("endpoint".to_string(), "http://h:9000".to_string()),
                ("region".to_string(), "eu".to_string())
            ]
        );
        let (b, p, o) = split_s3("s3://bucket").unwrap();
        assert_eq!((b.as_str(), p.as_str(), o.len()), ("bucket", "", 0));
        assert!(split_s3("s3:///x").unwrap_err().contains("no bucket"));
        assert!(split_s3("s3://b?endpoint")
            .unwrap_err()
            .contains("no value"));
    }

    #[test]
    fn bad_urls_say_why() {
        let msg = |url: &str| match ObjectBlobStore::open(url) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{url} opened"),
        };
        assert!(msg("ftp://x").contains("unknown blob store"));
        assert!(msg("file://relative/path").contains("absolute path"));
        assert!(msg("s3://b/p?colour=blue").contains("unknown S3 option `colour`"));
    }

    #[test]
    fn local_object_store_conforms_and_reads_the_file_store_layout() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = ObjectBlobStore::open(&url).unwrap();
        blob_store_suite(&store);

        // A blob written by the embedded file store is found through object_store, and the
        // other way round: the layouts are the same.
        let fs = FsBlobStore::open(dir.path()).unwrap();
        let a = fs.put(b"written by FsBlobStore").unwrap();
        assert_eq!(store.get(&a).unwrap(), b"written by FsBlobStore");
        let b = store.put(b"written by object_store").unwrap();
        assert_eq!(fs.get(&b).unwrap(), b"written by object_store");

        assert!(store.delete(&a).unwrap());
        assert!(!store.delete(&a).unwrap());
        assert!(!fs.contains(&a).unwrap());
        assert!(!store.delete("../../etc/passwd").unwrap());
    }

    /// Runs against an S3 server when `AVATAR_TEST_S3` is set to its endpoint (infra/s3.sh
    /// starts moto's server and creates the bucket `avatar-test`).
    #[test]
    fn s3_object_store_conforms() {
        let Ok(endpoint) = std::env::var("AVATAR_TEST_S3") else {
            eprintln!("AVATAR_TEST_S3 not set: S3 blob store conformance skipped (infra/s3.sh starts one)");
            return;
        };
        let prefix = format!("conformance-{}", uuid::Uuid::new_v4());
        let url = format!(
            "s3://avatar-test/{prefix}?endpoint={endpoint}&allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test"
        );
        let store = ObjectBlobStore::open(&url).unwrap();
        assert_eq!(store.url(), format!("s3://avatar-test/{prefix}"));
        blob_store_suite(&store);
        let key = store.put(b"to be forgotten").unwrap();
        assert!(store.delete(&key).unwrap());
        assert!(!store.contains(&key).unwrap());
        assert!(matches!(store.get(&key), Err(StoreError::BlobMissing(_))));

        // A bucket that does not exist is an error naming the store at open, not missing
        // blobs later.
        let wrong = url.replace("avatar-test", "no-such-bucket");
        match ObjectBlobStore::open(&wrong) {
            Err(StoreError::Backend(msg)) => {
                assert!(msg.contains("s3://no-such-bucket"), "{msg}");
                assert!(!msg.contains("secret_access_key"), "{msg}");
            }
            Err(e) => panic!("expected a backend error, got {e:?}"),
            Ok(_) => panic!("a missing bucket opened"),
        }
    }
}
