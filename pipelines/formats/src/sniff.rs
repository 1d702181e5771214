//! Which parser reads a file: decided from the content first and the name second, because
//! exports get renamed (`_chat.txt`, `result (1).json`, `messages.mbox.txt`).

use crate::{ErrorKind, FormatError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mbox,
    Eml,
    WhatsApp,
    Telegram,
    Text,
    Markdown,
    Slack,
    Mattermost,
    Irc,
    Discord,
    Messenger,
    GoogleChat,
    LinkedIn,
    Twitter,
    Sms,
    Signal,
    GitLog,
    GitHub,
    Html,
    Code,
    IMessage,
    OutlookMsg,
    Pdf,
    Docx,
    Odt,
    Epub,
    Gerrit,
    Teams,
}

/// Every format with the names `--format` accepts (first = canonical).
const NAMES: &[(Format, &[&str])] = &[
    (Format::Mbox, &["mbox"]),
    (Format::Eml, &["eml", "email", "maildir"]),
    (Format::WhatsApp, &["whatsapp"]),
    (Format::Telegram, &["telegram"]),
    (Format::Text, &["text", "txt"]),
    (Format::Markdown, &["markdown", "md"]),
    (Format::Slack, &["slack"]),
    (Format::Mattermost, &["mattermost"]),
    (Format::Irc, &["irc"]),
    (Format::Discord, &["discord"]),
    (Format::Messenger, &["messenger", "facebook", "instagram"]),
    (Format::GoogleChat, &["google-chat", "hangouts"]),
    (Format::LinkedIn, &["linkedin"]),
    (Format::Twitter, &["twitter", "x"]),
    (Format::Sms, &["sms"]),
    (Format::Signal, &["signal"]),
    (Format::GitLog, &["git-log", "git"]),
    (Format::GitHub, &["github"]),
    (Format::Html, &["html"]),
    (Format::Code, &["code"]),
    (Format::IMessage, &["imessage"]),
    (Format::OutlookMsg, &["msg", "outlook-msg"]),
    (Format::Pdf, &["pdf"]),
    (Format::Docx, &["docx"]),
    (Format::Odt, &["odt"]),
    (Format::Epub, &["epub"]),
    (Format::Gerrit, &["gerrit"]),
    (Format::Teams, &["teams"]),
];

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        let name = name.to_ascii_lowercase();
        NAMES
            .iter()
            .find(|(_, names)| names.contains(&name.as_str()))
            .map(|(f, _)| *f)
    }

    /// The canonical `--format` name.
    pub fn name(&self) -> &'static str {
        NAMES
            .iter()
            .find(|(f, _)| f == self)
            .and_then(|(_, names)| names.first().copied())
            .unwrap_or("unknown")
    }
}

/// Sniff the format of `bytes` named `name`.
pub fn sniff(name: &str, bytes: &[u8]) -> Result<Format, FormatError> {
    let lower = name.to_ascii_lowercase();
    let head = &bytes[..bytes.len().min(64 * 1024)];
    // Binary containers first, by magic bytes (then by name for the zip family).
    if head.starts_with(b"%PDF-") {
        return Ok(Format::Pdf);
    }
    if head.starts_with(b"SQLite format 3\0") {
        return Ok(Format::IMessage);
    }
    if head.starts_with(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]) {
        return Ok(Format::OutlookMsg);
    }
    if head.starts_with(b"PK\x03\x04") {
        if lower.ends_with(".docx") {
            return Ok(Format::Docx);
        }
        if lower.ends_with(".odt") {
            return Ok(Format::Odt);
        }
        if lower.ends_with(".epub") {
            return Ok(Format::Epub);
        }
        // A whole Slack export (users.json + channels.json), whatever the zip is called.
        if crate::bundle::zip_bundle_kind(bytes) == Some("slack") {
            return Ok(Format::Slack);
        }
    }
    if looks_binary(head) {
        return Err(FormatError::new(
            ErrorKind::Binary,
            format!(
                "{name}: binary content ({}) is not a supported export format",
                describe_binary(head)
            ),
        ));
    }
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    // Before mbox: `git format-patch`'s `From <sha> Mon Sep 17 00:00:00 2001` + headers is one.
    if crate::git_log::looks_like(name, trimmed) {
        return Ok(Format::GitLog);
    }
    if trimmed.starts_with("From ")
        && (lower.ends_with(".mbox") || looks_like_headers(after_first_line(trimmed)))
    {
        return Ok(Format::Mbox);
    }
    if lower.ends_with(".mbox") {
        return Ok(Format::Mbox);
    }
    // Text formats that know their own shape, most specific first.
    let checks: &[(Format, fn(&str, &str) -> bool)] = &[
        (Format::Twitter, crate::twitter::looks_like),
        (Format::Slack, crate::slack::looks_like),
        (Format::Discord, crate::discord::looks_like),
        (Format::Messenger, crate::messenger::looks_like),
        (Format::GoogleChat, crate::google_chat::looks_like),
        (Format::Mattermost, crate::mattermost::looks_like),
        (Format::Signal, crate::signal::looks_like),
        (Format::Sms, crate::sms::looks_like),
        (Format::LinkedIn, crate::linkedin::looks_like),
        (Format::GitHub, crate::github::looks_like),
        (Format::Gerrit, crate::gerrit::looks_like),
        (Format::Teams, crate::teams::looks_like),
    ];
    for (format, looks) in checks {
        if looks(name, trimmed) {
            return Ok(*format);
        }
    }
    if lower.ends_with(".json") || trimmed.starts_with('{') {
        // A full export may list thousands of contacts before `chats`; Bot API dumps have
        // `update_id` instead.
        if [
            "\"messages\"",
            "\"chats\"",
            "\"personal_information\"",
            "\"update_id\"",
        ]
        .iter()
        .any(|k| trimmed.contains(k))
        {
            return Ok(Format::Telegram);
        }
        return Err(FormatError::new(
            ErrorKind::Unsupported,
            format!("{name}: JSON that is not an export format Avatar knows (Telegram, Slack, Discord, Messenger, Google Chat, Mattermost, X)"),
        ));
    }
    if lower.ends_with(".eml") || looks_like_headers(trimmed) {
        return Ok(Format::Eml);
    }
    if crate::whatsapp::looks_like(&text) {
        return Ok(Format::WhatsApp);
    }
    let late: &[(Format, fn(&str, &str) -> bool)] = &[
        (Format::GitLog, crate::git_log::looks_like),
        (Format::Irc, crate::irc::looks_like),
        (Format::Html, crate::html::looks_like),
        (Format::Code, crate::code::looks_like),
    ];
    for (format, looks) in late {
        if looks(name, trimmed) {
            return Ok(*format);
        }
    }
    if lower.ends_with(".md") || lower.ends_with(".markdown") {
        return Ok(Format::Markdown);
    }
    if lower.ends_with(".txt")
        || lower.ends_with(".text")
        || lower.ends_with(".org")
        || lower.ends_with(".rst")
    {
        return Ok(Format::Text);
    }
    Err(FormatError::new(
        ErrorKind::Unsupported,
        format!("{name}: not a format Avatar reads yet (see `avatar ingest --help` for the list)"),
    ))
}

fn after_first_line(s: &str) -> &str {
    s.split_once('\n').map(|(_, rest)| rest).unwrap_or("")
}

/// RFC 5322 header block: the first lines are `Name: value` with at least one well-known
/// mail header among them.
fn looks_like_headers(s: &str) -> bool {
    let mut known = 0;
    for line in s.lines().take(40) {
        if line.is_empty() {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return false;
        }
        let n = name.to_ascii_lowercase();
        if matches!(
            n.as_str(),
            "from"
                | "to"
                | "subject"
                | "date"
                | "message-id"
                | "received"
                | "return-path"
                | "mime-version"
                | "delivered-to"
                | "x-gm-thrid"
        ) {
            known += 1;
        }
    }
    known >= 2
}

/// NUL bytes or invalid UTF-8 that is not explained by a legacy single-byte encoding.
fn looks_binary(head: &[u8]) -> bool {
    if head.contains(&0) {
        return true;
    }
    let controls = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c | 0x1b))
        .count();
    controls * 20 > head.len().max(1)
}

fn describe_binary(head: &[u8]) -> &'static str {
    match head {
        [0x25, 0x50, 0x44, 0x46, ..] => "PDF",
        [0xff, 0xd8, 0xff, ..] => "JPEG image",
        [0x89, b'P', b'N', b'G', ..] => "PNG image",
        [b'P', b'K', 3, 4, ..] => "zip archive",
        [b'S', b'Q', b'L', b'i', b't', b'e', ..] => "SQLite database",
        [b'G', b'I', b'F', b'8', ..] => "GIF image",
        [0x1f, 0x8b, ..] => "gzip data",
        [b'!', b'B', b'D', b'N', ..] => {
            "an Outlook .pst mail store: ingest converts it to .eml with readpst from pst-utils"
        }
        _ => "unrecognised",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_before_name() {
        assert_eq!(
            sniff(
                "x.txt",
                b"From a@b Mon Jan  1 00:00:00 2001\nFrom: a@b\nSubject: s\n\nhi\n"
            )
            .unwrap(),
            Format::Mbox
        );
        assert_eq!(
            sniff("mail", b"From: a@b\nTo: c@d\nSubject: s\n\nhi\n").unwrap(),
            Format::Eml
        );
        assert_eq!(
            sniff("result.json", b"{\"name\":\"x\",\"messages\":[]}").unwrap(),
            Format::Telegram
        );
        assert_eq!(
            sniff("notes.md", b"# Title\n\nbody").unwrap(),
            Format::Markdown
        );
        assert_eq!(
            sniff("notes.txt", b"just some notes").unwrap(),
            Format::Text
        );
    }

    #[test]
    fn binary_is_refused_with_a_reason() {
        let e = sniff("photo.jpg", &[0xff, 0xd8, 0xff, 0, 1, 2]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Binary);
        assert!(e.message.contains("JPEG"));
    }
}
