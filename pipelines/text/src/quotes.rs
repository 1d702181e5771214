//! Reply-quote stripping for plain-text bodies.
//!
//! Mail clients mark the quoted thread in different ways: `>` prefixes, an attribution line
//! ("On … wrote:", "Am … schrieb …:", "… написал:"), an Outlook header block
//! (`From:`/`Sent:`/`To:` in the sender's UI language) or a separator
//! ("-----Original Message-----"). We look for these line by line. An attribution directly
//! followed by `>` lines is an inline (bottom/interleaved) quote: only the header and the
//! quoted lines go, the author's text around them stays. Any other marker starts the quoted
//! tail: everything from it on goes.

use std::collections::HashSet;

use crate::normalize_whitespace;

/// Keep only what the author wrote in this message: cut reply headers and the quoted tail,
/// drop `>`-quoted lines, mailing-list footers, mobile footers ("Sent from my iPhone") and
/// `-- ` signatures, and trim blank lines at both ends.
pub fn strip_reply(text: &str) -> String {
    let text = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\u{feff}', "");
    let lines: Vec<&str> = text.split('\n').collect();
    let mut kept: Vec<&str> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if is_quoted(line) || is_wrapped_quote_fragment(&lines, i) {
            i += 1;
            continue;
        }
        if let Some(n) = attribution_len(&lines, i) {
            let mut j = i + n;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            if j < lines.len() && is_quoted(lines[j]) {
                // Inline quote: the author may answer below it.
                i += n;
                continue;
            }
            break;
        }
        if let Some(n) = header_block_len(&lines, i) {
            if kept.iter().any(|l| !l.trim().is_empty()) {
                break;
            }
            // A header block on top of everything is the message's own pasted header.
            i += n;
            continue;
        }
        if is_original_message_separator(t) || is_list_footer(&lines, i) || is_sig_delimiter(line) {
            break;
        }
        if is_mobile_signature(t) || is_external_banner(t) {
            i += 1;
            continue;
        }
        // Blank lines on both sides of a removed quote collapse into one.
        let after_removal =
            i > 0 && kept.len() < i && kept.last().is_some_and(|l| l.trim().is_empty());
        if !(t.is_empty() && after_removal && i > 0 && is_removed_neighbour(&lines, i)) {
            kept.push(line);
        }
        i += 1;
    }
    finish(&kept)
}

/// Trim trailing whitespace of each line, drop leading blank lines and trailing blank or
/// separator-only lines, and squeeze runs of more than two blank lines.
fn finish(lines: &[&str]) -> String {
    let mut end = lines.len();
    while end > 0 && is_separator_or_blank(lines[end - 1]) {
        end -= 1;
    }
    let mut start = 0;
    while start < end && lines[start].trim().is_empty() {
        start += 1;
    }
    let mut out = String::new();
    let mut blanks = 0;
    for line in &lines[start..end] {
        let line = line.trim_end();
        if line.is_empty() {
            blanks += 1;
            if blanks > 2 {
                continue;
            }
        } else {
            blanks = 0;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// Whether the line before `i` was dropped as quoted material.
fn is_removed_neighbour(lines: &[&str], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        let t = lines[j].trim();
        if t.is_empty() {
            continue;
        }
        return is_quoted(lines[j]) || t.ends_with(':');
    }
    false
}

/// A short unquoted scrap between two quoted lines: the tail of a quoted line that a client
/// (or a quoted-printable soft break) wrapped without repeating the `>`.
fn is_wrapped_quote_fragment(lines: &[&str], i: usize) -> bool {
    let t = lines[i].trim();
    i > 0
        && i + 1 < lines.len()
        && !t.is_empty()
        && t.chars().count() <= 20
        && t.split_whitespace().count() <= 3
        && is_quoted(lines[i - 1])
        && is_quoted(lines[i + 1])
}

fn is_separator_or_blank(line: &str) -> bool {
    line.trim()
        .chars()
        .all(|c| matches!(c, '-' | '_' | '=' | '*' | '—' | '–' | '~') || c.is_whitespace())
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// `-- ` (RFC 3676) or a bare `--`, which many clients produce by trimming the space.
fn is_sig_delimiter(line: &str) -> bool {
    line.trim_end() == "--" || line == "-- "
}

/// Words that end an attribution line, in the languages we see in mail.
const WROTE: &[&str] = &[
    "wrote",
    "writes",
    "schrieb",
    "a écrit",
    "écrit",
    "escribió",
    "schreef",
    "geschreven",
    "skrev",
    "pisze",
    "napisał",
    "napisala",
    "napisał(a)",
    "написал",
    "написала",
    "написал(а)",
    "ha scritto",
    "escreveu",
    "írta",
    "napsal",
    "kirjoitti",
    "yazdı",
    "写道",
    "書きました",
    "のメッセージ",
    "작성",
];

/// Words an attribution starts with ("On …", "Am …", "Le …"), for multi-line headers.
const OPENERS: &[&str] = &[
    "on ", "am ", "le ", "el ", "op ", "den ", "w dniu", "dnia ", "il ", "em ", "в ", "el día",
];

/// How many lines (1-4) the attribution starting at `i` spans, if one starts there.
fn attribution_len(lines: &[&str], i: usize) -> Option<usize> {
    let first = strip_lead(lines[i].trim());
    if first.is_empty() || is_quoted(lines[i]) {
        return None;
    }
    // Fast path for the common case: no line of the next four ends with a colon.
    let any_colon = lines[i..]
        .iter()
        .take(4)
        .take_while(|l| !l.trim().is_empty())
        .any(|l| ends_with_colon(l));
    if !any_colon {
        return None;
    }
    let first_lower = first.to_lowercase();
    let opener = OPENERS.iter().any(|o| first_lower.starts_with(o))
        || first.chars().next().is_some_and(|c| c.is_ascii_digit())
        || starts_with_weekday(&first_lower);
    let mut joined = String::new();
    for k in 0..4 {
        let Some(line) = lines.get(i + k) else { break };
        let t = line.trim();
        if t.is_empty() || (k > 0 && is_quoted(line)) {
            break;
        }
        if k > 0 && !opener {
            break;
        }
        // "Am heutigen Tage\nAm So., 1. Jan. … schrieb …:": the header starts on the next line.
        if k > 0 && OPENERS.iter().any(|o| t.to_lowercase().starts_with(o)) {
            break;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(if k == 0 { first } else { t });
        if joined.chars().count() > 400 {
            break;
        }
        if is_attribution(&joined, opener) {
            return Some(k + 1);
        }
        // "On <date> <name> w=\nrote:": QP damage or odd wrapping; accept an "On …:" that
        // introduces a quoted block.
        if opener && ends_with_colon(&joined) && joined.chars().any(|c| c.is_ascii_digit()) {
            let mut j = i + k + 1;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            if j < lines.len() && is_quoted(lines[j]) && has_address_or_time(&joined) {
                return Some(k + 1);
            }
        }
    }
    None
}

fn strip_lead(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '-' || c == '*' || c == '_' || c.is_whitespace())
}

fn ends_with_colon(s: &str) -> bool {
    let s = s.trim_end_matches(|c: char| c.is_whitespace() || c == '*');
    s.ends_with(':') || s.ends_with('：')
}

fn starts_with_weekday(lower: &str) -> bool {
    const DAYS: &[&str] = &[
        "mon", "tue", "wed", "thu", "fri", "sat", "sun", "mån", "tis", "ons", "tors", "fre", "lör",
        "sön", "man", "tir", "lør", "søn", "ma ", "di ", "wo ", "do ", "vr ", "za ", "zo ", "lun",
        "mar", "mer", "jeu", "ven", "sam", "dim", "mié", "jue", "vie", "sáb", "dom",
    ];
    DAYS.iter().any(|d| lower.starts_with(d))
}

fn has_address_or_time(s: &str) -> bool {
    s.contains('@') || has_time_or_year(s)
}

/// A `12:34` time or a 19xx/20xx year.
fn has_time_or_year(s: &str) -> bool {
    let b = s.as_bytes();
    for w in b.windows(4) {
        if (w[0] == b'1' && w[1] == b'9' || w[0] == b'2' && w[1] == b'0')
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
        {
            return true;
        }
    }
    b.windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b':' && w[2].is_ascii_digit())
}

fn is_attribution(s: &str, opener: bool) -> bool {
    if !ends_with_colon(s) || s.chars().count() > 400 {
        return false;
    }
    let lower = s.to_lowercase();
    let body = lower.trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '：');
    let wrote = WROTE.iter().any(|w| {
        body.ends_with(w)
            || lower.contains(&format!(" {w} "))
            || lower.contains(&format!(">{w}"))
            || lower.contains(&format!("){w}"))
            || (!w.is_ascii() && lower.contains(w))
    });
    if wrote && (opener || lower.contains('@') || has_time_or_year(&lower)) {
        return true;
    }
    // "26.06.2014, 14:41, "Name" <a@b.c>:", "2022年1月1日(金) 9:00 Name <a@b.c>:",
    // "Thu, 26 Jun 2014 14:00:51 +0400 от Name <a@b.c>:": a date and an address.
    lower.contains('@') && has_time_or_year(&lower) && s.chars().count() < 200
}

/// Header names of a quoted message in the languages Outlook and webmails use.
const HEADER_KEYS: &[&str] = &[
    "from",
    "sent",
    "date",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "von",
    "gesendet",
    "an",
    "betreff",
    "datum",
    "kopie",
    "de",
    "envoyé",
    "envoyé le",
    "à",
    "objet",
    "enviado",
    "enviado el",
    "para",
    "asunto",
    "fecha",
    "van",
    "verzonden",
    "aan",
    "onderwerp",
    "fra",
    "sendt",
    "til",
    "emne",
    "dato",
    "från",
    "skickat",
    "till",
    "ämne",
    "od",
    "wysłano",
    "do",
    "temat",
    "data",
    "dw",
    "от",
    "отправлено",
    "кому",
    "тема",
    "дата",
    "копия",
    "da",
    "inviato",
    "a",
    "oggetto",
    "assunto",
    "enviada",
    "lähettäjä",
    "lähetetty",
    "vastaanottaja",
    "aihe",
    "差出人",
    "送信日時",
    "宛先",
    "件名",
    "发件人",
    "发送时间",
    "收件人",
    "主题",
];

/// The header key of a line like `*From:* x`, `Sent: y`, `Von: z`, lowercased.
pub(crate) fn header_key(line: &str) -> Option<String> {
    if !line.contains([':', '：']) {
        return None;
    }
    let t: String = line.trim().chars().filter(|&c| c != '*').collect();
    let t = t.trim_start();
    let idx = t.find([':', '：'])?;
    let key = t[..idx].trim().to_lowercase();
    if key.is_empty() || key.chars().count() > 20 {
        return None;
    }
    HEADER_KEYS.contains(&key.as_str()).then_some(key)
}

/// Length of an Outlook-style header block (`From:` + at least one more header among the
/// next lines, wrapped values allowed) starting at `i`.
fn header_block_len(lines: &[&str], i: usize) -> Option<usize> {
    let first = header_key(lines[i])?;
    let mut keys: HashSet<String> = HashSet::from([first]);
    let mut last = i;
    let mut j = i + 1;
    let mut misses = 0;
    while j < lines.len() && j <= i + 10 {
        let t = lines[j].trim();
        if t.is_empty() {
            break;
        }
        if let Some(k) = header_key(t) {
            keys.insert(k);
            last = j;
            misses = 0;
        } else {
            misses += 1;
            if misses > 2 {
                break;
            }
        }
        j += 1;
    }
    (keys.len() >= 2 && last > i).then_some(last - i + 1)
}

/// "-----Original Message-----" and its translations, "Begin forwarded message:",
/// "---------- Forwarded message ---------".
fn is_original_message_separator(t: &str) -> bool {
    let starts_like = t.starts_with(['-', '_', '=', '*', 'B', 'b', 'O', 'o']);
    if t.len() > 120 || !(starts_like || t.ends_with(':')) {
        return false;
    }
    let lower = t.to_lowercase();
    let core = lower
        .trim_matches(|c: char| c == '-' || c == '_' || c == '=' || c == '*' || c.is_whitespace());
    const SEPARATORS: &[&str] = &[
        "original message",
        "forwarded message",
        "begin forwarded message:",
        "oprindelig meddelelse",
        "ursprüngliche nachricht",
        "weitergeleitete nachricht",
        "message d'origine",
        "message transféré",
        "mensaje original",
        "mensaje reenviado",
        "oorspronkelijk bericht",
        "doorgestuurd bericht",
        "opprinnelig melding",
        "videresendt melding",
        "ursprungligt meddelande",
        "vidarebefordrat meddelande",
        "wiadomość oryginalna",
        "oryginalna wiadomość",
        "исходное сообщение",
        "пересылаемое сообщение",
        "messaggio originale",
        "mensagem original",
        "alkuperäinen viesti",
    ];
    let dashed = t.starts_with("--") || t.starts_with("__") || t.ends_with(':');
    SEPARATORS.contains(&core) && (dashed || core.ends_with(':'))
        || lower.starts_with("begin forwarded message")
        || lower.starts_with("original message processed by")
        || (lower.starts_with("-----") && core.ends_with("message"))
}

/// A Mailman footer: a rule of underscores followed by "<list> mailing list".
fn is_list_footer(lines: &[&str], i: usize) -> bool {
    let t = lines[i].trim();
    if t.len() < 10 || !t.chars().all(|c| c == '_') {
        return false;
    }
    lines
        .iter()
        .skip(i + 1)
        .take(3)
        .any(|l| l.contains("mailing list") || l.contains("listinfo"))
}

/// "Sent from my iPhone", "Sent from my Verizon Wireless BlackBerry", "Get Outlook for iOS",
/// and their translations: short lines that are footers, not writing. A longer sentence that
/// happens to start the same way ("Sent from my desk, is much easier …") is kept.
fn is_mobile_signature(t: &str) -> bool {
    if t.is_empty() || t.len() > 200 {
        return false;
    }
    let first = t
        .chars()
        .next()
        .unwrap_or(' ')
        .to_lowercase()
        .next()
        .unwrap_or(' ');
    if !"sgvewoоil".contains(first) && !t.ends_with("から送信") {
        return false;
    }
    let lower = t.to_lowercase();
    // Drop "<https://…>" and "(http://…)" tails before counting words.
    let core = lower
        .split(['<', '('])
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    if core.contains(',') {
        return false;
    }
    const PREFIXES: &[&str] = &[
        "sent from ",
        "sent with ",
        "sent via ",
        "sent using ",
        "get outlook for ",
        "von meinem ",
        "gesendet von ",
        "envoyé de mon ",
        "envoyé depuis ",
        "enviado desde mi ",
        "enviado do meu ",
        "enviado de meu ",
        "verzonden vanaf mijn ",
        "verstuurd vanaf mijn ",
        "skickat från min ",
        "sendt fra min ",
        "wysłane z mojego ",
        "wysłano z mojego ",
        "отправлено с ",
        "inviato da ",
        "lähetetty ",
    ];
    let words = core.split_whitespace().count();
    PREFIXES.iter().any(|p| core.starts_with(p)) && words <= 7
        || core.ends_with("から送信") && core.chars().count() < 30
}

/// "CAUTION: This email originated from outside …" banners added by mail gateways.
fn is_external_banner(t: &str) -> bool {
    if !t.starts_with(['C', 'c', '[', '*']) {
        return false;
    }
    let lower = t.to_lowercase();
    (lower.starts_with("caution:")
        || lower.starts_with("[external]")
        || lower.starts_with("*external"))
        && lower.contains("originated from outside")
}

/// Drop the lines of `text` that also occur in `parent` (the message it replies to), compared
/// with whitespace normalised and quote markers removed. Catches quotes without markers, as
/// long as the line is long enough that a match is not a coincidence ("Thanks," is not).
pub fn remove_parent_lines(text: &str, parent: &str) -> String {
    let parent_lines: HashSet<String> = parent
        .lines()
        .map(line_key)
        .filter(|l| is_non_trivial(l))
        .collect();
    if parent_lines.is_empty() {
        return text.to_string();
    }
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let key = line_key(l);
            !(is_non_trivial(&key) && parent_lines.contains(&key))
        })
        .collect();
    finish(&kept)
}

fn line_key(line: &str) -> String {
    let t = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    normalize_whitespace(t).to_lowercase()
}

fn is_non_trivial(key: &str) -> bool {
    key.chars().count() >= 16 && key.split(' ').count() >= 3
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_wrote_and_keeps_interleaved_answers() {
        let text = "Sure, see below.\n\nOn Mon, 3 Jun 2024 at 10:00, Ann <ann@x.org> wrote:\n> a?\n\nyes\n> b?\nno\n";
        assert_eq!(strip_reply(text), "Sure, see below.\n\nyes\nno");
    }

    #[test]
    fn cuts_unquoted_tail_after_attribution() {
        let text = "Fine by me.\n\nOn Tue, Sep 25, 2012 at 8:59 AM, Chris\n<c@example.com> wrote:\n\nOld text\n";
        assert_eq!(strip_reply(text), "Fine by me.");
    }

    #[test]
    fn localized_attributions() {
        for header in [
            "Am 01.02.2023 um 10:00 schrieb Max Muster <max@example.de>:",
            "Le 1 févr. 2023 à 10:00, Jean <jean@example.fr> a écrit :",
            "El 1 feb 2023, a las 10:00, Ana <ana@example.es> escribió:",
            "Op 1 feb. 2023 om 10:00 heeft Jan <jan@example.nl> het volgende geschreven:",
            "Op wo 1 feb. 2023 om 10:00 schreef Jan <jan@example.nl>:",
            "Den 1. feb. 2023 kl. 10.00 skrev Per <per@example.dk>:",
            "W dniu 1.02.2023 o 10:00, Jan <jan@example.pl> pisze:",
            "1 февраля 2023 г., в 10:00, Иван <ivan@example.ru> написал(а):",
            "2023年2月1日(水) 10:00 田中 <tanaka@example.jp>:",
        ] {
            let text = format!("Answer here.\n\n{header}\n\nquoted original\n");
            assert_eq!(strip_reply(&text), "Answer here.", "header: {header}");
        }
    }

    #[test]
    fn on_sentence_is_not_a_header() {
        let text = "On your host run:\n\n    telnet 127.0.0.1 52698\n\nThen check.";
        assert_eq!(strip_reply(text), text);
    }

    #[test]
    fn outlook_block_and_separator() {
        let text = "Reply text\n\n________________________________\nFrom: A <a@x.com>\nSent: Monday\nTo: B\nSubject: Hi\n\nOriginal";
        assert_eq!(strip_reply(text), "Reply text");
        let text = "Svar.\n\n-----Oprindelig meddelelse-----\nFra: Peter\nSendt: 24\n\nHej";
        assert_eq!(strip_reply(text), "Svar.");
        let text = "Hallo\n\n*Von:* X\n*Gesendet:* Montag\n*An:* Y\n*Betreff:* Z\n\nalt";
        assert_eq!(strip_reply(text), "Hallo");
    }

    #[test]
    fn header_block_on_top_is_skipped_not_cut() {
        let text = "Od: Jan <jan@example.com>\nWysłano: środa\nTemat: Test\n\nCześć Anno,\n\nJan";
        assert_eq!(strip_reply(text), "Cześć Anno,\n\nJan");
    }

    #[test]
    fn signatures_and_mobile_footers() {
        assert_eq!(strip_reply("Hi\n\nSent from my iPhone"), "Hi");
        assert_eq!(
            strip_reply("Hi\n\nSent from my Verizon Wireless BlackBerry"),
            "Hi"
        );
        assert_eq!(
            strip_reply("Hi\nGet Outlook for iOS<https://aka.ms/o0ukef>"),
            "Hi"
        );
        let keep = "Hi\n\nSent from my desk, is much easier then my mobile phone.";
        assert_eq!(strip_reply(keep), keep);
        assert_eq!(
            strip_reply("Hi there -- not a sig\n\n-- \nrick"),
            "Hi there -- not a sig"
        );
    }

    #[test]
    fn mailing_list_footer() {
        let text = "Question?\n\n-Me\n\n\n_______________________________________________\nfoo mailing list\nfoo@example.org";
        assert_eq!(strip_reply(text), "Question?\n\n-Me");
    }

    #[test]
    fn parent_lines_are_removed() {
        let parent = "Can we meet on Tuesday at the office?\nThanks,\nAnn";
        let text = "Yes, Tuesday works.\nCan we meet on Tuesday at the office?\nThanks,\nBob";
        assert_eq!(
            remove_parent_lines(text, parent),
            "Yes, Tuesday works.\nThanks,\nBob"
        );
        assert_eq!(remove_parent_lines("abc", ""), "abc");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "", "\r", ">", "--", "On", "From:", "\u{feff}", "é:", "On 1:\n>",
        ] {
            let _ = strip_reply(s);
            let _ = remove_parent_lines(s, s);
        }
    }
}
