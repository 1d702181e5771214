//! Chat threads → conversation examples.
//!
//! A thread (one conversation) is cut into **sessions** wherever nobody wrote for longer than
//! `session_gap_secs`: a reply the next morning is not an answer to last night's context.
//! Within a session, consecutive messages by one author at most `burst_gap_secs` apart are one
//! **burst** (people split one thought over several messages), joined by newlines.
//!
//! Turns: the other side's bursts are `user` turns (consecutive ones merged into one turn); the
//! person's are `assistant` turns. In a group chat (more than one other author in the thread)
//! every message in a user turn is prefixed with `Name: ` so the model can tell speakers apart.
//!
//! Targets: every burst by the person that directly follows a user turn in the same session.
//! Its example is the session's earlier turns (context, trimmed to `max_context_tokens`,
//! oldest messages first) then the burst as the final assistant message; earlier assistant
//! turns in the context are masked by the trainer (only the last assistant message is a
//! target). Skipped as targets, but kept as context for later ones:
//! - a burst that opens a session (the person starts the conversation: there is nothing it
//!   answers, and the previous session is, by definition, a different conversation);
//! - a burst that follows the person's own earlier burst after more than `burst_gap_secs`
//!   with nobody writing in between (a follow-up, not a reply); it is merged into the
//!   preceding assistant turn, so messages always alternate user/assistant.

use crate::{
    example_id, system_messages, DatasetConfig, SftExample, SftKind, SftMessage, SftRole, SftSplit,
    TokenCounter,
};
use avatar_schemas::{Record, RecordKind};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// What a message is called in a group chat when its author is unknown.
const UNKNOWN_AUTHOR: &str = "Someone";

/// One author's consecutive messages.
#[derive(Debug)]
struct Burst<'a> {
    is_person: bool,
    messages: Vec<&'a Record>,
}

/// One message in a turn, with the record it came from.
#[derive(Debug, Clone)]
struct Part<'a> {
    role: SftRole,
    text: String,
    record: &'a str,
}

/// Whether `b` follows `a` within `secs`. Without both times there is no evidence of a gap.
fn within(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>, secs: u64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (b - a).num_seconds() <= i64::try_from(secs).unwrap_or(i64::MAX),
        _ => true,
    }
}

/// The examples of every chat thread. `records` must be in canonical order (see `build_dataset`).
pub(crate) fn chat_examples(
    records: &[&Record],
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> Vec<SftExample> {
    let mut threads: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == RecordKind::Message) {
        threads.entry(r.thread.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for messages in threads.values() {
        let others: BTreeSet<Option<&str>> = messages
            .iter()
            .filter(|r| !r.author_is_person)
            .map(|r| r.author.as_deref())
            .collect();
        let group = others.len() > 1;
        for session in sessions(messages, config.session_gap_secs) {
            let bursts = bursts(session, config.burst_gap_secs);
            session_examples(&bursts, group, config, count, &mut out);
        }
    }
    out
}

/// Cuts a time-ordered thread where the silence is longer than `gap_secs`.
fn sessions<'r, 'a>(messages: &'r [&'a Record], gap_secs: u64) -> Vec<&'r [&'a Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..messages.len() {
        if !within(messages[i - 1].timestamp, messages[i].timestamp, gap_secs) {
            out.push(&messages[start..i]);
            start = i;
        }
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

/// Groups consecutive messages by one author at most `gap_secs` apart.
fn bursts<'a>(session: &[&'a Record], gap_secs: u64) -> Vec<Burst<'a>> {
    let mut out: Vec<Burst<'a>> = Vec::new();
    for &r in session {
        if let Some(last) = out.last_mut() {
            let prev = last.messages[last.messages.len() - 1];
            if prev.author == r.author
                && prev.author_is_person == r.author_is_person
                && within(prev.timestamp, r.timestamp, gap_secs)
            {
                last.messages.push(r);
                continue;
            }
        }
        out.push(Burst {
            is_person: r.author_is_person,
            messages: vec![r],
        });
    }
    out
}

fn session_examples<'a>(
    bursts: &[Burst<'a>],
    group: bool,
    config: &DatasetConfig,
    count: TokenCounter<'_>,
    out: &mut Vec<SftExample>,
) {
    let mut parts: Vec<Part<'a>> = Vec::new();
    for burst in bursts {
        let role = if burst.is_person {
            SftRole::Assistant
        } else {
            SftRole::User
        };
        let burst_parts: Vec<Part<'a>> = burst
            .messages
            .iter()
            .map(|r| Part {
                role,
                text: if group && !burst.is_person {
                    format!(
                        "{}: {}",
                        r.author.as_deref().unwrap_or(UNKNOWN_AUTHOR),
                        r.text.trim()
                    )
                } else {
                    r.text.trim().to_string()
                },
                record: r.id.as_str(),
            })
            .collect();
        if burst.is_person && parts.last().is_some_and(|p| p.role == SftRole::User) {
            out.push(example(&parts, &burst_parts, burst, config, count));
        }
        parts.extend(burst_parts);
    }
}

/// The example for one target burst after the context `parts` (which ends with a user part).
fn example(
    parts: &[Part<'_>],
    target: &[Part<'_>],
    burst: &Burst<'_>,
    config: &DatasetConfig,
    count: TokenCounter<'_>,
) -> SftExample {
    let context = trim_context(parts, config.max_context_tokens, count);
    let mut messages = system_messages(config);
    messages.extend(turns(context.iter().chain(target)));
    let mut source_records: Vec<String> = context.iter().map(|p| p.record.to_string()).collect();
    source_records.extend(target.iter().map(|p| p.record.to_string()));
    let target_ids: Vec<&str> = target.iter().map(|p| p.record).collect();
    SftExample {
        id: example_id(SftKind::Chat, &target_ids, None),
        split: SftSplit::Train,
        messages,
        kind: SftKind::Chat,
        source_records,
        timestamp: burst.messages.iter().filter_map(|r| r.timestamp).max(),
    }
}

/// The latest messages of the context that fit `budget` tokens, starting with a user message.
/// The last message (what the target answers) is always kept, even when it alone is over.
fn trim_context<'p, 'a>(
    parts: &'p [Part<'a>],
    budget: usize,
    count: TokenCounter<'_>,
) -> &'p [Part<'a>] {
    let mut start = parts.len().saturating_sub(1);
    let mut used = parts.last().map_or(0, |p| count(&p.text));
    while start > 0 {
        let cost = count(&parts[start - 1].text);
        if used + cost > budget {
            break;
        }
        used += cost;
        start -= 1;
    }
    // Never open with the person's words: the conversation starts with what they answer.
    while start + 1 < parts.len() && parts[start].role != SftRole::User {
        start += 1;
    }
    &parts[start..]
}

/// Merges consecutive parts with the same role into one message, joined by newlines.
fn turns<'p, 'a: 'p>(parts: impl Iterator<Item = &'p Part<'a>>) -> Vec<SftMessage> {
    let mut out: Vec<SftMessage> = Vec::new();
    for p in parts {
        match out.last_mut() {
            Some(m) if m.role == p.role => {
                m.content.push('\n');
                m.content.push_str(&p.text);
            }
            _ => out.push(SftMessage {
                role: p.role,
                content: p.text.clone(),
            }),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::rec;
    use crate::{build_dataset, whitespace_tokens};

    /// A chat message in thread `t` at `hh:mm` on 2024-03-12 (real WhatsApp-style times).
    fn m(id: &str, hhmm: &str, who: &str, text: &str) -> Record {
        let mut r = rec(
            id,
            RecordKind::Message,
            "t",
            &format!("2024-03-12T{hhmm}:00Z"),
            who,
            who == "Ada Lovelace",
            text,
        );
        r.ordinal = id.parse().unwrap_or(0);
        r
    }

    fn build(records: &[Record], config: &DatasetConfig) -> Vec<SftExample> {
        build_dataset(records, config, &whitespace_tokens)
    }

    fn roles_and_texts(e: &SftExample) -> Vec<(&str, &str)> {
        e.messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect()
    }

    #[test]
    fn bursts_merge_and_sessions_split_on_time_gaps() {
        let records = vec![
            m("1", "19:02", "Mary Somerville", "Did you see my letter?"),
            m("2", "19:03", "Mary Somerville", "About the translation."),
            m("3", "19:05", "Ada Lovelace", "Yes!"),
            m("4", "19:07", "Ada Lovelace", "The notes are growing."),
            // 12 minutes after her last message: a new burst, but no one spoke in between.
            m("5", "19:19", "Ada Lovelace", "Note A is done."),
            m("6", "19:20", "Mary Somerville", "Wonderful."),
            m("7", "19:21", "Ada Lovelace", "Thank you."),
            // 2 hours later: a new session, so the evening's context does not leak in.
            m("8", "21:30", "Mary Somerville", "Tea on Thursday?"),
            m("9", "21:31", "Ada Lovelace", "With pleasure."),
            // The person opens a session: nothing to answer.
            m("10", "23:59", "Ada Lovelace", "Good night."),
        ];
        let ex = build(&records, &DatasetConfig::default());
        assert_eq!(ex.len(), 3, "{ex:#?}");
        assert_eq!(
            roles_and_texts(&ex[0]),
            [
                ("user", "Did you see my letter?\nAbout the translation."),
                ("assistant", "Yes!\nThe notes are growing.")
            ]
        );
        assert_eq!(ex[0].source_records, ["1", "2", "3", "4"]);
        assert_eq!(
            ex[0].timestamp,
            Some("2024-03-12T19:07:00Z".parse().unwrap())
        );
        assert_eq!(ex[0].id, example_id(SftKind::Chat, &["3", "4"], None));
        // The follow-up burst is context, merged into the earlier assistant turn.
        assert_eq!(
            roles_and_texts(&ex[1]),
            [
                ("user", "Did you see my letter?\nAbout the translation."),
                ("assistant", "Yes!\nThe notes are growing.\nNote A is done."),
                ("user", "Wonderful."),
                ("assistant", "Thank you.")
            ]
        );
        assert_eq!(
            roles_and_texts(&ex[2]),
            [
                ("user", "Tea on Thursday?"),
                ("assistant", "With pleasure.")
            ]
        );

        // A wider burst gap makes 19:19 part of the first burst; a wider session gap joins 21:30.
        let wide = DatasetConfig {
            burst_gap_secs: 15 * 60,
            session_gap_secs: 3 * 3600,
            ..DatasetConfig::default()
        };
        let ex = build(&records, &wide);
        // 23:59 now falls in the same session, but follows Ada's own burst: still no target.
        assert_eq!(ex.len(), 3);
        assert_eq!(
            ex[0].messages[1].content,
            "Yes!\nThe notes are growing.\nNote A is done."
        );
        assert_eq!(ex[2].messages.len(), 6, "{:#?}", ex[2]);
        assert_eq!(ex[2].messages[4].content, "Tea on Thursday?");
    }

    #[test]
    fn group_chats_name_each_speaker() {
        let records = vec![
            m("1", "10:00", "Charles Babbage", "The engine is ready."),
            m("2", "10:01", "Mary Somerville", "Splendid."),
            m("3", "10:01", "Mary Somerville", "When can we see it?"),
            m("4", "10:02", "Ada Lovelace", "Tomorrow at ten."),
        ];
        let ex = build(&records, &DatasetConfig::default());
        assert_eq!(
            roles_and_texts(&ex[0]),
            [
                (
                    "user",
                    "Charles Babbage: The engine is ready.\nMary Somerville: Splendid.\nMary Somerville: When can we see it?"
                ),
                ("assistant", "Tomorrow at ten.")
            ]
        );
        // A one-to-one chat has no prefixes.
        let one: Vec<Record> = records.into_iter().skip(1).collect();
        let ex = build(&one, &DatasetConfig::default());
        assert_eq!(ex[0].messages[0].content, "Splendid.\nWhen can we see it?");
    }

    #[test]
    fn context_is_trimmed_oldest_first_to_the_token_budget() {
        let records = vec![
            m("1", "10:00", "Bob", "one two three four five"),
            m("2", "10:01", "Ada Lovelace", "six seven"),
            m("3", "10:02", "Bob", "eight nine ten"),
            m("4", "10:02", "Bob", "eleven twelve"),
            m("5", "10:03", "Ada Lovelace", "target words here"),
        ];
        let budget = |n| DatasetConfig {
            max_context_tokens: n,
            ..DatasetConfig::default()
        };
        let last = |n| build(&records, &budget(n)).pop().unwrap();
        // Everything fits (5 + 2 + 3 + 2 = 12).
        assert_eq!(last(12).messages.len(), 4);
        assert_eq!(last(12).source_records, ["1", "2", "3", "4", "5"]);
        // 11: the oldest message goes; the assistant turn it leaves first goes too.
        let e = last(11);
        assert_eq!(
            roles_and_texts(&e),
            [
                ("user", "eight nine ten\neleven twelve"),
                ("assistant", "target words here")
            ]
        );
        assert_eq!(e.source_records, ["3", "4", "5"]);
        // 4: only the latest message of the user turn fits.
        assert_eq!(
            roles_and_texts(&last(4)),
            [
                ("user", "eleven twelve"),
                ("assistant", "target words here")
            ]
        );
        // 0: what the target answers is kept anyway.
        assert_eq!(last(0).messages[0].content, "eleven twelve");
        // The counter passed in is the one used: counting characters trims harder.
        let chars = build_dataset(&records, &budget(20), &|s: &str| s.chars().count());
        assert_eq!(chars.last().unwrap().messages[0].content, "eleven twelve");
    }

    #[test]
    fn threads_are_separate_and_untimed_messages_form_one_session() {
        let mut a = rec("a1", RecordKind::Message, "x", "", "Bob", false, "ping");
        a.ordinal = 0;
        let mut b = rec("a2", RecordKind::Message, "x", "", "Ada", true, "pong");
        b.ordinal = 1;
        let c = rec(
            "b1",
            RecordKind::Message,
            "y",
            "",
            "Carol",
            false,
            "unanswered",
        );
        let ex = build(&[c, b, a], &DatasetConfig::default());
        assert_eq!(ex.len(), 1);
        assert_eq!(
            roles_and_texts(&ex[0]),
            [("user", "ping"), ("assistant", "pong")]
        );
        assert_eq!(ex[0].timestamp, None);
        assert_eq!(ex[0].split, SftSplit::Train);
    }

    #[test]
    fn messages_always_alternate_and_end_with_the_person() {
        // A pseudo-random conversation: whatever the pattern, the shape invariant holds.
        let people = ["Ada Lovelace", "Bob", "Carol"];
        let mut records = Vec::new();
        let mut seed: u64 = 7;
        let mut minute = 0u32;
        for i in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let who = people[(seed >> 33) as usize % 3];
            minute += ((seed >> 40) % 50) as u32;
            let at = format!(
                "2024-03-{:02}T{:02}:{:02}:00Z",
                1 + minute / 1440,
                (minute / 60) % 24,
                minute % 60
            );
            let mut r = rec(
                &i.to_string(),
                RecordKind::Message,
                "g",
                &at,
                who,
                who == people[0],
                &format!("w{i} x y"),
            );
            r.ordinal = i;
            records.push(r);
        }
        let config = DatasetConfig {
            max_context_tokens: 20,
            system_prompt: Some("sys".into()),
            ..DatasetConfig::default()
        };
        let ex = build(&records, &config);
        assert!(ex.len() > 10, "{}", ex.len());
        for e in &ex {
            let roles: Vec<SftRole> = e.messages.iter().map(|m| m.role).collect();
            assert_eq!(roles[0], SftRole::System);
            assert_eq!(roles[1], SftRole::User);
            assert_eq!(*roles.last().unwrap(), SftRole::Assistant);
            for w in roles[1..].windows(2) {
                assert_ne!(w[0], w[1], "{e:#?}");
            }
            let context: usize = e.messages[1..e.messages.len() - 1]
                .iter()
                .map(|m| whitespace_tokens(&m.content))
                .sum();
            assert!(context <= 20 || e.messages.len() == 3, "{e:#?}");
            let target = &e.messages.last().unwrap().content;
            assert!(target
                .lines()
                .all(|l| { records.iter().any(|r| r.author_is_person && r.text == l) }));
        }
    }
}
