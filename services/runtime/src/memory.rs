//! In-memory twins of the storage traits, for tests.

use crate::{BlobStore, EventLog, Offset, Result, StoreError, Stored};
use avatar_schemas::Envelope;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

#[derive(Default)]
struct LogState {
    events: Vec<Envelope>,
    keys: HashSet<String>,
    checkpoints: HashMap<String, Offset>,
}

/// An [`EventLog`] in memory with the same semantics as the SQLite one.
#[derive(Default)]
pub struct MemoryEventLog {
    state: Mutex<LogState>,
}

impl MemoryEventLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LogState>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Backend("log mutex poisoned".into()))
    }
}

fn push(state: &mut LogState, events: &[Envelope]) -> Vec<Offset> {
    let mut offsets = Vec::new();
    for e in events {
        if let Some(k) = e.dedup_key() {
            if !state.keys.insert(k) {
                continue;
            }
        }
        offsets.push(state.events.len() as Offset);
        state.events.push(e.clone());
    }
    offsets
}

impl EventLog for MemoryEventLog {
    fn append(&self, events: &[Envelope]) -> Result<Vec<Offset>> {
        Ok(push(&mut *self.lock()?, events))
    }

    fn read(&self, from: Offset, max: usize) -> Result<Vec<Stored>> {
        let s = self.lock()?;
        Ok(s.events
            .iter()
            .enumerate()
            .skip(from as usize)
            .take(max)
            .map(|(i, e)| Stored {
                offset: i as Offset,
                event: e.clone(),
            })
            .collect())
    }

    fn end(&self) -> Result<Offset> {
        Ok(self.lock()?.events.len() as Offset)
    }

    fn checkpoint(&self, name: &str) -> Result<Offset> {
        Ok(self.lock()?.checkpoints.get(name).copied().unwrap_or(0))
    }

    fn commit(&self, name: &str, next: Offset, output: &[Envelope]) -> Result<()> {
        let mut s = self.lock()?;
        push(&mut s, output);
        s.checkpoints.insert(name.to_string(), next);
        Ok(())
    }
}

/// A [`BlobStore`] in memory.
#[derive(Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
}

impl BlobStore for MemoryBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String> {
        let key = crate::sha256_hex(bytes);
        self.blobs
            .lock()
            .map_err(|_| StoreError::Backend("blob mutex poisoned".into()))?
            .entry(key.clone())
            .or_insert_with(|| bytes.to_vec());
        Ok(key)
    }

    fn get(&self, sha256: &str) -> Result<Vec<u8>> {
        self.blobs
            .lock()
            .map_err(|_| StoreError::Backend("blob mutex poisoned".into()))?
            .get(sha256)
            .cloned()
            .ok_or_else(|| StoreError::BlobMissing(sha256.to_string()))
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self
            .blobs
            .lock()
            .map_err(|_| StoreError::Backend("blob mutex poisoned".into()))?
            .contains_key(sha256))
    }
}
