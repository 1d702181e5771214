//! The embedded deployment: one data directory holding every store, opened together.
//!
//! ```text
//! DIR/log.db                          event log + consumer checkpoints (SQLite)
//! DIR/blobs/ab/cdef…                  artifacts by sha256
//! DIR/records.db                      materialised records (SQLite)
//! DIR/index/                          tantivy full-text index
//! DIR/datasets/<avatar>/records.parquet
//! ```

use anyhow::{bail, Context, Result};
use avatar_adapters::{FsBlobStore, SqliteEventLog, SqliteRecordStore, TantivyIndex};
use avatar_processor::{Processor, Progress, Report};
use avatar_runtime::{EventLog, RecordStore, SearchIndex};
use avatar_schemas::{AvatarCreated, Payload};
use std::path::{Path, PathBuf};

pub struct App {
    pub dir: PathBuf,
    pub log: SqliteEventLog,
    pub blobs: FsBlobStore,
    pub records: SqliteRecordStore,
    pub index: TantivyIndex,
    /// Embedder + vector store, when an embedding model is installed.
    pub semantic: Option<std::sync::Arc<crate::semantic::SemanticParts>>,
}

impl App {
    /// Opens (creating when needed) the data directory `dir`.
    pub fn open(dir: &Path) -> Result<App> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let open_err = |what: &str| format!("cannot open the {what} in {}", dir.display());
        let log =
            SqliteEventLog::open(&dir.join("log.db")).with_context(|| open_err("event log"))?;
        let blobs =
            FsBlobStore::open(&dir.join("blobs")).with_context(|| open_err("blob store"))?;
        let records = SqliteRecordStore::open(&dir.join("records.db"))
            .with_context(|| open_err("record store"))?;
        let index = TantivyIndex::open(&dir.join("index")).with_context(|| open_err("index"))?;
        let semantic = crate::semantic::open(dir)?;
        let mut app = App {
            dir: dir.to_path_buf(),
            log,
            blobs,
            records,
            index,
            semantic,
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
        let index_dir = self.dir.join("index");
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
                store: &s.store,
                embedder: &s.embedder,
                chunking: avatar_text::chunk::ChunkConfig::default(),
            }),
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
