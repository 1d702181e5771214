//! Upcasters: old payload versions are migrated here, before deserialisation, so the rest of
//! the code only ever sees the current types.

use crate::SCHEMA_VERSION;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum UpcastError {
    #[error("event is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event has schema_version {found}, newer than this build understands ({max}); upgrade Avatar")]
    TooNew { found: u64, max: u32 },
    #[error("event has no schema_version")]
    NoVersion,
}

/// Migrate an event (as JSON) to the current schema version.
pub fn upcast(value: Value) -> Result<Value, UpcastError> {
    let version = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .ok_or(UpcastError::NoVersion)?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(UpcastError::TooNew {
            found: version,
            max: SCHEMA_VERSION,
        });
    }
    // Version 1 is the first released layout: nothing to migrate yet. When a payload changes,
    // match on (kind, version) here and rewrite the JSON one version at a time.
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_future_versions_with_a_clear_error() {
        let err = upcast(serde_json::json!({"schema_version": 99})).unwrap_err();
        assert!(err.to_string().contains("upgrade Avatar"));
    }
}
