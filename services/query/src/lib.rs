//! The query service: what knowledge workers and families use to talk with an avatar.
//!
//! `router(state)` serves the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), the
//! Avatar API (`/api/search`, `/api/ask`, `/api/memories`, `/api/records/{id}`, `/api/avatars`,
//! `/api/status`), `/metrics`, `/healthz`, `/openapi.json` and the web UI, over a [`Backend`]
//! that the binary implements on the data directory. Every endpoint checks an API token whose
//! role (owner, editor, viewer) is granted per avatar.
pub mod auth;
pub mod backend;
mod error;
mod handlers;
pub mod metrics;
mod openai;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

pub use auth::{Role, TokenStore};
pub use backend::*;
pub use error::ApiError;

/// Largest request body accepted; bigger ones get 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) tokens: Arc<TokenStore>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// Who asked what (`DIR/audit.db`); every grant check writes an entry when set.
    pub(crate) audit: Option<Arc<avatar_audit::AuditLog>>,
}

impl AppState {
    pub fn new(backend: Arc<dyn Backend>, tokens: Arc<TokenStore>) -> AppState {
        AppState {
            backend,
            tokens,
            metrics: Arc::new(metrics::Metrics::default()),
            audit: None,
        }
    }

    /// Records every access (allowed or denied) in `audit`.
    pub fn with_audit(mut self, audit: Arc<avatar_audit::AuditLog>) -> AppState {
        self.audit = Some(audit);
        self
    }
}

/// One route of the API: the router is built from this table and `openapi.json` is checked
/// against it, so the document cannot drift from what is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    /// Whether a bearer token is needed.
    pub auth: bool,
}

const fn route(method: &'static str, path: &'static str, auth: bool) -> RouteSpec {
    RouteSpec { method, path, auth }
}

pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/healthz", false),
    route("GET", "/metrics", false),
    route("GET", "/openapi.json", false),
    route("GET", "/", false),
    route("GET", "/assets/{file}", false),
    route("GET", "/v1/models", true),
    route("POST", "/v1/chat/completions", true),
    route("GET", "/api/avatars", true),
    route("GET", "/api/search", true),
    route("POST", "/api/ask", true),
    route("POST", "/api/speak", true),
    route("GET", "/api/memories", true),
    route("POST", "/api/memories", true),
    route("DELETE", "/api/memories/{id}", true),
    route("GET", "/api/records/{id}", true),
    route("GET", "/api/status", true),
];

/// The handler of a route of [`ROUTES`]; None for a pair the table names but no code serves
/// (a test makes sure there is none).
fn endpoint(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/healthz") => get(handlers::healthz),
        ("GET", "/metrics") => get(handlers::metrics),
        ("GET", "/openapi.json") => get(handlers::openapi),
        ("GET", "/") => get(ui::index),
        ("GET", "/assets/{file}") => get(ui::asset),
        ("GET", "/v1/models") => get(openai::models),
        ("POST", "/v1/chat/completions") => post(openai::chat_completions),
        ("GET", "/api/avatars") => get(handlers::avatars),
        ("GET", "/api/search") => get(handlers::search),
        ("POST", "/api/ask") => post(handlers::ask),
        ("POST", "/api/speak") => post(handlers::speak),
        ("GET", "/api/memories") => get(handlers::memories),
        ("POST", "/api/memories") => post(handlers::add_memory),
        ("DELETE", "/api/memories/{id}") => delete(handlers::delete_memory),
        ("GET", "/api/records/{id}") => get(handlers::record),
        ("GET", "/api/status") => get(handlers::status),
        _ => return None,
    })
}

/// The whole HTTP API and web UI over `state`.
pub fn router(state: AppState) -> Router {
    let mut r: Router<AppState> = Router::new();
    for spec in ROUTES {
        if let Some(mr) = endpoint(spec.method, spec.path) {
            r = r.route(spec.path, mr);
        }
    }
    r.fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_metrics,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Counts every request by route pattern and status, and times it.
async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let _in_flight = state.metrics.start();
    let resp = next.run(req).await;
    state
        .metrics
        .observe(&route, &method, resp.status().as_u16(), started.elapsed());
    resp.into_response()
}

/// Serves `state` on `addr` until Ctrl-C or SIGTERM, letting requests in progress finish.
pub fn serve_blocking(addr: SocketAddr, state: AppState) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: never resolve rather than shut down at once.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("shutting down");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_has_a_handler() {
        for spec in ROUTES {
            assert!(
                endpoint(spec.method, spec.path).is_some(),
                "no handler for {spec:?}"
            );
        }
    }

    #[test]
    fn openapi_documents_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("../openapi.json")).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                    assert!(
                        op["responses"].is_object(),
                        "{method} {path} has no responses"
                    );
                    // Security must match the table: public routes say `security: []`.
                    let public = op["security"].as_array().is_some_and(|a| a.is_empty());
                    let spec = ROUTES
                        .iter()
                        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path);
                    if let Some(spec) = spec {
                        assert_eq!(public, !spec.auth, "security of {method} {path}");
                    }
                }
            }
        }
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(documented, served);
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "missing schema {name}"
            );
        }
    }
}
