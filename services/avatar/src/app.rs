//! The embedded deployment: one data directory holding every store, opened together.
//!
//! ```text
//! DIR/log.db                          event log + consumer checkpoints (SQLite)
//! DIR/blobs/ab/cdef…                  artifacts by sha256
//! DIR/records.db                      materialised records (SQLite)
//! DIR/index/                          tantivy full-text index
//! DIR/datasets/<avatar>/records.parquet
//! ```
//!
//! With a Kafka log (`--log kafka://…`) the log lives in the broker and each topic partition
//! has its own stores, written by the processor that owns the partition:
//! `DIR/kafka/<topic>/p<N>/{records.db,index/,vectors/}`; blobs and datasets stay shared.
//!
//! Blobs can live on object storage instead of `DIR/blobs` (`--blobs s3://BUCKET/PREFIX` or
//! `file:///PATH`, also `AVATAR_BLOBS`), so ingest and processors on different machines share
//! them.

use anyhow::{bail, Context, Result};
use avatar_adapters::{
    FsBlobStore, KafkaPartitionLog, ObjectBlobStore, SqliteEventLog, SqliteRecordStore,
    TantivyIndex,
};
use avatar_processor::{Processor, Progress, Report};
use avatar_runtime::{BlobStore, EventLog, RecordStore, SearchIndex};
use avatar_schemas::{AvatarCreated, Payload};
use std::path::{Path, PathBuf};

/// The event log of a data directory: SQLite inside it (embedded), or one partition of a
/// Kafka topic (distributed). Commands use it as a `dyn EventLog`.
pub enum AppLog {
    Sqlite(SqliteEventLog),
    Kafka(KafkaPartitionLog),
}

impl AppLog {
    fn inner(&self) -> &dyn EventLog {
        match self {
            AppLog::Sqlite(l) => l,
            AppLog::Kafka(l) => l,
        }
    }
}

impl EventLog for AppLog {
    fn append(&self, events: &[avatar_schemas::Envelope]) -> avatar_runtime::Result<Vec<u64>> {
        self.inner().append(events)
    }
    fn read(&self, from: u64, max: usize) -> avatar_runtime::Result<Vec<avatar_runtime::Stored>> {
        self.inner().read(from, max)
    }
    fn end(&self) -> avatar_runtime::Result<u64> {
        self.inner().end()
    }
    fn checkpoint(&self, name: &str) -> avatar_runtime::Result<u64> {
        self.inner().checkpoint(name)
    }
    fn commit(
        &self,
        name: &str,
        next: u64,
        output: &[avatar_schemas::Envelope],
    ) -> avatar_runtime::Result<()> {
        self.inner().commit(name, next, output)
    }
    fn read_kinds(
        &self,
        from: u64,
        max: usize,
        kinds: &[&str],
    ) -> avatar_runtime::Result<Vec<avatar_runtime::Stored>> {
        // SQLite filters in storage; keep that.
        self.inner().read_kinds(from, max, kinds)
    }
}

impl AppLog {
    /// Events per kind (SQLite counts in storage; a Kafka partition is scanned).
    pub fn count_by_kind(&self) -> Result<Vec<(String, u64)>> {
        match self {
            AppLog::Sqlite(l) => Ok(l.count_by_kind()?),
            AppLog::Kafka(l) => {
                let mut counts = std::collections::BTreeMap::<String, u64>::new();
                let mut next = 0;
                loop {
                    let batch = l.read(next, 4096)?;
                    let Some(last) = batch.last() else { break };
                    next = last.offset + 1;
                    for s in &batch {
                        *counts.entry(s.event.kind().to_string()).or_default() += 1;
                    }
                }
                Ok(counts.into_iter().collect())
            }
        }
    }

    /// The SQLite log, for what only it can do (physical deletion by `forget`).
    pub fn sqlite(&self, what: &str) -> Result<&SqliteEventLog> {
        match self {
            AppLog::Sqlite(l) => Ok(l),
            AppLog::Kafka(_) => bail!(
                "{what} is not available with a Kafka log yet (Kafka deletes only by retention \
                 or compaction); run it on an embedded data directory"
            ),
        }
    }
}

/// Where a data directory's artifacts are: `DIR/blobs`, or object storage named by
/// `AVATAR_BLOBS` (which `--blobs` and the config file's `blobs` set).
pub enum AppBlobs {
    Fs(FsBlobStore),
    Object(ObjectBlobStore),
}

impl AppBlobs {
    fn open(dir: &Path) -> Result<AppBlobs> {
        match std::env::var("AVATAR_BLOBS") {
            Ok(url) if !url.is_empty() => {
                Ok(AppBlobs::Object(ObjectBlobStore::open(&url).with_context(
                    || "cannot open the blob store given by --blobs / AVATAR_BLOBS",
                )?))
            }
            _ => Ok(AppBlobs::Fs(
                FsBlobStore::open(&dir.join("blobs"))
                    .with_context(|| format!("cannot open the blob store in {}", dir.display()))?,
            )),
        }
    }

    fn inner(&self) -> &dyn BlobStore {
        match self {
            AppBlobs::Fs(b) => b,
            AppBlobs::Object(b) => b,
        }
    }

    /// Removes a blob (forget); false when it was not there.
    pub fn delete(&self, sha256: &str) -> avatar_runtime::Result<bool> {
        match self {
            AppBlobs::Fs(b) => b.delete(sha256),
            AppBlobs::Object(b) => b.delete(sha256),
        }
    }

    /// Where the blobs are, for status and messages.
    pub fn location(&self, dir: &Path) -> String {
        match self {
            AppBlobs::Fs(_) => dir.join("blobs").display().to_string(),
            AppBlobs::Object(b) => b.url().to_string(),
        }
    }
}

impl BlobStore for AppBlobs {
    fn put(&self, bytes: &[u8]) -> avatar_runtime::Result<String> {
        self.inner().put(bytes)
    }
    fn get(&self, sha256: &str) -> avatar_runtime::Result<Vec<u8>> {
        self.inner().get(sha256)
    }
    fn contains(&self, sha256: &str) -> avatar_runtime::Result<bool> {
        self.inner().contains(sha256)
    }
}

/// Whether a command opens the vector store (which, embedded, one process holds at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vectors {
    /// It must: the processor that owns the partition, and every embedded command.
    Own,
    /// When it is free; else words-only search with a note (a reader beside a processor).
    IfFree,
    /// Never: commands that only emit events, so they cannot keep it from its owner.
    Skip,
}

pub struct App {
    /// The data directory: blobs, datasets, models, tokens.
    pub dir: PathBuf,
    /// Where the log-derived stores are: `dir` itself, or the Kafka partition's folder.
    pub store_dir: PathBuf,
    pub log: AppLog,
    pub blobs: AppBlobs,
    pub records: SqliteRecordStore,
    pub index: TantivyIndex,
    /// Embedder + vector store, when an embedding model is installed.
    pub semantic: Option<std::sync::Arc<crate::semantic::SemanticParts>>,
    /// Whisper for recordings' clips, loaded the first time a clip waits for it.
    pub speech: SpeechModel,
}

/// The Whisper model of `AVATAR_WHISPER` (a CTranslate2 or Hugging Face folder), else the
/// installed `whisper-tiny.en`; loaded once, on first use.
#[derive(Default)]
pub struct SpeechModel {
    cell: std::sync::OnceLock<Option<avatar_transcribe::Whisper>>,
}

impl SpeechModel {
    pub fn dir() -> PathBuf {
        match std::env::var_os("AVATAR_WHISPER") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => avatar_transcribe::default_model_dir().join(avatar_transcribe::DEFAULT_MODEL),
        }
    }

    /// The model, or why there is none (as a note for the user).
    pub fn load() -> Result<avatar_transcribe::Whisper> {
        let dir = Self::dir();
        avatar_transcribe::Whisper::load(&dir)
            .with_context(|| format!("cannot load the Whisper model in {}", dir.display()))
    }
}

impl avatar_processor::Transcriber for SpeechModel {
    fn whisper(&self) -> Option<&avatar_transcribe::Whisper> {
        self.cell
            .get_or_init(|| match Self::load() {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!(
                        "note: recordings' clips are not transcribed yet ({e:#}); they will be \
                         on a later run once `infra/fetch-models.sh whisper-tiny.en` has run"
                    );
                    None
                }
            })
            .as_ref()
    }
}

impl App {
    /// Opens (creating when needed) the data directory `dir`.
    pub fn open(dir: &Path) -> Result<App> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let log = SqliteEventLog::open(&dir.join("log.db"))
            .with_context(|| format!("cannot open the event log in {}", dir.display()))?;
        Self::open_with(dir, dir, AppLog::Sqlite(log), Vectors::Own)
    }

    /// Opens the stores of one Kafka partition (the one holding the avatar worked on). The
    /// processor that owns the partition holds its embedded vector store (one process at a
    /// time): see [`Vectors`].
    pub fn open_kafka(dir: &Path, log: KafkaPartitionLog, vectors: Vectors) -> Result<App> {
        let store_dir = Self::partition_dir(dir, &log);
        Self::open_with(dir, &store_dir, AppLog::Kafka(log), vectors)
    }

    /// The folder of a Kafka partition's stores.
    pub fn partition_dir(dir: &Path, log: &KafkaPartitionLog) -> PathBuf {
        dir.join("kafka")
            .join(&log.log().config().topic)
            .join(format!("p{}", log.partition()))
    }

    fn open_with(dir: &Path, store_dir: &Path, log: AppLog, vectors: Vectors) -> Result<App> {
        std::fs::create_dir_all(store_dir)
            .with_context(|| format!("cannot create data directory {}", store_dir.display()))?;
        let open_err = |what: &str| format!("cannot open the {what} in {}", store_dir.display());
        let blobs = AppBlobs::open(dir)?;
        let records = SqliteRecordStore::open(&store_dir.join("records.db"))
            .with_context(|| open_err("record store"))?;
        let index =
            TantivyIndex::open(&store_dir.join("index")).with_context(|| open_err("index"))?;
        let opened = match vectors {
            Vectors::Skip => Ok(None),
            Vectors::Own | Vectors::IfFree => crate::semantic::open(store_dir),
        };
        let semantic = match opened {
            Ok(s) => s,
            Err(e) if vectors == Vectors::IfFree => {
                eprintln!(
                    "note: vector store not opened ({e:#}); a running processor owns it, so this \
                     command works without it"
                );
                None
            }
            Err(e) => return Err(e),
        };
        let mut app = App {
            dir: dir.to_path_buf(),
            store_dir: store_dir.to_path_buf(),
            log,
            blobs,
            records,
            index,
            semantic,
            speech: SpeechModel::default(),
        };
        app.repair_index()?;
        Ok(app)
    }

    /// The index may only be ahead of the record store by the batch in flight at a crash. If
    /// it is behind (deleted, or older than the store), rebuild it from the store.
    fn repair_index(&mut self) -> Result<()> {
        let store_at = self.records.checkpoint(avatar_processor::SINK)?;
        if self.index.checkpoint()? >= store_at {
            return Ok(());
        }
        let index_dir = self.store_dir.join("index");
        std::fs::remove_dir_all(&index_dir)
            .with_context(|| format!("cannot remove stale index {}", index_dir.display()))?;
        self.index = TantivyIndex::open(&index_dir)?;
        let mut all = Vec::new();
        for a in self.avatars()? {
            all.extend(self.records.records(&a.avatar_id)?);
        }
        self.index.apply(store_at, &all, &[])?;
        Ok(())
    }

    /// Every avatar in this data directory, in creation order.
    pub fn avatars(&self) -> Result<Vec<AvatarCreated>> {
        let mut out: Vec<AvatarCreated> = Vec::new();
        for s in self.log.all_of_kinds(&["identity.avatar_created"])? {
            if let Payload::AvatarCreated(c) = s.event.payload {
                out.retain(|a| a.avatar_id != c.avatar_id);
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The avatar a command works on: the one named, or the only one.
    pub fn avatar(&self, wanted: Option<&str>) -> Result<AvatarCreated> {
        let all = self.avatars()?;
        match wanted {
            Some(id) => all.into_iter().find(|a| a.avatar_id == id).with_context(|| {
                format!("no avatar `{id}` in {}; create it with `avatar init --name … --id {id}`", self.dir.display())
            }),
            None => match all.len() {
                0 => bail!(
                    "no avatar yet in {}; create one first: avatar init --name \"Their Name\" --alias their@email",
                    self.dir.display()
                ),
                1 => Ok(all.into_iter().next().context("one avatar")?),
                _ => bail!(
                    "this data directory holds {} avatars ({}); choose one with --avatar ID",
                    all.len(),
                    all.iter().map(|a| a.avatar_id.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
        }
    }

    /// Runs the processors to the end of the log and rewrites the Parquet datasets.
    pub fn process(&self, progress: &mut dyn FnMut(Progress)) -> Result<Report> {
        let report = Processor {
            log: &self.log,
            blobs: &self.blobs,
            records: &self.records,
            index: &self.index,
            semantic: self.semantic.as_ref().map(|s| avatar_processor::Semantic {
                store: s.store.as_ref(),
                embedder: &s.embedder,
                chunking: avatar_text::chunk::ChunkConfig::default(),
            }),
            transcriber: Some(&self.speech),
        }
        .run(progress)
        .context("processing the log failed")?;
        self.export_datasets()?;
        Ok(report)
    }

    pub fn dataset_path(&self, avatar: &str) -> PathBuf {
        self.dir
            .join("datasets")
            .join(avatar)
            .join("records.parquet")
    }

    /// Rewrites every avatar's records dataset. Deterministic: the same records give the same
    /// bytes, which is what `replay` promises.
    pub fn export_datasets(&self) -> Result<()> {
        for a in self.avatars()? {
            let path = self.dataset_path(&a.avatar_id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let records = self.records.records(&a.avatar_id)?;
            avatar_adapters::write_records_parquet(&path, &records)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// The per-user default data directory.
pub fn default_data_dir() -> Result<PathBuf> {
    let base =
        dirs::data_dir().context("no per-user data directory on this system; pass --data DIR")?;
    Ok(base.join("avatar"))
}
