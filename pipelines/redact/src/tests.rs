//! Per kind: texts that must be redacted and near misses that must stay; then invariants.

use super::*;
use proptest::prelude::*;
use std::sync::LazyLock;

static PLAIN: LazyLock<Redactor> = LazyLock::new(|| {
    Redactor::new(RedactConfig {
        keep: vec![
            "Ada Lovelace".into(),
            "ada@example.org".into(),
            "+44 7700 900123".into(),
        ],
        third_party_names: None,
    })
});

fn kinds(text: &str) -> Vec<Kind> {
    PLAIN.redact(text).findings.iter().map(|f| f.kind).collect()
}

/// `text` is redacted to exactly `want`.
#[track_caller]
fn redacts(text: &str, want: &str) {
    assert_eq!(PLAIN.redact(text).text, want, "input: {text:?}");
}

/// Nothing in `text` is redacted.
#[track_caller]
fn stays(text: &str) {
    let r = PLAIN.redact(text);
    assert!(r.findings.is_empty(), "{text:?} became {:?}", r.text);
}

#[test]
fn emails_of_others_go_the_persons_stay() {
    redacts(
        "write to bob.smith+x@mail.example.com.",
        "write to [EMAIL].",
    );
    redacts(
        "cc: Ada <ADA@example.org>, carol@x.io",
        "cc: Ada <ADA@example.org>, [EMAIL]",
    );
    stays("meet @ 5, the @ sign, user@localhost, a@b");
    stays("see foo.bar and x@y");
}

#[test]
fn phone_numbers_in_international_and_national_forms() {
    redacts("call +1 415 555 0134 now", "call [PHONE] now");
    redacts("mobile: +49 (0)30 1234 5678", "mobile: [PHONE]");
    redacts("tel 0044 20 7946 0958", "tel [PHONE]");
    redacts(
        "ring 07911 123456 or 030 12345678",
        "ring [PHONE] or [PHONE]",
    );
    redacts("FR: 06 12 34 56 78.", "FR: [PHONE].");
    redacts(
        "US (415) 555-0134 or 415-555-0134 or 415.555.0134",
        "US [PHONE] or [PHONE] or [PHONE]",
    );
    redacts("ES 612 345 678", "ES [PHONE]");
    redacts("call 0612345678", "call [PHONE]");
    // The person's own number, however written.
    stays("my number is +44 7700 900123 or 07700 900123");
}

#[test]
fn dates_times_versions_years_and_order_numbers_are_not_phones() {
    stays("on 2024-01-15 at 10:30, or 15.01.2024, 1/2/2024, 2024/01/15");
    stays("version 1.2.3 and 10.0.19045.2965, from 1999 to 2024");
    stays("order number 123456789 and invoice 20240115, ticket #4521879");
    stays("the server at 192.168.100.200 answered");
    stays("pages 120-135, 3 x 4 = 12, 1,000,000 people, $1 234 567");
    stays("score 12 34 56");
}

#[test]
fn postal_addresses_in_four_languages() {
    assert_eq!(
        kinds("I live at 221B Baker Street, London."),
        [Kind::PostalAddress]
    );
    assert_eq!(
        kinds("Send it to 1600 Pennsylvania Avenue"),
        [Kind::PostalAddress]
    );
    redacts("Hauptstraße 12, 10115 Berlin", "[ADDRESS]");
    redacts(
        "wohnt in der Berliner Straße 5a.",
        "wohnt in der [ADDRESS].",
    );
    redacts(
        "chez moi, 12 rue de la Paix, 75002 Paris",
        "chez moi, [ADDRESS]",
    );
    redacts("Vivo en Calle de Alcalá, 42", "Vivo en [ADDRESS]");
    redacts("office: SW1A 1AA", "office: [ADDRESS]");
    redacts("Mountain View, CA 94043", "Mountain View, [ADDRESS]");
    redacts("Anschrift:\n80331 München", "Anschrift:\n[ADDRESS]");
    redacts("Boston, MA 02111-1307", "Boston, [ADDRESS]");
}

#[test]
fn address_near_misses_stay() {
    stays("I have 2 Big Ideas and 3 cats");
    stays("In 2024 Paris was busy; we sold 12000 units");
    stays("Spring 2024 was wet, the street was long");
    stays("we walked 5 miles down the road");
    stays("color: #B5C4DF; a B5C4DF code");
}

#[test]
fn payment_cards_need_luhn_and_a_network() {
    redacts(
        "card 4111 1111 1111 1111 exp 12/27",
        "card [CARD] exp 12/27",
    );
    redacts("amex 3782-822463-10005", "amex [CARD]");
    redacts("5555555555554444", "[CARD]");
    stays("card 4111 1111 1111 1112");
    stays("tracking 1234567812345670");
    stays("ref 4111 11 1111 1111 11");
}

#[test]
fn ibans_need_their_check_digits() {
    redacts(
        "IBAN: DE89 3704 0044 0532 0130 00, thanks",
        "IBAN: [IBAN], thanks",
    );
    redacts("GB82WEST12345698765432 THX", "[IBAN] THX");
    stays("DE89 3704 0044 0532 0130 01");
    stays("ABCD1234EFGH5678IJKL");
}

#[test]
fn national_ids() {
    redacts("SSN 123-45-6789.", "SSN [ID].");
    stays("SSN 000-12-3456 or 666-12-3456 or 912-12-3456");
    redacts("NI number AB 12 34 56 C", "NI number [ID]");
    stays("NI number GB 12 34 56 C");
    redacts("DNI 12345678Z, NIE X1234567L", "DNI [ID], NIE [ID]");
    stays("DNI 12345678A");
    redacts("NIR 1 85 05 78 006 084 91", "NIR [ID]");
    redacts("NIR 185057800608491", "NIR [ID]");
}

#[test]
fn credentials_and_api_keys() {
    let cases = [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "xoxb-123456789012-abcdefABCDEF",
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r",
    ];
    for c in cases {
        redacts(&format!("key: {c} ok"), "key: [SECRET] ok");
        redacts(&format!("use {c}"), "use [SECRET]");
    }
    redacts("password=hunter22 user=bob", "password=[SECRET] user=bob");
    redacts("passwd: 'p4ss w0rd'", "passwd: '[SECRET]'");
    redacts("api_key: \"abc123xyz\"", "api_key: \"[SECRET]\"");
    redacts("my password is Tr0ub4dor&3.", "my password is [SECRET].");
    redacts(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAA==\n-----END RSA PRIVATE KEY-----\nbye",
        "[SECRET]\nbye",
    );
    redacts("-----BEGIN PRIVATE KEY-----\nMIIEow", "[SECRET]");
    stays("the password policy, a tokenizer, sk-short, AKIA123, skipping ghp_ things");
    stays("-----BEGIN PUBLIC KEY-----\nMIIB");
}

#[test]
fn urls_with_tokens_or_passwords() {
    redacts(
        "reset: https://example.com/reset?token=abc123&x=1.",
        "reset: [URL].",
    );
    redacts(
        "https://s3.amazonaws.com/b/k?X-Amz-Signature=ff00 done",
        "[URL] done",
    );
    redacts("db postgres://bob:s3cret@db.local:5432/app", "db [URL]");
    redacts("https://app.example/cb#access_token=xyz", "[URL]");
    stays("see https://example.com/page?id=3&lang=en and https://x.org/?keyword=a");
}

#[test]
fn names_only_when_asked_and_consistent_per_participant() {
    let r = Redactor::new(RedactConfig {
        keep: vec!["Ada Lovelace".into(), "ada@example.org".into()],
        third_party_names: Some(vec![
            ("Charles Babbage <charles@example.org>".into(), "p1".into()),
            ("Charles Babbage".into(), "p1".into()),
            ("Mary Somerville".into(), "p2".into()),
        ]),
    });
    let out = r.redact("Dear Babbage, Mary Somerville and Charles Babbage say hi to Ada Lovelace.");
    assert_eq!(
        out.text,
        "Dear [PERSON_1], [PERSON_2] and [PERSON_1] say hi to Ada Lovelace."
    );
    assert_eq!(r.participant(1), Some("p1"));
    assert_eq!(r.participant(3), None);
    assert!(r.redacts_names());
    assert_eq!(kinds("Dear Babbage, Mary Somerville"), Vec::<Kind>::new());
}

#[test]
fn findings_point_into_the_original_and_replace_in_order() {
    let t = "x bob@x.org y 4111111111111111 z";
    let r = PLAIN.redact(t);
    assert_eq!(r.text, "x [EMAIL] y [CARD] z");
    let spans: Vec<&str> = r.findings.iter().map(|f| &t[f.start..f.end]).collect();
    assert_eq!(spans, ["bob@x.org", "4111111111111111"]);
}

#[test]
fn stats_count_by_kind_and_source() {
    let mut s = RedactionStats::default();
    s.add(
        "file:///a",
        &PLAIN
            .redact("bob@x.org carol@y.org 4111111111111111")
            .findings,
    );
    s.add("file:///b", &PLAIN.redact("call 07911 123456").findings);
    s.add("file:///c", &PLAIN.redact("nothing").findings);
    assert_eq!(s.total, 4);
    assert_eq!(s.by_kind[&Kind::Email], 2);
    assert_eq!(s.by_source["file:///b"][&Kind::Phone], 1);
    assert!(!s.by_source.contains_key("file:///c"));
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""payment_card":1"#), "{json}");
    assert_eq!(serde_json::from_str::<RedactionStats>(&json).unwrap(), s);
}

#[test]
fn placeholders_do_not_match_again() {
    let once = PLAIN
        .redact("a bob@x.org 4111111111111111 https://x.org/?token=1 password=abc12")
        .text;
    let twice = PLAIN.redact(&once);
    assert!(twice.findings.is_empty(), "{:?}", twice.text);
}

/// Cards with a valid Luhn digit and a Visa/Mastercard prefix.
fn card() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("4"), Just("51"), Just("55")],
        proptest::collection::vec(0u8..10, 15),
    )
        .prop_map(|(p, body)| {
            let mut d: String = p.to_string();
            for x in body.iter().take(15 - d.len()) {
                d.push(char::from(b'0' + x));
            }
            for check in 0..10u8 {
                let cand = format!("{d}{check}");
                if checks::luhn(&cand) {
                    return cand;
                }
            }
            unreachable!()
        })
}

fn iban() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, 18).prop_map(|body| {
        let bban: String = body.iter().map(|x| char::from(b'0' + x)).collect();
        for check in 2..=98u32 {
            let cand = format!("DE{check:02}{bban}");
            if checks::iban_valid(&cand) {
                return cand;
            }
        }
        unreachable!()
    })
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        card(),
        iban(),
        "[A-Z0-9]{16}".prop_map(|s| format!("AKIA{s}")),
        "[a-z]{3,10}\\.[a-z]{2,8}".prop_map(|s| format!("{s}@mail.example.net")),
        "[2-9][0-9]{2} [0-9]{4}".prop_map(|s| format!("+1 415 {s}")),
        "[A-Za-z0-9]{36}".prop_map(|s| format!("ghp_{s}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_findings_are_ordered(text in "\\PC{0,400}") {
        let r = PLAIN.redact(&text);
        let mut last = 0;
        for f in &r.findings {
            prop_assert!(f.start >= last && f.start < f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            last = f.end;
        }
    }

    #[test]
    fn never_panics_on_digit_and_separator_soup(text in "[0-9 +()./\\-a-zA-Z@:=]{0,200}") {
        let _ = PLAIN.redact(&text);
    }

    #[test]
    fn planted_secrets_never_survive(
        secret in secret(),
        before in "[a-zA-Z ,.!?]{0,60}",
        after in "[a-zA-Z ,.!?]{0,60}",
    ) {
        let text = format!("{before} {secret} {after}");
        let r = PLAIN.redact(&text);
        prop_assert!(!r.text.contains(&secret), "{secret} survived in {:?}", r.text);
    }
}

/// Real exports (mail, chats): redaction is idempotent on them, and the throughput and the
/// counts by kind are printed (`cargo test -p avatar-redact fixtures -- --nocapture`; set
/// `AVATAR_REDACT_SHOW=1` to see each finding in context when judging precision).
#[test]
fn real_exports_scan_fast_and_redact_idempotently() {
    let root = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    if !root.is_dir() {
        eprintln!("skipping: ../shared/fixtures not found");
        return;
    }
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let show = std::env::var_os("AVATAR_REDACT_SHOW").is_some();
    let start = std::time::Instant::now();
    let mut stats = RedactionStats::default();
    let mut outputs = Vec::new();
    for t in &texts {
        let r = PLAIN.redact(t);
        stats.add("fixtures", &r.findings);
        if show {
            for f in &r.findings {
                let mut a = f.start.saturating_sub(30);
                while !t.is_char_boundary(a) {
                    a -= 1;
                }
                let mut b = (f.end + 30).min(t.len());
                while !t.is_char_boundary(b) {
                    b += 1;
                }
                println!(
                    "{:<14} {:?} in {:?}",
                    f.kind.as_str(),
                    &t[f.start..f.end],
                    &t[a..b]
                );
            }
        }
        outputs.push(r.text);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "redacted {} files, {:.1} MB in {:.2}s: {:.1} MB/s; {:?}",
        texts.len(),
        bytes as f64 / 1e6,
        secs,
        bytes as f64 / 1e6 / secs,
        stats.by_kind
    );
    assert!(stats.total > 0, "real mail holds addresses");
    for o in &outputs {
        let again = PLAIN.redact(o);
        assert!(
            again.findings.is_empty(),
            "not idempotent: {:?}",
            again.findings
        );
    }
}
