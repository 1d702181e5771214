//! PII redaction end to end, the dataset half of the canary test: random secrets of every kind
//! are planted in a small corpus (mail, a WhatsApp chat, a note), the dataset is built, and
//! none of them may be in `dataset show --json` or in the Parquet file, while the person's
//! own address stays, `privacy report` counts each kind, and the owner's search still finds
//! the originals.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

/// A small xorshift generator: secrets differ per run (the seed is printed to reproduce).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id()) << 32;
        eprintln!("canary seed {seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
    fn from(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }
}

fn luhn_ok(d: &str) -> bool {
    let mut sum = 0;
    for (i, b) in d.bytes().rev().enumerate() {
        let mut x = u32::from(b - b'0');
        if i % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    sum % 10 == 0
}

/// A Visa number with a valid Luhn digit, written in groups of four.
fn card(rng: &mut Rng) -> (String, String) {
    let body = format!("4{}", rng.digits(14));
    let digits = (0..10)
        .map(|c| format!("{body}{c}"))
        .find(|d| luhn_ok(d))
        .unwrap();
    let spaced = digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    (digits, spaced)
}

/// A German IBAN with valid check digits.
fn iban(rng: &mut Rng) -> String {
    let bban = rng.digits(18);
    let numeric = format!("{bban}131400"); // "DE" = 13 14, check digits 00
    let rem = numeric
        .bytes()
        .fold(0u64, |r, b| (r * 10 + u64::from(b - b'0')) % 97);
    format!("DE{:02}{bban}", 98 - rem)
}

struct Secrets {
    card_digits: String,
    card: String,
    iban: String,
    akia: String,
    ghp: String,
    email: String,
    phone: String,
    ssn: String,
    password: String,
    url_token: String,
    street: String,
}

impl Secrets {
    fn new(rng: &mut Rng) -> Secrets {
        let (card_digits, card) = card(rng);
        let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let lower = b"abcdefghijklmnopqrstuvwxyz";
        Secrets {
            card_digits,
            card,
            iban: iban(rng),
            akia: format!("AKIA{}", rng.from(upper, 16)),
            ghp: format!("ghp_{}", rng.from(alnum, 36)),
            email: format!(
                "{}.{}@{}.example",
                rng.from(lower, 6),
                rng.from(lower, 5),
                rng.from(lower, 7)
            ),
            phone: format!("+44 7911 {}", rng.digits(6)),
            ssn: format!(
                "{}-{}-{}",
                100 + rng.next() % 500,
                10 + rng.next() % 89,
                1000 + rng.next() % 8999
            ),
            password: format!("Zq{}x{}", rng.from(alnum, 8), rng.digits(3)),
            url_token: format!("https://vault.example/reset?token={}", rng.from(alnum, 24)),
            street: format!("{} Quillfeather Street", 10 + rng.next() % 900),
        }
    }

    /// Every value that must not reach the training set (the card in both spellings).
    fn all(&self) -> Vec<&str> {
        vec![
            &self.card_digits,
            &self.card,
            &self.iban,
            &self.akia,
            &self.ghp,
            &self.email,
            &self.phone,
            &self.ssn,
            &self.password,
            &self.url_token,
            &self.street,
        ]
    }
}

fn write_corpus(dir: &Path, s: &Secrets) {
    std::fs::create_dir_all(dir).unwrap();
    let mbox = format!(
        "From bob@stone.example Mon Jan 08 10:00:00 2024\n\
Message-ID: <m1@stone.example>\n\
Date: Mon, 08 Jan 2024 10:00:00 +0000\n\
From: Bob Stone <bob@stone.example>\n\
To: Ada Lovelace <ada@example.org>\n\
Subject: Payment details\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
Dear Ada,\n\
\n\
Pay to IBAN {iban}, or use my card {card}. My SSN for the form is {ssn}.\n\
Our lawyer is {email}, and the deploy key is {akia}.\n\
\n\
Bob\n\
\n\
From ada@example.org Mon Jan 08 12:00:00 2024\n\
Message-ID: <m2@example.org>\n\
In-Reply-To: <m1@stone.example>\n\
Date: Mon, 08 Jan 2024 12:00:00 +0000\n\
From: Ada Lovelace <ada@example.org>\n\
To: Bob Stone <bob@stone.example>\n\
Subject: Re: Payment details\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
Dear Bob,\n\
\n\
Done. Ring your brother on {phone} about it, and write to me at ada@example.org.\n\
\n\
Ada\n",
        iban = s.iban,
        card = s.card,
        ssn = s.ssn,
        email = s.email,
        akia = s.akia,
        phone = s.phone,
    );
    std::fs::write(dir.join("mail.mbox"), mbox).unwrap();
    let chat = format!(
        "09/01/2024, 09:00 - Bob Stone: the server password={password} and the token {ghp}\n\
09/01/2024, 09:01 - Bob Stone: reset it here {url}\n\
09/01/2024, 09:03 - Ada Lovelace: Thank you, I shall. Send the parcel to {street}, London.\n\
09/01/2024, 09:05 - Bob Stone: will do, card {digits} is charged\n\
09/01/2024, 09:06 - Ada Lovelace: Splendid.\n",
        password = s.password,
        ghp = s.ghp,
        url = s.url_token,
        street = s.street,
        digits = s.card_digits,
    );
    std::fs::write(dir.join("WhatsApp Chat with Bob Stone.txt"), chat).unwrap();
    let note = format!(
        "---\ntitle: Household\nauthor: Ada Lovelace\n---\n\nThe gas company has card {card} on file; their clerk is {email}.\n",
        card = s.card,
        email = s.email,
    );
    std::fs::write(dir.join("household.md"), note).unwrap();
}

/// A data directory with Ada's avatar and a freshly planted corpus ingested.
fn ingested_corpus() -> (tempfile::TempDir, Secrets, std::path::PathBuf) {
    let mut rng = Rng::new();
    let s = Secrets::new(&mut rng);
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    write_corpus(&corpus, &s);
    let data = dir.path().join("data");
    init_ada(&data);
    ok(&data, &["ingest", corpus.to_str().unwrap()]);
    (dir, s, data)
}

#[test]
fn planted_secrets_never_reach_the_training_set() {
    let (_dir, s, data) = ingested_corpus();

    // No report before a build.
    let out = cmd(&data).args(["privacy", "report"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("avatar dataset build"));

    let built: serde_json::Value =
        serde_json::from_str(stdout(&ok(&data, &["dataset", "build", "--json"])).trim()).unwrap();
    assert!(built["examples"].as_u64().unwrap() >= 3, "{built}");
    let shown = stdout(&ok(&data, &["dataset", "show", "--json"]));
    let parquet = std::fs::read(data.join("datasets/ada-lovelace/sft.parquet")).unwrap();
    let raw = String::from_utf8_lossy(&parquet);
    for secret in s.all() {
        assert!(!shown.contains(secret), "{secret} in dataset show: {shown}");
        assert!(!raw.contains(secret), "{secret} in the Parquet file");
    }
    // The person's own address stays (in the shown examples and in the file), and the
    // placeholders are there instead of the secrets.
    assert!(shown.contains("ada@example.org"), "{shown}");
    assert!(raw.contains("ada@example.org"));
    for p in [
        "[CARD]",
        "[IBAN]",
        "[SECRET]",
        "[EMAIL]",
        "[PHONE]",
        "[ID]",
        "[URL]",
        "[ADDRESS]",
    ] {
        assert!(shown.contains(p), "{p} missing: {shown}");
    }
    // The examples as the trainer reads them hold none either.
    let examples = avatar_dataset::read_parquet_bytes(parquet.clone()).unwrap();
    let text: String = examples
        .iter()
        .flat_map(|e| e.messages.iter().map(|m| m.content.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    for secret in s.all() {
        assert!(!text.contains(secret), "{secret} in the training messages");
    }

    let report: serde_json::Value =
        serde_json::from_str(stdout(&ok(&data, &["privacy", "report", "--json"])).trim()).unwrap();
    assert_eq!(report["redacted"], true);
    for kind in [
        "email",
        "phone",
        "postal_address",
        "payment_card",
        "iban",
        "national_id",
        "credential",
        "url_token",
    ] {
        assert!(
            report["by_kind"][kind].as_u64().unwrap_or(0) >= 1,
            "{kind} not counted: {report}"
        );
    }
    let by_source = report["by_source"].as_object().unwrap();
    assert!(
        by_source.keys().any(|k| k.ends_with("mail.mbox")),
        "{report}"
    );
    assert!(by_source.keys().any(|k| k.contains("WhatsApp")), "{report}");
    let report_text = stdout(&ok(&data, &["privacy", "report"])) + &report.to_string();
    for secret in s.all() {
        assert!(!report_text.contains(secret), "the report shows {secret}");
    }

    // The owner's own search still shows the original.
    let hits = json_lines(&ok(&data, &["search", &s.akia, "--json", "--mode", "bm25"]));
    assert!(
        hits.iter().any(|h| h.to_string().contains(&s.akia)),
        "search lost the original: {hits:?}"
    );
}

#[test]
fn keep_pii_warns_and_redact_names_replaces_third_parties() {
    let (_dir, s, data) = ingested_corpus();

    let out = ok(&data, &["dataset", "build", "--keep-pii"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("WARNING: PII redaction is OFF"),
        "no warning"
    );
    assert!(stdout(&ok(&data, &["dataset", "show", "--json"])).contains(&s.card));
    let report = stdout(&ok(&data, &["privacy", "report", "--json"]));
    assert!(report.contains(r#""redacted":false"#), "{report}");

    ok(&data, &["dataset", "build", "--redact-names"]);
    let shown = stdout(&ok(&data, &["dataset", "show", "--json"]));
    assert!(!shown.contains(&s.card));
    assert!(!shown.contains("Bob"), "{shown}");
    assert!(shown.contains("[PERSON_1]"), "{shown}");
    assert!(
        shown.contains("Ada"),
        "the person's own name stays: {shown}"
    );
    let report = stdout(&ok(&data, &["privacy", "report"]));
    assert!(report.contains("names replaced"), "{report}");
}
