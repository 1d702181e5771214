//! Who wrote what. The person is named at `init` with aliases (names, email addresses, phone
//! numbers, handles); every record's author is matched against them so that training and
//! search can tell the person's own writing from everyone else's.
//!
//! Matching is deliberately conservative: a false "this is the person" would put someone
//! else's words in the avatar's mouth, so names must match whole, emails exactly (case-folded),
//! phone numbers on their last nine digits (country prefixes and formatting vary by export).

/// The normalised aliases of one person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    names: Vec<String>,
    emails: Vec<String>,
    phones: Vec<String>,
}

/// Minimum digits for a string to count as a phone number.
const PHONE_MIN_DIGITS: usize = 7;
/// Exports format numbers differently (+44 7700 900123, 07700 900123): compare the tail.
const PHONE_TAIL: usize = 9;

impl Identity {
    /// Builds the identity from the person's name and aliases, as given at `init`.
    pub fn new<'a>(name: &'a str, aliases: impl IntoIterator<Item = &'a str>) -> Self {
        let mut id = Identity::default();
        for alias in std::iter::once(name).chain(aliases) {
            id.add(alias);
        }
        id
    }

    /// Adds an alias the user confirmed later (`avatar identity link --person`).
    pub fn add(&mut self, alias: &str) {
        let alias = clean(alias);
        if alias.is_empty() {
            return;
        }
        if let Some(email) = email_of(&alias) {
            push_unique(&mut self.emails, email);
            if let Some(name) = display_name_of(&alias) {
                push_unique(&mut self.names, normalise_name(&name));
            }
        } else if let Some(phone) = phone_of(&alias) {
            push_unique(&mut self.phones, phone);
        } else {
            push_unique(
                &mut self.names,
                normalise_name(alias.trim_start_matches('@')),
            );
        }
    }

    /// Whether `author` (as an export names them: `Name <addr>`, an address, a phone number,
    /// a display name or an @handle) is the person.
    pub fn is_person(&self, author: &str) -> bool {
        let author = clean(author);
        if author.is_empty() {
            return false;
        }
        if let Some(email) = email_of(&author) {
            return self.emails.contains(&email);
        }
        if let Some(phone) = phone_of(&author) {
            return self.phones.contains(&phone);
        }
        let name = normalise_name(author.trim_start_matches('@'));
        self.names.contains(&name)
    }
}

/// One participant across sources: every alias that was seen together (a `Name <address>`
/// author links the name and the address) or that the user linked.
#[derive(Debug, Clone, PartialEq)]
pub struct Participant {
    /// The aliases as the sources wrote them, most frequent first.
    pub aliases: Vec<String>,
    /// Records authored under any of the aliases.
    pub records: u64,
    pub is_person: bool,
}

/// Groups record authors into participants. `authors` gives each distinct author string with
/// its record count; `links` are alias groups the user joined. Pure and deterministic: ties are
/// broken by the alias text.
pub fn participants(
    identity: &Identity,
    authors: &[(String, u64)],
    links: &[Vec<String>],
) -> Vec<Participant> {
    // Union-find over normalised keys (an address, a phone tail, a lowercased name).
    let mut keys: Vec<String> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let key_index = |k: String, keys: &mut Vec<String>, parent: &mut Vec<usize>| -> usize {
        match keys.iter().position(|x| *x == k) {
            Some(i) => i,
            None => {
                keys.push(k);
                parent.push(parent.len());
                parent.len() - 1
            }
        }
    };
    let keys_of = |alias: &str| -> Vec<String> {
        let alias = clean(alias);
        let mut out = Vec::new();
        if let Some(email) = email_of(&alias) {
            out.push(format!("email:{email}"));
            if let Some(name) = display_name_of(&alias) {
                out.push(format!("name:{}", normalise_name(&name)));
            }
        } else if let Some(phone) = phone_of(&alias) {
            out.push(format!("phone:{phone}"));
        } else if !alias.is_empty() {
            out.push(format!(
                "name:{}",
                normalise_name(alias.trim_start_matches('@'))
            ));
        }
        out
    };
    let groups: Vec<Vec<String>> = authors
        .iter()
        .map(|(a, _)| keys_of(a))
        .chain(
            links
                .iter()
                .map(|l| l.iter().flat_map(|a| keys_of(a)).collect()),
        )
        .collect();
    for g in &groups {
        let ids: Vec<usize> = g
            .iter()
            .map(|k| key_index(k.clone(), &mut keys, &mut parent))
            .collect();
        for w in ids.windows(2) {
            let (a, b) = (find(&mut parent, w[0]), find(&mut parent, w[1]));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut by_root: std::collections::BTreeMap<usize, Participant> = Default::default();
    let mut counts: std::collections::BTreeMap<usize, Vec<(String, u64)>> = Default::default();
    for (author, n) in authors {
        let Some(first) = keys_of(author).into_iter().next() else {
            continue;
        };
        let Some(i) = keys.iter().position(|k| *k == first) else {
            continue;
        };
        let root = find(&mut parent, i);
        counts.entry(root).or_default().push((author.clone(), *n));
    }
    for (root, mut list) in counts {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let is_person = list.iter().any(|(a, _)| identity.is_person(a));
        by_root.insert(
            root,
            Participant {
                records: list.iter().map(|(_, n)| n).sum(),
                aliases: list.into_iter().map(|(a, _)| a).collect(),
                is_person,
            },
        );
    }
    let mut out: Vec<Participant> = by_root.into_values().collect();
    out.sort_by(|a, b| {
        b.is_person
            .cmp(&a.is_person)
            .then_with(|| b.records.cmp(&a.records))
            .then_with(|| a.aliases.cmp(&b.aliases))
    });
    out
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !s.is_empty() && !v.contains(&s) {
        v.push(s);
    }
}

/// Drops the invisible direction and formatting marks chat exports put around names.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
            )
        })
        .map(|c| if c == '\u{a0}' || c == '\u{202f}' { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The address in `Name <addr>` or a bare `addr`, lower-cased.
fn email_of(s: &str) -> Option<String> {
    let addr = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let addr = addr.trim().trim_start_matches("mailto:");
    let (local, domain) = addr.split_once('@')?;
    if local.is_empty() || !domain.contains('.') || addr.contains(char::is_whitespace) {
        return None;
    }
    Some(addr.to_lowercase())
}

fn display_name_of(s: &str) -> Option<String> {
    let a = s.rfind('<')?;
    let name = s[..a].trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The last digits of a phone number, when `s` is one (digits, spaces, +, -, (), . only).
fn phone_of(s: &str) -> Option<String> {
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/'))
    {
        return None;
    }
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < PHONE_MIN_DIGITS {
        return None;
    }
    Some(digits[digits.len().saturating_sub(PHONE_TAIL)..].to_string())
}

fn normalise_name(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Identity {
        Identity::new(
            "Ada Lovelace",
            [
                "ada@example.org",
                "+44 7700 900123",
                "@ada",
                "Ada King <countess@example.org>",
            ],
        )
    }

    #[test]
    fn matches_every_kind_of_alias() {
        let id = ada();
        assert!(id.is_person("Ada Lovelace"));
        assert!(id.is_person("  ada   lovelace "));
        assert!(id.is_person("Ada L <ADA@example.org>"));
        assert!(id.is_person("ada@example.org"));
        assert!(id.is_person("07700 900123"));
        assert!(id.is_person("\u{200e}+44\u{a0}7700\u{a0}900123"));
        assert!(id.is_person("ada"));
        assert!(id.is_person("@ada"));
        assert!(id.is_person("Ada King"));
        assert!(id.is_person("countess@example.org"));
    }

    #[test]
    fn participants_join_names_and_addresses_and_user_links() {
        let id = ada();
        let authors = vec![
            ("Charles Babbage <charles@example.org>".to_string(), 3),
            ("charles@example.org".to_string(), 1),
            ("Charles Babbage".to_string(), 5),
            ("+44 7700 900999".to_string(), 2),
            ("Ada Lovelace".to_string(), 7),
            ("Mary".to_string(), 1),
        ];
        let ps = participants(&id, &authors, &[]);
        assert_eq!(ps.len(), 4, "{ps:#?}");
        assert!(ps[0].is_person && ps[0].aliases == ["Ada Lovelace"]);
        assert_eq!(ps[1].records, 9);
        assert_eq!(ps[1].aliases[0], "Charles Babbage");
        // The user says the phone number is Charles too.
        let ps = participants(
            &id,
            &authors,
            &[vec!["+44 7700 900999".into(), "Charles Babbage".into()]],
        );
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[1].records, 11);
    }

    #[test]
    fn does_not_match_other_people() {
        let id = ada();
        assert!(!id.is_person("Charles Babbage"));
        assert!(!id.is_person("Ada Lovelace <impostor@example.com>"));
        assert!(!id.is_person("+44 7700 900124"));
        assert!(!id.is_person("Ada Byron"));
        assert!(!id.is_person(""));
        assert!(!id.is_person("123"));
    }
}
