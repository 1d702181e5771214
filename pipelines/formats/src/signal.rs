//! Signal exports (placeholder: not implemented yet).
use crate::{ErrorKind, FormatError, Parsed};

/// Whether `head` (the start of the file, lossily decoded) named `name` looks like this format.
pub fn looks_like(_name: &str, _head: &str) -> bool {
    false
}

pub fn parse(_name: &str, _bytes: &[u8]) -> Result<Parsed, FormatError> {
    Err(FormatError::new(ErrorKind::Unsupported, "signal: not implemented yet"))
}
