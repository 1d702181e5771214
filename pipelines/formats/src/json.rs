//! JSON helpers shared by the JSON export parsers (Discord, Messenger, Google Chat, X).

use crate::{ErrorKind, FormatError};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;

/// One array element read on its own, so one odd message does not fail the file; elements
/// are decoded one at a time, so memory stays that of the typed messages.
pub(crate) struct Lenient<T>(pub(crate) Result<T, String>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Lenient(
            serde_json::from_value(v).map_err(|e| e.to_string()),
        ))
    }
}

/// What an export that is one JSON object should look like, for error messages.
pub(crate) struct Expected<'a> {
    /// What to do when the file stops early ("the export was cut off; export it again").
    pub cut_off: &'a str,
    /// "a … is a JSON object": said when the JSON is an array or a scalar.
    pub object: &'a str,
    /// "JSON without the layout of …".
    pub layout: &'a str,
}

/// Maps a serde_json error on an export that should be one JSON object to a dead-letter reason:
/// cut off -> Truncated, not JSON -> Malformed, JSON of another shape -> Unsupported/Malformed.
pub(crate) fn object_error(
    name: &str,
    e: &serde_json::Error,
    text: &str,
    x: &Expected<'_>,
) -> FormatError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => FormatError::new(
            ErrorKind::Truncated,
            format!(
                "{name}: the JSON stops early at line {} column {}: {}",
                e.line(),
                e.column(),
                x.cut_off
            ),
        ),
        Category::Syntax | Category::Io => {
            FormatError::new(ErrorKind::Malformed, format!("{name}: invalid JSON: {e}"))
        }
        Category::Data if !text.trim_start().starts_with('{') => FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: {}; this JSON is something else", x.object),
        ),
        Category::Data => FormatError::new(
            ErrorKind::Malformed,
            format!("{name}: JSON without the layout of {}: {e}", x.layout),
        ),
    }
}
