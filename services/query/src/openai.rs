//! The OpenAI-compatible surface: `/v1/models` and `/v1/chat/completions`, so that the openai
//! SDKs, curl recipes and chat UIs work unchanged with `model` = the avatar's id.
//!
//! Unknown request fields are ignored (clients send many: `user`, penalties…), as OpenAI does;
//! the answer's citations ride in an extra `citations` field that OpenAI clients ignore.
//!
//! Streaming: the backend's `ask` is blocking with a callback, so it runs on a blocking thread
//! and forwards pieces through a bounded channel into the SSE body. When the client goes away
//! the body (and the receiver) is dropped, the send fails and the callback returns false, which
//! stops generation. The first piece is awaited before the response head is sent, so a failure
//! before any text (no model, unknown avatar) still gets a proper 4xx/5xx status.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::backend::{Answer, AskParams, BackendResult, Turn};
use crate::error::ApiError;
use crate::handlers::{blocking, caller, parse_json, Access};
use crate::AppState;

pub(crate) fn check_max_tokens(m: usize) -> Result<usize, ApiError> {
    if (1..=8192).contains(&m) {
        Ok(m)
    } else {
        Err(ApiError::bad_request(
            "`max_tokens` must be between 1 and 8192",
        ))
    }
}

pub(crate) fn check_temperature(t: f32) -> Result<f32, ApiError> {
    if (0.0..=2.0).contains(&t) {
        Ok(t)
    } else {
        Err(ApiError::bad_request(
            "`temperature` must be between 0 and 2",
        ))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let all = blocking(&state, |b| b.avatars()).await?;
    let data: Vec<Value> = who
        .visible(all)
        .into_iter()
        .map(|(a, _)| {
            json!({
                "id": a.id,
                "object": "model",
                "created": 0,
                "owned_by": "avatar",
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    /// The newer name of `max_tokens`.
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<Stop>,
    n: Option<u32>,
    stream_options: Option<StreamOptions>,
}

/// Checks a chat request and turns it into the backend's history and settings.
fn prepare(req: &ChatRequest) -> Result<(Vec<Turn>, AskParams), ApiError> {
    if req.model.trim().is_empty() {
        return Err(ApiError::bad_request("`model` (the avatar id) is required"));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` must not be empty"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only `n` = 1 is supported"));
    }
    let mut history = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(ApiError::bad_request(format!(
                    "messages[{i}]: unsupported role {other:?} (system, user or assistant)"
                )))
            }
        };
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ApiError::bad_request(format!(
                            "messages[{i}]: only text content is supported, not {:?}",
                            p.kind
                        )));
                    }
                    text.push_str(p.text.as_deref().unwrap_or(""));
                }
                text
            }
        };
        history.push(Turn {
            role: role.to_string(),
            content,
        });
    }
    if !history
        .iter()
        .any(|t| t.role == "user" && !t.content.trim().is_empty())
    {
        return Err(ApiError::bad_request(
            "`messages` needs a non-empty user message",
        ));
    }
    let mut params = AskParams::default();
    if let Some(m) = req.max_completion_tokens.or(req.max_tokens) {
        params.max_tokens = check_max_tokens(m)?;
    }
    if let Some(t) = req.temperature {
        params.temperature = check_temperature(t)?;
    }
    if let Some(p) = req.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad_request("`top_p` must be in (0, 1]"));
        }
        params.top_p = p;
    }
    params.stop = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    params.stop.retain(|s| !s.is_empty());
    if params.stop.len() > 4 {
        return Err(ApiError::bad_request("at most 4 `stop` sequences"));
    }
    Ok((history, params))
}

fn completion_id() -> String {
    let suffix = crate::auth::random_bytes(12)
        .map(hex::encode)
        .unwrap_or_else(|_| format!("{:x}", now_secs()));
    format!("chatcmpl-{suffix}")
}

fn usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let req: ChatRequest = parse_json(body)?;
    let (history, params) = prepare(&req)?;
    let question = history.last().map(|t| t.content.as_str()).unwrap_or("");
    who.may_read(&state, &req.model, Access::new("chat", question))?;
    let avatar = req.model.clone();
    let id = completion_id();
    let created = now_secs();
    if !req.stream {
        let answer = blocking(&state, move |b| {
            b.ask(&avatar, &history, &params, &mut |_| true)
        })
        .await?;
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
            }],
            "usage": usage(&answer),
            "citations": answer.citations,
        });
        return Ok(Json(body).into_response());
    }

    let (tx, mut rx) = mpsc::channel::<Piece>(64);
    let backend = state.backend.clone();
    tokio::task::spawn_blocking(move || {
        let pieces = tx.clone();
        let mut on_text = |t: &str| pieces.blocking_send(Piece::Text(t.to_string())).is_ok();
        let result = backend.ask(&avatar, &history, &params, &mut on_text);
        let _ = tx.blocking_send(Piece::Done(result));
    });
    let first = match rx.recv().await {
        None => return Err(ApiError::internal("answer task ended without a result")),
        Some(Piece::Done(Err(e))) => return Err(e.into()),
        Some(p) => p,
    };
    let st = SseState {
        rx,
        first: Some(first),
        started: false,
        done: false,
        id,
        created,
        model: req.model,
        include_usage: req.stream_options.unwrap_or_default().include_usage,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        let chunk = st.next_event().await?;
        Some((Ok::<Bytes, Infallible>(Bytes::from(chunk)), st))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// What the answering thread sends.
enum Piece {
    Text(String),
    Done(BackendResult<Answer>),
}

struct SseState {
    rx: mpsc::Receiver<Piece>,
    first: Option<Piece>,
    started: bool,
    done: bool,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

impl SseState {
    fn chunk(&self, delta: Value, finish_reason: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    }

    /// The next bytes of the SSE body; None once `[DONE]` has been sent.
    async fn next_event(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&sse(
                &self.chunk(json!({"role": "assistant", "content": ""}), Value::Null)
            ));
        }
        let piece = match self.first.take() {
            Some(p) => Some(p),
            None => self.rx.recv().await,
        };
        match piece {
            Some(Piece::Text(t)) => {
                out.push_str(&sse(&self.chunk(json!({"content": t}), Value::Null)));
            }
            Some(Piece::Done(Ok(a))) => {
                let mut last = self.chunk(json!({}), json!(a.finish_reason));
                last["citations"] = json!(a.citations);
                out.push_str(&sse(&last));
                if self.include_usage {
                    out.push_str(&sse(&json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage(&a),
                    })));
                }
                out.push_str("data: [DONE]\n\n");
                self.done = true;
            }
            Some(Piece::Done(Err(e))) => {
                out.push_str(&sse(&ApiError::from(e).body()));
                out.push_str("data: [DONE]\n\n");
                self.done = true;
            }
            None => {
                out.push_str(&sse(&ApiError::internal(
                    "answer task ended without a result",
                )
                .body()));
                out.push_str("data: [DONE]\n\n");
                self.done = true;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prepare_accepts_openai_shapes() {
        let r = req(json!({
            "model": "a", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
            ],
            "stop": "\n\n", "max_tokens": 10, "temperature": 0.1, "top_p": 0.5, "user": "x"
        }));
        let (h, p) = prepare(&r).unwrap();
        assert_eq!(h[1].content, "hi there");
        assert_eq!(h[0].role, "system");
        assert_eq!(p.stop, vec!["\n\n".to_string()]);
        assert_eq!((p.max_tokens, p.temperature, p.top_p), (10, 0.1, 0.5));
        let r = req(
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "stop": ["x", "y"], "max_completion_tokens": 7}),
        );
        let (_, p) = prepare(&r).unwrap();
        assert_eq!(p.stop.len(), 2);
        assert_eq!(p.max_tokens, 7);
    }

    #[test]
    fn prepare_rejects_bad_settings() {
        let bad = [
            json!({"model": "", "messages": [{"role": "user", "content": "q"}]}),
            json!({"model": "a", "messages": []}),
            json!({"model": "a", "messages": [{"role": "assistant", "content": "q"}]}),
            json!({"model": "a", "messages": [{"role": "tool", "content": "q"}]}),
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "temperature": 3.0}),
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "top_p": 0.0}),
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "max_tokens": 0}),
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "n": 2}),
            json!({"model": "a", "messages": [{"role": "user", "content": "q"}], "stop": ["1","2","3","4","5"]}),
            json!({"model": "a", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
        ];
        for b in bad {
            let e = prepare(&req(b.clone())).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{b}");
        }
    }
}
