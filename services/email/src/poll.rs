//! One pass over the mailbox: fetch unread mail, decide, answer, send, flag. The I/O is behind
//! traits so this logic (the part that must never answer twice, answer a stranger, or stop on
//! one bad mail) is tested here with in-memory twins.

use crate::{
    compose_reply, parse_mail, AllowList, AnswerText, Incoming, Outcome, Question, Result,
    SkipReason, State,
};
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, Message};

/// A mailbox folder to read questions from (IMAP in production).
pub trait MailStore {
    /// UIDs of the unread mails, ascending.
    fn unseen(&mut self) -> Result<Vec<u32>>;
    /// The raw mail, or `None` when it disappeared meanwhile.
    fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>>;
    /// Flags the mail `\Seen`, and `\Answered` when a reply went out.
    fn mark(&mut self, uid: u32, answered: bool) -> Result<()>;
}

/// Sends a reply (SMTP in production).
pub trait MailSender {
    fn send(&self, msg: &Message) -> Result<()>;
}

/// Answers a question as the avatar (the retrieval + model backend in production). The error
/// is a message for the log; the mail is retried.
pub trait Answerer {
    fn answer(&self, q: &Question) -> std::result::Result<AnswerText, String>;
}

/// The fixed settings of the loop.
pub struct Poller {
    /// The avatar's From mailbox; mail from this address is never answered.
    pub own: Mailbox,
    pub allow: AllowList,
    /// Failed attempts after which a mail is marked read and given up.
    pub max_attempts: u32,
}

/// What happened to one mail; `Display` is the one log line per mail.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Answered {
        uid: u32,
        key: String,
        to: String,
        sources: usize,
    },
    Skipped {
        uid: u32,
        key: String,
        from: Option<String>,
        reason: SkipReason,
    },
    /// Already handled by an earlier run (flags were reset or not yet set).
    AlreadyHandled { uid: u32, key: String },
    Failed {
        uid: u32,
        key: String,
        error: String,
        attempt: u32,
        gave_up: bool,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Answered {
                uid,
                key,
                to,
                sources,
            } => write!(f, "answered uid {uid} <{key}> → {to} ({sources} source(s))"),
            Event::Skipped {
                uid,
                key,
                from,
                reason,
            } => write!(
                f,
                "skipped uid {uid} <{key}> from {}: {reason}",
                from.as_deref().unwrap_or("?")
            ),
            Event::AlreadyHandled { uid, key } => {
                write!(f, "already handled uid {uid} <{key}>: not answered again")
            }
            Event::Failed {
                uid,
                key,
                error,
                attempt,
                gave_up,
            } => write!(
                f,
                "failed uid {uid} <{key}> (attempt {attempt}{}): {error}",
                if *gave_up {
                    ", given up and marked read"
                } else {
                    ", will retry"
                }
            ),
        }
    }
}

/// Counts of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    pub answered: usize,
    pub skipped: usize,
    pub failed: usize,
    pub already: usize,
}

/// One pass over the unread mail. Errors of the mailbox itself (connection lost) end the pass
/// with `Err`; a problem with one mail (unparseable, model error, send error) is logged as an
/// [`Event`] and the pass goes on.
pub fn poll_once(
    p: &Poller,
    store: &mut dyn MailStore,
    sender: &dyn MailSender,
    answerer: &dyn Answerer,
    state: &State,
    now: &dyn Fn() -> DateTime<Utc>,
    log: &mut dyn FnMut(&Event),
) -> Result<PollStats> {
    let mut stats = PollStats::default();
    let own = p.own.email.to_string();
    for uid in store.unseen()? {
        let Some(raw) = store.fetch(uid)? else {
            continue;
        };
        let incoming = parse_mail(&raw, &own);
        let key = incoming.key().to_string();
        match state.get(&key)? {
            Some((Outcome::Answered, _)) => {
                store.mark(uid, true)?;
                stats.already += 1;
                log(&Event::AlreadyHandled { uid, key });
                continue;
            }
            Some((Outcome::Sending | Outcome::Skipped, _)) => {
                store.mark(uid, false)?;
                stats.already += 1;
                log(&Event::AlreadyHandled { uid, key });
                continue;
            }
            Some((Outcome::Failed, n)) if n >= p.max_attempts => {
                store.mark(uid, false)?;
                stats.already += 1;
                log(&Event::AlreadyHandled { uid, key });
                continue;
            }
            _ => {}
        }
        let mut q = match incoming {
            Incoming::Skip {
                from, reason, key, ..
            } => {
                skip(store, state, uid, key, from, reason, log)?;
                stats.skipped += 1;
                continue;
            }
            Incoming::Question(q) => q,
        };
        if !p.allow.allows(&q.from) {
            skip(
                store,
                state,
                uid,
                key,
                Some(q.from),
                SkipReason::NotAllowed,
                log,
            )?;
            stats.skipped += 1;
            continue;
        }
        // A forged From with a Reply-To elsewhere must not carry the answer out: the reply goes
        // to an allowed address or to From.
        if q.reply_to.as_deref().is_some_and(|r| !p.allow.allows(r)) {
            q.reply_to = None;
        }
        let fail = |store: &mut dyn MailStore,
                    error: String,
                    give_up_now: bool,
                    log: &mut dyn FnMut(&Event)|
         -> Result<()> {
            let attempt = state.fail(&key, &error)?;
            let gave_up = give_up_now || attempt >= p.max_attempts;
            if gave_up {
                store.mark(uid, false)?;
            }
            log(&Event::Failed {
                uid,
                key: key.clone(),
                error,
                attempt,
                gave_up,
            });
            Ok(())
        };
        let answer = match answerer.answer(&q) {
            Ok(a) => a,
            Err(e) => {
                fail(store, e, false, log)?;
                stats.failed += 1;
                continue;
            }
        };
        let msg = match compose_reply(&q, &p.own, &answer, now()) {
            Ok(m) => m,
            Err(e) => {
                // Same input, same error: retrying cannot help.
                fail(store, e.to_string(), true, log)?;
                stats.failed += 1;
                continue;
            }
        };
        let to = msg
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        state.set(&key, Outcome::Sending, &to)?;
        if let Err(e) = sender.send(&msg) {
            fail(store, e.to_string(), false, log)?;
            stats.failed += 1;
            continue;
        }
        state.set(&key, Outcome::Answered, &to)?;
        store.mark(uid, true)?;
        stats.answered += 1;
        log(&Event::Answered {
            uid,
            key,
            to,
            sources: answer.sources.len(),
        });
    }
    Ok(stats)
}

fn skip(
    store: &mut dyn MailStore,
    state: &State,
    uid: u32,
    key: String,
    from: Option<String>,
    reason: SkipReason,
    log: &mut dyn FnMut(&Event),
) -> Result<()> {
    state.set(&key, Outcome::Skipped, &reason.to_string())?;
    store.mark(uid, false)?;
    log(&Event::Skipped {
        uid,
        key,
        from,
        reason,
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{EmailError, Source};
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory folder: uid → (raw, seen, answered).
    #[derive(Default)]
    struct Folder(BTreeMap<u32, (Vec<u8>, bool, bool)>);

    impl MailStore for Folder {
        fn unseen(&mut self) -> Result<Vec<u32>> {
            Ok(self
                .0
                .iter()
                .filter(|(_, m)| !m.1)
                .map(|(u, _)| *u)
                .collect())
        }
        fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(&uid).map(|m| m.0.clone()))
        }
        fn mark(&mut self, uid: u32, answered: bool) -> Result<()> {
            if let Some(m) = self.0.get_mut(&uid) {
                m.1 = true;
                m.2 |= answered;
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Outbox {
        sent: RefCell<Vec<Message>>,
        down: RefCell<bool>,
    }

    impl MailSender for Outbox {
        fn send(&self, msg: &Message) -> Result<()> {
            if *self.down.borrow() {
                return Err(EmailError::Smtp("connection refused".into()));
            }
            self.sent.borrow_mut().push(msg.clone());
            Ok(())
        }
    }

    /// Answers everything except questions containing "crash".
    struct Model;

    impl Answerer for Model {
        fn answer(&self, q: &Question) -> std::result::Result<AnswerText, String> {
            if q.text.contains("crash") {
                return Err("model error".into());
            }
            Ok(AnswerText {
                text: format!("You asked: {}", q.text),
                disclosure: "I am an avatar.".into(),
                sources: vec![Source {
                    source: "notes.md".into(),
                    date: None,
                    author: None,
                    title: None,
                    snippet: "a note".into(),
                }],
            })
        }
    }

    fn mail(from: &str, id: &str, body: &str, extra: &str) -> Vec<u8> {
        format!("From: {from}\r\nTo: avatar@x.org\r\nSubject: q\r\nMessage-ID: <{id}>\r\n{extra}\r\n{body}\r\n")
            .into_bytes()
    }

    fn poller() -> Poller {
        Poller {
            own: "Avatar <avatar@x.org>".parse().unwrap(),
            allow: AllowList::new(&["asker@x.org", "@family.example"]).unwrap(),
            max_attempts: 2,
        }
    }

    fn run(folder: &mut Folder, out: &Outbox, state: &State) -> (PollStats, Vec<String>) {
        let mut lines = Vec::new();
        let stats = poll_once(&poller(), folder, out, &Model, state, &Utc::now, &mut |e| {
            lines.push(e.to_string())
        })
        .unwrap();
        (stats, lines)
    }

    #[test]
    fn answers_the_allowed_skips_the_rest_and_never_twice() {
        let mut f = Folder::default();
        f.0.insert(1, (mail("asker@x.org", "q1@x", "Why?", ""), false, false));
        f.0.insert(
            2,
            (mail("stranger@y.org", "q2@y", "Who?", ""), false, false),
        );
        f.0.insert(
            3,
            (
                mail("MAILER-DAEMON@x.org", "b@x", "bounce", ""),
                false,
                false,
            ),
        );
        f.0.insert(
            4,
            (mail("avatar@x.org", "own@x", "loop?", ""), false, false),
        );
        f.0.insert(5, (b"\x00garbage".to_vec(), false, false));
        f.0.insert(
            6,
            (
                mail(
                    "kid@family.example",
                    "q6@f",
                    "Hi?",
                    "Reply-To: evil@z.org\r\n",
                ),
                false,
                false,
            ),
        );
        let out = Outbox::default();
        let state = State::in_memory().unwrap();
        let (stats, lines) = run(&mut f, &out, &state);
        assert_eq!(
            stats,
            PollStats {
                answered: 2,
                skipped: 4,
                failed: 0,
                already: 0
            },
            "{lines:#?}"
        );
        let sent = out.sent.borrow();
        let to: Vec<String> = sent
            .iter()
            .map(|m| m.envelope().to()[0].to_string())
            .collect();
        // The forged Reply-To is ignored: the answer goes to the (allowed) From.
        assert_eq!(to, vec!["asker@x.org", "kid@family.example"]);
        assert!(f.0.values().all(|m| m.1), "everything is marked read");
        assert!(f.0[&1].2 && !f.0[&2].2, "only answered mail is \\Answered");
        assert!(lines.iter().any(|l| l.contains("not on the allow-list")));
        drop(sent);

        // Someone marks everything unread again: nothing is answered twice.
        for m in f.0.values_mut() {
            m.1 = false;
        }
        let (stats, _) = run(&mut f, &out, &state);
        assert_eq!(stats.answered, 0);
        assert_eq!(stats.already, 6);
        assert_eq!(out.sent.borrow().len(), 2);
    }

    #[test]
    fn a_failing_mail_is_retried_then_given_up_and_the_pass_goes_on() {
        let mut f = Folder::default();
        f.0.insert(
            1,
            (mail("asker@x.org", "c@x", "please crash", ""), false, false),
        );
        f.0.insert(2, (mail("asker@x.org", "ok@x", "Why?", ""), false, false));
        let out = Outbox::default();
        let state = State::in_memory().unwrap();
        let (s1, lines) = run(&mut f, &out, &state);
        assert_eq!((s1.failed, s1.answered), (1, 1), "{lines:?}");
        assert!(!f.0[&1].1, "left unread for a retry");
        assert!(lines[0].contains("will retry"), "{lines:?}");
        let (s2, lines) = run(&mut f, &out, &state);
        assert_eq!(s2.failed, 1);
        assert!(f.0[&1].1, "given up after max attempts");
        assert!(lines[0].contains("given up"), "{lines:?}");
        assert_eq!(out.sent.borrow().len(), 1);
    }

    #[test]
    fn a_send_failure_is_retried_and_then_sent_once() {
        let mut f = Folder::default();
        f.0.insert(1, (mail("asker@x.org", "s@x", "Why?", ""), false, false));
        let out = Outbox::default();
        *out.down.borrow_mut() = true;
        let state = State::in_memory().unwrap();
        let (s1, _) = run(&mut f, &out, &state);
        assert_eq!(s1.failed, 1);
        assert!(!f.0[&1].1);
        *out.down.borrow_mut() = false;
        let (s2, _) = run(&mut f, &out, &state);
        assert_eq!(s2.answered, 1);
        assert_eq!(out.sent.borrow().len(), 1);
        assert_eq!(
            state.get("s@x").unwrap().map(|s| s.0),
            Some(Outcome::Answered)
        );
    }

    #[test]
    fn an_interrupted_send_is_never_retried() {
        let mut f = Folder::default();
        f.0.insert(1, (mail("asker@x.org", "i@x", "Why?", ""), false, false));
        let state = State::in_memory().unwrap();
        state.set("i@x", Outcome::Sending, "").unwrap();
        let out = Outbox::default();
        let (s, _) = run(&mut f, &out, &state);
        assert_eq!(s.already, 1);
        assert!(out.sent.borrow().is_empty());
    }
}
