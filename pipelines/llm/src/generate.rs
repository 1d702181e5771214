//! The generation loop: sample a token, stream its text, stop on EOS, a stop sequence, the token
//! budget, the context size, or when the listener says so.
//!
//! The loop only needs a [`StepModel`] (feed tokens, get the last position's logits), so it is
//! tested with tiny scripted models and runs unchanged on the candle decoder.
//!
//! Streaming guarantees (an HTTP client or an e-mail reply sees exactly these pieces):
//! - every piece is whole UTF-8: the bytes of a character split across tokens are held back
//!   until the character is complete;
//! - no piece ever contains the start of a stop sequence that later completes: a tail of the
//!   text that could still grow into a stop sequence is held back until it cannot;
//! - the stop sequence itself (and anything after it) is never returned.
//!
//! Sampling is deterministic for a given seed (own SplitMix64 generator, stable tie-breaking),
//! so an answer can be reproduced from the event that asked for it.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::lora::SplitMix64;
use crate::{LlmError, Result};

/// A decoder that keeps its own state (KV cache): each call feeds `tokens` after the ones
/// already fed and returns the logits of the last position (one per vocabulary entry).
pub trait StepModel {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
    /// Forgets every token fed so far.
    fn reset(&mut self);
    /// How many tokens the model can attend to in total.
    fn max_context(&self) -> usize;
}

impl<T: StepModel + ?Sized> StepModel for &mut T {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        (**self).step(tokens)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn max_context(&self) -> usize {
        (**self).max_context()
    }
}

impl<T: StepModel + ?Sized> StepModel for Box<T> {
    fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        (**self).step(tokens)
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn max_context(&self) -> usize {
        (**self).max_context()
    }
}

/// How to pick each next token and when to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 (or less) means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens whose probabilities add up to this; 1 = off.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 = off, 1 = greedy.
    pub top_k: usize,
    /// Divides positive (multiplies negative) logits of tokens seen recently; 1 = off.
    pub repetition_penalty: f32,
    /// How many of the last tokens (prompt included) the penalty looks at; 0 = all of them.
    pub repetition_window: usize,
    pub max_new_tokens: usize,
    /// Texts that end the answer; they are not part of it.
    pub stop: Vec<String>,
    pub seed: u64,
    /// Leave special tokens (`<|im_start|>`) out of the text.
    pub skip_special_tokens: bool,
}

impl Default for SamplingParams {
    /// llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, no repetition penalty.
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            repetition_penalty: 1.0,
            repetition_window: 64,
            max_new_tokens: 256,
            stop: Vec::new(),
            seed: 0,
            skip_special_tokens: true,
        }
    }
}

impl SamplingParams {
    /// Argmax decoding: the same answer every time, whatever the seed.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens,
            ..Self::default()
        }
    }
}

/// Picks next tokens from logits with [`SamplingParams`]' temperature, top-k, top-p and
/// repetition penalty; seeded, so the same logits and seed give the same tokens.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    top_k: usize,
    repetition_penalty: f32,
    repetition_window: usize,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        Self {
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            repetition_penalty: params.repetition_penalty,
            repetition_window: params.repetition_window,
            rng: SplitMix64::new(params.seed),
        }
    }

    /// The next token given the last position's `logits` and the tokens so far (`history`,
    /// used by the repetition penalty). NaN logits count as impossible.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> Result<u32> {
        let mut logits: Vec<f32> = logits
            .iter()
            .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x })
            .collect();
        self.apply_repetition_penalty(&mut logits, history);

        if self.temperature <= 0.0 || self.top_k == 1 {
            return argmax(&logits);
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| **l > f32::NEG_INFINITY)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        if candidates.is_empty() {
            return Err(LlmError::Generate(
                "every logit is -inf or NaN: nothing to sample".into(),
            ));
        }
        // Highest logit first, lower id first among equals: a total, deterministic order.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if self.top_k > 0 && self.top_k < candidates.len() {
            candidates.select_nth_unstable_by(self.top_k - 1, order);
            candidates.truncate(self.top_k);
        }
        let nucleus = self.top_p > 0.0 && self.top_p < 1.0;
        if nucleus {
            candidates.sort_unstable_by(order);
        }
        let max = candidates
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max);
        let inv_t = 1.0 / f64::from(self.temperature);
        let mut weights: Vec<f64> = candidates
            .iter()
            .map(|c| (f64::from(c.1 - max) * inv_t).exp())
            .collect();
        if nucleus {
            let total: f64 = weights.iter().sum();
            let target = f64::from(self.top_p) * total;
            let mut cum = 0.0;
            let mut keep = weights.len();
            for (i, w) in weights.iter().enumerate() {
                cum += w;
                if cum >= target {
                    keep = i + 1;
                    break;
                }
            }
            weights.truncate(keep);
            candidates.truncate(keep);
        }
        let total: f64 = weights.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return argmax(&logits);
        }
        let mut u = self.rng.next_f64() * total;
        for (c, w) in candidates.iter().zip(&weights) {
            if u < *w {
                return Ok(c.0);
            }
            u -= w;
        }
        // Rounding left u just above the last weight: the last candidate it is.
        candidates
            .last()
            .map(|c| c.0)
            .ok_or_else(|| LlmError::Generate("no candidate token".into()))
    }

    fn apply_repetition_penalty(&self, logits: &mut [f32], history: &[u32]) {
        let p = self.repetition_penalty;
        if p == 1.0 || p <= 0.0 || !p.is_finite() {
            return;
        }
        let window = if self.repetition_window == 0 {
            history
        } else {
            &history[history.len().saturating_sub(self.repetition_window)..]
        };
        let mut seen = vec![false; logits.len()];
        for &t in window {
            let i = t as usize;
            if i < logits.len() && !seen[i] {
                seen[i] = true;
                logits[i] = if logits[i] > 0.0 {
                    logits[i] / p
                } else {
                    logits[i] * p
                };
            }
        }
    }
}

/// Index of the largest logit, the lowest index among equals.
fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i, l));
        }
    }
    match best {
        Some((i, l)) if l > f32::NEG_INFINITY => Ok(i as u32),
        _ => Err(LlmError::Generate(
            "every logit is -inf or NaN: nothing to sample".into(),
        )),
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop sequence appeared.
    Stop,
    /// `max_new_tokens` reached, or the context is full.
    Length,
    /// The model produced an end-of-generation token.
    Eos,
    /// The text listener returned false.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI API's `finish_reason` ("stop" for EOS and stop sequences).
    pub fn openai(self) -> &'static str {
        match self {
            Self::Stop | Self::Eos | Self::Cancelled => "stop",
            Self::Length => "length",
        }
    }
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Exactly the text handed to the listener, concatenated.
    pub text: String,
    /// Generated token ids, without the final EOS; with a stop sequence, they include the
    /// tokens that spelled it.
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    /// From the call to the first sampled token (prompt processing included).
    pub time_to_first_token: Duration,
    /// Decoding speed after the first token (the whole call when only one token was made).
    pub tokens_per_sec: f64,
}

/// Turns a growing list of ids into text pieces that are whole UTF-8 characters.
///
/// Decoding ids one at a time is wrong twice over: a character's bytes may be spread over
/// several byte-level tokens, and SentencePiece decoders drop a leading space at the start of
/// the decoded span. So each step decodes a short window (from `prefix`) twice, without and
/// with the new ids, and emits the difference once it no longer ends in a partial character
/// (the same scheme as Hugging Face's `TextStreamer`).
struct Detokenizer<'a> {
    tokenizer: &'a Tokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl<'a> Detokenizer<'a> {
    fn new(tokenizer: &'a Tokenizer, skip_special_tokens: bool) -> Self {
        Self {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, self.skip_special_tokens)
            .map_err(|e| LlmError::Tokenizer(format!("decode: {e}")))
    }

    /// Adds one id; returns the text that became complete (possibly empty).
    fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = self.decode(&self.ids[self.prefix..self.read])?;
        let after = self.decode(&self.ids[self.prefix..])?;
        if after.len() > before.len() && !after.ends_with(char::REPLACEMENT_CHARACTER) {
            if let Some(new) = after.get(before.len()..) {
                let new = new.to_string();
                self.prefix = self.read;
                self.read = self.ids.len();
                return Ok(new);
            }
        }
        Ok(String::new())
    }

    /// Whatever is still held back (an incomplete character becomes U+FFFD).
    fn flush(&mut self) -> Result<String> {
        let before = self.decode(&self.ids[self.prefix..self.read])?;
        let after = self.decode(&self.ids[self.prefix..])?;
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        Ok(after
            .get(before.len()..)
            .map(str::to_string)
            .unwrap_or_default())
    }
}

/// Where the earliest stop sequence starts in `text`, if any.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Length of the longest tail of `text` that is a proper prefix of some stop sequence, i.e.
/// the bytes that must wait because the next token may complete a stop.
fn stop_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for stop in stops {
        let longest = stop.len().saturating_sub(1).min(text.len());
        for k in (best + 1..=longest).rev() {
            if stop.is_char_boundary(k) && text.ends_with(&stop[..k]) {
                best = k;
                break;
            }
        }
    }
    best
}

/// The streaming side of the loop: text so far, what the listener has seen, stop handling.
struct Stream<'s, F: FnMut(&str) -> bool> {
    text: String,
    emitted: usize,
    stops: &'s [String],
    on_text: F,
}

impl<F: FnMut(&str) -> bool> Stream<'_, F> {
    /// Appends decoded text; returns why to finish, if the text says so. With `last`, nothing
    /// is held back any more.
    fn push(&mut self, piece: &str, last: bool) -> Option<FinishReason> {
        self.text.push_str(piece);
        // A stop cannot start inside text already emitted (we never emit a possible prefix).
        if let Some(pos) = find_stop(&self.text[self.emitted..], self.stops) {
            let end = self.emitted + pos;
            self.text.truncate(end);
            self.emit(end);
            return Some(FinishReason::Stop);
        }
        let hold = if last {
            0
        } else {
            stop_prefix_len(&self.text[self.emitted..], self.stops)
        };
        let end = self.text.len() - hold;
        if !self.emit(end) {
            return Some(FinishReason::Cancelled);
        }
        None
    }

    /// Hands `text[emitted..end]` to the listener; false when it asked to stop.
    fn emit(&mut self, end: usize) -> bool {
        if end <= self.emitted {
            return true;
        }
        let go_on = (self.on_text)(&self.text[self.emitted..end]);
        self.emitted = end;
        go_on
    }
}

/// Generates a continuation of `prompt_ids` (the whole prompt: the model is reset first).
///
/// `on_text` receives the answer piece by piece (see the module doc for what a piece is) and
/// returns false to stop early. Generation also ends at a token of `eos_ids`, a stop sequence of
/// `params.stop`, `params.max_new_tokens`, or when the model's context is full (all
/// [`FinishReason::Length`]). A prompt longer than the context is an error.
pub fn generate<M: StepModel + ?Sized>(
    model: &mut M,
    tokenizer: &Tokenizer,
    prompt_ids: &[u32],
    params: &SamplingParams,
    eos_ids: &[u32],
    on_text: impl FnMut(&str) -> bool,
) -> Result<Generation> {
    let max_context = model.max_context();
    if prompt_ids.is_empty() {
        return Err(LlmError::Generate("empty prompt".into()));
    }
    if prompt_ids.len() > max_context {
        return Err(LlmError::Generate(format!(
            "prompt has {} tokens but the model's context holds {max_context}",
            prompt_ids.len()
        )));
    }
    let start = Instant::now();
    let mut sampler = Sampler::new(params);
    let mut detok = Detokenizer::new(tokenizer, params.skip_special_tokens);
    let mut stream = Stream {
        text: String::new(),
        emitted: 0,
        stops: &params.stop,
        on_text,
    };
    let mut history = prompt_ids.to_vec();
    let mut generated: Vec<u32> = Vec::new();
    let mut first_token: Option<Duration> = None;

    let mut finish = FinishReason::Length;
    if params.max_new_tokens > 0 {
        model.reset();
        let mut logits = model.step(prompt_ids)?;
        loop {
            let next = sampler.sample(&logits, &history)?;
            first_token.get_or_insert_with(|| start.elapsed());
            if eos_ids.contains(&next) {
                finish = FinishReason::Eos;
                break;
            }
            generated.push(next);
            history.push(next);
            let piece = detok.push(next)?;
            if !piece.is_empty() {
                if let Some(reason) = stream.push(&piece, false) {
                    finish = reason;
                    break;
                }
            }
            // The next step would feed `next`, making `history.len()` tokens in the context.
            if generated.len() >= params.max_new_tokens || history.len() > max_context {
                finish = FinishReason::Length;
                break;
            }
            logits = model.step(&[next])?;
        }
    }
    if matches!(finish, FinishReason::Eos | FinishReason::Length) {
        // Release what was held back: a partial character, a stop prefix that never completed.
        let rest = detok.flush()?;
        if let Some(FinishReason::Stop) = stream.push(&rest, true) {
            finish = FinishReason::Stop;
        }
    }

    let elapsed = start.elapsed();
    let tokens_per_sec = match first_token {
        Some(ttft) if generated.len() > 1 && elapsed > ttft => {
            (generated.len() - 1) as f64 / (elapsed - ttft).as_secs_f64()
        }
        _ if !generated.is_empty() && elapsed > Duration::ZERO => {
            generated.len() as f64 / elapsed.as_secs_f64()
        }
        _ => 0.0,
    };
    let mut text = stream.text;
    text.truncate(stream.emitted);
    Ok(Generation {
        text,
        tokens: generated,
        finish_reason: finish,
        prompt_tokens: prompt_ids.len(),
        time_to_first_token: first_token.unwrap_or_default(),
        tokens_per_sec,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokenizer::{encode, tiny_gguf_metadata, tokenizer_from_gguf};

    const EOS: u32 = 2;

    fn tiny() -> Tokenizer {
        // Merges so that "ST" and "OP" are single tokens: the stop sequence "STOP" then
        // arrives in two pieces.
        tokenizer_from_gguf(&tiny_gguf_metadata(&[("S", "T"), ("O", "P")])).unwrap()
    }

    fn ids(tok: &Tokenizer, text: &str) -> Vec<u32> {
        encode(tok, text, false).unwrap()
    }

    /// Plays back a fixed list of tokens (one per step, each with logit 10 among zeros) and
    /// checks that it is never fed past its context.
    struct Script {
        tokens: Vec<u32>,
        vocab: usize,
        calls: usize,
        fed: usize,
        max_context: usize,
        resets: usize,
    }

    impl Script {
        fn new(tok: &Tokenizer, tokens: Vec<u32>) -> Self {
            Self {
                tokens,
                vocab: tok.get_vocab_size(true),
                calls: 0,
                fed: 0,
                max_context: 1000,
                resets: 0,
            }
        }
    }

    impl StepModel for Script {
        fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
            self.fed += tokens.len();
            if self.fed > self.max_context {
                return Err(LlmError::Generate("fed past the context".into()));
            }
            let mut logits = vec![0.0; self.vocab];
            let want = self.tokens.get(self.calls).copied().unwrap_or(EOS);
            logits[want as usize] = 10.0;
            self.calls += 1;
            Ok(logits)
        }
        fn reset(&mut self) {
            self.calls = 0;
            self.fed = 0;
            self.resets += 1;
        }
        fn max_context(&self) -> usize {
            self.max_context
        }
    }

    /// Always the same logits, whatever was fed.
    struct Fixed(Vec<f32>);

    impl StepModel for Fixed {
        fn step(&mut self, _tokens: &[u32]) -> Result<Vec<f32>> {
            Ok(self.0.clone())
        }
        fn reset(&mut self) {}
        fn max_context(&self) -> usize {
            10_000
        }
    }

    fn run(
        model: &mut impl StepModel,
        tok: &Tokenizer,
        params: &SamplingParams,
    ) -> (Generation, Vec<String>) {
        let mut pieces = Vec::new();
        let g = generate(model, tok, &[1], params, &[0, EOS], |p| {
            pieces.push(p.to_string());
            true
        })
        .unwrap();
        (g, pieces)
    }

    #[test]
    fn greedy_follows_the_model_and_stops_at_eos() {
        let tok = tiny();
        let mut script = ids(&tok, "Hello, world");
        script.extend([EOS, 3 + u32::from(b'x')]);
        let mut model = Script::new(&tok, script.clone());
        let (g, pieces) = run(&mut model, &tok, &SamplingParams::greedy(100));
        assert_eq!(g.text, "Hello, world");
        assert_eq!(g.finish_reason, FinishReason::Eos);
        assert_eq!(g.tokens, script[..script.len() - 2]);
        assert_eq!(g.prompt_tokens, 1);
        assert_eq!(pieces.concat(), g.text);
        assert_eq!(model.resets, 1);
        assert!(g.tokens_per_sec > 0.0);
    }

    #[test]
    fn max_new_tokens_and_context_end_with_length() {
        let tok = tiny();
        let script = ids(&tok, "abcdefgh");
        let mut model = Script::new(&tok, script.clone());
        let (g, _) = run(&mut model, &tok, &SamplingParams::greedy(3));
        assert_eq!(
            (g.text.as_str(), g.finish_reason),
            ("abc", FinishReason::Length)
        );

        // Context 4, prompt 1: a, b, c are fed, d is sampled but cannot be fed.
        let mut model = Script::new(&tok, script);
        model.max_context = 4;
        let (g, _) = run(&mut model, &tok, &SamplingParams::greedy(100));
        assert_eq!(
            (g.text.as_str(), g.finish_reason),
            ("abcd", FinishReason::Length)
        );
        assert!(model.fed <= 4);

        let err = generate(
            &mut model,
            &tok,
            &[1; 5],
            &SamplingParams::greedy(5),
            &[],
            |_| true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("context holds 4"), "{err}");
        assert!(generate(
            &mut model,
            &tok,
            &[],
            &SamplingParams::greedy(5),
            &[],
            |_| true
        )
        .is_err());

        let (g, pieces) = run(&mut model, &tok, &SamplingParams::greedy(0));
        assert_eq!(
            (g.text.as_str(), g.finish_reason),
            ("", FinishReason::Length)
        );
        assert!(pieces.is_empty());
    }

    #[test]
    fn multibyte_character_split_across_tokens_is_held_back() {
        let tok = tiny();
        // Without merges for them, "é" and "🙂" are 2 and 4 byte tokens.
        let script = ids(&tok, "é🙂!");
        assert_eq!(script.len(), 7);
        let mut model = Script::new(&tok, script);
        let (g, pieces) = run(&mut model, &tok, &SamplingParams::greedy(100));
        assert_eq!(pieces, ["é", "🙂", "!"]);
        assert_eq!(g.text, "é🙂!");
        assert!(pieces
            .iter()
            .all(|p| !p.contains(char::REPLACEMENT_CHARACTER)));

        // Cut inside the emoji by the token budget: the partial bytes come out as U+FFFD at the
        // end, never as a broken string.
        let mut model = Script::new(&tok, ids(&tok, "é🙂"));
        let (g, pieces) = run(&mut model, &tok, &SamplingParams::greedy(4));
        assert_eq!(pieces, ["é", "\u{FFFD}"]);
        assert_eq!(g.finish_reason, FinishReason::Length);
    }

    #[test]
    fn stop_sequence_split_across_tokens_is_never_emitted() {
        let tok = tiny();
        let script = ids(&tok, "ab STOP cd");
        assert!(script.contains(&tok.token_to_id("ST").unwrap()));
        assert!(script.contains(&tok.token_to_id("OP").unwrap()));
        let mut model = Script::new(&tok, script);
        let params = SamplingParams {
            stop: vec!["STOP".into(), "zz".into()],
            ..SamplingParams::greedy(100)
        };
        let (g, pieces) = run(&mut model, &tok, &params);
        assert_eq!(g.text, "ab ");
        assert_eq!(g.finish_reason, FinishReason::Stop);
        assert_eq!(pieces.concat(), "ab ");
        assert!(pieces.iter().all(|p| !p.contains('S')));

        // A false start is released once it cannot become the stop sequence.
        let mut model = Script::new(&tok, ids(&tok, "aSTx b"));
        let (g, pieces) = run(&mut model, &tok, &params);
        assert_eq!(g.text, "aSTx b");
        assert_eq!(pieces, ["a", "STx", " ", "b"]);
        assert_eq!(g.finish_reason, FinishReason::Eos);

        // A held-back prefix is released at the end when the text stops there.
        let mut model = Script::new(&tok, ids(&tok, "a ST"));
        let (g, pieces) = run(&mut model, &tok, &params);
        assert_eq!(
            (g.text.as_str(), pieces.concat()),
            ("a ST", "a ST".to_string())
        );
    }

    #[test]
    fn listener_can_cancel() {
        let tok = tiny();
        let mut model = Script::new(&tok, ids(&tok, "abcdef"));
        let mut seen = String::new();
        let g = generate(
            &mut model,
            &tok,
            &[1],
            &SamplingParams::greedy(100),
            &[EOS],
            |p| {
                seen.push_str(p);
                seen.len() < 2
            },
        )
        .unwrap();
        assert_eq!(g.finish_reason, FinishReason::Cancelled);
        assert_eq!((g.text.as_str(), seen.as_str()), ("ab", "ab"));
        assert_eq!(g.tokens.len(), 2);
    }

    #[test]
    fn special_tokens_are_skipped_unless_asked() {
        let tok = tiny();
        let mut script = ids(&tok, "a");
        script.push(1); // <|im_start|>
        script.extend(ids(&tok, "b"));
        let mut model = Script::new(&tok, script.clone());
        let (g, _) = run(&mut model, &tok, &SamplingParams::greedy(100));
        assert_eq!(g.text, "ab");
        let mut model = Script::new(&tok, script);
        let params = SamplingParams {
            skip_special_tokens: false,
            ..SamplingParams::greedy(100)
        };
        let (g, _) = run(&mut model, &tok, &params);
        assert_eq!(g.text, "a<|im_start|>b");
    }

    fn letter_logits(tok: &Tokenizer) -> Vec<f32> {
        // Letters a..h possible with rising logits; everything else impossible.
        let mut l = vec![f32::NEG_INFINITY; tok.get_vocab_size(true)];
        for (i, c) in (b'a'..=b'h').enumerate() {
            l[3 + c as usize] = i as f32 * 0.3;
        }
        l
    }

    #[test]
    fn seeded_sampling_is_deterministic() {
        let tok = tiny();
        let params = |seed| SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed,
            ..SamplingParams::greedy(40)
        };
        let sample = |seed| run(&mut Fixed(letter_logits(&tok)), &tok, &params(seed)).0;
        let a = sample(7);
        assert_eq!(a.finish_reason, FinishReason::Length);
        assert_eq!(a.text.len(), 40);
        assert_eq!(sample(7).text, a.text);
        assert_ne!(sample(8).text, a.text);
        let distinct: std::collections::BTreeSet<char> = a.text.chars().collect();
        assert!(distinct.len() >= 4, "{}", a.text);
        assert!(distinct.iter().all(|c| ('a'..='h').contains(c)));
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let mut rng = SplitMix64::new(3);
        for seed in 0..20 {
            let logits: Vec<f32> = (0..500)
                .map(|_| (rng.next_f64() * 20.0 - 10.0) as f32)
                .collect();
            let greedy = Sampler::new(&SamplingParams::greedy(1))
                .sample(&logits, &[])
                .unwrap();
            let mut top1 = Sampler::new(&SamplingParams {
                temperature: 1.5,
                top_k: 1,
                top_p: 1.0,
                seed,
                ..SamplingParams::default()
            });
            assert_eq!(top1.sample(&logits, &[]).unwrap(), greedy);
            let best = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(greedy as usize, best);
        }
        // Equal logits: the lowest id, every time.
        assert_eq!(argmax(&[1.0, 3.0, 3.0]).unwrap(), 1);
        assert!(argmax(&[f32::NAN, f32::NEG_INFINITY]).is_err());
    }

    #[test]
    fn top_k_and_top_p_restrict_the_choice() {
        let logits = [0.0, 1.0, 2.0, 6.0, 5.9];
        let mut top2 = Sampler::new(&SamplingParams {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            seed: 1,
            ..SamplingParams::default()
        });
        let mut nucleus = Sampler::new(&SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.4,
            seed: 1,
            ..SamplingParams::default()
        });
        let mut free = Sampler::new(&SamplingParams {
            temperature: 3.0,
            top_k: 0,
            top_p: 1.0,
            seed: 1,
            ..SamplingParams::default()
        });
        let mut seen_free = std::collections::BTreeSet::new();
        let mut seen_top2 = std::collections::BTreeSet::new();
        for _ in 0..300 {
            seen_top2.insert(top2.sample(&logits, &[]).unwrap());
            // Token 3 alone holds ~0.51 > 0.4 of the mass.
            assert_eq!(nucleus.sample(&logits, &[]).unwrap(), 3);
            seen_free.insert(free.sample(&logits, &[]).unwrap());
        }
        assert_eq!(seen_top2.into_iter().collect::<Vec<_>>(), [3, 4]);
        assert_eq!(seen_free.len(), 5);
    }

    #[test]
    fn repetition_penalty_changes_the_choice() {
        let tok = tiny();
        let (a, b) = (3 + u32::from(b'a'), 3 + u32::from(b'b'));
        let mut logits = vec![-5.0; tok.get_vocab_size(true)];
        logits[a as usize] = 5.0;
        logits[b as usize] = 4.5;
        let greedy = SamplingParams::greedy(4);
        let penalised = SamplingParams {
            repetition_penalty: 1.2,
            ..greedy.clone()
        };
        // Without penalty: "aaaa". With it, "a" (5/1.2 = 4.17) loses to "b" (4.5) once seen;
        // once both are seen, "a" (4.17) beats "b" (3.75) again.
        let (g, _) = run(&mut Fixed(logits.clone()), &tok, &greedy);
        assert_eq!(g.text, "aaaa");
        let (g, _) = run(&mut Fixed(logits.clone()), &tok, &penalised);
        assert_eq!(g.text, "abaa");

        // Negative logits are multiplied: -1 * 1.2 = -1.2 < -1.1.
        let mut s = Sampler::new(&penalised);
        assert_eq!(s.sample(&[-1.0, -1.1], &[0]).unwrap(), 1);
        // Outside the window the penalty does not apply.
        let mut s = Sampler::new(&SamplingParams {
            repetition_window: 1,
            ..penalised
        });
        assert_eq!(s.sample(&[5.0, 4.5, 0.0], &[0, 2]).unwrap(), 0);
    }

    #[test]
    fn stop_helpers() {
        let stops = vec!["</s>".to_string(), "ÉND".to_string(), String::new()];
        assert_eq!(find_stop("ab</s>c ÉND", &stops), Some(2));
        assert_eq!(find_stop("abc", &stops), None);
        assert_eq!(stop_prefix_len("abc</", &stops), 2);
        assert_eq!(stop_prefix_len("abcÉ", &stops), "É".len());
        assert_eq!(stop_prefix_len("abc", &stops), 0);
        assert_eq!(stop_prefix_len("", &stops), 0);
    }

    #[test]
    fn sampling_params_serde_defaults() {
        let p: SamplingParams =
            serde_json::from_str(r#"{"temperature": 0, "stop": ["\n"]}"#).unwrap();
        assert_eq!(p.temperature, 0.0);
        assert_eq!(p.stop, ["\n"]);
        assert_eq!(p.max_new_tokens, SamplingParams::default().max_new_tokens);
    }

    /// The whole path on the real demo model: GGUF tokenizer, candle decoder, greedy loop.
    /// Expected ids: `greedy_16_transformers_fp32` (= `greedy_16_llama_cpp`) of
    /// /work/shared/reference/smollm2_reference.json, for its reference prompt.
    #[test]
    fn smollm2_greedy_continuation_matches_reference() {
        use crate::model::{Llama, LlamaSession};
        use candle_core::Device;

        let Some(meta) = crate::tokenizer::tests::smollm2_metadata() else {
            return;
        };
        let tok = tokenizer_from_gguf(&meta).unwrap();
        let path = crate::load::default_model_path();
        let (cfg, weights, _) = crate::load::load_gguf(&path, &Device::Cpu).unwrap();
        let model = Llama::new(&cfg, &weights, None, &candle_nn::VarMap::new(), 0).unwrap();
        let mut decoder = LlamaSession::new(&model);

        let template = crate::chat::ChatTemplate::chatml();
        let prompt = template
            .render(
                &[crate::chat::ChatMessage::user(
                    "What did Ada Lovelace write about the Analytical Engine?",
                )],
                true,
            )
            .unwrap();
        let prompt_ids = encode(&tok, &prompt, true).unwrap();
        assert_eq!(prompt_ids.len(), 21);
        let eos = crate::tokenizer::eos_token_ids(&meta, &tok);
        let mut pieces = Vec::new();
        let g = generate(
            &mut decoder,
            &tok,
            &prompt_ids,
            &SamplingParams::greedy(16),
            &eos,
            |p| {
                pieces.push(p.to_string());
                true
            },
        )
        .unwrap();
        assert_eq!(
            g.tokens,
            [4503, 81, 14210, 532, 590, 436, 253, 2938, 23078, 617, 4161, 429, 216, 33, 40, 39]
        );
        assert_eq!(g.finish_reason, FinishReason::Length);
        assert_eq!(
            g.text,
            "Ada Lovelace was a British mathematician who lived from 187"
        );
        assert_eq!(pieces.concat(), g.text);
        assert_eq!(
            g.text,
            crate::tokenizer::decode(&tok, &g.tokens, true).unwrap()
        );
    }
}
