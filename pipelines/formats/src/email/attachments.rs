//! Attachments as documents: a report, a CV or meeting notes a person mailed are often the
//! longest things they wrote, so text-like attachments (plain text, Markdown, CSV, HTML) and
//! the document formats this crate reads (PDF, DOCX, ODT, EPUB through [`crate::parse`], with
//! the format forced so a disguised attachment cannot recurse into the mail parser)
//! become extra [`Item`]s of kind `Document`, after the mail item so that the mail's ordinal
//! (and so its record id) does not change when attachment support arrives.
//!
//! The document inherits the mail's context (thread, date, author) and points at the mail
//! with `in_reply_to`, so later stages can tell who sent it and in which conversation.
//! Images, archives, signatures and anything else are ignored: they carry no one's words.
//! An attachment that cannot be read adds a warning; it never costs the mail.

use avatar_schemas::RecordKind;
use mail_parser::{Message, MimeHeaders, PartType};

use crate::Item;

/// At most this many attachments of one mail are read (a hostile mail may have thousands).
const MAX_ATTACHMENTS: usize = 256;

/// One attachment as its container (a MIME mail or an Outlook .msg) holds it.
#[derive(Debug, Clone)]
pub(crate) struct Attachment<'a> {
    /// The file name, as the sender's client wrote it.
    pub name: Option<String>,
    /// `type/subtype`, lower case, when the container states it.
    pub mime: Option<String>,
    /// The text, when the container already decoded its charset (MIME text parts).
    pub text: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// How an attachment is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Html,
    /// A format another parser of this crate reads, by its `--format` name.
    Document(&'static str),
    Ignored,
}

/// Exchange and Apple Mail split a body around an inline attachment and send the pieces
/// after it as `ATT00001.htm`/`att09558.htm` (or `.txt`) parts marked as attachments: they
/// are the rest of the body (footers, the quoted thread), not documents anyone attached.
fn is_body_fragment(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower
        .strip_suffix(".htm")
        .or_else(|| lower.strip_suffix(".html"))
        .or_else(|| lower.strip_suffix(".txt"))
    else {
        return false;
    };
    stem.strip_prefix("att")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn classify(name: Option<&str>, mime: Option<&str>) -> Kind {
    if name.is_some_and(is_body_fragment) {
        return Kind::Ignored;
    }
    let ext = name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mime = mime.unwrap_or("").to_ascii_lowercase();
    // Outlook and many webmails send every file as a generic binary type: go by name then.
    // A specific type is trusted, so a bounce's `message/delivery-status` named `x.txt`
    // stays out.
    let generic = matches!(
        mime.as_str(),
        "" | "application/octet-stream"
            | "binary/octet-stream"
            | "application/x-download"
            | "application/force-download"
            | "application/download"
            | "application/unknown"
    );
    match mime.as_str() {
        "text/plain" | "text/markdown" | "text/x-markdown" | "text/csv" => return Kind::Text,
        "text/html" => return Kind::Html,
        "application/pdf" => return Kind::Document("pdf"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            return Kind::Document("docx")
        }
        "application/vnd.oasis.opendocument.text" => return Kind::Document("odt"),
        "application/epub+zip" => return Kind::Document("epub"),
        _ if !generic => return Kind::Ignored,
        _ => {}
    }
    match ext.as_str() {
        "txt" | "md" | "markdown" | "csv" => Kind::Text,
        "htm" | "html" => Kind::Html,
        "pdf" => Kind::Document("pdf"),
        "docx" => Kind::Document("docx"),
        "odt" => Kind::Document("odt"),
        "epub" => Kind::Document("epub"),
        _ => Kind::Ignored,
    }
}

/// The attachments of a MIME message: parts with a file name or `Content-Disposition:
/// attachment`. Nested messages (forwarded mail) are not documents and are left out.
pub(crate) fn mime_attachments<'a>(msg: &'a Message<'a>) -> Vec<Attachment<'a>> {
    let mut out = Vec::new();
    for part in msg.attachments().take(MAX_ATTACHMENTS) {
        let disposition_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        let name = part
            .attachment_name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        if name.is_none() && !disposition_attachment {
            continue;
        }
        let mime = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        });
        let (text, bytes): (Option<&str>, &[u8]) = match &part.body {
            PartType::Text(t) | PartType::Html(t) => (Some(t.as_ref()), t.as_bytes()),
            PartType::Binary(b) | PartType::InlineBinary(b) => (None, b.as_ref()),
            PartType::Message(_) | PartType::Multipart(_) => continue,
        };
        out.push(Attachment {
            name,
            mime,
            text,
            bytes,
        });
    }
    out
}

/// Document items for `attachments` of `mail`; what cannot be read goes to `warnings`.
pub(crate) fn attachment_items(
    mail: &Item,
    attachments: &[Attachment<'_>],
    warnings: &mut Vec<String>,
) -> Vec<Item> {
    let mut items = Vec::new();
    for (n, att) in attachments.iter().take(MAX_ATTACHMENTS).enumerate() {
        let kind = classify(att.name.as_deref(), att.mime.as_deref());
        let shown = att
            .name
            .clone()
            .unwrap_or_else(|| format!("attachment {}", n + 1));
        let texts: Vec<String> = match kind {
            Kind::Ignored => continue,
            Kind::Text => vec![decoded(att)],
            Kind::Html => vec![avatar_text::html_to_text(&decoded(att))],
            Kind::Document(ext) => {
                // The format is forced, not sniffed: an "attachment.pdf" that is really a mail
                // must not send us back into the mail parser (unbounded nesting).
                match crate::parse(&shown, Some(ext), att.bytes) {
                    Ok(parsed) => {
                        warnings.extend(
                            parsed
                                .warnings
                                .into_iter()
                                .map(|w| format!("attachment {shown}: {w}")),
                        );
                        parsed.items.into_iter().map(|i| i.text).collect()
                    }
                    Err(e) => {
                        warnings.push(format!("attachment {shown} was not read: {e}"));
                        continue;
                    }
                }
            }
        };
        for text in texts {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            items.push(Item {
                kind: RecordKind::Document,
                thread: mail.thread.clone(),
                timestamp: mail.timestamp,
                author: mail.author.clone(),
                text: text.to_string(),
                title: Some(shown.clone()),
                message_id: None,
                in_reply_to: mail.message_id.clone(),
                from_owner: mail.from_owner,
            });
        }
    }
    items
}

/// The attachment's text: as the container decoded it, else UTF-8, else Windows-1252 (what
/// Outlook writes when it states no charset).
fn decoded(att: &Attachment<'_>) -> String {
    if let Some(t) = att.text {
        return t.trim_start_matches('\u{feff}').to_string();
    }
    let bytes = att.bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(att.bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252")
            .map(|d| d(bytes))
            .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mail() -> Item {
        Item {
            kind: RecordKind::Email,
            thread: "t1".into(),
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0),
            author: Some("Ann <ann@example.org>".into()),
            text: "see attached".into(),
            title: Some("Notes".into()),
            message_id: Some("m1@example.org".into()),
            in_reply_to: None,
            from_owner: false,
        }
    }

    #[test]
    fn classifies_by_type_then_name() {
        assert_eq!(
            classify(Some("a.PDF"), Some("application/octet-stream")),
            Kind::Document("pdf")
        );
        assert_eq!(classify(None, Some("text/csv")), Kind::Text);
        assert_eq!(classify(Some("x.md"), None), Kind::Text);
        assert_eq!(classify(Some("page.htm"), None), Kind::Html);
        assert_eq!(
            classify(Some("photo.jpg"), Some("image/jpeg")),
            Kind::Ignored
        );
        assert_eq!(
            classify(Some("sig.asc"), Some("application/pgp-signature")),
            Kind::Ignored
        );
        assert_eq!(
            classify(Some("DSN1.txt"), Some("message/delivery-status")),
            Kind::Ignored
        );
        assert_eq!(classify(Some("fix.patch"), Some("text/plain")), Kind::Text);
        assert_eq!(
            classify(Some("ATT00001.htm"), Some("text/html")),
            Kind::Ignored
        );
        assert_eq!(classify(Some("att09558.htm"), None), Kind::Ignored);
        assert_eq!(classify(Some("attendees.txt"), None), Kind::Text);
    }

    #[test]
    fn text_and_html_become_documents_with_the_mail_context() {
        let atts = [
            Attachment {
                name: Some("notes.txt".into()),
                mime: Some("text/plain".into()),
                text: None,
                bytes: b"Caf\xe9 list\n",
            },
            Attachment {
                name: Some("page.html".into()),
                mime: None,
                text: None,
                bytes: b"<p>Hello <b>there</b></p>",
            },
            Attachment {
                name: Some("pic.png".into()),
                mime: Some("image/png".into()),
                text: None,
                bytes: b"\x89PNG",
            },
            Attachment {
                name: Some("empty.txt".into()),
                mime: None,
                text: None,
                bytes: b"  \n",
            },
        ];
        let mut warnings = Vec::new();
        let items = attachment_items(&mail(), &atts, &mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].text, "Café list");
        assert_eq!(items[0].title.as_deref(), Some("notes.txt"));
        assert_eq!(items[0].kind, RecordKind::Document);
        assert_eq!(items[0].thread, "t1");
        assert_eq!(items[0].in_reply_to.as_deref(), Some("m1@example.org"));
        assert_eq!(items[0].author.as_deref(), Some("Ann <ann@example.org>"));
        assert_eq!(items[0].timestamp, mail().timestamp);
        assert_eq!(items[1].text, "Hello there");
    }

    #[test]
    fn unreadable_document_is_a_warning() {
        let atts = [Attachment {
            name: Some("report.pdf".into()),
            mime: Some("application/pdf".into()),
            text: None,
            bytes: b"not a pdf at all",
        }];
        let mut warnings = Vec::new();
        let items = attachment_items(&mail(), &atts, &mut warnings);
        assert!(items.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("attachment report.pdf was not read"),
            "{warnings:?}"
        );
    }
}
