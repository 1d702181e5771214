//! Memories → question/answer examples, so the model can tell what the person (or the people
//! who knew them) wrote down when asked about it.
//!
//! The question is the memory's title when it is one (ends with `?`), `Tell me about {title}.`
//! for another title, and [`GENERIC_QUESTION`] without one. Every memory is used, whoever added
//! it: memories are curated on purpose, unlike the third parties' messages in a chat.

use crate::{
    example_id, system_messages, DatasetConfig, SftExample, SftKind, SftMessage, SftRole, SftSplit,
};
use avatar_schemas::{Record, RecordKind};

/// The question asked for a memory without a title.
pub const GENERIC_QUESTION: &str = "Tell me something you remember.";

/// The question a memory answers.
pub fn question(title: Option<&str>) -> String {
    match title.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.ends_with('?') => t.to_string(),
        Some(t) => format!("Tell me about {}.", t.trim_end_matches(['.', '!', ':'])),
        None => GENERIC_QUESTION.to_string(),
    }
}

/// One example per memory. `records` must be in canonical order.
pub(crate) fn memory_examples(records: &[&Record], config: &DatasetConfig) -> Vec<SftExample> {
    records
        .iter()
        .filter(|r| r.kind == RecordKind::Memory)
        .map(|r| {
            let mut messages = system_messages(config);
            messages.push(SftMessage {
                role: SftRole::User,
                content: question(r.title.as_deref()),
            });
            messages.push(SftMessage {
                role: SftRole::Assistant,
                content: r.text.trim().to_string(),
            });
            SftExample {
                id: example_id(SftKind::Memory, &[r.id.as_str()], None),
                split: SftSplit::Train,
                messages,
                kind: SftKind::Memory,
                source_records: vec![r.id.clone()],
                timestamp: r.timestamp,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::rec;
    use crate::{build_dataset, whitespace_tokens};

    #[test]
    fn titles_become_questions() {
        assert_eq!(question(Some("Flyology")), "Tell me about Flyology.");
        assert_eq!(question(Some(" Flyology. ")), "Tell me about Flyology.");
        assert_eq!(
            question(Some("Why did you want to fly?")),
            "Why did you want to fly?"
        );
        assert_eq!(question(Some("  ")), GENERIC_QUESTION);
        assert_eq!(question(None), GENERIC_QUESTION);
    }

    #[test]
    fn memories_are_question_and_answer() {
        let mut titled = rec(
            "m1",
            RecordKind::Memory,
            "memories",
            "2024-05-01T10:00:00Z",
            "a family friend",
            false,
            "At twelve she set out to fly.",
        );
        titled.title = Some("Flyology".into());
        let untitled = rec(
            "m2",
            RecordKind::Memory,
            "memories",
            "2024-05-02T10:00:00Z",
            "Ada",
            true,
            " Tea at four. ",
        );
        let ex = build_dataset(
            &[untitled, titled],
            &DatasetConfig::default(),
            &whitespace_tokens,
        );
        assert_eq!(ex.len(), 2);
        assert!(ex.iter().all(|e| e.kind == SftKind::Memory));
        assert_eq!(ex[0].messages[0].content, "Tell me about Flyology.");
        assert_eq!(ex[0].messages[1].content, "At twelve she set out to fly.");
        assert_eq!(ex[0].messages[1].role, SftRole::Assistant);
        assert_eq!(ex[0].source_records, ["m1"]);
        assert_eq!(ex[1].messages[0].content, GENERIC_QUESTION);
        assert_eq!(ex[1].messages[1].content, "Tea at four.");
    }
}
