//! Word error rate: the intelligibility half of the voice quality gate (similarity alone rewards
//! garbage that sounds like the person). Words are compared after a light normalisation —
//! lower case, punctuation removed except apostrophes inside words — as jiwer users do for
//! Whisper output.

/// Substitutions, deletions and insertions of the hypothesis against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WordErrors {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub reference_words: usize,
}

impl WordErrors {
    /// (S + D + I) / N; above 1.0 when the hypothesis adds more words than the reference has.
    /// An empty reference gives 0 for an empty hypothesis and the insertion count otherwise.
    pub fn rate(&self) -> f64 {
        let errors = (self.substitutions + self.deletions + self.insertions) as f64;
        if self.reference_words == 0 {
            errors
        } else {
            errors / self.reference_words as f64
        }
    }
}

/// Counts over several utterances add up (WER of a set = all errors / all reference words).
impl std::ops::AddAssign for WordErrors {
    fn add_assign(&mut self, o: WordErrors) {
        self.substitutions += o.substitutions;
        self.deletions += o.deletions;
        self.insertions += o.insertions;
        self.reference_words += o.reference_words;
    }
}

/// Lower-cased words with punctuation removed (apostrophes inside words kept: "don't").
pub fn normalise(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'' || *c == '’')
                .map(|c| if c == '’' { '\'' } else { c })
                .flat_map(char::to_lowercase)
                .collect();
            w.trim_matches('\'').to_string()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

pub fn word_errors(reference: &str, hypothesis: &str) -> WordErrors {
    let r = normalise(reference);
    let h = normalise(hypothesis);
    // Levenshtein over words, keeping the operation counts of one cheapest alignment.
    #[derive(Clone, Copy, Default)]
    struct Cell {
        cost: usize,
        s: usize,
        d: usize,
        i: usize,
    }
    let mut prev: Vec<Cell> = (0..=h.len())
        .map(|j| Cell {
            cost: j,
            i: j,
            ..Default::default()
        })
        .collect();
    for (a, rw) in r.iter().enumerate() {
        let mut row = vec![
            Cell {
                cost: a + 1,
                d: a + 1,
                ..Default::default()
            };
            h.len() + 1
        ];
        for (b, hw) in h.iter().enumerate() {
            let diag = prev[b];
            let sub = if rw == hw {
                diag
            } else {
                Cell {
                    cost: diag.cost + 1,
                    s: diag.s + 1,
                    ..diag
                }
            };
            let del = Cell {
                cost: prev[b + 1].cost + 1,
                d: prev[b + 1].d + 1,
                ..prev[b + 1]
            };
            let ins = Cell {
                cost: row[b].cost + 1,
                i: row[b].i + 1,
                ..row[b]
            };
            row[b + 1] = [sub, del, ins]
                .into_iter()
                .min_by_key(|c| c.cost)
                .unwrap_or(sub);
        }
        prev = row;
    }
    let last = prev[h.len()];
    WordErrors {
        substitutions: last.s,
        deletions: last.d,
        insertions: last.i,
        reference_words: r.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_of_error() {
        let e = word_errors("the cat sat on the mat", "the cat sat on the mat");
        assert_eq!(e.rate(), 0.0);
        let e = word_errors("the cat sat on the mat", "The cat, sat on a mat!");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (1, 0, 0));
        assert!((e.rate() - 1.0 / 6.0).abs() < 1e-12);
        let e = word_errors("the cat sat", "the sat");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (0, 1, 0));
        let e = word_errors("the cat", "the big fat cat");
        assert_eq!((e.substitutions, e.deletions, e.insertions), (0, 0, 2));
        assert_eq!(e.rate(), 1.0);
        // Garbage longer than the reference: WER above 1, as the kNN example showed.
        let e = word_errors("hello there", "uh ah oh eh um");
        assert!(e.rate() > 1.0);
        assert_eq!(word_errors("", "").rate(), 0.0);
        assert_eq!(word_errors("", "a b").rate(), 2.0);
    }

    #[test]
    fn counts_of_several_utterances_add_up() {
        let mut all = word_errors("the cat sat", "the sat");
        all += word_errors("a b", "a c d");
        assert_eq!(
            (all.substitutions, all.deletions, all.insertions),
            (1, 1, 1)
        );
        assert_eq!(all.reference_words, 5);
        assert!((all.rate() - 0.6).abs() < 1e-12);
    }

    #[test]
    fn normalisation_keeps_inner_apostrophes() {
        assert_eq!(
            normalise("Don't — STOP! 'quoted' it’s"),
            vec!["don't", "stop", "quoted", "it's"]
        );
    }
}
