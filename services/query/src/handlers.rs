//! The Avatar API handlers and what every handler shares: who the caller is, what they may do
//! on the avatar they address, and body/query parsing with clear 4xx messages.
//!
//! The order in every handler is: token (401) → input (400/413) → grant on the avatar (404,
//! the same answer whether the avatar exists or not) → role (403) → backend. The backend is
//! never called with an avatar the caller may not see.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{bearer, Role};
use crate::backend::{AskParams, AvatarInfo, Backend, BackendResult, NewMemory, SearchQuery, Turn};
use crate::error::ApiError;
use crate::AppState;

/// The grants of the request's token.
pub(crate) struct Caller {
    grants: Vec<(String, Role)>,
    /// `token:<id>`: who this is in the audit log.
    actor: String,
}

/// What a grant check is for: the action and what was asked, for the audit log.
pub(crate) struct Access<'a> {
    pub action: &'a str,
    pub detail: &'a str,
}

impl<'a> Access<'a> {
    pub(crate) fn new(action: &'a str, detail: &'a str) -> Access<'a> {
        Access { action, detail }
    }
}

impl Caller {
    /// The strongest role this caller holds on `avatar`.
    pub(crate) fn role_on(&self, avatar: &str) -> Option<Role> {
        self.grants
            .iter()
            .filter(|(a, _)| a == avatar)
            .map(|(_, r)| *r)
            .min_by_key(|r| match r {
                Role::Owner => 0,
                Role::Editor => 1,
                Role::Viewer => 2,
            })
    }

    /// Read access on `avatar`, or 404 "no such avatar". Audited either way.
    pub(crate) fn may_read(
        &self,
        state: &AppState,
        avatar: &str,
        access: Access<'_>,
    ) -> Result<Role, ApiError> {
        let role = self.role_on(avatar).ok_or_else(ApiError::no_such_avatar);
        self.audit(state, avatar, &access, &role)?;
        role
    }

    /// Write access (memories) on `avatar`: 404 without a grant, 403 for a viewer.
    pub(crate) fn may_edit(
        &self,
        state: &AppState,
        avatar: &str,
        access: Access<'_>,
    ) -> Result<Role, ApiError> {
        let role = match self.role_on(avatar) {
            None => Err(ApiError::no_such_avatar()),
            Some(role) if role.can_edit() => Ok(role),
            Some(role) => Err(ApiError::forbidden(format!(
                "a {role} token may not change memories (editor or owner needed)"
            ))),
        };
        self.audit(state, avatar, &access, &role)?;
        role
    }

    /// One audit entry for a grant check. An audit log that cannot be written fails the
    /// request: an unrecorded access is worse than a refused one.
    fn audit(
        &self,
        state: &AppState,
        avatar: &str,
        access: &Access<'_>,
        outcome: &Result<Role, ApiError>,
    ) -> Result<(), ApiError> {
        let Some(log) = &state.audit else {
            return Ok(());
        };
        let outcome = match outcome {
            Ok(role) => format!("ok ({role})"),
            Err(e) => format!("denied ({})", e.status.as_u16()),
        };
        log.append(
            &self.actor,
            Some(avatar),
            access.action,
            access.detail,
            &outcome,
        )
        .map(|_| ())
        .map_err(ApiError::internal)
    }

    /// The avatars of `all` this caller may see, with its role on each.
    pub(crate) fn visible(&self, all: Vec<AvatarInfo>) -> Vec<(AvatarInfo, Role)> {
        all.into_iter()
            .filter_map(|a| self.role_on(&a.id).map(|r| (a, r)))
            .collect()
    }
}

/// Resolves the bearer token of the request: 401 when missing or unknown.
pub(crate) fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = bearer(value) else {
        return Err(ApiError::unauthorized(
            "missing API token: send `Authorization: Bearer <token>` (create one with `avatar token create`)",
        ));
    };
    let grants = state.tokens.grants(token)?;
    if grants.is_empty() {
        return Err(ApiError::unauthorized("invalid API token"));
    }
    Ok(Caller {
        grants,
        actor: format!("token:{}", crate::auth::token_id(token)),
    })
}

/// A JSON body, or 413 (too large) / 400 (with serde's reason).
pub(crate) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "request body is larger than {} bytes",
                    crate::MAX_BODY_BYTES
                ),
            )
        } else {
            ApiError::new(r.status(), "invalid_request_error", r.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Query parameters, or 400 with the reason.
pub(crate) fn parse_query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|r| ApiError::bad_request(r.body_text()))
}

/// Runs a blocking backend call off the async threads.
pub(crate) async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Backend) -> BackendResult<T> + Send + 'static,
{
    let backend = state.backend.clone();
    match tokio::task::spawn_blocking(move || f(backend.as_ref())).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(format!("backend task failed: {e}"))),
    }
}

/// `?avatar=ID` (other parameters, e.g. cache busters, are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct AvatarParam {
    avatar: String,
}

pub(crate) async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method not allowed on this route",
    )
}

/// An avatar with the caller's role on it (so the UI can hide what it may not do).
#[derive(Debug, Serialize)]
struct AvatarView {
    #[serde(flatten)]
    info: AvatarInfo,
    role: Role,
}

pub(crate) async fn avatars(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let all = blocking(&state, |b| b.avatars()).await?;
    let avatars: Vec<AvatarView> = who
        .visible(all)
        .into_iter()
        .map(|(info, role)| AvatarView { info, role })
        .collect();
    Ok(Json(serde_json::json!({ "avatars": avatars })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    avatar: String,
    q: String,
    mode: Option<String>,
    k: Option<usize>,
    source: Option<String>,
    author: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Empty query-string values (`&source=` from a form) mean "no filter".
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

pub(crate) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let p = parse_query(q)?;
    if p.q.trim().is_empty() {
        return Err(ApiError::bad_request("`q` must not be empty"));
    }
    let mode = non_empty(p.mode);
    if let Some(m) = &mode {
        if !["bm25", "vector", "hybrid"].contains(&m.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown mode {m:?} (expected bm25, vector or hybrid)"
            )));
        }
    }
    if let Some(k) = p.k {
        if !(1..=100).contains(&k) {
            return Err(ApiError::bad_request("`k` must be between 1 and 100"));
        }
    }
    who.may_read(&state, &p.avatar, Access::new("search", &p.q))?;
    let query = SearchQuery {
        q: p.q,
        mode,
        k: p.k,
        source: non_empty(p.source),
        author: non_empty(p.author),
        since: non_empty(p.since),
        until: non_empty(p.until),
    };
    let avatar = p.avatar;
    let hits = blocking(&state, move |b| b.search(&avatar, &query)).await?;
    Ok(Json(serde_json::json!({ "hits": hits })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AskBody {
    avatar: String,
    question: String,
    k: Option<usize>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
}

pub(crate) async fn ask(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let b: AskBody = parse_json(body)?;
    if b.question.trim().is_empty() {
        return Err(ApiError::bad_request("`question` must not be empty"));
    }
    let mut params = AskParams::default();
    if let Some(k) = b.k {
        if !(1..=50).contains(&k) {
            return Err(ApiError::bad_request("`k` must be between 1 and 50"));
        }
        params.k = k;
    }
    if let Some(m) = b.max_tokens {
        params.max_tokens = crate::openai::check_max_tokens(m)?;
    }
    if let Some(t) = b.temperature {
        params.temperature = crate::openai::check_temperature(t)?;
    }
    who.may_read(&state, &b.avatar, Access::new("ask", &b.question))?;
    let avatar = b.avatar;
    let history = vec![Turn {
        role: "user".into(),
        content: b.question,
    }];
    let answer = blocking(&state, move |be| {
        be.ask(&avatar, &history, &params, &mut |_| true)
    })
    .await?;
    Ok(Json(serde_json::json!({
        "answer": answer.text,
        "citations": answer.citations,
        "finetuned": answer.finetuned,
    }))
    .into_response())
}

/// Longest text `/api/speak` says in one request (about two minutes of speech).
const MAX_SPEAK_CHARS: usize = 2000;

pub(crate) async fn speak(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let b: crate::backend::SpeakRequest = parse_json(body)?;
    if b.text.trim().is_empty() {
        return Err(ApiError::bad_request("`text` must not be empty"));
    }
    let chars = b.text.chars().count();
    if chars > MAX_SPEAK_CHARS {
        return Err(ApiError::bad_request(format!(
            "`text` is {chars} characters; at most {MAX_SPEAK_CHARS} are spoken per request"
        )));
    }
    if let Some(v) = &b.tts_voice {
        // espeak-ng voice names: letters, digits, `-`, `+`, `_` (e.g. en-us, en-gb+f3).
        if v.is_empty()
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-+_".contains(c))
        {
            return Err(ApiError::bad_request(format!(
                "`tts_voice` {v:?} is not a voice name"
            )));
        }
    }
    who.may_read(&state, &b.avatar, Access::new("speak", &b.text))?;
    let speech = blocking(&state, move |be| {
        be.speak(&b.avatar, &b.text, b.tts_voice.as_deref())
    })
    .await?;
    // Header values must be visible ASCII.
    let voice: String = speech
        .voice
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let mut response = ([(header::CONTENT_TYPE, "audio/wav")], speech.wav).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&voice) {
        response.headers_mut().insert("x-avatar-voice", v);
    }
    response.headers_mut().insert(
        "x-avatar-their-voice",
        axum::http::HeaderValue::from_static(if speech.their_voice { "true" } else { "false" }),
    );
    Ok(response)
}

pub(crate) async fn memories(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AvatarParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let avatar = parse_query(q)?.avatar;
    who.may_read(&state, &avatar, Access::new("memory.list", ""))?;
    let list = blocking(&state, move |b| b.memories(&avatar)).await?;
    Ok(Json(serde_json::json!({ "memories": list })).into_response())
}

pub(crate) async fn add_memory(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AvatarParam>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let avatar = parse_query(q)?.avatar;
    let m: NewMemory = parse_json(body)?;
    if m.text.trim().is_empty() {
        return Err(ApiError::bad_request("`text` must not be empty"));
    }
    who.may_edit(&state, &avatar, Access::new("memory.add", &m.text))?;
    let view = blocking(&state, move |b| b.add_memory(&avatar, &m)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(crate) async fn delete_memory(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<AvatarParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let avatar = parse_query(q)?.avatar;
    who.may_edit(&state, &avatar, Access::new("memory.delete", &id))?;
    let id2 = id.clone();
    blocking(&state, move |b| b.delete_memory(&avatar, &id2)).await?;
    Ok(Json(serde_json::json!({ "id": id, "deleted": true })).into_response())
}

pub(crate) async fn record(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<AvatarParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let avatar = parse_query(q)?.avatar;
    who.may_read(&state, &avatar, Access::new("record", &id))?;
    let rec = blocking(&state, move |b| b.record(&avatar, &id)).await?;
    Ok(Json(rec).into_response())
}

pub(crate) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AvatarParam>, QueryRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let avatar = parse_query(q)?.avatar;
    who.may_read(&state, &avatar, Access::new("status", ""))?;
    let s = blocking(&state, move |b| b.status(&avatar)).await?;
    Ok(Json(s).into_response())
}
