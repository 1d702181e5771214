//! Email replies → examples: the mail the person answered is the user turn (with a
//! `Subject: …` line), the person's reply is the target.
//!
//! The parent is the mail named by `In-Reply-To` when it is among the records, else the mail
//! just before the reply in its thread. A parent written by the person themself (a follow-up
//! to their own mail) makes no example: it would teach the model to answer itself. The
//! person's mails without a parent (new conversations) are skipped too: there is no prompt
//! they answer.
//!
//! Record texts are already cleaned by the processor (quoted lines and signatures removed).
//! A long parent keeps its beginning: whole lines up to `max_context_tokens` (the subject and
//! the first line are always kept).

use crate::{
    example_id, system_messages, DatasetConfig, SftExample, SftKind, SftMessage, SftRole, SftSplit,
    TokenCounter,
};
use avatar_schemas::{Record, RecordKind};
use std::collections::{BTreeMap, HashMap};

/// The examples of every reply by the person. `records` must be in canonical order.
pub(crate) fn email_examples(
    records: &[&Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> Vec<SftExample> {
    let mails: Vec<&Record> = records
        .iter()
        .copied()
        .filter(|r| r.kind == RecordKind::Email)
        .collect();
    let mut by_message_id: HashMap<&str, &Record> = HashMap::new();
    for r in &mails {
        if let Some(m) = r.message_id.as_deref() {
            by_message_id.entry(m).or_insert(r);
        }
    }
    let mut threads: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &mails {
        threads.entry(r.thread.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for thread in threads.values() {
        for (i, reply) in thread.iter().enumerate() {
            if !reply.author_is_person {
                continue;
            }
            let named = reply
                .in_reply_to
                .as_deref()
                .and_then(|m| by_message_id.get(m).copied())
                .filter(|p| p.id != reply.id);
            let parent = match named {
                Some(p) => p,
                None if i > 0 => thread[i - 1],
                None => continue,
            };
            if parent.author_is_person {
                continue;
            }
            out.push(example(parent, reply, config, count));
        }
    }
    out
}

fn example(
    parent: &Record,
    reply: &Record,
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> SftExample {
    let mut messages = system_messages(config);
    messages.push(SftMessage {
        role: SftRole::User,
        content: prompt(parent, reply, config.max_context_tokens, count),
    });
    messages.push(SftMessage {
        role: SftRole::Assistant,
        content: reply.text.trim().to_string(),
    });
    SftExample {
        id: example_id(SftKind::Email, &[reply.id.as_str()], None),
        split: SftSplit::Train,
        messages,
        kind: SftKind::Email,
        source_records: vec![parent.id.clone(), reply.id.clone()],
        timestamp: reply.timestamp,
    }
}

/// `Subject: …`, a blank line, then the parent's text cut to the budget at a line boundary.
fn prompt(parent: &Record, reply: &Record, budget: usize, count: TokenCounter<'_>) -> String {
    let subject = parent
        .title
        .as_deref()
        .or(reply.title.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut out = String::new();
    let mut used = 0;
    if let Some(s) = subject {
        out = format!("Subject: {s}\n\n");
        used = count(&out);
    }
    for (i, line) in parent.text.trim().lines().enumerate() {
        let cost = count(line);
        if i > 0 && used + cost > budget {
            break;
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
        used += cost;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::rec;
    use crate::{build_dataset, whitespace_tokens};

    fn mail(id: &str, at: &str, person: bool, text: &str) -> Record {
        let who = if person {
            "Ada Lovelace <ada@example.org>"
        } else {
            "Charles Babbage <cb@example.org>"
        };
        let mut r = rec(id, RecordKind::Email, "engine", at, who, person, text);
        r.message_id = Some(format!("<{id}@example.org>"));
        r.title = Some(
            if id == "1" {
                "The engine"
            } else {
                "Re: The engine"
            }
            .into(),
        );
        r
    }

    #[test]
    fn replies_pair_with_the_mail_they_answer() {
        let question = mail(
            "1",
            "1843-07-01T09:00:00Z",
            false,
            "Dear Ada,\nWill you translate it?",
        );
        let mut reply = mail("2", "1843-07-02T09:00:00Z", true, "Gladly.");
        reply.in_reply_to = Some("<1@example.org>".into());
        // Another thread's mail in between in time must not be taken as the parent.
        let mut other = mail("3", "1843-07-01T12:00:00Z", false, "Unrelated.");
        other.thread = "other".into();
        let ex = build_dataset(
            &[reply, other, question],
            &DatasetConfig::default(),
            &whitespace_tokens,
        );
        assert_eq!(ex.len(), 1);
        let e = &ex[0];
        assert_eq!(e.kind, SftKind::Email);
        assert_eq!(
            e.messages[0].content,
            "Subject: The engine\n\nDear Ada,\nWill you translate it?"
        );
        assert_eq!(e.messages[0].role, SftRole::User);
        assert_eq!(e.messages[1].content, "Gladly.");
        assert_eq!(e.source_records, ["1", "2"]);
        assert_eq!(e.timestamp, Some("1843-07-02T09:00:00Z".parse().unwrap()));
    }

    #[test]
    fn thread_predecessor_is_the_fallback_and_own_parents_or_none_are_skipped() {
        let first = mail("1", "1843-07-01T09:00:00Z", true, "I begin.");
        let answer = mail("2", "1843-07-02T09:00:00Z", false, "Go on.");
        // No In-Reply-To: the previous mail in the thread is the parent.
        let reply = mail("3", "1843-07-03T09:00:00Z", true, "Here is Note G.");
        // Answers the person's own mail: skipped.
        let mut follow = mail("4", "1843-07-04T09:00:00Z", true, "And Note H.");
        follow.in_reply_to = Some("<3@example.org>".into());
        let ex = build_dataset(
            &[first, answer, reply, follow],
            &DatasetConfig::default(),
            &whitespace_tokens,
        );
        assert_eq!(ex.len(), 1, "{ex:#?}");
        assert_eq!(
            ex[0].messages[0].content,
            "Subject: Re: The engine\n\nGo on."
        );
        assert_eq!(ex[0].messages[1].content, "Here is Note G.");
    }

    #[test]
    fn a_long_parent_keeps_its_beginning() {
        let long = mail("1", "1843-07-01T09:00:00Z", false, "a b c\nd e f\ng h i");
        let mut reply = mail("2", "1843-07-02T09:00:00Z", true, "ok");
        reply.in_reply_to = Some("<1@example.org>".into());
        let config = DatasetConfig {
            max_context_tokens: 8,
            ..DatasetConfig::default()
        };
        let ex = build_dataset(&[long, reply], &config, &whitespace_tokens);
        // "Subject: The engine" is 3 tokens, each line 3.
        assert_eq!(ex[0].messages[0].content, "Subject: The engine\n\na b c");
    }
}
