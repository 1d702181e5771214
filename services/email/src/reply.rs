//! The reply: the answer, the disclosure line (always: the reader must know an avatar wrote
//! it), then numbered sources so every claim can be checked against the person's records.

use crate::{EmailError, Question, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use sha2::{Digest, Sha256};

/// A record the answer drew on.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Where it came from (file, mailbox, chat export, `memory`).
    pub source: String,
    pub date: Option<DateTime<Utc>>,
    pub author: Option<String>,
    pub title: Option<String>,
    pub snippet: String,
}

/// What the model said, with what it was grounded on.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerText {
    pub text: String,
    pub sources: Vec<Source>,
    /// The avatar's disclosure line (persona card): included in every reply.
    pub disclosure: String,
}

/// Longest snippet quoted per source, in characters.
const SNIPPET_CHARS: usize = 160;

/// `Re: <subject>` without stacking prefixes (`Re: Re: AW: x` → `Re: x`).
pub fn reply_subject(subject: &str) -> String {
    let mut s = subject.trim();
    loop {
        let lower = s.to_lowercase();
        let prefix = ["re:", "aw:", "sv:", "antw:", "re :"]
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| p.len())
            .or_else(|| {
                // `Re[2]:` / `Re(2):` as some clients write.
                let rest = lower.strip_prefix("re")?;
                let close = match rest.chars().next()? {
                    '[' => ']',
                    '(' => ')',
                    _ => return None,
                };
                let end = rest.find(close)?;
                (rest[1..end].chars().all(|c| c.is_ascii_digit())
                    && rest[end + 1..].starts_with(':'))
                .then_some(2 + end + 2)
            });
        match prefix {
            Some(n) if s.is_char_boundary(n) => s = s[n..].trim_start(),
            _ => break,
        }
    }
    if s.is_empty() {
        "Re: your question".to_string()
    } else {
        format!("Re: {s}")
    }
}

/// The text body: answer, disclosure, then "Sources:" with numbered citations.
pub fn reply_body(answer: &AnswerText) -> String {
    let mut out = String::new();
    let text = answer.text.trim();
    out.push_str(if text.is_empty() {
        "(no answer was generated)"
    } else {
        text
    });
    out.push_str("\n\n");
    out.push_str(answer.disclosure.trim());
    out.push('\n');
    if answer.sources.is_empty() {
        out.push_str("\nSources: none found in the records.\n");
        return out;
    }
    out.push_str("\nSources:\n");
    for (i, s) in answer.sources.iter().enumerate() {
        let mut line = format!("[{}] {}", i + 1, one_line(&s.source));
        if let Some(d) = s.date {
            line.push_str(&format!(", {}", d.format("%Y-%m-%d")));
        }
        if let Some(a) = s.author.as_deref().filter(|a| !a.trim().is_empty()) {
            line.push_str(&format!(", {}", one_line(a)));
        }
        if let Some(t) = s.title.as_deref().filter(|t| !t.trim().is_empty()) {
            line.push_str(&format!(": {}", one_line(t)));
        }
        out.push_str(&line);
        out.push('\n');
        // Search snippets mark hits as **bold**: noise in a plain-text mail.
        let snippet = short(&one_line(&s.snippet.replace("**", "")), SNIPPET_CHARS);
        if !snippet.is_empty() {
            out.push_str(&format!("    \"{snippet}\"\n"));
        }
    }
    out
}

/// Builds the reply to `q` from the avatar's mailbox `from`. `now` dates the mail and seeds its
/// Message-ID (pure: the same inputs give the same mail).
pub fn compose_reply(
    q: &Question,
    from: &Mailbox,
    answer: &AnswerText,
    now: DateTime<Utc>,
) -> Result<Message> {
    let to_addr = q.reply_to.as_deref().unwrap_or(&q.from);
    let to_addr: lettre::Address = to_addr
        .parse()
        .map_err(|e| EmailError::Compose(format!("recipient `{to_addr}`: {e}")))?;
    let to_name = if q.reply_to.is_none() {
        q.from_name.clone()
    } else {
        None
    };
    let to = Mailbox::new(to_name, to_addr);
    let domain = from.email.domain().to_string();
    let seed = Sha256::digest(format!("{}\n{}", q.key, now.to_rfc3339()).as_bytes());
    let own_id = format!("<avatar.{}@{domain}>", &hex::encode(seed)[..24]);
    let mut b = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(reply_subject(&q.subject))
        .date(now.into())
        .message_id(Some(own_id))
        .header(AutoSubmitted("auto-replied".into()))
        .header(ContentType::TEXT_PLAIN);
    if let Some(id) = &q.message_id {
        b = b.in_reply_to(format!("<{id}>"));
        let mut refs: Vec<String> = q.references.iter().filter(|r| *r != id).cloned().collect();
        refs.push(id.clone());
        let refs: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(refs.join(" "));
    } else if !q.references.is_empty() {
        let refs: Vec<String> = q.references.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(refs.join(" "));
    }
    b.body(reply_body(answer))
        .map_err(|e| EmailError::Compose(e.to_string()))
}

/// `Auto-Submitted` (RFC 3834): tells vacation responders and other robots not to answer.
#[derive(Debug, Clone)]
struct AutoSubmitted(String);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn short(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", s[..cut].trim_end()),
        None => s.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn question() -> Question {
        Question {
            message_id: Some("q2@example.org".into()),
            key: "q2@example.org".into(),
            from: "charles@example.org".into(),
            from_name: Some("Charles Babbage".into()),
            reply_to: None,
            subject: "Re: RE: engines".into(),
            text: "What did you think of the engine?".into(),
            references: vec!["q1@example.org".into(), "a1@example.org".into()],
        }
    }

    fn answer() -> AnswerText {
        AnswerText {
            text: "It weaves algebraic patterns.".into(),
            disclosure: "I am an avatar of Ada Lovelace — not Ada herself.".into(),
            sources: vec![
                Source {
                    source: "mail/1843.mbox".into(),
                    date: Some(Utc.with_ymd_and_hms(1843, 7, 2, 10, 0, 0).unwrap()),
                    author: Some("Ada Lovelace".into()),
                    title: Some("Notes".into()),
                    snippet: "The Analytical Engine weaves\nalgebraic patterns ".repeat(10),
                },
                Source {
                    source: "memory".into(),
                    date: None,
                    author: None,
                    title: None,
                    snippet: "She loved **poetry**.".into(),
                },
            ],
        }
    }

    fn avatar() -> Mailbox {
        Mailbox::new(
            Some("Ada Lovelace (avatar)".into()),
            "ada-avatar@example.org".parse().unwrap(),
        )
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn subjects_do_not_stack() {
        assert_eq!(reply_subject("engines"), "Re: engines");
        assert_eq!(reply_subject("Re: engines"), "Re: engines");
        assert_eq!(reply_subject("RE: Re: AW: engines"), "Re: engines");
        assert_eq!(reply_subject("Re[2]: engines"), "Re: engines");
        assert_eq!(reply_subject("  "), "Re: your question");
        assert_eq!(reply_subject("Regarding engines"), "Re: Regarding engines");
        assert_eq!(reply_subject("Ré: é"), "Re: Ré: é");
    }

    #[test]
    fn body_has_answer_disclosure_and_numbered_sources() {
        let body = reply_body(&answer());
        let a = body.find("It weaves").unwrap();
        let d = body.find("I am an avatar of Ada").unwrap();
        let s = body.find("Sources:").unwrap();
        assert!(a < d && d < s, "{body}");
        assert!(
            body.contains("[1] mail/1843.mbox, 1843-07-02, Ada Lovelace: Notes\n"),
            "{body}"
        );
        assert!(
            body.contains("[2] memory\n    \"She loved poetry.\""),
            "{body}"
        );
        // Snippets are one short line.
        let snippet = body
            .lines()
            .find(|l| l.contains("Engine weaves algebraic"))
            .unwrap();
        assert!(snippet.chars().count() < SNIPPET_CHARS + 10, "{snippet}");
        assert!(snippet.ends_with("…\""), "{snippet}");
    }

    #[test]
    fn no_sources_is_said_plainly() {
        let mut a = answer();
        a.sources.clear();
        a.text = "  ".into();
        let body = reply_body(&a);
        assert!(body.starts_with("(no answer was generated)"));
        assert!(body.contains("Sources: none found"));
        assert!(body.contains("I am an avatar"));
    }

    #[test]
    fn reply_headers_thread_and_address_it() {
        let msg = compose_reply(&question(), &avatar(), &answer(), now()).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let h = msg.headers();
        assert_eq!(h.get_raw("In-Reply-To"), Some("<q2@example.org>"));
        assert_eq!(
            h.get_raw("References"),
            Some("<q1@example.org> <a1@example.org> <q2@example.org>")
        );
        assert_eq!(h.get_raw("Subject"), Some("Re: engines"));
        assert_eq!(h.get_raw("Auto-Submitted"), Some("auto-replied"));
        assert!(
            raw.contains("To: \"Charles Babbage\" <charles@example.org>"),
            "{raw}"
        );
        assert!(raw.contains("ada-avatar@example.org"), "{raw}");
        let id = h.get_raw("Message-ID").unwrap();
        assert!(
            id.starts_with("<avatar.") && id.ends_with("@example.org>"),
            "{id}"
        );
        // Same inputs, same mail (pure).
        let again = compose_reply(&question(), &avatar(), &answer(), now()).unwrap();
        assert_eq!(again.formatted(), msg.formatted());
        let env = msg.envelope();
        assert_eq!(env.to().len(), 1);
        assert_eq!(env.to()[0].to_string(), "charles@example.org");
    }

    #[test]
    fn reply_to_wins_over_from() {
        let mut q = question();
        q.reply_to = Some("cb@home.example".into());
        q.message_id = None;
        let msg = compose_reply(&q, &avatar(), &answer(), now()).unwrap();
        assert_eq!(msg.envelope().to()[0].to_string(), "cb@home.example");
        assert_eq!(msg.headers().get_raw("In-Reply-To"), None);
        assert_eq!(
            msg.headers().get_raw("References"),
            Some("<q1@example.org> <a1@example.org>")
        );
    }

    #[test]
    fn a_bad_recipient_is_an_error_not_a_panic() {
        let mut q = question();
        q.from = "not an address".into();
        assert!(compose_reply(&q, &avatar(), &answer(), now()).is_err());
    }
}
