//! Snippets for vector hits: a chunk can be 200 tokens of chat, and a citation should show
//! the passage that matched, so we cut the window with the most query words around them.

/// Words too common to say where a passage matched.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had",
    "has", "have", "he", "her", "his", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on",
    "or", "she", "that", "the", "their", "this", "to", "was", "we", "what", "when", "where",
    "which", "who", "why", "with", "you",
];

fn norm(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

fn matches(word: &str, term: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    // A shared stem of 4+ letters matches plurals and tenses ("number"/"numbers").
    word == term
        || (term.chars().count() >= 4 && word.starts_with(term))
        || (word.chars().count() >= 4 && term.starts_with(word))
}

/// The `max_words` of `text` around the query words, whitespace collapsed, with `…` where
/// it was cut. Without a match, the beginning of the text.
pub fn snippet_around(text: &str, query: &str, max_words: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = max_words.max(1);
    if words.len() <= n {
        return words.join(" ");
    }
    let terms: Vec<String> = query
        .split_whitespace()
        .map(norm)
        .filter(|t| !t.is_empty() && !STOPWORDS.contains(&t.as_str()))
        .collect();
    let hit: Vec<Option<usize>> = words
        .iter()
        .map(|w| {
            let w = norm(w);
            terms.iter().position(|t| matches(&w, t))
        })
        .collect();
    // Best window: most distinct terms, then most matches; earliest on ties.
    let mut best = (0usize, 0usize, 0usize); // (distinct, total, start)
    for start in 0..=words.len() - n {
        let mut seen = vec![false; terms.len()];
        let mut total = 0;
        for t in hit[start..start + n].iter().flatten() {
            seen[*t] = true;
            total += 1;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if (distinct, total) > (best.0, best.1) {
            best = (distinct, total, start);
        }
    }
    let mut start = best.2;
    if best.1 > 0 {
        // Centre the matches in the window rather than leaving them at its edge.
        let inside: Vec<usize> = (start..start + n).filter(|&i| hit[i].is_some()).collect();
        if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
            let centre = (first + last) / 2;
            start = centre.saturating_sub(n / 2).min(words.len() - n);
            // Never lose a match that the best window had.
            if start > *first {
                start = *first;
            }
            if start + n <= *last {
                start = last + 1 - n;
            }
        }
    }
    let end = start + n;
    let mut out = String::new();
    if start > 0 {
        out.push_str("… ");
    }
    out.push_str(&words[start..end].join(" "));
    if end < words.len() {
        out.push_str(" …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_whole_and_collapsed() {
        assert_eq!(snippet_around("a\n b  c", "x", 10), "a b c");
    }

    #[test]
    fn window_centres_on_the_query_words() {
        let text = (0..50)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
            + " the Bernoulli numbers again "
            + &(50..100)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ");
        let s = snippet_around(&text, "what about bernoulli number", 6);
        assert_eq!(s, "… w48 w49 the Bernoulli numbers again …");
    }

    #[test]
    fn no_match_gives_the_start() {
        let text = "one two three four five";
        assert_eq!(snippet_around(text, "zebra", 2), "one two …");
    }

    #[test]
    fn distinct_terms_beat_repeats() {
        let text = "cake cake cake x x x x x x x x x x seed cake y";
        assert_eq!(snippet_around(text, "seed cake", 3), "… x seed cake …");
    }
}
