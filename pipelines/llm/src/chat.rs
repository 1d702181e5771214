//! Chat prompts: the model's own chat template (Jinja, as Hugging Face renders it) filled in with
//! minijinja.
//!
//! Why the model's template and not our own format: a finetuned chat model only answers well in
//! the exact framing it was trained on, and that framing travels with the weights
//! (`tokenizer.chat_template` in GGUF, `chat_template` in `tokenizer_config.json`). Models without
//! one get ChatML, the format SmolLM2, Qwen and many finetunes share.
//!
//! Safety: retrieved records are passed inside messages. Message contents are *data* given to the
//! template, never template source, so text such as `{{ 7*7 }}` in an e-mail comes out verbatim.
use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::tokenizer::token_text_from_config;
use crate::{LlmError, Result};

/// One turn of a conversation; `role` is usually "system", "user" or "assistant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// ChatML, used when a model ships no template. No default system prompt.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// A compiled-checked chat template plus the BOS/EOS texts templates may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
}

/// The environment Hugging Face's `apply_chat_template` gives a template: trim/lstrip blocks,
/// loop controls, `raise_exception`, and Python string/dict methods (`.strip()`, `.items()`).
/// Deliberately no `strftime_now`: templates then fall back to their fixed date, which keeps
/// prompts (and so everything derived from them) reproducible.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, message))
        },
    );
    env
}

fn template_error(e: JinjaError) -> LlmError {
    // The alternate form carries the failing line and the template's own message.
    LlmError::Template(format!("{e:#}"))
}

impl ChatTemplate {
    /// Checks that `source` compiles; `bos`/`eos` are the texts of the model's BOS/EOS tokens
    /// (templates write `{{ bos_token }}`).
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self> {
        let env = environment();
        env.template_from_str(source).map_err(template_error)?;
        Ok(Self {
            source: source.to_string(),
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// ChatML (see [`CHATML_TEMPLATE`]).
    pub fn chatml() -> Self {
        Self {
            source: CHATML_TEMPLATE.to_string(),
            bos: String::new(),
            eos: "<|im_end|>".to_string(),
        }
    }

    /// The template a GGUF file carries (`tokenizer.chat_template`), or ChatML when it has none.
    pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Self> {
        let token_text = |key: &str| -> String {
            let id = metadata.get(key).and_then(|v| match v {
                Value::U32(x) => Some(*x as usize),
                Value::I32(x) => usize::try_from(*x).ok(),
                Value::U64(x) => usize::try_from(*x).ok(),
                Value::I64(x) => usize::try_from(*x).ok(),
                _ => None,
            });
            let tokens = metadata
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok());
            match (id, tokens) {
                (Some(id), Some(tokens)) => match tokens.get(id) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                },
                _ => String::new(),
            }
        };
        let bos = token_text("tokenizer.ggml.bos_token_id");
        let eos = token_text("tokenizer.ggml.eos_token_id");
        match metadata.get("tokenizer.chat_template") {
            Some(Value::String(source)) => Self::new(source, &bos, &eos),
            Some(other) => Err(LlmError::Template(format!(
                "tokenizer.chat_template is not a string ({:?})",
                other.value_type()
            ))),
            None => Ok(Self {
                bos,
                ..Self::chatml()
            }),
        }
    }

    /// The template of a Hugging Face `tokenizer_config.json`: `chat_template` as a string, or
    /// as a list of `{name, template}` (the one named "default", else the first). ChatML when
    /// there is none.
    pub fn from_tokenizer_config(config: &serde_json::Value) -> Result<Self> {
        let bos = token_text_from_config(config, "bos_token").unwrap_or_default();
        let eos = token_text_from_config(config, "eos_token").unwrap_or_default();
        let source = match config.get("chat_template") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(list)) => {
                let named = |name: &str| {
                    list.iter()
                        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
                };
                let entry = named("default").or_else(|| list.first());
                let source = entry
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| {
                        LlmError::Template("chat_template list has no usable template".into())
                    })?;
                Some(source.to_string())
            }
            Some(_) => {
                return Err(LlmError::Template(
                    "chat_template is neither a string nor a list".into(),
                ))
            }
        };
        match source {
            Some(source) => Self::new(&source, &bos, &eos),
            None => Ok(Self {
                bos,
                eos: if eos.is_empty() {
                    "<|im_end|>".to_string()
                } else {
                    eos
                },
                ..Self::chatml()
            }),
        }
    }

    /// Reads `tokenizer_config.json`; newer checkpoints keep the template in a
    /// `chat_template.jinja` beside it, which is used when the config has none.
    pub fn from_tokenizer_config_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let has_template = config.get("chat_template").is_some_and(|t| !t.is_null());
        if !has_template {
            let sibling = path.with_file_name("chat_template.jinja");
            if sibling.is_file() {
                let source = std::fs::read_to_string(&sibling)?;
                if let Some(obj) = config.as_object_mut() {
                    obj.insert("chat_template".into(), serde_json::Value::String(source));
                }
            }
        }
        Self::from_tokenizer_config(&config)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn bos_token(&self) -> &str {
        &self.bos
    }
    pub fn eos_token(&self) -> &str {
        &self.eos
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins. The result contains special-token texts (`<|im_start|>`), so
    /// encode it with a tokenizer that treats them as special.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let env = environment();
        let template = env
            .template_from_str(&self.source)
            .map_err(template_error)?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos,
                eos_token => &self.eos,
            })
            .map_err(template_error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The hand-written prompt of /work/shared/reference/smollm2_reference.json (`prompt`).
    const REFERENCE_PROMPT: &str = "<|im_start|>user\nWhat did Ada Lovelace write about the Analytical Engine?<|im_end|>\n<|im_start|>assistant\n";
    const QUESTION: &str = "What did Ada Lovelace write about the Analytical Engine?";

    #[test]
    fn chatml_fallback_gives_the_reference_prompt() {
        let t = ChatTemplate::chatml();
        let out = t.render(&[ChatMessage::user(QUESTION)], true).unwrap();
        assert_eq!(out, REFERENCE_PROMPT);
        let out = t.render(&[ChatMessage::user(QUESTION)], false).unwrap();
        assert_eq!(
            out,
            REFERENCE_PROMPT.trim_end_matches("<|im_start|>assistant\n")
        );
    }

    #[test]
    fn smollm2_template_from_gguf_adds_its_default_system_turn() {
        let Some(meta) = crate::tokenizer::tests::smollm2_metadata() else {
            return;
        };
        let t = ChatTemplate::from_gguf_metadata(&meta).unwrap();
        assert_eq!(
            (t.bos_token(), t.eos_token()),
            ("<|im_start|>", "<|im_end|>")
        );
        // SmolLM2's template inserts a system turn when the conversation has none; the
        // reference prompt was written without it, so the rendered text is that turn followed
        // by exactly the reference prompt.
        let out = t.render(&[ChatMessage::user(QUESTION)], true).unwrap();
        let system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
        assert_eq!(out, format!("{system}{REFERENCE_PROMPT}"));
        // With a system message of our own, no default is added.
        let out = t
            .render(
                &[
                    ChatMessage::system("Be brief."),
                    ChatMessage::user(QUESTION),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            format!("<|im_start|>system\nBe brief.<|im_end|>\n{REFERENCE_PROMPT}")
        );
    }

    #[test]
    fn gguf_without_template_falls_back_to_chatml() {
        let meta = crate::tokenizer::tiny_gguf_metadata(&[]);
        let t = ChatTemplate::from_gguf_metadata(&meta).unwrap();
        assert_eq!(t.source(), CHATML_TEMPLATE);
        assert_eq!(t.bos_token(), "<|im_start|>");
        assert_eq!(
            t.render(&[ChatMessage::user(QUESTION)], true).unwrap(),
            REFERENCE_PROMPT
        );
    }

    #[test]
    fn message_content_is_never_evaluated() {
        let t = ChatTemplate::chatml();
        let evil = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} {{ raise_exception('boom') }}";
        let out = t.render(&[ChatMessage::user(evil)], false).unwrap();
        assert_eq!(out, format!("<|im_start|>user\n{evil}<|im_end|>\n"));
        assert!(!out.contains("49"));
    }

    /// A Llama-3-like template: bos_token, strip(), loop controls, raise_exception, trim_blocks.
    const HF_STYLE: &str = r#"{{ bos_token }}{% for message in messages %}
{% if message['role'] == 'tool' %}{% continue %}{% endif %}
{% if message['role'] not in ['system', 'user', 'assistant'] %}{{ raise_exception('bad role: ' + message['role']) }}{% endif %}
<|start_header_id|>{{ message['role'] }}<|end_header_id|>

{{ message['content'].strip() }}{{ eos_token }}{% if message.content.startswith('STOP') %}{% break %}{% endif %}
{% endfor %}
{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"#;

    #[test]
    fn hugging_face_template_features() {
        let t = ChatTemplate::new(HF_STYLE, "<|begin_of_text|>", "<|eot_id|>").unwrap();
        let msgs = [
            ChatMessage::system("  Be kind. "),
            ChatMessage::new("tool", "ignored"),
            ChatMessage::user("STOP here"),
            ChatMessage::assistant("never rendered"),
        ];
        let out = t.render(&msgs, true).unwrap();
        assert_eq!(
            out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe kind.<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\nSTOP here<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        let err = t
            .render(&[ChatMessage::new("robot", "hi")], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad role: robot"), "{err}");
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
    }

    #[test]
    fn tokenizer_config_forms() {
        let string_form = serde_json::json!({
            "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
            "bos_token": "<s>",
            "eos_token": {"content": "</s>", "special": true},
        });
        let t = ChatTemplate::from_tokenizer_config(&string_form).unwrap();
        assert_eq!(
            t.render(
                &[ChatMessage::user("a"), ChatMessage::assistant("b")],
                false
            )
            .unwrap(),
            "<s>a</s>b</s>"
        );

        let list_form = serde_json::json!({
            "chat_template": [
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "DEFAULT{{ messages|length }}"},
            ],
        });
        let t = ChatTemplate::from_tokenizer_config(&list_form).unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user("x")], true).unwrap(),
            "DEFAULT1"
        );

        let none = serde_json::json!({"eos_token": "<|im_end|>"});
        let t = ChatTemplate::from_tokenizer_config(&none).unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user(QUESTION)], true).unwrap(),
            REFERENCE_PROMPT
        );

        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tokenizer_config.json");
        std::fs::write(&cfg, r#"{"bos_token": "<s>"}"#).unwrap();
        std::fs::write(dir.path().join("chat_template.jinja"), "J{{ bos_token }}").unwrap();
        let t = ChatTemplate::from_tokenizer_config_file(&cfg).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "J<s>");
    }

    #[test]
    fn chat_message_serde() {
        let m: ChatMessage = serde_json::from_str(r#"{"role":"user","content":"hé"}"#).unwrap();
        assert_eq!(m, ChatMessage::user("hé"));
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"role":"user","content":"hé"}"#
        );
    }
}
