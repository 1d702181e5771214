//! The query service over the embedded data directory: [`EmbeddedBackend`] implements
//! [`avatar_query::Backend`] with the same stores, search and model the CLI uses, so `avatar up`
//! answers over HTTP exactly what `avatar search` / `avatar ask` answer in the terminal.
//!
//! Also here: the persona card (`DIR/personas/<avatar>.json`: who the person was and how they
//! wrote, used in the system prompt) and the disclosure guardrail: asked whether it is the real
//! person, alive, human or a bot, the avatar's answer starts with the disclosure line.

use crate::app::App;
use anyhow::{Context, Result};
use avatar_llm::chat::ChatMessage;
use avatar_llm::generate::{FinishReason, SamplingParams};
use avatar_llm::qmodel::QLlama;
use avatar_query::{
    Answer, AskParams, AvatarInfo, Backend, BackendError, BackendResult, Citation, MemoryView,
    NewMemory, SearchQuery, Turn,
};
use avatar_runtime::RecordStore;
use avatar_schemas::{AvatarCreated, ForgetTarget, Record, RecordKind};
use avatar_trainer::BaseModel;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

/// The most records one request may retrieve: bounds the work a client can ask for.
const MAX_K: usize = 100;
/// Earlier turns of a conversation kept in the prompt (the model's context is small).
const HISTORY_TURNS: usize = 8;

// ───────────────────────────── persona card ─────────────────────────────

/// Who the avatar is, as its owner describes them. Stored as JSON so it can be edited by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonaCard {
    pub name: String,
    /// Who they were: life, work, people, places.
    #[serde(default)]
    pub about: String,
    /// How they wrote: tone, length, habits, phrases.
    #[serde(default)]
    pub style: String,
    /// The line the avatar starts with when asked whether it is the real person.
    #[serde(default)]
    pub disclosure: String,
}

impl PersonaCard {
    /// The card of an avatar nobody described yet.
    pub fn new(name: &str) -> PersonaCard {
        PersonaCard {
            name: name.to_string(),
            about: String::new(),
            style: String::new(),
            disclosure: default_disclosure(name),
        }
    }
}

pub fn default_disclosure(name: &str) -> String {
    format!("I am an avatar of {name}, built from what they left behind — not {name} themself.")
}

pub fn card_path(data: &Path, avatar: &str) -> PathBuf {
    data.join("personas").join(format!("{avatar}.json"))
}

/// The avatar's card, or the default one when none was written. A hand-edited card with an
/// empty name or disclosure gets the defaults for them (the guardrail never goes blank).
pub fn load_card(data: &Path, avatar: &AvatarCreated) -> Result<PersonaCard> {
    let path = card_path(data, &avatar.avatar_id);
    let mut card = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<PersonaCard>(&bytes)
            .with_context(|| format!("{} is not a persona card", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PersonaCard::new(&avatar.name),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if card.name.trim().is_empty() {
        card.name = avatar.name.clone();
    }
    if card.disclosure.trim().is_empty() {
        card.disclosure = default_disclosure(&card.name);
    }
    Ok(card)
}

/// Writes the card atomically (a crash leaves the old card or the new one).
pub fn save_card(data: &Path, avatar: &str, card: &PersonaCard) -> Result<PathBuf> {
    let path = card_path(data, avatar);
    crate::json_file::write_atomic(&path, card)?;
    Ok(path)
}

/// The system prompt: the persona line the model was trained with, then the card, then the
/// rule the guardrail enforces.
pub fn system_prompt(card: &PersonaCard) -> String {
    let name = &card.name;
    let mut s = crate::llm::persona(name);
    if !card.about.trim().is_empty() {
        s.push_str(&format!("\nWho {name} was: {}", card.about.trim()));
    }
    if !card.style.trim().is_empty() {
        s.push_str(&format!("\nHow {name} wrote: {}", card.style.trim()));
    }
    s.push_str(&format!(
        "\nYou are an avatar built from {name}'s records, not {name}: if asked whether you are \
         really {name}, alive, human or an AI, say so plainly."
    ));
    s
}

/// What replaces a reply that began to recite the avatar's instructions.
pub const WITHHELD: &str = " [withheld: the reply began to repeat the avatar's instructions]";

/// Consecutive words of the system prompt that, found in a reply, count as reciting it. Short
/// enough to catch a recital early, long enough that ordinary replies never trip it.
const LEAK_WORDS: usize = 7;

/// Detects a reply that repeats the system prompt (persona card included): any run of
/// [`LEAK_WORDS`] of its words, compared case- and punctuation-insensitively.
pub struct LeakGuard {
    windows: std::collections::HashSet<String>,
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

impl LeakGuard {
    pub fn new(system_prompt: &str) -> LeakGuard {
        LeakGuard {
            windows: words(system_prompt)
                .windows(LEAK_WORDS)
                .map(|w| w.join(" "))
                .collect(),
        }
    }

    pub fn leaks(&self, reply: &str) -> bool {
        words(reply)
            .windows(LEAK_WORDS)
            .any(|w| self.windows.contains(&w.join(" ")))
    }
}

/// Whether `text` asks the avatar if it is the real person, alive, human, or an AI/bot. A pure
/// function over English patterns: false negatives are possible, the system prompt covers them.
pub fn asks_about_identity(text: &str) -> bool {
    let t: String = text
        .to_lowercase()
        .replace(['’', '\''], "")
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let t = format!(" {} ", t.split_whitespace().collect::<Vec<_>>().join(" "));
    const SUBJECTS: &[&str] = &[
        " are you ",
        " r u ",
        " is this ",
        " is that ",
        " am i talking to ",
        " am i speaking to ",
        " am i speaking with ",
        " am i chatting with ",
        " am i talking with ",
    ];
    const WHAT: &[&str] = &[
        " real ",
        " really ",
        " alive ",
        " dead ",
        " human ",
        " a person ",
        " a real person ",
        " an ai ",
        " ai ",
        " a bot ",
        " bot ",
        " a robot ",
        " a chatbot ",
        " a machine ",
        " a computer ",
        " a program ",
        " an avatar ",
        " a simulation ",
        " the real ",
        " actually ",
        " still alive ",
        " still with us ",
    ];
    SUBJECTS.iter().any(|s| {
        t.match_indices(s).any(|(i, _)| {
            // The pattern must follow the subject closely ("are you real", "are you really
            // Ada", "is this an AI"), not somewhere later in a long sentence.
            let rest = &t[i + s.len() - 1..];
            let window: String = rest.chars().take(24).collect();
            WHAT.iter().any(|w| window.contains(w))
        })
    }) || t.contains(" who am i talking to ")
        || t.contains(" who am i speaking to ")
        || t.contains(" who are you really ")
}

// ───────────────────────────── backend ─────────────────────────────

/// Lets a few generations run at a time, first come first served. Each generation already
/// spreads its matmuls over every core (rayon), so running all queued asks at once only makes
/// them share the CPU: under 100 clients every ask then finished at the very end, near the
/// clients' timeout, and searches starved behind dozens of runnable model threads. In turn,
/// each ask takes about its own time times its place in the queue.
struct Gate {
    /// (tickets handed out, generations finished): ticket `t` may run once
    /// `t < finished + width`, so at most `width` run and they start in arrival order.
    state: Mutex<(u64, u64)>,
    turn: Condvar,
    width: u64,
}

/// Holding one is the right to generate; dropping it (even by a panic) lets the next in.
struct Pass<'a>(&'a Gate);

impl Gate {
    fn new(width: usize) -> Gate {
        Gate {
            state: Mutex::new((0, 0)),
            turn: Condvar::new(),
            width: width.max(1) as u64,
        }
    }

    fn enter(&self) -> BackendResult<Pass<'_>> {
        let poisoned = |_| BackendError::Internal("the generation queue is poisoned".into());
        let mut st = self.state.lock().map_err(poisoned)?;
        let ticket = st.0;
        st.0 += 1;
        while ticket >= st.1 + self.width {
            st = self.turn.wait(st).map_err(poisoned)?;
        }
        Ok(Pass(self))
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        // A poisoned lock still holds the counters: count the finish so the queue moves on.
        let mut st = match self.0.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.1 += 1;
        drop(st);
        self.0.turn.notify_all();
    }
}

/// Generations at a time: half the cores (each one uses several), at least one.
fn generation_width() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

/// A loaded answering model, with the stamp of the adapter it came from: a later
/// `avatar train llm` changes the stamp and the next question reloads it.
struct CachedModel {
    stamp: Option<SystemTime>,
    model: Arc<QLlama>,
    finetuned: bool,
}

/// [`Backend`] over the embedded data directory. The stores hold SQLite connections (not
/// `Sync`), so the [`App`] sits behind a mutex held only for store work; generation runs
/// outside it on the cached, shared model.
pub struct EmbeddedBackend {
    dir: PathBuf,
    app: Mutex<App>,
    /// The embedder and vector store, shared outside the data directory's lock so searches
    /// embed concurrently (see [`crate::semantic::search_with`]).
    semantic: Option<Arc<crate::semantic::SemanticParts>>,
    /// Models and queues, shared by the backends of every Kafka partition of one service.
    shared: Arc<Shared>,
    /// Whether this process runs the processors after appending (embedded). With a Kafka log
    /// the processor service owns the partition's stores, so a new memory appears once it ran.
    processes: bool,
}

/// What one query service holds once, whatever number of partitions it serves.
pub struct Shared {
    /// Base model: `None` = the default (`infra/fetch-models.sh smollm2`).
    base_arg: Option<String>,
    base: Mutex<Option<Arc<BaseModel>>>,
    models: Mutex<HashMap<String, CachedModel>>,
    generations: Gate,
    /// Searches (their embedding work) one at a time, in arrival order. candle runs every
    /// op of every thread through one CPU pool behind a lock; dozens of concurrent searches
    /// beside a generation thrash that lock (measured: search p50 53 s with 80 searching and
    /// 20 asking clients), while a queue keeps each search to its own ~0.1 s.
    searches: Gate,
}

impl Shared {
    pub fn new(base: Option<String>) -> Arc<Shared> {
        Arc::new(Shared {
            base_arg: base,
            base: Mutex::new(None),
            models: Mutex::new(HashMap::new()),
            generations: Gate::new(generation_width()),
            searches: Gate::new(1),
        })
    }
}

fn internal(e: impl std::fmt::Display) -> BackendError {
    BackendError::Internal(format!("{e:#}"))
}

fn internal_anyhow(e: anyhow::Error) -> BackendError {
    BackendError::Internal(format!("{e:#}"))
}

/// A date bound from the API: like the CLI's, but the caller's fault when malformed.
/// A date bound for the CLI: RFC 3339, or YYYY-MM-DD (start of day, or its end).
pub fn parse_date(s: &str, end_of_day: bool) -> Result<chrono::DateTime<chrono::Utc>> {
    parse_bound(s, end_of_day).map_err(|e| anyhow::anyhow!("{e}"))
}

fn parse_bound(s: &str, end_of_day: bool) -> BackendResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        BackendError::BadRequest(format!("`{s}` is not a date: use YYYY-MM-DD or RFC 3339"))
    })?;
    let t = if end_of_day {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    t.map(|t| t.and_utc())
        .ok_or_else(|| BackendError::BadRequest(format!("`{s}` is not a date")))
}

fn citation(h: &crate::semantic::Hit) -> Citation {
    Citation {
        record: h.record.id.clone(),
        source: h.record.source.clone(),
        timestamp: h.record.timestamp,
        author: h.record.author.clone(),
        title: h.record.title.clone(),
        snippet: h.cited.snippet.clone(),
        score: h.cited.score,
        memory: h.cited.memory,
    }
}

fn memory_view(r: &Record) -> MemoryView {
    MemoryView {
        id: r.id.clone(),
        text: r.text.clone(),
        title: r.title.clone(),
        added_by: r.author.clone(),
        timestamp: r.timestamp,
    }
}

impl EmbeddedBackend {
    pub fn new(app: App, base: Option<String>) -> EmbeddedBackend {
        Self::with_shared(app, Shared::new(base))
    }

    /// A backend over one set of stores (a Kafka partition's) sharing models and queues.
    pub fn with_shared(app: App, shared: Arc<Shared>) -> EmbeddedBackend {
        EmbeddedBackend {
            dir: app.dir.clone(),
            semantic: app.semantic.clone(),
            processes: matches!(app.log, crate::app::AppLog::Sqlite(_)),
            app: Mutex::new(app),
            shared,
        }
    }

    fn app(&self) -> BackendResult<MutexGuard<'_, App>> {
        self.app
            .lock()
            .map_err(|_| BackendError::Internal("the data directory lock is poisoned".into()))
    }

    /// Hybrid/BM25/vector search with the data directory locked only for the store reads.
    fn search_unlocked(
        &self,
        avatar: &str,
        query: &str,
        mode: avatar_retrieve::Mode,
        k: usize,
        filters: &crate::semantic::Filters,
    ) -> BackendResult<Vec<crate::semantic::Hit>> {
        let _turn = self.shared.searches.enter()?;
        let lock = || self.app().map_err(anyhow::Error::from);
        crate::semantic::search_with(
            &lock,
            self.semantic.as_deref(),
            avatar,
            query,
            mode,
            k,
            filters,
        )
        .map_err(internal_anyhow)
    }

    /// The avatar, or NotFound (the router checked the token, not that the avatar exists).
    fn avatar(&self, app: &App, id: &str) -> BackendResult<AvatarCreated> {
        app.avatars()
            .map_err(internal_anyhow)?
            .into_iter()
            .find(|a| a.avatar_id == id)
            .ok_or_else(|| BackendError::NotFound(format!("no avatar `{id}`")))
    }

    /// The base model, loaded on first use and kept. Unavailable when it is not installed.
    fn base(&self) -> BackendResult<Arc<BaseModel>> {
        let mut slot = self
            .shared
            .base
            .lock()
            .map_err(|_| BackendError::Internal("the model lock is poisoned".into()))?;
        if let Some(b) = slot.as_ref() {
            return Ok(Arc::clone(b));
        }
        match avatar_trainer::resolve_base(self.shared.base_arg.as_deref()) {
            Ok(_) => {}
            Err(avatar_trainer::TrainerError::NoBase(msg)) => {
                return Err(BackendError::Unavailable(format!(
                    "no base language model installed; run infra/fetch-models.sh smollm2 ({msg})"
                )))
            }
            Err(e) => return Err(internal(e)),
        }
        let base = Arc::new(
            crate::llm::load_base(self.shared.base_arg.as_deref(), true)
                .map_err(internal_anyhow)?,
        );
        *slot = Some(Arc::clone(&base));
        Ok(base)
    }

    /// The avatar's answering model (finetuned when trained, else the base), loaded once per
    /// avatar and reloaded when its adapter changes.
    fn model(&self, avatar: &str, base: &BaseModel) -> BackendResult<(Arc<QLlama>, bool)> {
        let card = crate::llm::card_path(&self.dir, avatar);
        let stamp = std::fs::metadata(&card).and_then(|m| m.modified()).ok();
        let mut models = self
            .shared
            .models
            .lock()
            .map_err(|_| BackendError::Internal("the model lock is poisoned".into()))?;
        if let Some(c) = models.get(avatar) {
            if c.stamp == stamp {
                return Ok((Arc::clone(&c.model), c.finetuned));
            }
        }
        let (model, finetuned) =
            crate::llm::answering_model(&self.dir, avatar, base, true).map_err(internal_anyhow)?;
        let model = Arc::new(model);
        models.insert(
            avatar.to_string(),
            CachedModel {
                stamp,
                model: Arc::clone(&model),
                finetuned,
            },
        );
        Ok((model, finetuned))
    }

    /// Runs the processors so what was just appended is searchable at once.
    fn process(app: &App) -> BackendResult<()> {
        app.process(&mut |_| {})
            .map(|_| ())
            .map_err(internal_anyhow)
    }
}

impl Backend for EmbeddedBackend {
    fn avatars(&self) -> BackendResult<Vec<AvatarInfo>> {
        let app = self.app()?;
        let mut out = Vec::new();
        for a in app.avatars().map_err(internal_anyhow)? {
            let card = load_card(&self.dir, &a).map_err(internal_anyhow)?;
            let has_model = crate::llm::card_path(&self.dir, &a.avatar_id).is_file();
            out.push(AvatarInfo {
                id: a.avatar_id,
                name: a.name,
                has_model,
                disclosure: card.disclosure,
            });
        }
        Ok(out)
    }

    fn search(&self, avatar: &str, q: &SearchQuery) -> BackendResult<Vec<Citation>> {
        if q.q.trim().is_empty() {
            return Err(BackendError::BadRequest("the query `q` is empty".into()));
        }
        let m = q.mode.as_deref().unwrap_or("hybrid");
        let mode = m.parse::<avatar_retrieve::Mode>().map_err(|_| {
            BackendError::BadRequest(format!("mode must be bm25, vector or hybrid, not `{m}`"))
        })?;
        let filters = crate::semantic::Filters {
            source: q.source.clone(),
            author: q.author.clone(),
            since: q
                .since
                .as_deref()
                .map(|d| parse_bound(d, false))
                .transpose()?,
            until: q
                .until
                .as_deref()
                .map(|d| parse_bound(d, true))
                .transpose()?,
        };
        let k = q.k.unwrap_or(10).clamp(1, MAX_K);
        self.avatar(&*self.app()?, avatar)?;
        let mode = match (mode, self.semantic.is_some()) {
            (avatar_retrieve::Mode::Vector, false) => {
                return Err(BackendError::Unavailable(
                    "vector search needs the embedding model; run infra/fetch-models.sh".into(),
                ))
            }
            // Hybrid without vectors is words only (the CLI prints a note; here it is silent).
            (avatar_retrieve::Mode::Hybrid, false) => avatar_retrieve::Mode::Bm25,
            (m, _) => m,
        };
        let hits = self.search_unlocked(avatar, &q.q, mode, k, &filters)?;
        Ok(hits.iter().map(citation).collect())
    }

    fn ask(
        &self,
        avatar: &str,
        history: &[Turn],
        params: &AskParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> BackendResult<Answer> {
        let Some((last, earlier)) = history.split_last() else {
            return Err(BackendError::BadRequest("no messages".into()));
        };
        if last.role != "user" || last.content.trim().is_empty() {
            return Err(BackendError::BadRequest(
                "the last message must be the user's, with some text".into(),
            ));
        }
        let question = last.content.as_str();
        let card = {
            let app = self.app()?;
            let a = self.avatar(&app, avatar)?;
            load_card(&self.dir, &a).map_err(internal_anyhow)?
        };
        // As `crate::llm::retrieve`, but embedding outside the lock.
        let hits = match (params.k.min(MAX_K), self.semantic.is_some()) {
            (0, _) => Vec::new(),
            (k, true) => self.search_unlocked(
                avatar,
                question,
                avatar_retrieve::Mode::Hybrid,
                k,
                &crate::semantic::Filters::default(),
            )?,
            (k, false) => self.search_unlocked(
                avatar,
                question,
                avatar_retrieve::Mode::Bm25,
                k,
                &crate::semantic::Filters::default(),
            )?,
        };
        let base = self.base()?;
        let (model, finetuned) = self.model(avatar, &base)?;
        let system = system_prompt(&card);
        let guard = LeakGuard::new(&system);
        let mut msgs = vec![ChatMessage::system(system)];
        let turns: Vec<&Turn> = earlier
            .iter()
            .filter(|t| t.role == "user" || t.role == "assistant")
            .collect();
        for t in turns.iter().skip(turns.len().saturating_sub(HISTORY_TURNS)) {
            msgs.push(if t.role == "user" {
                ChatMessage::user(t.content.clone())
            } else {
                ChatMessage::assistant(t.content.clone())
            });
        }
        msgs.push(ChatMessage::user(crate::llm::grounded_question(
            question, &hits,
        )));
        let prefix = if asks_about_identity(question) {
            format!("{} ", card.disclosure)
        } else {
            String::new()
        };
        let citations = hits.iter().map(citation).collect();
        if !prefix.is_empty() && !on_text(&prefix) {
            return Ok(Answer {
                text: prefix.trim().to_string(),
                citations,
                finetuned,
                finish_reason: "stop".into(),
                prompt_tokens: 0,
                completion_tokens: 0,
            });
        }
        let sampling = SamplingParams {
            temperature: params.temperature,
            top_p: params.top_p,
            max_new_tokens: params.max_tokens,
            stop: params.stop.clone(),
            ..SamplingParams::default()
        };
        let _turn = self.shared.generations.enter()?;
        // The reply so far is checked before each piece goes out: a reply that starts reciting
        // the instructions (a hostile record asked for them) is cut there.
        let mut so_far = String::new();
        let mut leaked = false;
        let g = crate::llm::generate_reply(&base, &model, &msgs, &prefix, &sampling, |t| {
            so_far.push_str(t);
            if guard.leaks(&so_far) {
                leaked = true;
                return false;
            }
            on_text(t)
        })
        .map_err(internal_anyhow)?;
        if leaked {
            on_text(WITHHELD);
            return Ok(Answer {
                text: WITHHELD.trim().to_string(),
                citations,
                finetuned,
                finish_reason: "stop".into(),
                prompt_tokens: g.prompt_tokens,
                completion_tokens: g.tokens.len(),
            });
        }
        Ok(Answer {
            text: format!("{prefix}{}", g.text).trim().to_string(),
            citations,
            finetuned,
            finish_reason: match g.finish_reason {
                FinishReason::Length => "length",
                FinishReason::Stop | FinishReason::Eos | FinishReason::Cancelled => "stop",
            }
            .into(),
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.tokens.len(),
        })
    }

    fn memories(&self, avatar: &str) -> BackendResult<Vec<MemoryView>> {
        let app = self.app()?;
        self.avatar(&app, avatar)?;
        Ok(app
            .records
            .records(avatar)
            .map_err(internal)?
            .iter()
            .filter(|r| r.kind == RecordKind::Memory)
            .map(memory_view)
            .collect())
    }

    fn add_memory(&self, avatar: &str, m: &NewMemory) -> BackendResult<MemoryView> {
        if m.text.trim().is_empty() {
            return Err(BackendError::BadRequest("a memory needs some text".into()));
        }
        let app = self.app()?;
        self.avatar(&app, avatar)?;
        let event = avatar_ingest::add_memory(
            &app.log,
            avatar,
            &m.text,
            m.title.clone(),
            m.added_by.clone(),
        )
        .map_err(|e| match e {
            avatar_ingest::IngestError::EmptyMemory => BackendError::BadRequest(e.to_string()),
            e => internal(e),
        })?;
        let id = avatar_schemas::record_id(&event.id.to_string(), 0);
        if !self.processes {
            // The partition's processor materialises it shortly; answer from the event.
            return Ok(MemoryView {
                id,
                text: m.text.clone(),
                title: m.title.clone(),
                added_by: m.added_by.clone(),
                timestamp: Some(event.occurred_at),
            });
        }
        Self::process(&app)?;
        match app.records.get(&id).map_err(internal)? {
            Some(r) => Ok(memory_view(&r)),
            None => Err(BackendError::Internal(format!(
                "memory {id} was appended but not materialised"
            ))),
        }
    }

    fn delete_memory(&self, avatar: &str, id: &str) -> BackendResult<()> {
        let app = self.app()?;
        self.avatar(&app, avatar)?;
        match app.records.get_of(avatar, id).map_err(internal)? {
            Some(r) if r.kind == RecordKind::Memory => {}
            _ => return Err(BackendError::NotFound(format!("no memory `{id}`"))),
        }
        crate::forget::forget(
            &app,
            avatar,
            ForgetTarget::Record(id.to_string()),
            Some("memory deleted through the API".into()),
            "api:memories",
        )
        .map_err(internal_anyhow)?;
        Ok(())
    }

    fn record(&self, avatar: &str, id: &str) -> BackendResult<Record> {
        let app = self.app()?;
        // Another avatar's record is indistinguishable from a missing one.
        match app.records.get_of(avatar, id).map_err(internal)? {
            Some(r) => Ok(r),
            None => Err(BackendError::NotFound(format!("no record `{id}`"))),
        }
    }

    fn status(&self, avatar: &str) -> BackendResult<serde_json::Value> {
        let app = self.app()?;
        self.avatar(&app, avatar)?;
        let mut s = crate::commands::status_json(&app).map_err(internal_anyhow)?;
        scope_status(&mut s, avatar);
        Ok(s)
    }

    fn speak(
        &self,
        avatar: &str,
        text: &str,
        tts_voice: Option<&str>,
    ) -> BackendResult<avatar_query::Speech> {
        let espeak = avatar_voice::tts::Espeak::find()
            .map_err(|e| BackendError::Unavailable(format!("no TTS front end: {e}")))?;
        // Their own voice model when the avatar has one.
        if let Some((pth, index)) = crate::voice::avatars_voice_model(&self.dir, avatar) {
            let (target, name) = {
                let app = self.app()?;
                let a = self.avatar(&app, avatar)?;
                let target = crate::voice::persons_median_pitch(
                    &app,
                    &a,
                    avatar_voice::speakers::DEFAULT_THRESHOLD,
                )
                .map_err(internal_anyhow)?;
                (target, a.name)
            };
            let spoken = crate::voice::say_in_their_voice(
                &espeak,
                "auto",
                text,
                &pth,
                index.as_deref(),
                0.75,
                target,
                &name,
            )
            .map_err(|e| BackendError::Unavailable(format!("{e:#}")))?;
            return Ok(spoken.into());
        }
        // A named espeak voice asks for espeak-ng; otherwise Piper when installed.
        let front = match tts_voice {
            Some(_) => crate::voice::BaseVoice::Espeak,
            None => crate::voice::base_voice("auto").map_err(internal_anyhow)?,
        };
        let tts_voice = tts_voice.unwrap_or(crate::voice::DEFAULT_TTS_VOICE);
        let spoken = match front {
            crate::voice::BaseVoice::Piper(piper) => {
                let name = {
                    let app = self.app()?;
                    self.avatar(&app, avatar)?.name
                };
                crate::voice::say_piper(piper, &espeak, text, &name)
            }
            crate::voice::BaseVoice::Espeak => {
                let (pitch, note, name) = {
                    let app = self.app()?;
                    let a = self.avatar(&app, avatar)?;
                    let (pitch, note) = crate::voice::base_voice_pitch(
                        &app,
                        &a,
                        &espeak,
                        tts_voice,
                        avatar_voice::speakers::DEFAULT_THRESHOLD,
                    )
                    .map_err(internal_anyhow)?;
                    (pitch, note, a.name)
                };
                crate::voice::say(&espeak, text, tts_voice, pitch, &note, &name)
            }
        }
        .map_err(|e| BackendError::BadRequest(format!("{e:#}")))?;
        Ok(spoken.into())
    }
}

/// Keeps only `avatar`'s part of `avatar status --json` (and not the server's paths).
fn scope_status(s: &mut serde_json::Value, avatar: &str) {
    if let Some(obj) = s.as_object_mut() {
        obj.remove("data_dir");
        if let Some(list) = obj.get_mut("avatars").and_then(|v| v.as_array_mut()) {
            list.retain(|a| a["id"] == avatar);
            for a in list.iter_mut() {
                if let Some(a) = a.as_object_mut() {
                    a.remove("dataset");
                }
            }
        }
        if let Some(list) = obj.get_mut("dead_letters").and_then(|v| v.as_array_mut()) {
            list.retain(|d| d["avatar"] == avatar);
        }
        // Event counts of the whole log would tell one avatar's viewer about the others.
        if let Some(log) = obj.get_mut("log").and_then(|v| v.as_object_mut()) {
            log.remove("events_by_kind");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_gate_admits_width_at_a_time_in_arrival_order() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let gate = Arc::new(Gate::new(2));
        let (running, peak, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let first = gate.enter().unwrap();
        let second = gate.enter().unwrap();
        let mut threads = Vec::new();
        for i in 0..6usize {
            let (g, running, peak, done) = (
                Arc::clone(&gate),
                Arc::clone(&running),
                Arc::clone(&peak),
                Arc::clone(&done),
            );
            threads.push(std::thread::spawn(move || {
                let _p = g.enter().unwrap();
                // FIFO, two wide: waiter i (ticket i + 2) needs i + 1 finished before it, the
                // two held passes included, so at least i - 1 of the waiters before it.
                let finished_before = done.load(SeqCst);
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(10));
                running.fetch_sub(1, SeqCst);
                done.fetch_add(1, SeqCst);
                (i, finished_before)
            }));
            // Each waiter takes its ticket before the next one starts.
            while gate.state.lock().unwrap().0 < i as u64 + 3 {
                std::thread::yield_now();
            }
        }
        // Both places are held: nobody gets in until one is given back.
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert_eq!(running.load(SeqCst), 0);
        drop(first);
        drop(second);
        for t in threads {
            let (i, finished_before) = t.join().unwrap();
            assert!(finished_before + 1 >= i, "waiter {i} jumped the queue");
        }
        assert!(peak.load(SeqCst) <= 2, "more than two at once");
        assert_eq!(done.load(SeqCst), 6);
    }

    #[test]
    fn the_leak_guard_catches_a_recited_prompt_and_nothing_else() {
        let card = PersonaCard {
            about: "Grew up in Vigo, worked forty years at the harbour office".into(),
            style: "Short notes, signs off with 'un abrazo'".into(),
            ..PersonaCard::new("Rosa Pereira")
        };
        let guard = LeakGuard::new(&system_prompt(&card));
        // Verbatim, re-cased and re-punctuated, or embedded in other text: caught.
        assert!(guard.leaks(&system_prompt(&card)));
        assert!(guard.leaks(
            "Sure! my instructions: WHO ROSA PEREIRA WAS -- grew up in Vigo, worked forty years..."
        ));
        assert!(guard.leaks("I am told: reply as rosa pereira would in their own words"));
        // Ordinary replies that share words, but never seven in a row: fine.
        for ok in [
            "I grew up in Vigo and worked at the harbour office for forty years. Un abrazo!",
            "Rosa Pereira would say the tide comes in twice a day.",
            "",
            "words",
        ] {
            assert!(!guard.leaks(ok), "{ok}");
        }
        assert!(!LeakGuard::new("").leaks("anything at all goes here in this reply"));
    }

    #[test]
    fn identity_questions_are_recognised() {
        for q in [
            "Are you real?",
            "are you really Ada?",
            "Are you alive?",
            "Are you still alive, grandma?",
            "Are you human?",
            "Are you an AI?",
            "are you a bot",
            "Is this a chatbot?",
            "Am I talking to a real person?",
            "am i talking to a machine?",
            "Are you actually Ada Lovelace?",
            "Is this really you, Ada?",
            "You're not a robot, are you? Are you a robot?",
            "Is that really you?",
            "Who am I talking to?",
            "Are you the real Ada?",
            "ARE YOU AI??",
        ] {
            assert!(asks_about_identity(q), "missed: {q}");
        }
    }

    #[test]
    fn ordinary_questions_are_not_identity_questions() {
        for q in [
            "What did you think of the Analytical Engine?",
            "How are you feeling today?",
            "Tell me about Babbage.",
            "Are you going to the concert?",
            "What is real analysis?",
            "Is this the right way to compute Bernoulli numbers?",
            "",
        ] {
            assert!(!asks_about_identity(q), "false alarm: {q}");
        }
    }

    #[test]
    fn the_card_defaults_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ada = AvatarCreated {
            avatar_id: "ada".into(),
            name: "Ada Lovelace".into(),
            aliases: vec![],
        };
        let card = load_card(dir.path(), &ada).unwrap();
        assert_eq!(card, PersonaCard::new("Ada Lovelace"));
        assert_eq!(
            card.disclosure,
            "I am an avatar of Ada Lovelace, built from what they left behind — not Ada Lovelace themself."
        );
        let mut edited = card.clone();
        edited.about = "Mathematician, wrote the first published program.".into();
        edited.style = "Long sentences, poetical science.".into();
        edited.disclosure = String::new();
        save_card(dir.path(), "ada", &edited).unwrap();
        let back = load_card(dir.path(), &ada).unwrap();
        assert_eq!(back.about, edited.about);
        // A blank disclosure falls back to the default: the guardrail never goes silent.
        assert_eq!(back.disclosure, default_disclosure("Ada Lovelace"));
        let prompt = system_prompt(&back);
        assert!(prompt.starts_with(&crate::llm::persona("Ada Lovelace")));
        assert!(prompt.contains("Who Ada Lovelace was: Mathematician"));
        assert!(prompt.contains("How Ada Lovelace wrote: Long sentences"));
        std::fs::write(card_path(dir.path(), "ada"), b"{not json").unwrap();
        assert!(load_card(dir.path(), &ada).is_err());
    }

    #[test]
    fn status_is_scoped_to_one_avatar() {
        let mut s = serde_json::json!({
            "data_dir": "/secret/path",
            "avatars": [{"id": "ada", "dataset": "/x"}, {"id": "bob"}],
            "dead_letters": [{"avatar": "ada"}, {"avatar": "bob"}],
            "log": {"end_offset": 3, "events_by_kind": {"a": 1}},
        });
        scope_status(&mut s, "ada");
        assert_eq!(
            s,
            serde_json::json!({
                "avatars": [{"id": "ada"}],
                "dead_letters": [{"avatar": "ada"}],
                "log": {"end_offset": 3},
            })
        );
    }

    #[test]
    fn date_bounds_are_the_callers_fault_when_malformed() {
        assert!(matches!(
            parse_bound("yesterday", false),
            Err(BackendError::BadRequest(_))
        ));
        assert_eq!(
            parse_bound("2024-03-01", true).unwrap().to_rfc3339(),
            "2024-03-01T23:59:59+00:00"
        );
    }
}
