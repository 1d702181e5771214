//! The detectors: each finds candidate spans of one kind in a text. Patterns run on the `regex`
//! crate (finite automata: time linear in the input whatever it holds); the digit-run scanner
//! is hand-written so that cards, phone numbers and numeric ids can be judged on their
//! grouping ("4111 1111 1111 1111", "+44 7700 900123") rather than on a pattern alone.

use crate::checks;
use crate::Kind;
use regex::Regex;
use std::sync::LazyLock;

/// One span a detector claims. `kind: None` is a span that must stay as it is (the person's
/// own address or number) and that no other detector may take a piece of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub start: usize,
    pub end: usize,
    pub kind: Option<Kind>,
    /// Lower wins where candidates overlap.
    pub priority: u8,
}

fn re(pattern: &str) -> Regex {
    // The patterns are constants of this file, each compiled by the tests.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("a valid built-in pattern")
}

/// Tokens whose shape alone says "secret": cloud and API keys with a vendor prefix, JWTs.
static TOKENS: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u:\b)(?:",
        r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}",
        r"|gh[pousr]_[A-Za-z0-9]{36,255}",
        r"|github_pat_[A-Za-z0-9_]{22,255}",
        r"|xox[bpasre]-[A-Za-z0-9-]{10,250}",
        r"|sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}",
        r"|AIza[0-9A-Za-z_-]{35}",
        r"|glpat-[A-Za-z0-9_-]{20,}",
        r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        r")(?-u:\b)",
    ))
});

/// PEM private keys: the whole block, or from BEGIN to the end of the text when it was cut.
static PEM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:(?s:.*?)-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]*)",
    )
});

/// `password=…`, `passwd: …`, `api_key: "…"`: the value (group 1, 2 or 3) is redacted, the key
/// stays so the sentence keeps its shape.
static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)(?-u:\b)(?:password|passwd|passwort|pwd|passphrase|secret|client[_-]?secret|api[_-]?key|apikey|"#,
        r#"access[_-]?key|secret[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|bearer|token|"#,
        r#"private[_-]?key|aws_secret_access_key|mot de passe|contraseña)"?[ \t]*(?:[:=]|=>)[ \t]*"#,
        r#"(?:"([^"\r\n]{1,200})"|'([^'\r\n]{1,200})'|([^\s,;"'<>]{1,200}))"#,
    ))
});

/// "my password is hunter22" and its German, French and Spanish forms.
static SAID_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)(?-u:\b)(?:password|passwort|pin|mot de passe|contraseña|clave)",
        r"[ \t]+(?:is|ist|lautet|est|es)[ \t]+(?:now[ \t]+|jetzt[ \t]+)?",
        r#"([^\s"'<>]{4,200})"#,
    ))
});

static URL: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)(?-u:\b)[a-z][a-z0-9+.-]{1,15}://[^\s<>"'`]+"#));

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+-]*@",
        r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*",
        r"\.[A-Za-z]{2,24}(?-u:\b)",
    ))
});

static IBAN: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,34}(?-u:\b)"));

static NINO: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u:\b)([A-Z]{2}) ?([0-9]{2}) ?([0-9]{2}) ?([0-9]{2}) ?[A-D](?-u:\b)"));

static DNI: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u:\b)([XYZ]?[0-9]{7,8})-?([A-Z])(?-u:\b)"));

/// Street addresses in English, German, French and Spanish, and postcodes with their city.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    let upper = "A-ZÄÖÜÉÈÀÇÁÍÓÚÑ";
    let lower = "a-zäöüßéèàçâêîôûëïáíóúñ";
    let word = format!("[{upper}][{lower}'-]+");
    let postcode_city = format!(r"(?:,?[ \t]*(?:[A-Z]-)?[0-9]{{5}}[ \t]+{word}(?:[ -]{word})*)?");
    let en = format!(
        r"(?-u:\b)[0-9]{{1,5}}[A-Za-z]?,?[ \t]+(?:{word}[ \t]+){{1,3}}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Place|Pl|Terrace|Close|Crescent|Square|Sq|Highway|Hwy|Parkway|Pkwy|Way|Gardens|Mews|Row|Hill)(?-u:\b)\.?"
    );
    let de = format!(
        r"(?:{word}[ \t-])?(?:[{upper}][{lower}]*(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee)|Straße|Strasse|Weg|Allee|Platz|Gasse)[ \t]+[0-9]{{1,4}}(?:[ \t]?[a-z])?(?-u:\b){postcode_city}"
    );
    let fr = format!(
        r"(?-u:\b)[0-9]{{1,4}}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|allée|allee|impasse|chemin|quai|route|cours)[ \t]+(?:de[ \t]+la[ \t]+|de[ \t]+l'|du[ \t]+|des[ \t]+|de[ \t]+|d')?{word}(?:[ \t-]{word})*{postcode_city}"
    );
    let es = format!(
        r"(?-u:\b)(?:Calle|C/|Avenida|Avda\.?|Plaza|Paseo|Camino|Carrer|Ronda|Travesía)[ \t]+(?:de[ \t]+la[ \t]+|de[ \t]+los[ \t]+|de[ \t]+las[ \t]+|del[ \t]+|de[ \t]+)?{word}(?:[ \t]+{word})*,?[ \t]*(?:n[º°o]\.?[ \t]*)?[0-9]{{1,4}}(?-u:\b){postcode_city}"
    );
    // A postcode at the start of a line or after a comma, then a capitalised city.
    let eu_postcode = format!(r"(?m)(?:^|,)[ \t]*(?:[A-Z]-)?[0-9]{{5}}[ \t]+{word}(?:[ -]{word})*");
    let uk_postcode =
        r"(?-u:\b)(?:[A-PR-UWYZ][A-HK-Y]?[0-9][A-Z0-9]?) [0-9][ABD-HJLNP-UW-Z]{2}(?-u:\b)";
    let us_zip = r"(?-u:\b)(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY)[ \t]+[0-9]{5}(?:-[0-9]{4})?(?-u:\b)";
    re(&format!(
        "{en}|{de}|{fr}|{es}|{eu_postcode}|{uk_postcode}|{us_zip}"
    ))
});

/// Credentials: tokens, PEM blocks, `key=value` and "password is …".
pub fn credentials(text: &str, out: &mut Vec<Candidate>) {
    let cand = |start, end, priority| Candidate {
        start,
        end,
        kind: Some(Kind::Credential),
        priority,
    };
    if text.contains("-----BEGIN") {
        for m in PEM.find_iter(text) {
            out.push(cand(m.start(), m.end(), 0));
        }
    }
    for m in TOKENS.find_iter(text) {
        out.push(cand(m.start(), m.end(), 1));
    }
    for caps in KEY_VALUE.captures_iter(text) {
        if let Some(v) = caps.get(1).or(caps.get(2)).or(caps.get(3)) {
            // `password: [SECRET]` already redacted, or an empty-looking placeholder.
            if !v.as_str().starts_with('[') {
                out.push(cand(v.start(), v.end(), 3));
            }
        }
    }
    for caps in SAID_PASSWORD.captures_iter(text) {
        if let Some(v) = caps.get(1) {
            let value = v.as_str().trim_end_matches(['.', ',', '!', '?', ')', ';']);
            if !value.starts_with('[') && value.len() >= 4 {
                out.push(cand(v.start(), v.start() + value.len(), 3));
            }
        }
    }
}

/// Query or fragment parameters whose value is a secret.
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "token"
            | "key"
            | "sig"
            | "signature"
            | "secret"
            | "code"
            | "auth"
            | "authorization"
            | "password"
            | "pass"
            | "pwd"
            | "session"
            | "sessionid"
            | "sid"
            | "apikey"
            | "jwt"
            | "otp"
            | "ticket"
            | "x-amz-credential"
            | "x-goog-credential"
    ) || n.ends_with("token")
        || n.ends_with("_key")
        || n.ends_with("-key")
        || n.ends_with("secret")
        || n.ends_with("signature")
}

/// URLs that carry a credential: `user:pass@` userinfo, or a token-like query parameter. The
/// whole URL goes (its path can hold the same secret, as in password-reset links).
pub fn url_tokens(text: &str, out: &mut Vec<Candidate>) {
    if !text.contains("://") {
        return;
    }
    for m in URL.find_iter(text) {
        let url = m.as_str().trim_end_matches(|c: char| {
            matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']' | '}' | '>')
        });
        let Some(rest) = url.find("://").map(|i| &url[i + 3..]) else {
            continue;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let userinfo = authority
            .rsplit_once('@')
            .is_some_and(|(user, _)| user.contains(':'));
        let params = rest
            .split_once(['?', '#'])
            .map(|(_, q)| q)
            .unwrap_or("")
            .split(['&', ';', '#', '?'])
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| !v.is_empty() && secret_param(k));
        if userinfo || params {
            out.push(Candidate {
                start: m.start(),
                end: m.start() + url.len(),
                kind: Some(Kind::UrlToken),
                priority: 2,
            });
        }
    }
}

/// Email addresses; the person's own (`keep`) are claimed but left.
pub fn emails(text: &str, keep: &dyn Fn(&str) -> bool, out: &mut Vec<Candidate>) {
    if !text.contains('@') {
        return;
    }
    for m in EMAIL.find_iter(text) {
        let kind = (!keep(m.as_str())).then_some(Kind::Email);
        out.push(Candidate {
            start: m.start(),
            end: m.end(),
            kind,
            priority: if kind.is_none() { 0 } else { 4 },
        });
    }
}

/// IBANs with a known country length and valid check digits.
pub fn ibans(text: &str, out: &mut Vec<Candidate>) {
    for m in IBAN.find_iter(text) {
        let s = m.as_str();
        let Some(len) = checks::iban_length(&s[..2]) else {
            continue;
        };
        // Take exactly the country's number of characters (the pattern may run on into the
        // next word when it is upper case).
        let mut compact = String::with_capacity(len);
        let mut end = m.start();
        for (i, c) in s.char_indices() {
            if c == ' ' {
                continue;
            }
            compact.push(c);
            if compact.len() == len {
                end = m.start() + i + c.len_utf8();
                break;
            }
        }
        if compact.len() == len && checks::iban_valid(&compact) {
            let next = text[end..].chars().next();
            if next.is_none_or(|c| !c.is_ascii_alphanumeric()) {
                out.push(Candidate {
                    start: m.start(),
                    end,
                    kind: Some(Kind::Iban),
                    priority: 5,
                });
            }
        }
    }
}

/// National id numbers written with letters: UK NINO, Spanish DNI/NIE.
pub fn lettered_ids(text: &str, out: &mut Vec<Candidate>) {
    let cand = |start, end| Candidate {
        start,
        end,
        kind: Some(Kind::NationalId),
        priority: 6,
    };
    for caps in NINO.captures_iter(text) {
        if let (Some(all), Some(prefix)) = (caps.get(0), caps.get(1)) {
            if checks::nino_prefix_valid(prefix.as_str()) {
                out.push(cand(all.start(), all.end()));
            }
        }
    }
    for caps in DNI.captures_iter(text) {
        if let (Some(all), Some(num), Some(letter)) = (caps.get(0), caps.get(1), caps.get(2)) {
            let n = num.as_str();
            let lettered = n.starts_with(['X', 'Y', 'Z']);
            if (lettered && n.len() == 8) || (!lettered && n.len() == 8) {
                let id = format!("{n}{}", letter.as_str());
                if checks::dni_valid(&id) {
                    out.push(cand(all.start(), all.end()));
                }
            }
        }
    }
}

/// Street addresses and postcodes with a city.
pub fn addresses(text: &str, out: &mut Vec<Candidate>) {
    for m in ADDRESS.find_iter(text) {
        // A match that starts at a comma or line start keeps that separator in the text.
        let lead = m.as_str().len() - m.as_str().trim_start_matches([',', ' ', '\t']).len();
        if m.start() + lead < m.end() {
            out.push(Candidate {
                start: m.start() + lead,
                end: m.end(),
                kind: Some(Kind::PostalAddress),
                priority: 7,
            });
        }
    }
}

/// A maximal run of digit groups joined by short separators, e.g. `+44 (0)20 7946-0958`.
struct Run {
    /// Byte ranges of the digit groups.
    groups: Vec<(usize, usize)>,
}

/// Separators allowed between two digit groups of one number.
fn is_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

fn digit_runs(text: &str) -> Vec<Run> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let group = (start, i);
        // Join to the previous run when the gap is a short separator.
        let joins = runs.last().is_some_and(|r: &Run| {
            r.groups.last().is_some_and(|&(_, end)| {
                let gap = &b[end..start];
                !gap.is_empty()
                    && gap.len() <= 3
                    && gap.iter().all(|&c| is_sep(c))
                    && gap
                        .iter()
                        .filter(|&&c| matches!(c, b'-' | b'.' | b'/'))
                        .count()
                        <= 1
                    && gap.iter().filter(|&&c| c == b' ').count() <= 1
            })
        });
        match runs.last_mut() {
            Some(r) if joins => r.groups.push(group),
            _ => runs.push(Run {
                groups: vec![group],
            }),
        }
    }
    runs
}

/// What a window of digit groups is, if anything.
fn judge(text: &str, groups: &[(usize, usize)], plus: bool) -> Option<Kind> {
    let b = text.as_bytes();
    let digits: String = groups.iter().map(|&(s, e)| &text[s..e]).collect();
    let lens: Vec<usize> = groups.iter().map(|&(s, e)| e - s).collect();
    let seps: Vec<&str> = groups
        .windows(2)
        .map(|w| text[w[0].1..w[1].0].trim_matches(|c| c == '(' || c == ')'))
        .collect();
    let same_seps = seps.windows(2).all(|w| w[0] == w[1]);
    let all_seps = |s: &str| seps.iter().all(|x| *x == s);
    let n = digits.len();
    let first = b.get(groups[0].0).copied().unwrap_or(b'0');

    if !plus {
        // Payment card: one block, or groups of four (Amex 4-6-5, Diners 4-6-4).
        let card_shape = lens.len() == 1
            || (same_seps
                && (all_seps(" ") || all_seps("-"))
                && (lens[..lens.len() - 1].iter().all(|&l| l == 4) && lens[lens.len() - 1] <= 4
                    || lens == [4, 6, 5]
                    || lens == [4, 6, 4]));
        if (13..=19).contains(&n)
            && card_shape
            && checks::card_prefix(&digits)
            && checks::luhn(&digits)
        {
            return Some(Kind::PaymentCard);
        }
        // US SSN.
        if lens == [3, 2, 4] && (all_seps("-") || all_seps(" ")) {
            let g = |i: usize| &text[groups[i].0..groups[i].1];
            return checks::ssn_valid(g(0), g(1), g(2)).then_some(Kind::NationalId);
        }
        // French NIR (1 85 05 78 006 084 36, or one block).
        if n == 15
            && (lens.len() == 1 || lens == [1, 2, 2, 2, 3, 3, 2])
            && checks::nir_valid(&digits)
        {
            return Some(Kind::NationalId);
        }
    }
    phone(&digits, &lens, &seps, plus, first).then_some(Kind::Phone)
}

/// Phone numbers: international (`+`/`00` and 8–15 digits), national trunk-prefixed (`0…`),
/// North American (`(555) 123-4567`) and Spanish-style 9-digit forms. Dates, IP addresses,
/// versions, plain years and unseparated order numbers are not phone numbers.
fn phone(digits: &str, lens: &[usize], seps: &[&str], plus: bool, first: u8) -> bool {
    let n = digits.len();
    if plus {
        return (8..=15).contains(&n) && first != b'0';
    }
    let dotted = !seps.is_empty() && seps.iter().all(|s| *s == ".");
    // 2024-01-15, 15.01.2024, 1/2/2024, 2024/01/15
    let date = lens.len() == 3
        && seps.iter().all(|s| matches!(*s, "-" | "." | "/"))
        && (lens == [4, 2, 2] || (lens[0] <= 2 && lens[1] <= 2 && matches!(lens[2], 2 | 4)));
    let ip = dotted && lens.len() == 4 && lens.iter().all(|&l| l <= 3);
    // A date anywhere inside: "06/25/2010 04", "07-01-2023 23".
    let date_inside = (0..lens.len().saturating_sub(2)).any(|k| {
        let (a, b2, c) = (lens[k], lens[k + 1], lens[k + 2]);
        let s = [seps[k], seps[k + 1]];
        s.iter().all(|x| matches!(*x, "-" | "." | "/"))
            && s[0] == s[1]
            && ((a == 4 && b2 <= 2 && c <= 2) || (a <= 2 && b2 <= 2 && matches!(c, 2 | 4)))
    });
    if date || date_inside || ip || dotted && lens.iter().all(|&l| l <= 2) {
        return false;
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return lens.len() > 1 && (8..=15).contains(&rest.len()) && !rest.starts_with('0');
    }
    if first == b'0' {
        let single = lens.len() == 1;
        // One unseparated block is a phone number only as a mobile number (FR/NL 06/07,
        // UK 07, DE 015–017): other 0-led blocks are ids, references and boundaries.
        return if single {
            (digits.starts_with("06") || digits.starts_with("07")) && (10..=11).contains(&n)
                || ["015", "016", "017"].iter().any(|p| digits.starts_with(p))
                    && (11..=12).contains(&n)
        } else {
            (9..=12).contains(&n) && digits.as_bytes().get(1).is_some_and(|&c| c != b'0')
        };
    }
    let nanp = |d: &str| {
        let b = d.as_bytes();
        b.len() == 10 && (b'2'..=b'9').contains(&b[0]) && (b'2'..=b'9').contains(&b[3])
    };
    if lens == [3, 3, 4] && nanp(digits) {
        return true;
    }
    if lens == [1, 3, 3, 4] && digits.starts_with('1') && nanp(&digits[1..]) {
        return true;
    }
    n == 9 && (lens == [3, 3, 3] || lens == [3, 2, 2, 2]) && (b'6'..=b'9').contains(&first)
}

/// Cards, US SSNs, French NIRs and phone numbers in digit runs. Each run is tried in windows of
/// whole groups, longest first, so a number next to a date or a year is still found.
pub fn numbers(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    for run in digit_runs(text) {
        let g = &run.groups;
        // "DE89 3704 …", "ID12 …": a run glued to letters is part of a code, not a number.
        if g[0].0 > 0 && b[g[0].0 - 1].is_ascii_alphabetic() {
            continue;
        }
        // A window may only be cut out of a run at a space: "10.0.19045" and "2024-01-15"
        // are one token, whatever a piece of them looks like.
        let cut = |k: usize| {
            k == 0
                || k == g.len()
                || text[g[k - 1].1..g[k].0]
                    .bytes()
                    .all(|c| matches!(c, b' ' | b'(' | b')'))
        };
        let mut i = 0;
        while i < g.len() {
            let mut found = None;
            for j in (i + 1..=g.len().min(i + 8)).rev() {
                if !cut(i) || !cut(j) {
                    continue;
                }
                let (s, e) = (g[i].0, g[j - 1].1);
                // Not glued to letters: "AKIA1234…", "v2", "ID12345678".
                let before = s.checked_sub(1).and_then(|k| b.get(k)).copied();
                let after = b.get(e).copied();
                // Part of an identifier, a path, a MIME boundary, an amount or a time.
                let glued = |c: Option<u8>| {
                    c.is_some_and(|c| {
                        c.is_ascii_alphanumeric()
                            || matches!(
                                c,
                                b'_' | b'=' | b'/' | b'#' | b'@' | b'$' | b'%' | b'&' | b'\\'
                            )
                    })
                };
                let time = |k: Option<usize>, d: Option<usize>| {
                    k.and_then(|k| b.get(k)) == Some(&b':')
                        && d.and_then(|d| b.get(d)).is_some_and(u8::is_ascii_digit)
                };
                if time(s.checked_sub(1), s.checked_sub(2)) || time(Some(e), Some(e + 1)) {
                    continue;
                }
                let open = before == Some(b'(');
                let before_open = if open {
                    s.checked_sub(2).and_then(|k| b.get(k)).copied()
                } else {
                    before
                };
                let plus = before_open == Some(b'+');
                let lead_char = if plus {
                    s.checked_sub(if open { 3 } else { 2 })
                        .and_then(|k| b.get(k))
                        .copied()
                } else {
                    before_open
                };
                if glued(lead_char) || glued(after) || (!plus && glued(before)) {
                    continue;
                }
                if let Some(kind) = judge(text, &g[i..j], plus) {
                    let start = if plus {
                        s - if open { 2 } else { 1 }
                    } else if open && kind == Kind::Phone {
                        s - 1
                    } else {
                        s
                    };
                    let end = if kind == Kind::Phone && after == Some(b')') && open {
                        e + 1
                    } else {
                        e
                    };
                    let priority = match kind {
                        Kind::PaymentCard => 6,
                        Kind::NationalId => 6,
                        _ => 8,
                    };
                    found = Some((
                        j,
                        Candidate {
                            start,
                            end,
                            kind: Some(kind),
                            priority,
                        },
                    ));
                    break;
                }
            }
            match found {
                Some((j, c)) => {
                    out.push(c);
                    i = j;
                }
                None => i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for r in [
            &TOKENS,
            &PEM,
            &KEY_VALUE,
            &SAID_PASSWORD,
            &URL,
            &EMAIL,
            &IBAN,
            &NINO,
            &DNI,
            &ADDRESS,
        ] {
            assert!(!r.as_str().is_empty());
        }
    }

    #[test]
    fn runs_join_groups_over_short_separators() {
        let r = digit_runs("call +44 7700 900123, or 2024-01-15 at 10:30");
        let shapes: Vec<usize> = r.iter().map(|r| r.groups.len()).collect();
        assert_eq!(shapes, [3, 3, 1, 1]);
    }
}
