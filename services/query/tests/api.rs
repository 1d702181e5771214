//! The query API over an in-memory twin of the backend: real (if simple) logic over a Vec of
//! records, scoped by avatar like the real one, that also notes which avatar every call was
//! for, so the tests can check that a denied request never reached the store.
//!
//! Most tests drive the router in-process (`tower::ServiceExt::oneshot`); a few go through a
//! real server on 127.0.0.1:0 with a real HTTP client (ureq).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use avatar_query::auth::{Role, TokenStore};
use avatar_query::*;
use avatar_schemas::{Record, RecordKind};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Twin {
    avatars: Vec<AvatarInfo>,
    records: Vec<Record>,
    memories: Mutex<Vec<(String, MemoryView)>>,
    next_memory: AtomicUsize,
    /// (method, avatar) of every call.
    calls: Mutex<Vec<(String, String)>>,
    /// Set when an ask saw the client go away (the callback returned false).
    stopped: AtomicBool,
}

fn record(avatar: &str, id: &str, text: &str, author: &str) -> Record {
    Record {
        id: id.into(),
        avatar: avatar.into(),
        source: format!("file:///{avatar}/notes.txt"),
        format: "text".into(),
        kind: RecordKind::Document,
        thread: "t".into(),
        timestamp: None,
        author: Some(author.into()),
        author_is_person: true,
        text: text.into(),
        title: Some(format!("note {id}")),
        message_id: None,
        in_reply_to: None,
        artifact: "00".into(),
        ordinal: 0,
    }
}

impl Twin {
    fn new() -> Twin {
        let info = |id: &str, name: &str| AvatarInfo {
            id: id.into(),
            name: name.into(),
            has_model: false,
            disclosure: format!("{name} is an avatar, not the living person."),
        };
        Twin {
            avatars: vec![info("alice", "Alice"), info("bob", "Bob")],
            records: vec![
                record(
                    "alice",
                    "a1",
                    "Alice loves sailing on the lake every summer.",
                    "Alice",
                ),
                record(
                    "alice",
                    "a2",
                    "Alice wrote the budget report in March.",
                    "Alice",
                ),
                record(
                    "bob",
                    "b1",
                    "Bob's secret: the sailing club password is hunter2.",
                    "Bob",
                ),
            ],
            memories: Mutex::new(Vec::new()),
            next_memory: AtomicUsize::new(1),
            calls: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        }
    }

    fn note(&self, method: &str, avatar: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((method.into(), avatar.into()));
    }

    fn known(&self, avatar: &str) -> BackendResult<()> {
        if self.avatars.iter().any(|a| a.id == avatar) {
            Ok(())
        } else {
            Err(BackendError::NotFound(format!("no avatar {avatar}")))
        }
    }

    fn hits(&self, avatar: &str, q: &str, k: usize) -> Vec<Citation> {
        let terms: Vec<String> = q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| t.len() > 2)
            .map(|t| t.to_lowercase())
            .collect();
        let mut scored: Vec<Citation> = Vec::new();
        for r in self.records.iter().filter(|r| r.avatar == avatar) {
            let text = r.text.to_lowercase();
            let score = terms.iter().filter(|t| text.contains(t.as_str())).count();
            if score > 0 {
                scored.push(Citation {
                    record: r.id.clone(),
                    source: r.source.clone(),
                    timestamp: r.timestamp,
                    author: r.author.clone(),
                    title: r.title.clone(),
                    snippet: r.text.clone(),
                    score: score as f64,
                    memory: false,
                });
            }
        }
        for (a, m) in self.memories.lock().unwrap().iter() {
            let text = m.text.to_lowercase();
            let score = terms.iter().filter(|t| text.contains(t.as_str())).count();
            if a == avatar && score > 0 {
                scored.push(Citation {
                    record: m.id.clone(),
                    source: "memory".into(),
                    timestamp: None,
                    author: m.added_by.clone(),
                    title: m.title.clone(),
                    snippet: m.text.clone(),
                    score: score as f64,
                    memory: true,
                });
            }
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        scored.truncate(k);
        scored
    }
}

impl Backend for Twin {
    fn avatars(&self) -> BackendResult<Vec<AvatarInfo>> {
        self.note("avatars", "*");
        Ok(self.avatars.clone())
    }
    fn search(&self, avatar: &str, q: &SearchQuery) -> BackendResult<Vec<Citation>> {
        self.note("search", avatar);
        self.known(avatar)?;
        Ok(self.hits(avatar, &q.q, q.k.unwrap_or(10)))
    }
    fn ask(
        &self,
        avatar: &str,
        history: &[Turn],
        params: &AskParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> BackendResult<Answer> {
        self.note("ask", avatar);
        self.known(avatar)?;
        let question = history
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.content.clone())
            .unwrap_or_default();
        if question.contains("unavailable") {
            return Err(BackendError::Unavailable("no base model installed".into()));
        }
        let citations = self.hits(avatar, &question, params.k);
        // "endless" asks generate until the client goes away (disconnect test).
        let words: Vec<String> = if question.contains("endless") {
            (0..100_000).map(|i| format!("w{i} ")).collect()
        } else if let Some(c) = citations.first() {
            c.snippet.split_inclusive(' ').map(String::from).collect()
        } else {
            vec!["I ".into(), "don't ".into(), "know.".into()]
        };
        let mut text = String::new();
        let mut finish = "stop";
        for (i, w) in words.iter().enumerate() {
            if i >= params.max_tokens && !question.contains("endless") {
                finish = "length";
                break;
            }
            if !on_text(w) {
                self.stopped.store(true, Ordering::SeqCst);
                break;
            }
            text.push_str(w);
            if question.contains("endless") {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(Answer {
            completion_tokens: text.split_whitespace().count(),
            text,
            citations,
            finetuned: false,
            finish_reason: finish.into(),
            prompt_tokens: question.split_whitespace().count(),
        })
    }
    fn memories(&self, avatar: &str) -> BackendResult<Vec<MemoryView>> {
        self.note("memories", avatar);
        self.known(avatar)?;
        Ok(self
            .memories
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, _)| a == avatar)
            .map(|(_, m)| m.clone())
            .collect())
    }
    fn add_memory(&self, avatar: &str, m: &NewMemory) -> BackendResult<MemoryView> {
        self.note("add_memory", avatar);
        self.known(avatar)?;
        let n = self.next_memory.fetch_add(1, Ordering::SeqCst);
        let view = MemoryView {
            id: format!("m{n}"),
            text: m.text.clone(),
            title: m.title.clone(),
            added_by: m.added_by.clone(),
            timestamp: None,
        };
        self.memories
            .lock()
            .unwrap()
            .push((avatar.into(), view.clone()));
        Ok(view)
    }
    fn delete_memory(&self, avatar: &str, id: &str) -> BackendResult<()> {
        self.note("delete_memory", avatar);
        let mut list = self.memories.lock().unwrap();
        let before = list.len();
        list.retain(|(a, m)| !(a == avatar && m.id == id));
        if list.len() == before {
            return Err(BackendError::NotFound(format!("no memory {id}")));
        }
        Ok(())
    }
    fn record(&self, avatar: &str, id: &str) -> BackendResult<Record> {
        self.note("record", avatar);
        self.records
            .iter()
            .find(|r| r.avatar == avatar && r.id == id)
            .cloned()
            .ok_or_else(|| BackendError::NotFound(format!("no record {id}")))
    }
    fn status(&self, avatar: &str) -> BackendResult<Value> {
        self.note("status", avatar);
        self.known(avatar)?;
        Ok(
            json!({"avatar": avatar, "records": self.records.iter().filter(|r| r.avatar == avatar).count()}),
        )
    }
    fn speak(&self, avatar: &str, text: &str, tts_voice: Option<&str>) -> BackendResult<Speech> {
        self.note("speak", avatar);
        self.known(avatar)?;
        if text == "unavailable" {
            return Err(BackendError::Unavailable(
                "espeak-ng is not installed".into(),
            ));
        }
        // A WAV header and one silent sample per character: enough for the router's job.
        let n = text.chars().count() as u32;
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36 + 2 * n).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        for v in [16u32, 1 | (1 << 16), 16_000, 32_000, 2 | (16 << 16)] {
            wav.extend_from_slice(&v.to_le_bytes());
        }
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(2 * n).to_le_bytes());
        wav.extend(std::iter::repeat_n(0u8, 2 * n as usize));
        Ok(Speech {
            wav,
            voice: format!(
                "the base TTS voice ({}) – not theirs",
                tts_voice.unwrap_or("en-us")
            ),
            their_voice: false,
        })
    }
}

struct Fixture {
    twin: Arc<Twin>,
    state: AppState,
    owner: String,
    editor: String,
    viewer: String,
    other: String,
}

fn fixture() -> Fixture {
    let twin = Arc::new(Twin::new());
    let tokens = Arc::new(TokenStore::in_memory().unwrap());
    let owner = tokens.create("alice", Role::Owner).unwrap();
    let editor = tokens.create("alice", Role::Editor).unwrap();
    let viewer = tokens.create("alice", Role::Viewer).unwrap();
    let other = tokens.create("bob", Role::Owner).unwrap();
    let state = AppState::new(twin.clone(), tokens);
    Fixture {
        twin,
        state,
        owner,
        editor,
        viewer,
        other,
    }
}

struct Resp {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        content_type,
        headers,
        body,
    }
}

fn js(v: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).unwrap())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Owner,
    Editor,
    Viewer,
    NoToken,
    BadToken,
    Other,
}
const WHO: [Who; 6] = [
    Who::Owner,
    Who::Editor,
    Who::Viewer,
    Who::NoToken,
    Who::BadToken,
    Who::Other,
];

/// Every endpoint × every kind of caller, addressing avatar alice; the expected statuses in
/// the order of `WHO`. Denied requests must not reach the backend for alice.
#[tokio::test]
async fn auth_matrix() {
    let f = fixture();
    let bad = format!("avt_{}", "0".repeat(64));
    let token = |w: Who| -> Option<String> {
        match w {
            Who::Owner => Some(f.owner.clone()),
            Who::Editor => Some(f.editor.clone()),
            Who::Viewer => Some(f.viewer.clone()),
            Who::NoToken => None,
            Who::BadToken => Some(bad.clone()),
            Who::Other => Some(f.other.clone()),
        }
    };
    let chat = json!({"model": "alice", "messages": [{"role": "user", "content": "sailing?"}]});
    let ask = json!({"avatar": "alice", "question": "sailing?"});
    let mem = json!({"text": "Alice's first boat was called Petrel."});
    type Case = (&'static str, &'static str, Option<Value>, [u16; 6]);
    let read = [200, 200, 200, 401, 401, 404];
    let listing = [200, 200, 200, 401, 401, 200];
    let public = [200; 6];
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", None, public),
        ("GET", "/metrics", None, public),
        ("GET", "/openapi.json", None, public),
        ("GET", "/", None, public),
        ("GET", "/assets/app.js", None, public),
        ("GET", "/assets/style.css", None, public),
        ("GET", "/v1/models", None, listing),
        ("GET", "/api/avatars", None, listing),
        ("POST", "/v1/chat/completions", Some(chat), read),
        ("GET", "/api/search?avatar=alice&q=sailing", None, read),
        ("POST", "/api/ask", Some(ask), read),
        (
            "POST",
            "/api/speak",
            Some(json!({"avatar": "alice", "text": "Fair winds."})),
            read,
        ),
        ("GET", "/api/memories?avatar=alice", None, read),
        (
            "POST",
            "/api/memories?avatar=alice",
            Some(mem),
            [201, 201, 403, 401, 401, 404],
        ),
        (
            "DELETE",
            "/api/memories/{MEM}?avatar=alice",
            None,
            [200, 200, 403, 401, 401, 404],
        ),
        ("GET", "/api/records/a1?avatar=alice", None, read),
        ("GET", "/api/status?avatar=alice", None, read),
    ];
    // Every served route is in the matrix.
    for spec in ROUTES {
        let prefix = spec.path.split('{').next().unwrap();
        assert!(
            cases
                .iter()
                .any(|c| c.0 == spec.method && c.1.starts_with(prefix)),
            "{spec:?} is not in the matrix"
        );
    }
    for (method, uri, body, expected) in &cases {
        for (who, want) in WHO.iter().zip(expected) {
            // A fresh memory of alice for every delete, so that success is possible.
            let uri = if uri.contains("{MEM}") {
                let m = f
                    .twin
                    .add_memory(
                        "alice",
                        &NewMemory {
                            text: "to delete".into(),
                            title: None,
                            added_by: None,
                        },
                    )
                    .unwrap();
                uri.replace("{MEM}", &m.id)
            } else {
                uri.to_string()
            };
            f.twin.calls.lock().unwrap().clear();
            let tok = token(*who);
            let r = call(
                &f.state,
                method,
                &uri,
                tok.as_deref(),
                body.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
            )
            .await;
            assert_eq!(
                r.status.as_u16(),
                *want,
                "{method} {uri} as {who:?}: {}",
                r.text()
            );
            if *want >= 400 {
                let e = r.json();
                assert!(e["error"]["message"].is_string(), "{method} {uri}: {e}");
                assert!(e["error"]["type"].is_string());
                let calls = f.twin.calls.lock().unwrap().clone();
                assert!(
                    calls.iter().all(|(_, a)| a != "alice"),
                    "{method} {uri} as {who:?} reached the backend: {calls:?}"
                );
            }
            if *want == 401 {
                assert!(r.json()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("token"));
            }
            if *want == 404 {
                assert_eq!(r.json()["error"]["message"], "no such avatar");
            }
        }
    }
}

#[tokio::test]
async fn listings_show_only_granted_avatars() {
    let f = fixture();
    let r = call(&f.state, "GET", "/v1/models", Some(&f.other), None).await;
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["bob"]);
    assert_eq!(v["data"][0]["owned_by"], "avatar");
    assert_eq!(v["data"][0]["object"], "model");

    let v = call(&f.state, "GET", "/api/avatars", Some(&f.viewer), None)
        .await
        .json();
    let list = v["avatars"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "alice");
    assert_eq!(list[0]["role"], "viewer");
    assert_eq!(list[0]["has_model"], false);
    assert!(list[0]["disclosure"]
        .as_str()
        .unwrap()
        .contains("not the living person"));
}

#[tokio::test]
async fn unknown_and_foreign_avatars_look_the_same() {
    let f = fixture();
    // Bob exists but alice's token has no grant; "zed" does not exist: same answer.
    let a = call(
        &f.state,
        "GET",
        "/api/status?avatar=bob",
        Some(&f.owner),
        None,
    )
    .await;
    let b = call(
        &f.state,
        "GET",
        "/api/status?avatar=zed",
        Some(&f.owner),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!((a.status, a.body.clone()), (b.status, b.body.clone()));
    // Bob's token asking for alice's record through bob's avatar: the store is scoped.
    f.twin.calls.lock().unwrap().clear();
    let r = call(
        &f.state,
        "GET",
        "/api/records/a1?avatar=bob",
        Some(&f.other),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.twin.calls.lock().unwrap().clone(),
        vec![("record".to_string(), "bob".to_string())]
    );
    // Search results never cross avatars.
    let v = call(
        &f.state,
        "GET",
        "/api/search?avatar=alice&q=sailing+password",
        Some(&f.viewer),
        None,
    )
    .await
    .json();
    let hits = v["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits
        .iter()
        .all(|h| h["record"].as_str().unwrap().starts_with('a')));
}

#[tokio::test]
async fn speak_returns_a_wav_and_says_whose_voice() {
    let f = fixture();
    let s = &f.state;
    let r = call(
        s,
        "POST",
        "/api/speak",
        Some(&f.viewer),
        js(json!({"avatar": "alice", "text": "Fair winds.", "tts_voice": "en-gb+f3"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.content_type, "audio/wav");
    assert_eq!(&r.body[..4], b"RIFF");
    assert_eq!(r.body.len(), 44 + 2 * 11);
    assert_eq!(r.headers["x-avatar-their-voice"], "false");
    // Non-ASCII in the description cannot go into a header as is.
    assert_eq!(
        r.headers["x-avatar-voice"],
        "the base TTS voice (en-gb+f3) ? not theirs"
    );
    for (body, why) in [
        (json!({"avatar": "alice", "text": "  "}), "empty"),
        (
            json!({"avatar": "alice", "text": "x".repeat(2001)}),
            "2001 characters",
        ),
        (
            json!({"avatar": "alice", "text": "hi", "tts_voice": "en; rm -rf /"}),
            "not a voice name",
        ),
        (
            json!({"avatar": "alice", "text": "hi", "pitch": 3}),
            "pitch",
        ),
    ] {
        let r = call(s, "POST", "/api/speak", Some(&f.viewer), js(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.text());
        assert!(r.text().contains(why), "{why}: {}", r.text());
    }
    let r = call(
        s,
        "POST",
        "/api/speak",
        Some(&f.viewer),
        js(json!({"avatar": "alice", "text": "unavailable"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().contains("espeak-ng"), "{}", r.text());
}

#[tokio::test]
async fn search_ask_records_memories_status_work() {
    let f = fixture();
    let s = &f.state;
    let v = call(
        s,
        "GET",
        "/api/search?avatar=alice&q=budget&mode=bm25&k=3&source=&author=",
        Some(&f.viewer),
        None,
    )
    .await
    .json();
    assert_eq!(v["hits"][0]["record"], "a2");
    assert_eq!(v["hits"][0]["memory"], false);
    for bad in [
        "/api/search?avatar=alice&q=",
        "/api/search?avatar=alice&q=x&mode=magic",
        "/api/search?avatar=alice&q=x&k=0",
        "/api/search?avatar=alice&q=x&k=many",
        "/api/search?q=x",
        "/api/search?avatar=alice&q=x&bogus=1",
        "/api/memories",
    ] {
        let r = call(s, "GET", bad, Some(&f.viewer), None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text());
        assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
    }

    let v = call(s, "POST", "/api/ask", Some(&f.viewer), js(json!({"avatar": "alice", "question": "When did she write the budget?", "k": 2, "max_tokens": 50, "temperature": 0.2})))
        .await
        .json();
    assert!(
        v["answer"].as_str().unwrap().contains("budget report"),
        "{v}"
    );
    assert_eq!(v["citations"][0]["record"], "a2");
    assert_eq!(v["finetuned"], false);
    let r = call(
        s,
        "POST",
        "/api/ask",
        Some(&f.viewer),
        js(json!({"avatar": "alice", "question": "x", "extra": 1})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("extra"), "{}", r.text());
    let r = call(
        s,
        "POST",
        "/api/ask",
        Some(&f.viewer),
        js(json!({"avatar": "alice", "question": "unavailable"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["message"], "no base model installed");

    let v = call(
        s,
        "GET",
        "/api/records/a1?avatar=alice",
        Some(&f.viewer),
        None,
    )
    .await
    .json();
    assert_eq!(v["text"], "Alice loves sailing on the lake every summer.");
    let r = call(
        s,
        "GET",
        "/api/records/nope?avatar=alice",
        Some(&f.viewer),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Memories: add (editor), list, find by search, delete, gone.
    let r = call(
        s,
        "POST",
        "/api/memories?avatar=alice",
        Some(&f.editor),
        js(json!({"text": "Her first dinghy was named Petrel.", "title": "boats"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let v = call(
        s,
        "GET",
        "/api/memories?avatar=alice",
        Some(&f.viewer),
        None,
    )
    .await
    .json();
    assert!(v["memories"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == id.as_str()));
    let v = call(
        s,
        "GET",
        "/api/search?avatar=alice&q=dinghy",
        Some(&f.viewer),
        None,
    )
    .await
    .json();
    assert_eq!(v["hits"][0]["record"], id.as_str());
    assert_eq!(v["hits"][0]["memory"], true);
    for bad in [
        json!({"text": ""}),
        json!({"text": "x", "mood": "happy"}),
        json!({"title": "no text"}),
    ] {
        let r = call(
            s,
            "POST",
            "/api/memories?avatar=alice",
            Some(&f.editor),
            js(bad.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = call(
        s,
        "DELETE",
        &format!("/api/memories/{id}?avatar=alice"),
        Some(&f.owner),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["deleted"], true);
    let r = call(
        s,
        "DELETE",
        &format!("/api/memories/{id}?avatar=alice"),
        Some(&f.owner),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let v = call(s, "GET", "/api/status?avatar=alice", Some(&f.viewer), None)
        .await
        .json();
    assert_eq!(v["records"], 2);
}

#[tokio::test]
async fn chat_completion_non_stream() {
    let f = fixture();
    let r = call(
        &f.state,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        js(json!({"model": "alice", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Does she like sailing?"}
        ], "max_tokens": 3, "temperature": 0.5, "top_p": 0.9, "stop": ["\n"], "user": "ignored"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "alice");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Alice loves sailing "
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert_eq!(
        v["usage"]["total_tokens"],
        v["usage"]["prompt_tokens"].as_u64().unwrap() + 3
    );
    assert_eq!(v["citations"][0]["record"], "a1");
}

/// Parses an SSE body into its `data:` payloads.
fn sse_data(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "events end with a blank line");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {e:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn chat_completion_stream_format() {
    let f = fixture();
    let r = call(
        &f.state,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        js(
            json!({"model": "alice", "stream": true, "stream_options": {"include_usage": true},
                  "messages": [{"role": "user", "content": "sailing?"}]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/event-stream"));
    let data = sse_data(&r.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let id = &chunks[0]["id"];
    assert!(chunks.iter().all(|c| &c["id"] == id));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Alice loves sailing on the lake every summer.");
    // The finish chunk carries finish_reason and the citations; usage comes after it.
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert_eq!(fin["citations"][0]["record"], "a1");
    assert!(chunks[..chunks.len() - 2]
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null() && c.get("citations").is_none()));
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 8);

    // A failure before any text is a real status, not a 200 stream.
    let r = call(
        &f.state,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        js(json!({"model": "alice", "stream": true, "messages": [{"role": "user", "content": "unavailable"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn bad_requests_get_clear_4xx() {
    let f = fixture();
    let s = &f.state;
    let r = call(
        s,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    let r = call(s, "POST", "/api/ask", Some(&f.viewer), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        s,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        js(json!({"model": "alice"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("messages"), "{}", r.text());
    let huge = vec![b' '; 2 * 1024 * 1024];
    let r = call(s, "POST", "/api/ask", Some(&f.viewer), Some(huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("larger"));
    let r = call(
        s,
        "POST",
        "/v1/chat/completions",
        Some(&f.viewer),
        js(json!({"model": "zed", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(s, "GET", "/nope", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let r = call(s, "DELETE", "/api/ask", Some(&f.viewer), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.json()["error"]["message"].is_string());
    let r = call(s, "GET", "/assets/secret.txt", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Still serving.
    assert_eq!(
        call(s, "GET", "/healthz", None, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_count_routes_and_statuses() {
    let f = fixture();
    let s = &f.state;
    call(s, "GET", "/healthz", None, None).await;
    call(s, "GET", "/healthz", None, None).await;
    call(s, "GET", "/api/records/a1?avatar=alice", None, None).await;
    call(
        s,
        "GET",
        "/api/records/a2?avatar=alice",
        Some(&f.viewer),
        None,
    )
    .await;
    call(s, "GET", "/no/such/thing", None, None).await;
    let r = call(s, "GET", "/metrics", None, None).await;
    assert!(r.content_type.starts_with("text/plain"));
    let text = r.text();
    for line in [
        "avatar_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2",
        "avatar_http_requests_total{route=\"/api/records/{id}\",method=\"GET\",status=\"401\"} 1",
        "avatar_http_requests_total{route=\"/api/records/{id}\",method=\"GET\",status=\"200\"} 1",
        "avatar_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "avatar_http_request_duration_seconds_count{route=\"/healthz\"} 2",
        "avatar_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 2",
        "avatar_http_requests_in_flight 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn ui_and_openapi_are_served() {
    let f = fixture();
    let r = call(&f.state, "GET", "/", None, None).await;
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.text().contains("/assets/app.js"));
    assert!(!r.text().contains("https://"), "no external resources");
    let r = call(&f.state, "GET", "/assets/app.js", None, None).await;
    assert!(r.content_type.starts_with("text/javascript"));
    assert!(r.text().contains("/v1/chat/completions"));
    let r = call(&f.state, "GET", "/openapi.json", None, None).await;
    assert_eq!(r.json()["openapi"], "3.1.0");
}

// ---- through a real server on loopback ----

/// Starts the router on 127.0.0.1:0 in a background runtime; returns the base URL.
fn spawn_server(state: AppState) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, router(state)).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

fn status_of(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

#[test]
fn real_server_with_real_client() {
    let f = fixture();
    let base = spawn_server(f.state.clone());
    let auth = format!("Bearer {}", f.viewer);

    let (code, body) = status_of(ureq::get(&format!("{base}/healthz")).call());
    assert_eq!((code, body.contains("ok")), (200, true));
    let (code, _) = status_of(ureq::get(&format!("{base}/api/avatars")).call());
    assert_eq!(code, 401);
    let (code, body) = status_of(
        ureq::post(&format!("{base}/api/ask"))
            .set("Authorization", &auth)
            .set("Content-Type", "application/json")
            .send_string("{\"avatar\": \"alice\", \"question\": "),
    );
    assert_eq!(code, 400, "{body}");
    let huge = "x".repeat(1024 * 1024 + 1024);
    let (code, _) = status_of(
        ureq::post(&format!("{base}/api/ask"))
            .set("Authorization", &auth)
            .send_string(&huge),
    );
    assert_eq!(code, 413);
    let (code, body) = status_of(
        ureq::get(&format!("{base}/api/search?avatar=zed&q=x"))
            .set("Authorization", &auth)
            .call(),
    );
    assert_eq!(code, 404, "{body}");
    // Still serving, and the real answer works.
    let (code, body) = status_of(
        ureq::post(&format!("{base}/api/ask"))
            .set("Authorization", &auth)
            .send_string(&json!({"avatar": "alice", "question": "sailing"}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["citations"][0]["record"], "a1");

    // Streaming through the real stack.
    let (code, body) = status_of(
        ureq::post(&format!("{base}/v1/chat/completions"))
            .set("Authorization", &auth)
            .send_string(&json!({"model": "alice", "stream": true, "messages": [{"role": "user", "content": "budget"}]}).to_string()),
    );
    assert_eq!(code, 200);
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let fin: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(fin["citations"][0]["record"], "a2");

    let (code, metrics) = status_of(ureq::get(&format!("{base}/metrics")).call());
    assert_eq!(code, 200);
    assert!(
        metrics.contains("route=\"/api/ask\",method=\"POST\",status=\"413\"} 1"),
        "{metrics}"
    );
}

#[test]
fn client_disconnect_stops_generation() {
    use std::io::Read;
    let f = fixture();
    let base = spawn_server(f.state.clone());
    let resp = ureq::post(&format!("{base}/v1/chat/completions"))
        .set("Authorization", &format!("Bearer {}", f.viewer))
        .send_string(&json!({"model": "alice", "stream": true, "messages": [{"role": "user", "content": "endless"}]}).to_string())
        .unwrap();
    let mut reader = resp.into_reader();
    let mut buf = [0u8; 256];
    let n = reader.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("data: {"));
    drop(reader);
    // 100 000 pieces at 1 ms each would take minutes; the callback must say stop well before.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !f.twin.stopped.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "generation did not stop after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
