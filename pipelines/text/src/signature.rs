//! Signatures: the block a person (or their mail client) appends to every message.
//!
//! A signature is not marked in most mail, but it repeats: the same trailing lines at the end
//! of many of the person's sent messages. [`learn_signatures`] finds those blocks once per
//! mailbox and [`strip_signatures`] removes them from each message. For a single message with
//! no mailbox to learn from, [`strip_sender_signature`] uses the sender's name instead.

use std::collections::{HashMap, HashSet};

use crate::normalize_whitespace;

/// Longest signature block we learn, in non-blank lines.
const MAX_SIG_LINES: usize = 6;
/// A block must end at least this many messages ...
const MIN_SIG_COUNT: usize = 3;
/// ... and at least this share of them (in percent).
const MIN_SIG_SHARE_PCT: usize = 30;

fn non_blank_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(normalize_whitespace)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Learn the person's recurring signatures from their sent messages (bodies after
/// [`crate::strip_reply`]): trailing blocks of 1-6 non-blank lines that end at least 3 of the
/// messages and at least 30% of them. Longest blocks first; a shorter block is only returned
/// when it also occurs without the longer one around it (e.g. "Anna" under both "Best,\nAnna"
/// and "Thanks,\nAnna").
pub fn learn_signatures(sent_bodies: &[&str]) -> Vec<String> {
    let total = sent_bodies.len();
    let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
    for body in sent_bodies {
        let lines = non_blank_lines(body);
        let mut seen = HashSet::new();
        for n in 1..=MAX_SIG_LINES.min(lines.len()) {
            let key = lines[lines.len() - n..].join("\n");
            if seen.insert(key.clone()) {
                let entry = counts.entry(key).or_insert((0, 0));
                entry.0 += 1;
                if n < lines.len() {
                    entry.1 += 1;
                }
            }
        }
    }
    let mut candidates: Vec<(String, usize)> = counts
        .into_iter()
        .filter(|(_, (count, below_text))| {
            *count >= MIN_SIG_COUNT
                && count * 100 >= total * MIN_SIG_SHARE_PCT
                // A block that is the whole message every time is a stock reply, not a signature.
                && *below_text >= 2
        })
        .map(|(k, (count, _))| (k, count))
        .collect();
    candidates.sort_by(|a, b| {
        let la = a.0.lines().count();
        let lb = b.0.lines().count();
        lb.cmp(&la).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0))
    });
    let mut chosen: Vec<(String, usize)> = Vec::new();
    for (sig, count) in candidates {
        let redundant = chosen
            .iter()
            .any(|(longer, c)| *c == count && longer.ends_with(&format!("\n{sig}")));
        if !redundant {
            chosen.push((sig, count));
        }
    }
    chosen.into_iter().map(|(s, _)| s).collect()
}

/// Remove the longest of `signatures` that ends `text` (compared with whitespace
/// normalised), together with a `-- ` delimiter right above it.
pub fn strip_signatures(text: &str, signatures: &[String]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let non_blank: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty())
        .collect();
    let mut best: Option<usize> = None;
    for sig in signatures {
        let sig_lines = non_blank_lines(sig);
        if sig_lines.is_empty() || sig_lines.len() >= non_blank.len() {
            continue;
        }
        let start = non_blank.len() - sig_lines.len();
        let matches = non_blank[start..]
            .iter()
            .zip(&sig_lines)
            .all(|(&i, s)| normalize_whitespace(lines[i]) == *s);
        if matches {
            let cut = non_blank[start];
            if best.is_none_or(|b| cut < b) {
                best = Some(cut);
            }
        }
    }
    match best {
        Some(cut) => trim_tail(&lines[..cut]),
        None => text.to_string(),
    }
}

fn trim_tail(lines: &[&str]) -> String {
    let mut end = lines.len();
    while end > 0 {
        let t = lines[end - 1].trim();
        if t.is_empty() || t == "--" || t.chars().all(|c| matches!(c, '-' | '_' | '=')) {
            end -= 1;
        } else {
            break;
        }
    }
    lines[..end]
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Words that identify the sender: the parts of a display name, or of the address's local
/// part when there is no name.
fn sender_tokens(sender: &str) -> Vec<String> {
    let sender = sender.trim();
    let (name, addr) = match sender.find('<') {
        Some(p) => (&sender[..p], sender[p + 1..].trim_end_matches('>')),
        None if sender.contains('@') && !sender.contains(' ') => ("", sender),
        None => (sender, ""),
    };
    let mut tokens: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    if let Some(local) = addr.split('@').next() {
        tokens.extend(
            local
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| w.chars().count() >= 3)
                .map(str::to_lowercase),
        );
    }
    tokens
}

fn words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

fn is_rule_line(t: &str) -> bool {
    t.chars().count() >= 2 && t.chars().all(|c| matches!(c, '-' | '_' | '=' | '—'))
}

fn is_sign_off(t: &str) -> bool {
    const SIGN_OFFS: &[&str] = &[
        "thanks",
        "thank you",
        "thx",
        "regards",
        "best regards",
        "kind regards",
        "best",
        "cheers",
        "sincerely",
        "yours",
        "mvh",
        "med venlig hilsen",
        "hilsen",
        "kh",
        "mit freundlichen grüßen",
        "viele grüße",
        "grüße",
        "gruß",
        "cordialement",
        "saludos",
        "pozdrawiam",
        "z poważaniem",
        "с уважением",
        "met vriendelijke groet",
        "groeten",
        "hälsningar",
        "med vänlig hälsning",
    ];
    let lower = t.to_lowercase();
    let core = lower.trim_end_matches([',', '.', '!', ' ']);
    SIGN_OFFS.contains(&core) || (t.ends_with(',') && t.split_whitespace().count() <= 3)
}

/// Remove a trailing signature that starts at a short line naming the sender (or at a rule
/// line like `----`), plus the sign-off right above it ("Thank you,"). `sender` is a display
/// name, an address, or `Name <addr>`. Text without such a block is returned unchanged.
pub fn strip_sender_signature(text: &str, sender: &str) -> String {
    let tokens = sender_tokens(sender);
    let lines: Vec<&str> = text.lines().collect();
    let non_blank: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].trim().is_empty())
        .collect();
    if non_blank.len() < 2 {
        return text.to_string();
    }
    let window_start = non_blank.len().saturating_sub(12).max(1);
    let sig_like = |i: usize| {
        let t = lines[i].trim();
        t.chars().count() <= 100 && t.split_whitespace().count() <= 12
    };
    for k in window_start..non_blank.len() {
        let t = lines[non_blank[k]].trim();
        let names_sender = t.split_whitespace().count() <= 6
            && t.chars().count() <= 60
            && words(t).any(|w| tokens.contains(&w));
        if !(names_sender || is_rule_line(t)) {
            continue;
        }
        if !non_blank[k..].iter().all(|&i| sig_like(i)) {
            continue;
        }
        let mut start = k;
        if k >= 2 && is_sign_off(lines[non_blank[k - 1]].trim()) {
            start = k - 1;
        }
        return trim_tail(&lines[..non_blank[start]]);
    }
    text.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn learns_recurring_trailing_block() {
        let bodies = [
            "Sure, see you then.\n\nBest,\nAnna Berg\nACME Corp",
            "No.\n\nBest,\nAnna Berg\nACME Corp",
            "Here is the file.\nBest,\nAnna Berg\nACME Corp\n",
            "Quick one: yes.",
            "Done!\n\nThanks,\nAnna Berg\nACME Corp",
        ];
        let sigs = learn_signatures(&bodies);
        assert_eq!(sigs[0], "Best,\nAnna Berg\nACME Corp");
        assert!(sigs.contains(&"Anna Berg\nACME Corp".to_string()));
        assert!(!sigs.iter().any(|s| s.contains("Thanks")));
        assert_eq!(
            strip_signatures("Fine.\n\n-- \nBest,\n Anna  Berg\nACME Corp\n", &sigs),
            "Fine."
        );
        assert_eq!(
            strip_signatures("Ok\n\nThanks,\nAnna Berg\nACME Corp", &sigs),
            "Ok\n\nThanks,"
        );
        assert_eq!(
            strip_signatures("Unrelated ending", &sigs),
            "Unrelated ending"
        );
    }

    #[test]
    fn too_rare_blocks_are_not_signatures() {
        let bodies = ["a\nX", "b\nX", "c\nY", "d\nY", "e\nZ", "f\nZ", "g\nW"];
        assert!(learn_signatures(&bodies).is_empty());
        assert!(learn_signatures(&[]).is_empty());
    }

    #[test]
    fn sender_signature() {
        let text = "Simone,\n\nIt is 'example.com'.\n\nThank you,\nNoam";
        assert_eq!(
            strip_sender_signature(text, "Noam"),
            "Simone,\n\nIt is 'example.com'."
        );
        let text = "Body line.\n\nGina Doe\ngina@example.com\n(555) 346-9947";
        assert_eq!(
            strip_sender_signature(text, "Gina Doe <gina@example.com>"),
            "Body line."
        );
        let text = "Hi Noam, long message here that names Noam in it.\nBye";
        assert_eq!(strip_sender_signature(text, "Noam"), text);
        assert_eq!(strip_sender_signature("Only Noam", "Noam"), "Only Noam");
    }
}
