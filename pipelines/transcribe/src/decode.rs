//! The rules Whisper's decoding applies to the logits before each greedy choice, as a pure
//! function of the tokens sampled so far. They keep timestamps in pairs around each segment's
//! text, non-decreasing, and the first one within the first second; and they force a
//! timestamp when the model puts more probability on timestamps together than on any word.

use crate::model::Specials;

/// Tokens per second of timestamp resolution (`<|0.02|>` steps).
pub const TIMESTAMP_STEP: f32 = 0.02;
/// The first timestamp may not be later than this (seconds), as in Whisper.
const MAX_INITIAL_TIMESTAMP: f32 = 1.0;

/// Applies the rules to `logits` (one row over the vocabulary) given the tokens sampled after
/// the prompt.
pub fn apply_rules(logits: &mut [f32], sampled: &[u32], s: &Specials, timestamps: bool) {
    let n = logits.len();
    let mut suppress = |i: u32| {
        if let Some(l) = logits.get_mut(i as usize) {
            *l = f32::NEG_INFINITY;
        }
    };
    for &t in &s.suppress {
        suppress(t);
    }
    if sampled.is_empty() {
        for &t in &s.suppress_begin {
            suppress(t);
        }
    }
    if !timestamps {
        for i in s.timestamp_begin..n as u32 {
            suppress(i);
        }
        return;
    }
    suppress(s.no_timestamps);
    let ts = s.timestamp_begin as usize;
    if ts >= n {
        return;
    }
    let is_ts = |t: u32| t >= s.timestamp_begin;
    let last_was_ts = sampled.last().is_some_and(|&t| is_ts(t));
    let penultimate_was_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
    if last_was_ts {
        if penultimate_was_ts {
            // A segment just closed: text (or the end) comes next.
            logits[ts..].fill(f32::NEG_INFINITY);
        } else {
            // Text just ended with a timestamp: the next must open a segment or end.
            logits[..s.eot as usize].fill(f32::NEG_INFINITY);
        }
    }
    if let Some(&last_ts) = sampled.iter().rev().find(|&&t| is_ts(t)) {
        // Time does not go backwards; a new segment starts strictly after the last closed one.
        let floor = if last_was_ts && !penultimate_was_ts {
            last_ts
        } else {
            last_ts + 1
        } as usize;
        logits[ts..floor.min(n)].fill(f32::NEG_INFINITY);
    }
    if sampled.is_empty() {
        // The transcript opens with a timestamp, within the first second.
        logits[..ts].fill(f32::NEG_INFINITY);
        let last_allowed = ts + (MAX_INITIAL_TIMESTAMP / TIMESTAMP_STEP).round() as usize;
        if last_allowed + 1 < n {
            logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
        }
    }
    // When timestamps together are likelier than the likeliest word, take a timestamp.
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if max.is_finite() {
        let log_sum = |range: &[f32]| {
            let m = range.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY {
                return f32::NEG_INFINITY;
            }
            m + range.iter().map(|&l| (l - m).exp()).sum::<f32>().ln()
        };
        let total = log_sum(logits);
        let ts_logprob = log_sum(&logits[ts..]) - total;
        let max_text = logits[..ts]
            .iter()
            .cloned()
            .fold(f32::NEG_INFINITY, f32::max)
            - total;
        if ts_logprob > max_text {
            logits[..ts].fill(f32::NEG_INFINITY);
        }
    }
}

/// A stretch of speech with its text, in seconds from the start of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSegment {
    pub start: f32,
    pub end: f32,
    pub tokens: Vec<u32>,
}

/// Splits sampled tokens into segments at timestamp pairs. Text after the last timestamp
/// (the model stopped mid-segment) ends at `window_end`. Returns the segments and whether the
/// sequence ended on a lone timestamp (speech continues past it into the next window).
pub fn segments(sampled: &[u32], s: &Specials, window_end: f32) -> Vec<RawSegment> {
    let to_s = |t: u32| (t - s.timestamp_begin) as f32 * TIMESTAMP_STEP;
    let mut out = Vec::new();
    let mut start: Option<f32> = None;
    let mut text: Vec<u32> = Vec::new();
    for &t in sampled {
        if t == s.eot {
            break;
        }
        if t >= s.timestamp_begin {
            match start {
                Some(st) if !text.is_empty() => {
                    out.push(RawSegment {
                        start: st,
                        end: to_s(t),
                        tokens: std::mem::take(&mut text),
                    });
                    start = None;
                }
                _ => start = Some(to_s(t)),
            }
        } else {
            text.push(t);
        }
    }
    if !text.is_empty() {
        out.push(RawSegment {
            start: start.unwrap_or(0.0),
            end: window_end,
            tokens: text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> Specials {
        Specials {
            eot: 10,
            sot: 11,
            transcribe: None,
            translate: None,
            no_timestamps: 12,
            timestamp_begin: 13,
            no_speech: None,
            languages: Vec::new(),
            suppress: vec![3],
            suppress_begin: vec![0, 10],
        }
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect()
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let s = specials();
        let mut l = vec![0.0; 13 + 100];
        apply_rules(&mut l, &[], &s, true);
        assert_eq!(allowed(&l), (13..=63).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_come_in_pairs_and_do_not_go_back() {
        let s = specials();
        let n = 13 + 100;
        // <|0.10|> text: text or a closing timestamp after 0.10 may follow.
        let mut l = vec![0.0; n];
        l[1] = 5.0; // a word much likelier than any timestamp
        apply_rules(&mut l, &[18, 1], &s, true);
        let a = allowed(&l);
        assert!(a.contains(&1) && a.contains(&10) && !a.contains(&3) && !a.contains(&12));
        assert!(
            !a.contains(&18) && a.contains(&19),
            "segments have a length: {a:?}"
        );
        // <|0.10|> text <|0.40|>: only a new opening timestamp (≥ 0.40) or the end.
        let mut l = vec![0.0; n];
        apply_rules(&mut l, &[18, 1, 33], &s, true);
        let a = allowed(&l);
        assert!(
            a.iter().all(|&i| i == 10 || i == 11 || i == 12 || i >= 33),
            "{a:?}"
        );
        assert!(!a.contains(&1) && !a.contains(&12));
        // ... <|0.40|><|0.40|>: text follows.
        let mut l = vec![0.0; n];
        apply_rules(&mut l, &[18, 1, 33, 33], &s, true);
        assert!(allowed(&l).iter().all(|&i| i < 13));
    }

    #[test]
    fn likely_timestamps_win_over_any_single_word() {
        let s = specials();
        let mut l = vec![-10.0; 113];
        l[1] = 1.0;
        for v in l.iter_mut().skip(20) {
            *v = 0.5; // each timestamp less likely than the word, together far likelier
        }
        apply_rules(&mut l, &[18, 2], &s, true);
        assert!(allowed(&l).iter().all(|&i| i >= 13));
    }

    #[test]
    fn without_timestamps_only_text() {
        let s = specials();
        let mut l = vec![0.0; 113];
        apply_rules(&mut l, &[], &s, false);
        assert_eq!(allowed(&l), vec![1, 2, 4, 5, 6, 7, 8, 9, 11, 12]);
    }

    #[test]
    fn segments_split_at_pairs() {
        let s = specials();
        let segs = segments(&[13, 1, 2, 63, 63, 4, 113 - 1, 10], &s, 30.0);
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].start, segs[0].tokens.clone()), (0.0, vec![1, 2]));
        assert!((segs[0].end - 1.0).abs() < 1e-6);
        assert!((segs[1].start - 1.0).abs() < 1e-6 && (segs[1].end - 1.98).abs() < 1e-4);
        let open = segments(&[13, 1, 2], &s, 7.5);
        assert_eq!(open[0].end, 7.5);
    }
}
