//! What an incoming mail asks, or why it must not be answered. Only the new text of the mail
//! reaches the model: quoted history and signatures are cut (they would leak the avatar's own
//! earlier answers back into the prompt and drown the question).

use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

/// A question mailed to the avatar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Message-ID without angle brackets, when the mail has a usable one.
    pub message_id: Option<String>,
    /// The state key: the Message-ID, or `sha256:…` of the raw mail when it has none.
    pub key: String,
    /// Sender address (From), lower-cased.
    pub from: String,
    pub from_name: Option<String>,
    /// Reply-To address, when set: where the answer goes.
    pub reply_to: Option<String>,
    pub subject: String,
    /// The new text of the mail: reply quotes, signatures and mobile footers removed.
    pub text: String,
    /// The thread's Message-IDs (References, else In-Reply-To), oldest first, without brackets.
    pub references: Vec<String>,
}

/// Why a mail is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Not a mail at all (no headers we can read).
    Unparseable,
    /// No usable From address.
    NoSender,
    /// `Auto-Submitted` other than `no` (vacation replies, other robots).
    AutoSubmitted(String),
    /// A delivery report or a mail from MAILER-DAEMON / postmaster / an empty Return-Path.
    Bounce,
    /// List-Id / List-Unsubscribe / Precedence: list, bulk or junk.
    Bulk,
    /// From the avatar's own address: answering would loop.
    OwnAddress,
    /// Nothing left to answer after quotes and signatures were removed.
    Empty,
    /// The sender is not on the allow-list (decided by the loop, not the parser).
    NotAllowed,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Unparseable => write!(f, "not a readable mail"),
            SkipReason::NoSender => write!(f, "no sender address"),
            SkipReason::AutoSubmitted(v) => write!(f, "automatic mail (Auto-Submitted: {v})"),
            SkipReason::Bounce => write!(f, "a bounce or delivery report"),
            SkipReason::Bulk => write!(f, "a mailing list or bulk mail"),
            SkipReason::OwnAddress => write!(f, "sent by the avatar's own address"),
            SkipReason::Empty => write!(f, "no question in the mail"),
            SkipReason::NotAllowed => write!(f, "sender not on the allow-list"),
        }
    }
}

/// A parsed incoming mail: a question to answer, or a reason to leave it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Question(Question),
    Skip {
        key: String,
        from: Option<String>,
        subject: String,
        reason: SkipReason,
    },
}

impl Incoming {
    pub fn key(&self) -> &str {
        match self {
            Incoming::Question(q) => &q.key,
            Incoming::Skip { key, .. } => key,
        }
    }
}

/// Longest question text passed on; the rest of a very long mail is cut (prompt budget).
const MAX_QUESTION_CHARS: usize = 4000;

/// Reads a raw RFC 5322 mail. `own_address` is the avatar's From address (mail from it is
/// never answered). Never panics on any input.
pub fn parse_mail(raw: &[u8], own_address: &str) -> Incoming {
    let digest_key = || format!("sha256:{}", hex::encode(Sha256::digest(raw)));
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Incoming::Skip {
            key: digest_key(),
            from: None,
            subject: String::new(),
            reason: SkipReason::Unparseable,
        };
    };
    let message_id = msg.message_id().and_then(clean_id);
    let key = message_id.clone().unwrap_or_else(digest_key);
    let subject = msg
        .subject()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let first_addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|s| s.trim().to_lowercase())
            .filter(|s| valid_address(s))
    };
    let from = first_addr(msg.from());
    let skip = |reason: SkipReason| Incoming::Skip {
        key: key.clone(),
        from: from.clone(),
        subject: subject.clone(),
        reason,
    };
    if msg.headers().is_empty() {
        return skip(SkipReason::Unparseable);
    }
    if let Some(v) = msg.header_raw("Auto-Submitted") {
        let v = v.trim().to_lowercase();
        let first = v.split(';').next().unwrap_or("").trim().to_string();
        if first != "no" {
            return skip(SkipReason::AutoSubmitted(first));
        }
    }
    let Some(from_addr) = from.clone() else {
        return skip(SkipReason::NoSender);
    };
    let local = from_addr.split('@').next().unwrap_or("");
    let is_report = msg
        .content_type()
        .map(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        })
        .unwrap_or(false);
    let null_return_path = msg
        .header_raw("Return-Path")
        .is_some_and(|r| r.trim() == "<>");
    if local.eq_ignore_ascii_case("mailer-daemon")
        || local.eq_ignore_ascii_case("postmaster")
        || is_report
        || null_return_path
    {
        return skip(SkipReason::Bounce);
    }
    let precedence = msg
        .header_raw("Precedence")
        .map(|p| p.trim().to_lowercase())
        .unwrap_or_default();
    if msg.header_raw("List-Id").is_some()
        || msg.header_raw("List-Unsubscribe").is_some()
        || matches!(precedence.as_str(), "bulk" | "list" | "junk")
        || msg.header_raw("X-Autoreply").is_some()
        || msg.header_raw("X-Autorespond").is_some()
    {
        return skip(SkipReason::Bulk);
    }
    if from_addr.eq_ignore_ascii_case(own_address.trim()) {
        return skip(SkipReason::OwnAddress);
    }
    let mut text = new_text(&msg);
    // A question asked in the subject alone ("How did you meet Charles?"); in a reply the
    // subject is the thread's, not a question.
    let is_reply = crate::reply::reply_subject(&subject) != format!("Re: {}", subject.trim());
    if text.is_empty() && !is_reply {
        text = subject.clone();
    }
    if text.trim().is_empty() {
        return skip(SkipReason::Empty);
    }
    let reply_to = first_addr(msg.reply_to());
    let mut references: Vec<String> = id_list(msg.references());
    if references.is_empty() {
        references = id_list(msg.in_reply_to());
    }
    Incoming::Question(Question {
        message_id,
        key,
        from: from_addr,
        from_name: msg
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.name())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        reply_to,
        subject,
        text,
        references,
    })
}

/// The author's new text: the first text/plain part with quotes cut, else the HTML part
/// rendered without its quote containers.
fn new_text(msg: &mail_parser::Message) -> String {
    let plain = msg
        .text_bodies()
        .find(|p| p.is_text() && !p.is_text_html())
        .and_then(|p| p.text_contents().map(str::to_string));
    let text = match plain {
        Some(t) => avatar_text::strip_reply(&t),
        None => match msg.html_bodies().find_map(|p| p.text_contents()) {
            Some(html) => avatar_text::strip_reply(&avatar_text::html_to_text_without_quotes(html)),
            None => String::new(),
        },
    };
    let text = text.trim();
    match text.char_indices().nth(MAX_QUESTION_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

fn id_list(v: &mail_parser::HeaderValue) -> Vec<String> {
    let mut out: Vec<String> = match v {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
    .iter()
    .filter_map(|s| clean_id(s))
    .collect();
    // Keep the first occurrence of each id (a thread's order matters).
    let mut seen = std::collections::HashSet::new();
    out.retain(|id| seen.insert(id.clone()));
    out
}

/// A Message-ID safe to write back into a header: printable ASCII, no spaces or brackets
/// (anything else could inject headers into the reply).
fn clean_id(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches('<').trim_end_matches('>');
    let ok = !s.is_empty()
        && s.len() <= 250
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    ok.then(|| s.to_string())
}

fn valid_address(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && s.len() <= 254
                && s.chars()
                    .all(|c| !c.is_control() && !c.is_whitespace() && c != '<' && c != '>')
        }
        None => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OWN: &str = "ada-avatar@example.org";

    fn mail(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\n\n{body}")
            .replace('\n', "\r\n")
            .into_bytes()
    }

    fn question(raw: &[u8]) -> Question {
        match parse_mail(raw, OWN) {
            Incoming::Question(q) => q,
            other => panic!("not a question: {other:?}"),
        }
    }

    fn reason(raw: &[u8]) -> SkipReason {
        match parse_mail(raw, OWN) {
            Incoming::Skip { reason, .. } => reason,
            other => panic!("not skipped: {other:?}"),
        }
    }

    #[test]
    fn a_reply_keeps_only_the_new_question_and_the_thread() {
        let raw = mail(
            "From: Charles Babbage <Charles@Example.org>\nTo: ada-avatar@example.org\n\
             Reply-To: cb@home.example\nSubject: Re: Re: engines\n\
             Message-ID: <q2@example.org>\nIn-Reply-To: <a1@example.org>\n\
             References: <q1@example.org> <a1@example.org>",
            "What did you think of the Analytical Engine?\n\n\
             On Mon, 1 Jan 2024, Ada wrote:\n> It weaves algebraic patterns.\n> Truly.\n\n\
             -- \nCharles\nLondon",
        );
        let q = question(&raw);
        assert_eq!(q.message_id.as_deref(), Some("q2@example.org"));
        assert_eq!(q.key, "q2@example.org");
        assert_eq!(q.from, "charles@example.org");
        assert_eq!(q.from_name.as_deref(), Some("Charles Babbage"));
        assert_eq!(q.reply_to.as_deref(), Some("cb@home.example"));
        assert_eq!(q.subject, "Re: Re: engines");
        assert_eq!(q.text, "What did you think of the Analytical Engine?");
        assert_eq!(q.references, vec!["q1@example.org", "a1@example.org"]);
    }

    #[test]
    fn html_only_mail_is_read_without_its_quote() {
        let raw = mail(
            "From: b@example.org\nSubject: hi\nMessage-ID: <h@x>\nContent-Type: text/html; charset=utf-8",
            "<p>Do you like poetry?</p><blockquote type=\"cite\"><p>old text</p></blockquote>",
        );
        let q = question(&raw);
        assert!(q.text.contains("Do you like poetry?"), "{}", q.text);
        assert!(!q.text.contains("old text"), "{}", q.text);
        assert!(q.references.is_empty());
    }

    #[test]
    fn a_mail_without_message_id_gets_a_stable_content_key() {
        let raw = mail("From: b@example.org\nSubject: hi", "Why?");
        let a = question(&raw);
        assert!(a.key.starts_with("sha256:"));
        assert_eq!(a.message_id, None);
        assert_eq!(question(&raw).key, a.key);
    }

    #[test]
    fn robots_lists_bounces_and_loops_are_skipped() {
        let h = "From: b@example.org\nSubject: hi\nMessage-ID: <m@x>";
        assert_eq!(
            reason(&mail(&format!("{h}\nAuto-Submitted: auto-replied"), "away")),
            SkipReason::AutoSubmitted("auto-replied".into())
        );
        // `Auto-Submitted: no` is a person.
        question(&mail(&format!("{h}\nAuto-Submitted: no"), "Why?"));
        assert_eq!(
            reason(&mail(&format!("{h}\nPrecedence: bulk"), "x")),
            SkipReason::Bulk
        );
        assert_eq!(
            reason(&mail(&format!("{h}\nPrecedence: List"), "x")),
            SkipReason::Bulk
        );
        assert_eq!(
            reason(&mail(&format!("{h}\nList-Id: <l.x.org>"), "x")),
            SkipReason::Bulk
        );
        assert_eq!(
            reason(&mail(
                "From: MAILER-DAEMON@mx.example.org\nSubject: Undelivered Mail\nMessage-ID: <b@x>",
                "Delivery failed"
            )),
            SkipReason::Bounce
        );
        assert_eq!(
            reason(&mail(
                "From: b@example.org\nSubject: r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"",
                "--B\nContent-Type: text/plain\n\nfailed\n--B--"
            )),
            SkipReason::Bounce
        );
        assert_eq!(
            reason(&mail(
                "From: Ada-Avatar@Example.org\nSubject: hi\nMessage-ID: <o@x>",
                "x"
            )),
            SkipReason::OwnAddress
        );
        assert_eq!(
            reason(&mail("Subject: hi\nMessage-ID: <n@x>", "x")),
            SkipReason::NoSender
        );
        assert_eq!(
            reason(&mail(
                "From: b@example.org\nSubject: Re: hi\nMessage-ID: <e@x>",
                "> only a quote\n> nothing new"
            )),
            SkipReason::Empty
        );
        assert_eq!(
            reason(&mail("From: b@example.org\nMessage-ID: <e2@x>", "")),
            SkipReason::Empty
        );
    }

    #[test]
    fn a_question_in_the_subject_alone_is_read() {
        let q = question(&mail(
            "From: b@example.org\nSubject: Do you like poetry?",
            "",
        ));
        assert_eq!(q.text, "Do you like poetry?");
    }

    #[test]
    fn garbage_is_skipped_not_answered() {
        for raw in [&b""[..], b"\x00\xff\xfe", b"no headers at all", b"\r\n\r\n"] {
            assert!(
                matches!(parse_mail(raw, OWN), Incoming::Skip { .. }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn header_injection_in_ids_is_dropped() {
        assert_eq!(clean_id("<a b@x>"), None);
        assert_eq!(clean_id("<a\r\nBcc: e@x>"), None);
        assert_eq!(clean_id("<ok.1@x>").as_deref(), Some("ok.1@x"));
        assert_eq!(clean_id("<>"), None);
    }
}
