//! Check-digit and range rules that turn "looks like a number of that kind" into "is one":
//! without them every long digit run in a mail would be redacted as a card or an id.

/// Luhn (mod 10) over ASCII digits: payment cards carry it, so 90% of random digit runs fail.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for b in digits.bytes().rev() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Whether a 13–19 digit number starts like a card of a network in use (Visa, Mastercard,
/// Amex, Discover, JCB, Diners, UnionPay, Maestro): order and tracking numbers mostly do not.
pub fn card_prefix(digits: &str) -> bool {
    let p2: u32 = digits.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let p4: u32 = digits.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let n = digits.len();
    match digits.as_bytes().first() {
        Some(b'4') => matches!(n, 13 | 16 | 19),
        Some(b'3') => matches!(p2, 34 | 37) && n == 15 || matches!(p2, 30 | 36 | 38 | 35),
        Some(b'5') => (51..=55).contains(&p2) || matches!(p2, 50 | 56..=59),
        Some(b'2') => (2221..=2720).contains(&p4),
        Some(b'6') => true,
        _ => false,
    }
}

/// The length of an IBAN in `country` (ISO 3166 alpha-2), for the countries of the SEPA area
/// and the other common ones; `None` for an unknown country code.
pub fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" | "SC" => 31,
        _ => return None,
    })
}

/// ISO 13616 check: move the first four characters to the end, letters to numbers (A=10),
/// the whole number mod 97 must be 1. `iban` is upper-case alphanumerics without spaces.
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 15 || b.len() > 34 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if iban_length(&iban[..2]) != Some(b.len()) {
        return false;
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return false,
        };
    }
    rem == 1
}

/// A US Social Security number `AAA-GG-SSSS` outside the ranges never issued (area 000, 666,
/// 900–999; group 00; serial 0000), so example numbers like 000-12-3456 stay.
pub fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let (Ok(a), Ok(g), Ok(s)) = (
        area.parse::<u32>(),
        group.parse::<u32>(),
        serial.parse::<u32>(),
    ) else {
        return false;
    };
    area.len() == 3
        && group.len() == 2
        && serial.len() == 4
        && a != 0
        && a != 666
        && a < 900
        && g != 0
        && s != 0
}

/// A UK National Insurance number's two-letter prefix: D, F, I, Q, U, V never appear, O not
/// second, and BG, GB, KN, NK, NT, TN, ZZ are not allocated.
pub fn nino_prefix_valid(prefix: &str) -> bool {
    let b = prefix.as_bytes();
    if b.len() != 2 {
        return false;
    }
    let bad = |c: u8| matches!(c, b'D' | b'F' | b'I' | b'Q' | b'U' | b'V');
    !bad(b[0])
        && !bad(b[1])
        && b[1] != b'O'
        && !matches!(prefix, "BG" | "GB" | "KN" | "NK" | "NT" | "TN" | "ZZ")
}

/// Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter is the number
/// mod 23 in a fixed table.
pub fn dni_valid(id: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let b = id.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let lead = match b[0] {
        b'X' => b'0',
        b'Y' => b'1',
        b'Z' => b'2',
        c => c,
    };
    let mut digits = String::with_capacity(8);
    digits.push(char::from(lead));
    digits.push_str(&id[1..8]);
    let Ok(n) = digits.parse::<u64>() else {
        return false;
    };
    LETTERS[(n % 23) as usize] == b[8]
}

/// French social security number (NIR): 13 digits (sex 1/2, year, month, department, commune,
/// order) and a key `97 - (number mod 97)`. Corsican departments (2A/2B) are not recognised.
pub fn nir_valid(digits: &str) -> bool {
    if digits.len() != 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if !matches!(digits.as_bytes()[0], b'1' | b'2') {
        return false;
    }
    let month: u32 = digits[3..5].parse().unwrap_or(0);
    if !(1..=12).contains(&month) && !(20..=99).contains(&month) {
        return false;
    }
    let (Ok(n), Ok(key)) = (digits[..13].parse::<u64>(), digits[13..].parse::<u64>()) else {
        return false;
    };
    97 - n % 97 == key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_one_digit_off() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("378282246310005"));
        assert!(luhn("5555555555554444"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn(""));
        assert!(!luhn("4111a11111111111"));
    }

    #[test]
    fn card_prefixes() {
        assert!(card_prefix("4111111111111111"));
        assert!(card_prefix("378282246310005"));
        assert!(!card_prefix("3782822463100055"), "Amex is 15 digits");
        assert!(card_prefix("2223003122003222"));
        assert!(!card_prefix("1234567812345670"));
        assert!(!card_prefix("9111111111111111"));
    }

    #[test]
    fn ibans() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("FR1420041010050500013M02606"));
        assert!(!iban_valid("DE89370400440532013001"), "check digits");
        assert!(!iban_valid("DE8937040044053201300"), "length");
        assert!(!iban_valid("QQ89370400440532013000"), "country");
    }

    #[test]
    fn ssn_ranges() {
        assert!(ssn_valid("123", "45", "6789"));
        assert!(!ssn_valid("000", "45", "6789"));
        assert!(!ssn_valid("666", "45", "6789"));
        assert!(!ssn_valid("912", "45", "6789"));
        assert!(!ssn_valid("123", "00", "6789"));
        assert!(!ssn_valid("123", "45", "0000"));
    }

    #[test]
    fn nino_dni_nir() {
        assert!(nino_prefix_valid("AB"));
        assert!(!nino_prefix_valid("GB"));
        assert!(!nino_prefix_valid("DA"));
        assert!(!nino_prefix_valid("AO"));
        assert!(dni_valid("12345678Z"));
        assert!(!dni_valid("12345678A"));
        assert!(dni_valid("X1234567L"));
        assert!(nir_valid("185057800608491"));
        assert!(!nir_valid("185057800608436"));
        assert!(!nir_valid("385057800608491"));
    }
}
