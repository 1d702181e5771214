//! PII redaction before training. The person agreed to their own data being learnt; the people
//! they wrote with did not. So before any text becomes a training example, other people's
//! contact data, payment data, id numbers, credentials and (on request) names are replaced by
//! placeholders (`[EMAIL]`, `[PHONE]`, `[ADDRESS]`, `[CARD]`, `[IBAN]`, `[ID]`, `[SECRET]`,
//! `[URL]`, `[PERSON_n]`). The person's own addresses and numbers stay: they are their
//! identity, and a model that signs mail with them is what they asked for.
//!
//! The originals stay in the records store, where the owner's own search can show them; only
//! what feeds training goes through here.
//!
//! Precision matters as much as recall: a redactor that eats dates, versions and order numbers
//! as "phone numbers" ruins the style the model should learn. Cards need Luhn and a network
//! prefix, IBANs their mod-97 check, ids their check letters or valid ranges; phone numbers
//! need a telephone shape (see [`detect`]). Every scan is linear in the input.
//!
//! National ids recognised: US SSN (never-issued ranges excluded), UK National Insurance
//! number (unallocated prefixes excluded), Spanish DNI/NIE (check letter), French NIR (key).

pub mod checks;
pub mod detect;
pub mod names;

use detect::Candidate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// What a redacted span was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Email,
    Phone,
    PostalAddress,
    PaymentCard,
    Iban,
    NationalId,
    Credential,
    UrlToken,
    Name,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Email,
        Kind::Phone,
        Kind::PostalAddress,
        Kind::PaymentCard,
        Kind::Iban,
        Kind::NationalId,
        Kind::Credential,
        Kind::UrlToken,
        Kind::Name,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::PostalAddress => "postal_address",
            Kind::PaymentCard => "payment_card",
            Kind::Iban => "iban",
            Kind::NationalId => "national_id",
            Kind::Credential => "credential",
            Kind::UrlToken => "url_token",
            Kind::Name => "name",
        }
    }

    /// The text put in place of a span of this kind (names get a number: `[PERSON_1]`).
    pub fn placeholder(&self) -> &'static str {
        match self {
            Kind::Email => "[EMAIL]",
            Kind::Phone => "[PHONE]",
            Kind::PostalAddress => "[ADDRESS]",
            Kind::PaymentCard => "[CARD]",
            Kind::Iban => "[IBAN]",
            Kind::NationalId => "[ID]",
            Kind::Credential => "[SECRET]",
            Kind::UrlToken => "[URL]",
            Kind::Name => "[PERSON]",
        }
    }
}

/// What to keep and what else to remove.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedactConfig {
    /// The person's own aliases (names, email addresses, phone numbers, handles): their
    /// addresses and numbers are left in place, their names never become placeholders.
    pub keep: Vec<String>,
    /// Third parties' aliases with the key of the participant they belong to; `Some` turns
    /// name redaction on. Aliases of one participant share a placeholder.
    pub third_party_names: Option<Vec<(String, String)>>,
}

/// One redacted span of the input (byte offsets into the original text). It never holds the
/// value itself, so findings can be logged and counted safely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// What replaced it in the output.
    pub placeholder: String,
}

/// A redacted text and what was taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub findings: Vec<Finding>,
}

/// The scanner, built once per dataset build (it holds the person's aliases and the name
/// table). `Sync`: one redactor can serve many threads.
#[derive(Debug, Clone)]
pub struct Redactor {
    keep_emails: HashSet<String>,
    /// Last [`PHONE_TAIL`] digits of the person's numbers (exports vary the prefix).
    keep_phones: HashSet<String>,
    names: Option<names::NameMatcher>,
    /// Participant key of each `[PERSON_n]` (index n-1).
    participants: Vec<String>,
}

const PHONE_TAIL: usize = 9;

fn phone_tail(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 7).then(|| digits[digits.len().saturating_sub(PHONE_TAIL)..].to_string())
}

impl Redactor {
    pub fn new(config: RedactConfig) -> Self {
        let mut keep_emails = HashSet::new();
        let mut keep_phones = HashSet::new();
        let mut own_names = Vec::new();
        for alias in &config.keep {
            let mut found = Vec::new();
            detect::emails(alias, &|_| false, &mut found);
            for c in &found {
                keep_emails.insert(alias[c.start..c.end].to_ascii_lowercase());
            }
            if found.is_empty() {
                if let Some(tail) =
                    phone_tail(alias).filter(|_| !alias.chars().any(char::is_alphabetic))
                {
                    keep_phones.insert(tail);
                    continue;
                }
            }
            if let Some(n) = names::name_of(alias) {
                own_names.push(n);
            }
        }
        let (names, participants) = match &config.third_party_names {
            Some(list) => {
                let (m, keys) = names::NameMatcher::new(list, &own_names);
                (Some(m), keys)
            }
            None => (None, Vec::new()),
        };
        Redactor {
            keep_emails,
            keep_phones,
            names,
            participants,
        }
    }

    /// Whether names are replaced by `[PERSON_n]`.
    pub fn redacts_names(&self) -> bool {
        self.names.is_some()
    }

    /// The participant key behind `[PERSON_n]` (1-based), for the owner's eyes only.
    pub fn participant(&self, n: usize) -> Option<&str> {
        n.checked_sub(1)
            .and_then(|i| self.participants.get(i))
            .map(String::as_str)
    }

    /// Every span to redact (or to keep), without overlaps, in text order.
    fn spans(&self, text: &str) -> Vec<(Candidate, Option<usize>)> {
        let mut cands: Vec<Candidate> = Vec::new();
        detect::credentials(text, &mut cands);
        detect::url_tokens(text, &mut cands);
        let keep = |e: &str| self.keep_emails.contains(&e.to_ascii_lowercase());
        detect::emails(text, &keep, &mut cands);
        if text.bytes().any(|b| b.is_ascii_digit()) {
            detect::ibans(text, &mut cands);
            detect::lettered_ids(text, &mut cands);
            let from = cands.len();
            detect::numbers(text, &mut cands);
            for c in &mut cands[from..] {
                if c.kind == Some(Kind::Phone)
                    && phone_tail(&text[c.start..c.end])
                        .is_some_and(|t| self.keep_phones.contains(&t))
                {
                    c.kind = None;
                    c.priority = 0;
                }
            }
            detect::addresses(text, &mut cands);
        }
        let mut person_of = Vec::new();
        if let Some(m) = &self.names {
            for h in m.find(text) {
                person_of.push((h.start, h.person));
                cands.push(Candidate {
                    start: h.start,
                    end: h.end,
                    kind: Some(Kind::Name),
                    priority: 9,
                });
            }
        }
        cands.sort_by_key(|c| (c.priority, c.start, std::cmp::Reverse(c.end)));
        let mut taken: BTreeMap<usize, Candidate> = BTreeMap::new();
        for c in cands {
            if c.start >= c.end || c.end > text.len() {
                continue;
            }
            let clash_before = taken
                .range(..=c.start)
                .next_back()
                .is_some_and(|(_, p)| p.end > c.start);
            let clash_after = taken
                .range(c.start..)
                .next()
                .is_some_and(|(&s, _)| s < c.end);
            if !clash_before && !clash_after {
                taken.insert(c.start, c);
            }
        }
        taken
            .into_values()
            .map(|c| {
                let person = (c.kind == Some(Kind::Name))
                    .then(|| {
                        person_of
                            .iter()
                            .find(|(s, _)| *s == c.start)
                            .map(|(_, p)| *p)
                    })
                    .flatten();
                (c, person)
            })
            .collect()
    }

    /// The text with every finding replaced by its placeholder.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut out = String::with_capacity(text.len());
        let mut findings = Vec::new();
        let mut at = 0;
        for (c, person) in self.spans(text) {
            let Some(kind) = c.kind else {
                continue;
            };
            let placeholder = match person {
                Some(n) => format!("[PERSON_{n}]"),
                None => kind.placeholder().to_string(),
            };
            out.push_str(&text[at..c.start]);
            out.push_str(&placeholder);
            at = c.end;
            findings.push(Finding {
                kind,
                start: c.start,
                end: c.end,
                placeholder,
            });
        }
        out.push_str(&text[at..]);
        Redacted {
            text: out,
            findings,
        }
    }
}

/// Counts of what was redacted, by kind and by source URI: what `avatar privacy report`
/// shows. Counts only, never values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedactionStats {
    pub total: u64,
    pub by_kind: BTreeMap<Kind, u64>,
    pub by_source: BTreeMap<String, BTreeMap<Kind, u64>>,
}

impl RedactionStats {
    pub fn add(&mut self, source: &str, findings: &[Finding]) {
        if findings.is_empty() {
            return;
        }
        let per_source = self.by_source.entry(source.to_string()).or_default();
        for f in findings {
            self.total += 1;
            *self.by_kind.entry(f.kind).or_default() += 1;
            *per_source.entry(f.kind).or_default() += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
