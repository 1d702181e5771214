//! Parsers: the bytes of one export file -> the items a person (or the people around them)
//! wrote. Pure functions, no I/O: the ingest service reads files and archives, the processor
//! turns items into records with ids and identity.
//!
//! Every parser returns either items or a [`FormatError`] whose kind and message become a
//! dead-letter event. Parsers never merge lines silently: a line that looks like the start of
//! a message but cannot be read is reported, not glued onto the previous message.

use avatar_schemas::RecordKind;
use chrono::{DateTime, Utc};

pub mod bundle;
pub mod code;
pub mod discord;
pub mod docx;
pub mod email;
pub mod epub;
pub mod gerrit;
pub mod git_log;
pub mod github;
pub mod google_chat;
pub mod html;
pub mod imessage;
pub mod irc;
mod json;
pub mod linkedin;
pub mod mattermost;
pub mod mbox;
pub mod messenger;
pub mod odt;
pub mod outlook_msg;
pub mod pdf;
pub mod signal;
pub mod slack;
pub mod sms;
pub mod sniff;
pub mod teams;
pub mod telegram;
pub mod text;
pub mod twitter;
pub mod whatsapp;

/// One piece of writing found in an export, before ids and identity are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub kind: RecordKind,
    /// Conversation, email thread or document title it belongs to.
    pub thread: String,
    pub timestamp: Option<DateTime<Utc>>,
    /// Who wrote it, as the export names them (`Name <addr>` for mail, a display name or
    /// phone number for chats).
    pub author: Option<String>,
    pub text: String,
    pub title: Option<String>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    /// Written by the owner of the account the export came from (an SMS marked sent, an
    /// iMessage `is_from_me`, a tweet in the person's own archive), where the export names no
    /// author. The processor counts these as the person's: exports are assumed to be theirs.
    pub from_owner: bool,
}

/// The items of one artifact and what was deliberately left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// The format that read it: `mbox`, `eml`, `whatsapp`, `telegram`, `text`, `markdown`.
    pub format: &'static str,
    pub items: Vec<Item>,
    /// System lines, media placeholders and similar lines that carry no one's writing.
    pub skipped: usize,
    /// Lines or entries that could not be read but did not stop the rest (reported, not merged).
    pub warnings: Vec<String>,
}

/// Why an artifact could not be parsed. Becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Empty,
    Binary,
    Encoding,
    Malformed,
    Truncated,
    Unsupported,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty",
            ErrorKind::Binary => "binary",
            ErrorKind::Encoding => "encoding",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

impl FormatError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        FormatError {
            kind,
            message: message.into(),
        }
    }
}

/// Parse one artifact. `name` is its file name (or path inside an archive), used with the
/// content to sniff the format; `hint` forces a format (`mbox`, `eml`, `whatsapp`, `telegram`,
/// `text`, `markdown`).
pub fn parse(name: &str, hint: Option<&str>, bytes: &[u8]) -> Result<Parsed, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::new(
            ErrorKind::Empty,
            format!("{name}: the file is empty"),
        ));
    }
    let format = match hint {
        Some(h) => sniff::Format::from_name(h).ok_or_else(|| {
            FormatError::new(ErrorKind::Unsupported, format!("unknown format `{h}`"))
        })?,
        None => sniff::sniff(name, bytes)?,
    };
    use sniff::Format as F;
    match format {
        F::Mbox => mbox::parse(bytes),
        F::Eml => email::parse_eml(bytes),
        F::WhatsApp => whatsapp::parse(name, bytes),
        F::Telegram => telegram::parse(bytes),
        F::Text => text::parse(name, bytes, false),
        F::Markdown => text::parse(name, bytes, true),
        F::Slack => slack::parse(name, bytes),
        F::Mattermost => mattermost::parse(name, bytes),
        F::Irc => irc::parse(name, bytes),
        F::Discord => discord::parse(name, bytes),
        F::Messenger => messenger::parse(name, bytes),
        F::GoogleChat => google_chat::parse(name, bytes),
        F::LinkedIn => linkedin::parse(name, bytes),
        F::Twitter => twitter::parse(name, bytes),
        F::Sms => sms::parse(name, bytes),
        F::Signal => signal::parse(name, bytes),
        F::GitLog => git_log::parse(name, bytes),
        F::GitHub => github::parse(name, bytes),
        F::Html => html::parse(name, bytes),
        F::Code => code::parse(name, bytes),
        F::IMessage => imessage::parse(name, bytes),
        F::OutlookMsg => outlook_msg::parse(name, bytes),
        F::Pdf => pdf::parse(name, bytes),
        F::Docx => docx::parse(name, bytes),
        F::Odt => odt::parse(name, bytes),
        F::Epub => epub::parse(name, bytes),
        F::Gerrit => gerrit::parse(name, bytes),
        F::Teams => teams::parse(name, bytes),
    }
}
