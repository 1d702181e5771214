//! How well quote/signature stripping finds the author's own text, measured on the
//! `email_replies` fixtures (zapier email-reply-parser, alfonsrv mail-parser-reply, mailgun
//! talon).
//!
//! Expected outputs come from the fixtures where the source shipped them as files (talon's
//! `*_reply_text`, `*_body`/`*_signature`, `#sig#`/`#reply#` markers). Where the source only
//! had assertions in its test code (erp, mpr, talon html), the expectation is written here:
//! as the 1-based inclusive line ranges of the input that the author wrote (so the inputs are
//! not copied), or as a short literal. The rule for "what the author wrote": their new text
//! including greeting, sign-off and name; without quoted or forwarded mail, reply headers,
//! `-- `/mobile signatures, mailing-list footers. Cases whose source had no expectation at all
//! (mpr caution, caution2, forward, multi_header, outlook, gmail; talon unicode_msg) are only
//! run for panics.

use std::path::Path;

use avatar_text::{
    html_to_text_without_quotes, normalize_whitespace, strip_reply, strip_sender_signature,
};

use super::parse_eml;

enum Case {
    /// Plain text through `strip_reply`; the author's lines of the input.
    Txt(&'static [(usize, usize)]),
    /// HTML through `html_to_text_without_quotes` + `strip_reply`; expected text.
    Html(&'static str),
    /// A whole message through `parse_eml`; expected text, or `None` for talon's default
    /// "Hello" unless a `<name>_reply_text` file exists.
    Eml(Option<&'static str>),
    /// talon `stripped/<name>_body` with `<name>_signature` and `<name>_sender`.
    SigSplit,
    /// A body with `#sig#`/`#reply#` line markers; sender given, or read from `_sender`.
    SigMarked(Option<&'static str>),
}

const HI_ALEX: &str = "Hi. I am fine.\n\nThanks,\nAlex";

const CASES: &[(&str, Case)] = &[
    // zapier/email-reply-parser
    ("erp__correct_sig.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_1_1.txt", Case::Txt(&[(1, 7)])),
    ("erp__email_1_2.txt", Case::Txt(&[(1, 1), (9, 34)])),
    ("erp__email_1_3.txt", Case::Txt(&[(1, 5)])),
    ("erp__email_1_4.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_1_5.txt", Case::Txt(&[(1, 15)])),
    ("erp__email_1_6.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_1_7.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_1_8.txt", Case::Txt(&[(13, 13), (19, 19)])),
    ("erp__email_2_1.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_2_2.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_2_3.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_BlackBerry.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_bullets.txt", Case::Txt(&[(1, 9)])),
    ("erp__email_gmail.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_headers_no_delimiter.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_iPhone.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_multi_word_sent_from_my_mobile_device.txt", Case::Txt(&[(1, 1)])),
    ("erp__email_one_is_not_on.txt", Case::Txt(&[(1, 5)])),
    ("erp__email_partial_quote_header.txt", Case::Txt(&[(1, 6)])),
    ("erp__email_sent_from_my_not_signature.txt", Case::Txt(&[(1, 3)])),
    ("erp__email_sig_delimiter_in_middle_of_line.txt", Case::Txt(&[(1, 7)])),
    ("erp__greedy_on.txt", Case::Txt(&[(1, 6)])),
    ("erp__pathological.txt", Case::Txt(&[(1, 2)])),
    // alfonsrv/mail-parser-reply
    ("mpr__begins_with_signature.txt", Case::Txt(&[(1, 8)])),
    ("mpr__email_1_1.txt", Case::Txt(&[(1, 7)])),
    ("mpr__email_1_7.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_3_1.txt", Case::Txt(&[(1, 3)])),
    ("mpr__email_danish_1.txt", Case::Txt(&[(1, 6)])),
    ("mpr__email_danish_2.txt", Case::Txt(&[(1, 6)])),
    ("mpr__email_danish_3.txt", Case::Txt(&[(1, 3)])),
    ("mpr__email_danish_4.txt", Case::Txt(&[(1, 3)])),
    ("mpr__email_danish_5.txt", Case::Txt(&[(1, 6)])),
    ("mpr__email_ja_1_1.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_ja_1_2.txt", Case::Txt(&[(1, 8)])),
    ("mpr__email_nl_1_1.txt", Case::Txt(&[(1, 6)])),
    ("mpr__email_nl_1_2.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_pl_1_1.txt", Case::Txt(&[(5, 10)])),
    ("mpr__email_pl_1_2.txt", Case::Txt(&[(6, 11)])),
    ("mpr__email_pl_1_3.txt", Case::Txt(&[(5, 10)])),
    ("mpr__email_sent_from_BlackBerry.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_sent_from_iPhone.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_sent_from_multi_word_mobile_device.txt", Case::Txt(&[(1, 1)])),
    ("mpr__email_sent_from_not_signature.txt", Case::Txt(&[(1, 3)])),
    ("mpr__email_sv_anon_1.txt", Case::Txt(&[(1, 8)])),
    ("mpr__email_swedish_1.txt", Case::Txt(&[(1, 8)])),
    ("mpr__email_swedish_2.txt", Case::Txt(&[(1, 7)])),
    ("mpr__multiline_on.txt", Case::Txt(&[])),
    ("mpr__multiline_on_de.txt", Case::Txt(&[(1, 1)])),
    // mailgun/talon
    ("talon__OLK_SRC_BODY_SECTION.html", Case::Html("Reply")),
    ("talon__reply-separated-by-hr.html", Case::Html("Hi\nthere\nBob")),
    ("talon__html_replies__gmail.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__hotmail.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__mail_ru.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__ms_outlook_2003.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__ms_outlook_2007.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__ms_outlook_2010.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__thunderbird.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__windows_mail.html", Case::Html(HI_ALEX)),
    ("talon__html_replies__yandex_ru.html", Case::Html(HI_ALEX)),
    (
        "talon__reply-quotations-share-block.eml",
        Case::Eml(Some(
            "Hi Katharine. Sounds great. Are there and dietry restrictions or things your husband \
             does/doesn't like to eat? Would you like to do a few hors d oeuvres and then a 3 or 4 \
             course dinner? Let me know what you think will work best and I will start working on \
             a menu and proposal. Thanks so much and look forward to hearing from you soon.\n\nJoe XXX",
        )),
    ),
    ("talon__standard_replies__android.eml", Case::Eml(None)),
    ("talon__standard_replies__aol.eml", Case::Eml(None)),
    ("talon__standard_replies__apple_mail.eml", Case::Eml(None)),
    ("talon__standard_replies__apple_mail_2.eml", Case::Eml(None)),
    ("talon__standard_replies__comcast.eml", Case::Eml(None)),
    ("talon__standard_replies__gmail.eml", Case::Eml(None)),
    ("talon__standard_replies__hotmail.eml", Case::Eml(None)),
    ("talon__standard_replies__iphone.eml", Case::Eml(None)),
    ("talon__standard_replies__outlook.eml", Case::Eml(None)),
    ("talon__standard_replies__sparrow.eml", Case::Eml(None)),
    ("talon__standard_replies__thunderbird.eml", Case::Eml(None)),
    ("talon__standard_replies__yahoo.eml", Case::Eml(None)),
    ("talon__signature__emails__stripped__camel_case_body", Case::SigSplit),
    ("talon__signature__emails__stripped__jeff_body", Case::SigSplit),
    ("talon__signature__emails__stripped__johndoeexamplecom_body", Case::SigSplit),
    ("talon__signature__emails__stripped__long_body", Case::SigSplit),
    ("talon__signature__emails__stripped__short_url_body", Case::SigSplit),
    ("talon__signature__emails__stripped__sparse_body", Case::SigSplit),
    ("talon__signature__emails__P__johndoeexamplecom_body", Case::SigMarked(None)),
    ("talon__signature__emails__P__102682_R_S", Case::SigMarked(Some("John Doe"))),
];

/// Files without an expected output in their source: run only to see they do not panic.
const NO_EXPECTATION: &[&str] = &[
    "mpr__caution.txt",
    "mpr__caution2.txt",
    "mpr__forward.txt",
    "mpr__multi_header.txt",
    "mpr__outlook.txt",
    "mpr__email_gmail.txt",
    "talon__signature__emails__P__unicode_msg",
];

fn select_lines(text: &str, ranges: &[(usize, usize)]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for &(a, b) in ranges {
        out.extend_from_slice(&lines[a - 1..b.min(lines.len())]);
    }
    out.join("\n")
}

fn unmark(line: &str) -> &str {
    line.trim_start_matches("#sig#")
        .trim_start_matches("#reply#")
}

/// Token-level F1 between two texts (multiset overlap of whitespace tokens).
fn token_f1(got: &str, want: &str) -> f64 {
    let g: Vec<&str> = got.split_whitespace().collect();
    let w: Vec<&str> = want.split_whitespace().collect();
    if g.is_empty() && w.is_empty() {
        return 1.0;
    }
    if g.is_empty() || w.is_empty() {
        return 0.0;
    }
    let mut pool: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in &w {
        *pool.entry(t).or_default() += 1;
    }
    let mut common = 0usize;
    for t in &g {
        if let Some(c) = pool.get_mut(t) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    if common == 0 {
        return 0.0;
    }
    let p = common as f64 / g.len() as f64;
    let r = common as f64 / w.len() as f64;
    2.0 * p * r / (p + r)
}

/// (got, expected) for one case.
fn run_case(dir: &Path, file: &str, case: &Case) -> (String, String) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    match case {
        Case::Txt(ranges) => {
            let input = read(file);
            (strip_reply(&input), select_lines(&input, ranges))
        }
        Case::Html(want) => (
            strip_reply(&html_to_text_without_quotes(&read(file))),
            want.to_string(),
        ),
        Case::Eml(want) => {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let got = parse_eml(&bytes)
                .map(|p| p.items[0].text.clone())
                .unwrap_or_default();
            let want = match want {
                Some(w) => w.to_string(),
                None => {
                    let reply = dir.join(file.replace(".eml", "_reply_text"));
                    std::fs::read_to_string(reply).unwrap_or_else(|_| "Hello".into())
                }
            };
            (got, want)
        }
        Case::SigSplit => {
            let body = read(file);
            let sig = read(&file.replace("_body", "_signature"));
            let sender = read(&file.replace("_body", "_sender"));
            let input: String = body.lines().map(unmark).collect::<Vec<_>>().join("\n");
            let sig: String = sig.lines().map(unmark).collect::<Vec<_>>().join("\n");
            let want = input
                .trim_end()
                .strip_suffix(sig.trim_end())
                .unwrap_or(&input)
                .to_string();
            (
                strip_sender_signature(&strip_reply(&input), sender.trim()),
                want,
            )
        }
        Case::SigMarked(sender) => {
            let text = read(file);
            // A leading header block ("From: …", "Subject: …") is not part of the body.
            let body = match text.split_once("\n\n") {
                Some((head, rest)) if head.lines().all(|l| l.contains(": ")) => rest.to_string(),
                _ => text.clone(),
            };
            let sender = match sender {
                Some(s) => s.to_string(),
                None => read(&file.replace("_body", "_sender")),
            };
            let input: String = body.lines().map(unmark).collect::<Vec<_>>().join("\n");
            let want: String = body
                .lines()
                .filter(|l| !l.starts_with("#sig#") && !l.starts_with("#reply#"))
                .collect::<Vec<_>>()
                .join("\n");
            (
                strip_sender_signature(&strip_reply(&input), sender.trim()),
                want,
            )
        }
    }
}

#[test]
fn email_reply_score() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/email_replies"
    ));
    if !dir.is_dir() {
        println!("skipping: ../shared/fixtures not found");
        return;
    }
    let mut exact = 0usize;
    let mut f1_sum = 0.0;
    let mut failing = Vec::new();
    for (file, case) in CASES {
        let (got, want) = run_case(dir, file, case);
        let f1 = token_f1(&got, &want);
        f1_sum += f1;
        if normalize_whitespace(&got) == normalize_whitespace(&want) {
            exact += 1;
        } else {
            failing.push(format!(
                "{file} (F1 {f1:.2})\n   want: {want:?}\n   got:  {got:?}"
            ));
        }
    }
    for file in NO_EXPECTATION {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let _ = strip_reply(&text);
    }
    let n = CASES.len();
    let share = exact as f64 / n as f64;
    let f1 = f1_sum / n as f64;
    println!("email_reply_score: {exact}/{n} exact = {share:.3}, mean token F1 = {f1:.3}");
    println!("failing ({}):", failing.len());
    for f in &failing {
        println!(" - {f}");
    }
    // Every fixture with an expectation in its source is scored.
    assert_eq!(n, 81);
    assert!(share >= 0.95, "exact-match share fell to {share:.3}");
    assert!(f1 >= 0.96, "mean token F1 fell to {f1:.3}");
}

#[test]
fn token_f1_is_sane() {
    assert_eq!(token_f1("a b", "a b"), 1.0);
    assert_eq!(token_f1("", ""), 1.0);
    assert_eq!(token_f1("a", ""), 0.0);
    assert!((token_f1("a b c d", "a b") - 2.0 / 3.0).abs() < 1e-9);
}
