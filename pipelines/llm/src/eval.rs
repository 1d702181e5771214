//! Style statistics: does the finetuned model write like the person? Compares generated
//! replies with the person's real ones on surface features a reader notices — length, casing,
//! punctuation, emoji, vocabulary and character n-grams.

use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Surface features of a set of replies (means over replies).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StyleProfile {
    pub replies: usize,
    pub mean_words: f64,
    pub mean_chars: f64,
    /// Fraction of replies that start with an uppercase letter.
    pub starts_uppercase: f64,
    /// Fraction of replies with no uppercase letter at all.
    pub all_lowercase: f64,
    /// Punctuation characters per 100 characters.
    pub punctuation_per_100: f64,
    pub exclamations_per_reply: f64,
    pub questions_per_reply: f64,
    /// Emoji per reply.
    pub emoji_per_reply: f64,
    /// Fraction of replies ending with the most common final line of the real replies
    /// (a sign-off such as "— Ada"), filled in by [`compare`].
    pub signoff_rate: f64,
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0x1F000..=0x1F2FF)
}

pub fn profile(replies: &[String]) -> StyleProfile {
    let n = replies.len();
    if n == 0 {
        return StyleProfile::default();
    }
    let nf = n as f64;
    let mut p = StyleProfile {
        replies: n,
        ..StyleProfile::default()
    };
    let mut chars_total = 0usize;
    let mut punct_total = 0usize;
    for r in replies {
        let chars = r.chars().count();
        chars_total += chars;
        p.mean_words += r.split_whitespace().count() as f64;
        if r.trim_start()
            .chars()
            .next()
            .is_some_and(char::is_uppercase)
        {
            p.starts_uppercase += 1.0;
        }
        if !r.chars().any(char::is_uppercase) {
            p.all_lowercase += 1.0;
        }
        punct_total += r.chars().filter(|c| c.is_ascii_punctuation()).count();
        p.exclamations_per_reply += r.matches('!').count() as f64;
        p.questions_per_reply += r.matches('?').count() as f64;
        p.emoji_per_reply += r.chars().filter(|c| is_emoji(*c)).count() as f64;
    }
    p.mean_words /= nf;
    p.mean_chars = chars_total as f64 / nf;
    p.starts_uppercase /= nf;
    p.all_lowercase /= nf;
    p.punctuation_per_100 = if chars_total == 0 {
        0.0
    } else {
        punct_total as f64 * 100.0 / chars_total as f64
    };
    p.exclamations_per_reply /= nf;
    p.questions_per_reply /= nf;
    p.emoji_per_reply /= nf;
    p
}

fn words(texts: &[String]) -> HashSet<String> {
    texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn ngrams(texts: &[String], n: usize) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for t in texts {
        let chars: Vec<char> = t.to_lowercase().chars().collect();
        for w in chars.windows(n) {
            *out.entry(w.iter().collect::<String>()).or_insert(0.0) += 1.0;
        }
    }
    out
}

/// 1 − cosine similarity of two count profiles (0 = same profile, 1 = nothing shared).
fn profile_distance(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let dot: f64 = a
        .iter()
        .map(|(k, x)| x * b.get(k).copied().unwrap_or(0.0))
        .sum();
    let na: f64 = a.values().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.values().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 1.0;
    }
    1.0 - dot / (na * nb)
}

/// The most frequent last line of the real replies, when at least a third of them share it.
pub fn signoff(real: &[String]) -> Option<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in real {
        if let Some(last) = r.trim().lines().last() {
            let l = last.trim();
            if !l.is_empty() && l.len() <= 40 && r.trim().lines().count() > 1 {
                *counts.entry(l.to_string()).or_default() += 1;
            }
        }
    }
    let (line, n) = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?;
    (n * 3 >= real.len() && n >= 2).then_some(line)
}

/// Generated vs real replies.
#[derive(Debug, Clone, Serialize)]
pub struct StyleComparison {
    pub real: StyleProfile,
    pub generated: StyleProfile,
    /// Jaccard overlap of the two vocabularies (lowercased words).
    pub vocabulary_overlap: f64,
    /// 1 − cosine similarity of character 3-gram counts.
    pub char3_profile_distance: f64,
    pub signoff: Option<String>,
}

pub fn compare(real: &[String], generated: &[String]) -> StyleComparison {
    let mut rp = profile(real);
    let mut gp = profile(generated);
    let sign = signoff(real);
    if let Some(s) = &sign {
        let rate = |xs: &[String]| {
            if xs.is_empty() {
                0.0
            } else {
                xs.iter()
                    .filter(|x| x.trim_end().ends_with(s.as_str()))
                    .count() as f64
                    / xs.len() as f64
            }
        };
        rp.signoff_rate = rate(real);
        gp.signoff_rate = rate(generated);
    }
    let (wr, wg) = (words(real), words(generated));
    let union = wr.union(&wg).count();
    let overlap = if union == 0 {
        0.0
    } else {
        wr.intersection(&wg).count() as f64 / union as f64
    };
    StyleComparison {
        real: rp,
        generated: gp,
        vocabulary_overlap: overlap,
        char3_profile_distance: profile_distance(&ngrams(real, 3), &ngrams(generated, 3)),
        signoff: sign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn profiles_count_what_a_reader_sees() {
        let p = profile(&s(&["Hello there!", "ok 🙂", "What now?"]));
        assert_eq!(p.replies, 3);
        assert!((p.mean_words - 2.0).abs() < 1e-9);
        assert!((p.starts_uppercase - 2.0 / 3.0).abs() < 1e-9);
        assert!((p.all_lowercase - 1.0 / 3.0).abs() < 1e-9);
        assert!((p.emoji_per_reply - 1.0 / 3.0).abs() < 1e-9);
        assert!((p.questions_per_reply - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(profile(&[]), StyleProfile::default());
    }

    #[test]
    fn the_same_style_is_closer_than_a_different_one() {
        let real = s(&[
            "Dear Charles,\nthe engine will weave.\n— Ada",
            "Yes, numbers.\n— Ada",
            "Tomorrow then.\n— Ada",
        ]);
        let like = s(&[
            "Dear Charles,\nthe numbers weave.\n— Ada",
            "Tomorrow.\n— Ada",
        ]);
        let unlike = s(&["LOL NO", "k thx bye"]);
        let a = compare(&real, &like);
        let b = compare(&real, &unlike);
        assert_eq!(a.signoff.as_deref(), Some("— Ada"));
        assert_eq!(a.generated.signoff_rate, 1.0);
        assert_eq!(b.generated.signoff_rate, 0.0);
        assert!(a.vocabulary_overlap > b.vocabulary_overlap);
        assert!(a.char3_profile_distance < b.char3_profile_distance);
    }
}
