//! Who may ask. Answers reveal the person's data, so the list is required and matching is
//! strict: an exact address, or every address of one domain (`@x.org`, not its subdomains).

use crate::{EmailError, Result};

/// Sender allow-list: `ada@x.org` (exact) or `@x.org` (domain); case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    addresses: Vec<String>,
    domains: Vec<String>,
}

impl AllowList {
    /// Builds the list from `--allow` values; refuses an empty list or an entry that is neither
    /// an address nor `@domain` (a typo must not silently allow nobody or everybody).
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<AllowList> {
        let mut list = AllowList {
            addresses: Vec::new(),
            domains: Vec::new(),
        };
        for e in entries {
            let e = e.as_ref().trim().to_lowercase();
            if let Some(domain) = e.strip_prefix('@') {
                if !valid_domain(domain) {
                    return Err(EmailError::Config(format!(
                        "--allow `{e}`: `@` must be followed by a domain, e.g. @example.org"
                    )));
                }
                list.domains.push(domain.to_string());
            } else {
                match e.rsplit_once('@') {
                    Some((local, domain)) if !local.is_empty() && valid_domain(domain) => {
                        list.addresses.push(e.clone())
                    }
                    _ => {
                        return Err(EmailError::Config(format!(
                            "--allow `{e}` is neither an address (ada@example.org) nor a domain (@example.org)"
                        )))
                    }
                }
            }
        }
        if list.addresses.is_empty() && list.domains.is_empty() {
            return Err(EmailError::Config(
                "no --allow given: say who may ask (--allow ada@example.org or --allow @example.org)".into(),
            ));
        }
        Ok(list)
    }

    /// Whether mail from `address` may be answered.
    pub fn allows(&self, address: &str) -> bool {
        let a = address.trim().to_lowercase();
        let Some((local, domain)) = a.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() {
            return false;
        }
        self.addresses.contains(&a) || self.domains.iter().any(|d| d == domain)
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains("..")
        && d.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_domain_entries_match_case_insensitively() {
        let l = AllowList::new(&["Ada@X.org", "@family.example"]).unwrap();
        assert!(l.allows("ada@x.org"));
        assert!(l.allows("ADA@x.ORG"));
        assert!(!l.allows("bob@x.org"));
        assert!(l.allows("anyone@Family.Example"));
        // Neither subdomains nor look-alike domains.
        assert!(!l.allows("eve@evil.family.example"));
        assert!(!l.allows("eve@family.example.evil"));
        assert!(!l.allows("family.example"));
        assert!(!l.allows("@family.example"));
    }

    #[test]
    fn an_empty_or_malformed_list_is_refused() {
        let none: [&str; 0] = [];
        assert!(AllowList::new(&none).is_err());
        assert!(AllowList::new(&["@"]).is_err());
        assert!(AllowList::new(&["ada"]).is_err());
        assert!(AllowList::new(&["@bad..domain"]).is_err());
        assert!(AllowList::new(&["ada@"]).is_err());
    }
}
