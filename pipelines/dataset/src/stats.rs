//! Counts for `avatar dataset build`: how many examples of each kind went to each split, and
//! how many tokens they hold (all messages, and targets alone: what the loss sees).

use crate::{SftExample, SftRole, SftSplit, TokenCounter};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts for one kind of example (or for all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    pub train: usize,
    pub heldout: usize,
    /// Tokens of every message (system, context and target).
    pub tokens: usize,
    /// Tokens of the target (the last assistant message): what training learns from.
    pub target_tokens: usize,
}

impl KindStats {
    fn add(&mut self, e: &SftExample, count: TokenCounter<'_>) {
        match e.split {
            SftSplit::Train => self.train += 1,
            SftSplit::Heldout => self.heldout += 1,
        }
        self.tokens += e.messages.iter().map(|m| count(&m.content)).sum::<usize>();
        self.target_tokens += e
            .messages
            .last()
            .filter(|m| m.role == SftRole::Assistant)
            .map_or(0, |m| count(&m.content));
    }

    /// Examples in both splits.
    pub fn examples(&self) -> usize {
        self.train + self.heldout
    }
}

/// Counts per kind (`chat`, `email`, `memory`, `text`) and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub total: KindStats,
    pub by_kind: BTreeMap<String, KindStats>,
}

impl DatasetStats {
    pub fn from_examples(examples: &[SftExample], count: TokenCounter<'_>) -> Self {
        let mut stats = DatasetStats::default();
        for e in examples {
            stats.total.add(e, count);
            stats
                .by_kind
                .entry(e.kind.as_str().to_string())
                .or_default()
                .add(e, count);
        }
        stats
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{whitespace_tokens, SftKind, SftMessage};

    fn ex(kind: SftKind, split: SftSplit, texts: &[&str]) -> SftExample {
        let n = texts.len();
        SftExample {
            id: format!("{kind:?}{n}"),
            split,
            messages: texts
                .iter()
                .enumerate()
                .map(|(i, t)| SftMessage {
                    role: if i + 1 == n {
                        SftRole::Assistant
                    } else {
                        SftRole::User
                    },
                    content: t.to_string(),
                })
                .collect(),
            kind,
            source_records: vec![],
            timestamp: None,
        }
    }

    #[test]
    fn counts_per_kind_split_and_tokens() {
        let examples = [
            ex(SftKind::Chat, SftSplit::Train, &["a b", "c d e"]),
            ex(SftKind::Chat, SftSplit::Heldout, &["a", "b"]),
            ex(SftKind::Text, SftSplit::Train, &["one two three four"]),
        ];
        let s = DatasetStats::from_examples(&examples, &whitespace_tokens);
        assert_eq!(s.total.examples(), 3);
        assert_eq!((s.total.train, s.total.heldout), (2, 1));
        assert_eq!(s.total.tokens, 11);
        assert_eq!(s.total.target_tokens, 8);
        let chat = &s.by_kind["chat"];
        assert_eq!(
            (chat.train, chat.heldout, chat.tokens, chat.target_tokens),
            (1, 1, 7, 4)
        );
        assert_eq!(s.by_kind["text"].target_tokens, 4);
        assert!(!s.by_kind.contains_key("email"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["by_kind"]["chat"]["heldout"], 1);
    }
}
