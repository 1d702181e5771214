//! What the query service needs from the rest of Avatar. The binary implements it over the
//! embedded data directory (and later over the distributed stores); tests implement it over
//! in-memory data. Every method is scoped to one avatar: the router has already checked that
//! the caller may see it, and the implementation must query only that avatar's data.
//!
//! Methods are blocking (SQLite, tantivy, model inference): handlers call them on
//! `tokio::task::spawn_blocking`.

use serde::{Deserialize, Serialize};

/// An avatar as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvatarInfo {
    pub id: String,
    pub name: String,
    /// Whether a finetuned personal model exists (answers otherwise come from the base model).
    pub has_model: bool,
    /// Shown to users of family avatars: the avatar is not the living person.
    pub disclosure: String,
}

/// Search request (`GET /api/search`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchQuery {
    pub q: String,
    /// `bm25`, `vector` or `hybrid` (default).
    pub mode: Option<String>,
    pub k: Option<usize>,
    pub source: Option<String>,
    pub author: Option<String>,
    /// RFC 3339 or YYYY-MM-DD.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// A cited passage: where a fact came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub record: String,
    pub source: String,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    pub author: Option<String>,
    pub title: Option<String>,
    pub snippet: String,
    pub score: f64,
    pub memory: bool,
}

/// One chat turn (OpenAI shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// Generation settings a client may set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskParams {
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub stop: Vec<String>,
    /// Records retrieved as context.
    pub k: usize,
}

impl Default for AskParams {
    fn default() -> Self {
        AskParams {
            max_tokens: 256,
            temperature: 0.7,
            top_p: 0.95,
            stop: Vec::new(),
            k: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub text: String,
    pub citations: Vec<Citation>,
    /// False when the avatar has no trained model yet and the base model answered.
    pub finetuned: bool,
    /// `stop` or `length` (OpenAI's finish_reason).
    pub finish_reason: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// A memory as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryView {
    pub id: String,
    pub text: String,
    pub title: Option<String>,
    pub added_by: Option<String>,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/memories` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMemory {
    pub text: String,
    pub title: Option<String>,
    pub added_by: Option<String>,
}

/// `POST /api/speak` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakRequest {
    pub avatar: String,
    pub text: String,
    /// espeak-ng voice of the base TTS front end.
    pub tts_voice: Option<String>,
}

/// Speech made for `/api/speak`: a WAV file and which voice spoke it.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    pub wav: Vec<u8>,
    /// Which voice, in words ("the base TTS voice (espeak-ng en-us), pitch matched to …").
    pub voice: String,
    /// Whether it is the person's own voice (their trained voice model), not a stand-in.
    pub their_voice: bool,
}

/// Errors a backend reports; mapped to HTTP statuses in exactly one place (the router).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The caller's input is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such avatar, record or memory (404).
    #[error("{0}")]
    NotFound(String),
    /// Something needed is not installed or not built yet (503), e.g. no base model.
    #[error("{0}")]
    Unavailable(String),
    /// Our fault (500); the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

pub type BackendResult<T> = std::result::Result<T, BackendError>;

pub trait Backend: Send + Sync + 'static {
    fn avatars(&self) -> BackendResult<Vec<AvatarInfo>>;
    fn search(&self, avatar: &str, q: &SearchQuery) -> BackendResult<Vec<Citation>>;
    /// Answers the last user turn of `history` as the person, streaming text pieces to
    /// `on_text` (return false to stop, e.g. the client went away).
    fn ask(
        &self,
        avatar: &str,
        history: &[Turn],
        params: &AskParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> BackendResult<Answer>;
    fn memories(&self, avatar: &str) -> BackendResult<Vec<MemoryView>>;
    fn add_memory(&self, avatar: &str, m: &NewMemory) -> BackendResult<MemoryView>;
    /// Removes a memory (a forget tombstone in the log); NotFound if it is not this avatar's.
    fn delete_memory(&self, avatar: &str, id: &str) -> BackendResult<()>;
    /// A record of this avatar, whole (for opening a citation).
    fn record(&self, avatar: &str, id: &str) -> BackendResult<avatar_schemas::Record>;
    /// Ingestion and training state of this avatar (free-form JSON, as `avatar status --json`).
    fn status(&self, avatar: &str) -> BackendResult<serde_json::Value>;
    /// `text` spoken for the avatar: in their voice once a voice model is trained, else in the
    /// base TTS voice (and `Speech` says which).
    fn speak(&self, avatar: &str, text: &str, tts_voice: Option<&str>) -> BackendResult<Speech>;
}
