//! `avatar serve query` on a Kafka log: one service for every avatar, whichever partition
//! holds it. Each request goes to the stores of its avatar's partition (opened on first use,
//! read beside the processor that writes them); models and queues are shared, so a base model
//! is loaded once however many partitions are served.

use crate::serve::{EmbeddedBackend, Shared};
use avatar_adapters::KafkaLog;
use avatar_query::{
    Answer, AskParams, AvatarInfo, Backend, BackendError, BackendResult, Citation, MemoryView,
    NewMemory, SearchQuery, Turn,
};
use avatar_schemas::Record;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct PartitionedBackend {
    data: PathBuf,
    kafka: Arc<KafkaLog>,
    shared: Arc<Shared>,
    parts: Mutex<HashMap<i32, Arc<EmbeddedBackend>>>,
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    BackendError::Internal(format!("{e:#}"))
}

impl PartitionedBackend {
    pub fn new(data: PathBuf, kafka: Arc<KafkaLog>, base: Option<String>) -> Self {
        PartitionedBackend {
            data,
            kafka,
            shared: Shared::new(base),
            parts: Mutex::new(HashMap::new()),
        }
    }

    fn part(&self, partition: i32) -> BackendResult<Arc<EmbeddedBackend>> {
        let mut parts = self
            .parts
            .lock()
            .map_err(|_| BackendError::Internal("the partition map is poisoned".into()))?;
        if let Some(b) = parts.get(&partition) {
            return Ok(Arc::clone(b));
        }
        let log = self.kafka.partition(partition).map_err(internal)?;
        let app = crate::app::App::open_kafka(&self.data, log, crate::app::Vectors::IfFree)
            .map_err(|e| BackendError::Unavailable(format!("partition {partition}: {e:#}")))?;
        let backend = Arc::new(EmbeddedBackend::with_shared(app, Arc::clone(&self.shared)));
        parts.insert(partition, Arc::clone(&backend));
        Ok(backend)
    }

    /// The backend of the partition holding `avatar`.
    fn of(&self, avatar: &str) -> BackendResult<Arc<EmbeddedBackend>> {
        self.part(self.kafka.partition_of(avatar))
    }
}

impl Backend for PartitionedBackend {
    fn avatars(&self) -> BackendResult<Vec<AvatarInfo>> {
        let mut out = Vec::new();
        for p in 0..self.kafka.partitions() {
            out.extend(self.part(p)?.avatars()?);
        }
        Ok(out)
    }
    fn search(&self, avatar: &str, q: &SearchQuery) -> BackendResult<Vec<Citation>> {
        self.of(avatar)?.search(avatar, q)
    }
    fn ask(
        &self,
        avatar: &str,
        history: &[Turn],
        params: &AskParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> BackendResult<Answer> {
        self.of(avatar)?.ask(avatar, history, params, on_text)
    }
    fn memories(&self, avatar: &str) -> BackendResult<Vec<MemoryView>> {
        self.of(avatar)?.memories(avatar)
    }
    fn add_memory(&self, avatar: &str, m: &NewMemory) -> BackendResult<MemoryView> {
        self.of(avatar)?.add_memory(avatar, m)
    }
    fn delete_memory(&self, avatar: &str, id: &str) -> BackendResult<()> {
        // Forgetting needs the log rewritten, which a Kafka log cannot do yet (see README).
        let _ = (avatar, id);
        Err(BackendError::Unavailable(
            "deleting a memory needs `forget`, which a Kafka log does not support yet".into(),
        ))
    }
    fn record(&self, avatar: &str, id: &str) -> BackendResult<Record> {
        self.of(avatar)?.record(avatar, id)
    }
    fn status(&self, avatar: &str) -> BackendResult<serde_json::Value> {
        self.of(avatar)?.status(avatar)
    }
    fn speak(
        &self,
        avatar: &str,
        text: &str,
        tts_voice: Option<&str>,
    ) -> BackendResult<avatar_query::Speech> {
        self.of(avatar)?.speak(avatar, text, tts_voice)
    }
}
