//! Third parties' names → `[PERSON_n]`, one number per participant, so a conversation still
//! reads as "who said what to whom" without saying who.
//!
//! Matching is over words, not patterns: the text is cut into words once, and each word
//! position looks up name n-grams (up to [`MAX_WORDS`]) in a hash map, so a thousand
//! participants cost the same as one. A full name matches in any case; a single word of a name
//! ("Bob" of "Bob Smith") only capitalised, since "will", "mark" and "rose" are words too.

use std::collections::HashMap;

/// Longest name, in words, that is looked up.
const MAX_WORDS: usize = 4;
/// Single name words shorter than this are not matched alone ("Al", "Jo").
const MIN_SINGLE: usize = 3;

/// One match: byte range and the participant number (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameHit {
    pub start: usize,
    pub end: usize,
    pub person: usize,
}

#[derive(Debug, Clone, Default)]
pub struct NameMatcher {
    /// Lower-cased words joined by one space → (participant number, is it a single word).
    names: HashMap<String, (usize, bool)>,
}

/// The words of a text with their byte ranges: letters, digits, `_` and inner apostrophes.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '_' {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            out.push((s, i));
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The name part of an alias: `Bob Smith <bob@x.org>` → `Bob Smith`, `@bob` → `bob`; an email
/// address or phone number alone has no name.
pub fn name_of(alias: &str) -> Option<String> {
    let a = alias.trim();
    let a = match a.find('<') {
        Some(i) if a.contains('@') => a[..i].trim().trim_matches('"').trim(),
        _ => a,
    };
    let a = a.trim_start_matches('@');
    let letters = a.chars().filter(|c| c.is_alphabetic()).count();
    if a.is_empty() || a.contains('@') || letters < 2 || a.contains("://") {
        return None;
    }
    Some(a.to_string())
}

impl NameMatcher {
    /// `names`: (alias, participant key) pairs; participants are numbered in order of first
    /// appearance. Words of `own` (the person's names) are never matched.
    pub fn new(names: &[(String, String)], own: &[String]) -> (Self, Vec<String>) {
        let own_words: std::collections::HashSet<String> = own
            .iter()
            .flat_map(|n| {
                let lower = n.to_lowercase();
                words(&lower)
                    .into_iter()
                    .map(|(s, e)| lower[s..e].to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        let own_full: std::collections::HashSet<String> =
            own.iter().map(|n| key_of(&n.to_lowercase())).collect();
        let mut keys: Vec<String> = Vec::new();
        let mut m = NameMatcher::default();
        for (alias, participant) in names {
            let Some(name) = name_of(alias) else {
                continue;
            };
            let lower = name.to_lowercase();
            let w: Vec<&str> = words(&lower)
                .into_iter()
                .map(|(s, e)| &lower[s..e])
                .collect();
            if w.is_empty() || w.len() > MAX_WORDS {
                continue;
            }
            let full = w.join(" ");
            if own_full.contains(&full) {
                continue;
            }
            let person = match keys.iter().position(|k| k == participant) {
                Some(i) => i + 1,
                None => {
                    keys.push(participant.clone());
                    keys.len()
                }
            };
            // The whole name in any case (a handle like `bob_smith` is one word).
            let handle = alias.trim_start().starts_with('@');
            m.names
                .entry(full)
                .or_insert((person, w.len() == 1 && !handle));
            if w.len() > 1 {
                for word in &w {
                    if word.chars().count() >= MIN_SINGLE && !own_words.contains(*word) {
                        m.names.entry(word.to_string()).or_insert((person, true));
                    }
                }
            }
        }
        (m, keys)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn find(&self, text: &str) -> Vec<NameHit> {
        let mut out = Vec::new();
        if self.names.is_empty() {
            return out;
        }
        let w = words(text);
        let mut i = 0;
        while i < w.len() {
            let mut hit = None;
            let mut key = String::new();
            let mut candidates = Vec::with_capacity(MAX_WORDS);
            for j in i..w.len().min(i + MAX_WORDS) {
                if j > i {
                    // Words of one name are separated by a space, a hyphen or a dot.
                    let gap = &text[w[j - 1].1..w[j].0];
                    if gap.is_empty()
                        || gap.len() > 2
                        || gap.chars().any(|c| !matches!(c, ' ' | '-' | '.'))
                    {
                        break;
                    }
                    key.push(' ');
                }
                key.push_str(&text[w[j].0..w[j].1].to_lowercase());
                candidates.push((j, key.clone()));
            }
            for (j, k) in candidates.into_iter().rev() {
                if let Some(&(person, single)) = self.names.get(&k) {
                    let first = text[w[i].0..].chars().next();
                    if single && !first.is_some_and(char::is_uppercase) {
                        continue;
                    }
                    hit = Some((
                        j,
                        NameHit {
                            start: w[i].0,
                            end: w[j].1,
                            person,
                        },
                    ));
                    break;
                }
            }
            match hit {
                Some((j, h)) => {
                    // `@bob`: the handle sign goes with the name.
                    let start = if h.start > 0 && text.as_bytes()[h.start - 1] == b'@' {
                        h.start - 1
                    } else {
                        h.start
                    };
                    out.push(NameHit { start, ..h });
                    i = j + 1;
                }
                None => i += 1,
            }
        }
        out
    }
}

fn key_of(lower: &str) -> String {
    words(lower)
        .into_iter()
        .map(|(s, e)| &lower[s..e])
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(names: &[(&str, &str)], own: &[&str]) -> NameMatcher {
        let names: Vec<(String, String)> = names
            .iter()
            .map(|(a, k)| (a.to_string(), k.to_string()))
            .collect();
        let own: Vec<String> = own.iter().map(|s| s.to_string()).collect();
        NameMatcher::new(&names, &own).0
    }

    #[test]
    fn aliases_give_names() {
        assert_eq!(
            name_of("Bob Smith <bob@x.org>").as_deref(),
            Some("Bob Smith")
        );
        assert_eq!(
            name_of("\"Smith, Bob\" <bob@x.org>").as_deref(),
            Some("Smith, Bob")
        );
        assert_eq!(name_of("@bobby").as_deref(), Some("bobby"));
        assert_eq!(name_of("bob@x.org"), None);
        assert_eq!(name_of("+44 7700 900123"), None);
    }

    #[test]
    fn full_names_any_case_single_words_capitalised() {
        let n = m(&[("Bob Smith", "p1"), ("Carol", "p2")], &["Ada Lovelace"]);
        let t = "bob smith met Bob, then Carol; carol and bob";
        let hits = n.find(t);
        let got: Vec<(&str, usize)> = hits
            .iter()
            .map(|h| (&t[h.start..h.end], h.person))
            .collect();
        assert_eq!(got, [("bob smith", 1), ("Bob", 1), ("Carol", 2)]);
    }

    #[test]
    fn own_names_and_short_words_are_not_matched() {
        let n = m(&[("Ada Byron", "p1"), ("Al Jo", "p2")], &["Ada Lovelace"]);
        let t = "Ada wrote to Byron and Al";
        let got: Vec<&str> = n.find(t).iter().map(|h| &t[h.start..h.end]).collect();
        assert_eq!(got, ["Byron"]);
        assert!(m(&[("Ada Lovelace", "p")], &["Ada Lovelace"]).is_empty());
    }
}
