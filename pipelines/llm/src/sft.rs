//! Turns dataset examples into token ids and a loss mask: the model learns the person's last
//! reply of each conversation (and the end-of-turn marker after it), nothing else.
//!
//! The mask comes from rendering the conversation twice with the model's own chat template —
//! once up to where the reply starts (`add_generation_prompt`), once whole — so it is right for
//! any template, not only ChatML.

use crate::chat::{ChatMessage, ChatTemplate};
use crate::train::Encoded;
use crate::{LlmError, Result};
use avatar_schemas::dataset::{SftExample, SftKind, SftRole};
use tokenizers::Tokenizer;

/// Encodes examples for one model.
pub struct SftEncoder<'a> {
    pub template: &'a ChatTemplate,
    pub tokenizer: &'a Tokenizer,
    /// Appended after `text` examples so a document ends like a turn does.
    pub eos_id: Option<u32>,
    /// Used when an example has no system message, so training and answering share one prompt
    /// (templates such as SmolLM2's otherwise insert their own default persona).
    pub default_system: Option<String>,
}

impl SftEncoder<'_> {
    /// The chat messages the model sees for `ex` (system message added when missing).
    pub fn messages(&self, ex: &SftExample) -> Vec<ChatMessage> {
        let mut out = Vec::with_capacity(ex.messages.len() + 1);
        let has_system = ex.messages.iter().any(|m| m.role == SftRole::System);
        if let (false, Some(sys)) = (has_system, &self.default_system) {
            out.push(ChatMessage::system(sys.clone()));
        }
        out.extend(
            ex.messages
                .iter()
                .map(|m| ChatMessage::new(m.role.as_str(), m.content.clone())),
        );
        out
    }

    pub fn encode(&self, ex: &SftExample) -> Result<Encoded> {
        let ids = |text: &str| -> Result<Vec<u32>> {
            self.tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| LlmError::Tokenizer(e.to_string()))
        };
        if ex.kind == SftKind::Text {
            let text: String = ex
                .messages
                .iter()
                .filter(|m| m.role == SftRole::Assistant)
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n\n");
            let mut t = ids(&text)?;
            t.extend(self.eos_id);
            let n = t.len();
            return Ok(Encoded {
                ids: t,
                loss_mask: vec![true; n],
            });
        }
        let msgs = self.messages(ex);
        let Some(last) = msgs.iter().rposition(|m| m.role == "assistant") else {
            return Err(LlmError::Generate(format!(
                "example {} has no assistant turn to learn",
                ex.id
            )));
        };
        let prefix = self.template.render(&msgs[..last], true)?;
        let full = self.template.render(&msgs[..=last], false)?;
        if !full.starts_with(&prefix) {
            return Err(LlmError::Template(
                "the chat template renders a conversation differently from its prefix; cannot tell the reply's tokens apart".into(),
            ));
        }
        let p = ids(&prefix)?;
        let f = ids(&full)?;
        // Tokenising the two texts separately must agree on the shared part; if a merge crosses
        // the boundary, count from the first differing token.
        let shared = p.iter().zip(&f).take_while(|(a, b)| a == b).count();
        let mask = (0..f.len()).map(|i| i >= shared).collect();
        Ok(Encoded {
            ids: f,
            loss_mask: mask,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use avatar_schemas::dataset::{SftMessage, SftSplit};
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::AddedToken;

    fn tokenizer() -> Tokenizer {
        let words = [
            "<unk>",
            "user",
            "assistant",
            "system",
            "hi",
            "there",
            "hello",
            "friend",
            "be",
            "ada",
            "a",
            "doc",
            "line",
            "<|im_start|>",
            "<|im_end|>",
        ];
        let vocab = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), i as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("<unk>".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(model);
        t.with_pre_tokenizer(Some(Whitespace {}));
        let _ = t.add_special_tokens(vec![
            AddedToken::from("<|im_start|>", true),
            AddedToken::from("<|im_end|>", true),
        ]);
        t
    }

    fn ex(kind: SftKind, msgs: &[(SftRole, &str)]) -> SftExample {
        SftExample {
            id: "x".into(),
            split: SftSplit::Train,
            messages: msgs
                .iter()
                .map(|(r, c)| SftMessage {
                    role: *r,
                    content: c.to_string(),
                })
                .collect(),
            kind,
            source_records: vec![],
            timestamp: None,
        }
    }

    #[test]
    fn only_the_last_reply_and_its_end_marker_are_targets() {
        let tok = tokenizer();
        let tpl = ChatTemplate::chatml();
        let enc = SftEncoder {
            template: &tpl,
            tokenizer: &tok,
            eos_id: Some(14),
            default_system: Some("be ada".into()),
        };
        let e = ex(
            SftKind::Chat,
            &[
                (SftRole::User, "hi"),
                (SftRole::Assistant, "hello"),
                (SftRole::User, "hi there"),
                (SftRole::Assistant, "hello friend"),
            ],
        );
        let out = enc.encode(&e).unwrap();
        let words: Vec<String> = out
            .ids
            .iter()
            .map(|i| tok.id_to_token(*i).unwrap())
            .collect();
        let target: Vec<&str> = words
            .iter()
            .zip(&out.loss_mask)
            .filter(|(_, m)| **m)
            .map(|(w, _)| w.as_str())
            .collect();
        assert_eq!(target, vec!["hello", "friend", "<|im_end|>"]);
        // The system prompt was added, and the earlier reply is context only.
        assert_eq!(&words[..4], &["<|im_start|>", "system", "be", "ada"]);
        assert!(words.iter().filter(|w| *w == "hello").count() == 2);
    }

    #[test]
    fn text_examples_are_all_target_and_end_with_eos() {
        let tok = tokenizer();
        let tpl = ChatTemplate::chatml();
        let enc = SftEncoder {
            template: &tpl,
            tokenizer: &tok,
            eos_id: Some(14),
            default_system: None,
        };
        let out = enc
            .encode(&ex(SftKind::Text, &[(SftRole::Assistant, "a doc line")]))
            .unwrap();
        assert_eq!(out.ids, vec![10, 11, 12, 14]);
        assert!(out.loss_mask.iter().all(|m| *m));
        assert!(enc
            .encode(&ex(SftKind::Chat, &[(SftRole::User, "hi")]))
            .is_err());
    }
}
