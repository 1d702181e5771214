//! The one place where failures become HTTP responses, in OpenAI's error shape
//! (`{"error": {"message", "type"}}`) so that OpenAI clients show our messages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::backend::BackendError;

/// An error response: a status, an OpenAI error `type` and a message safe to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }
    /// The one answer for an avatar the caller has no grant on, existing or not.
    pub fn no_such_avatar() -> Self {
        Self::not_found("no such avatar")
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        // The detail may name paths or SQL; it goes to the log, not to the client.
        eprintln!("avatar-query: internal error: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"message": self.message, "type": self.kind}})
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::BadRequest(m) => ApiError::bad_request(m),
            BackendError::NotFound(m) => ApiError::not_found(m),
            BackendError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable_error", m)
            }
            BackendError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_statuses_and_internal_hides_detail() {
        let cases = [
            (BackendError::BadRequest("b".into()), 400, "b"),
            (BackendError::NotFound("n".into()), 404, "n"),
            (BackendError::Unavailable("u".into()), 503, "u"),
            (
                BackendError::Internal("/secret/path".into()),
                500,
                "internal error",
            ),
        ];
        for (e, status, msg) in cases {
            let a = ApiError::from(e);
            assert_eq!(a.status.as_u16(), status);
            assert_eq!(a.body()["error"]["message"], msg);
        }
    }
}
