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

    fn add(&mut self, alias: &str) {
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
            push_unique(&mut self.names, normalise_name(alias.trim_start_matches('@')));
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
            ["ada@example.org", "+44 7700 900123", "@ada", "Ada King <countess@example.org>"],
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
