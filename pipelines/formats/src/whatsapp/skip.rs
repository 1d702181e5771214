//! What in a WhatsApp body is not anyone's writing: system lines, media placeholders,
//! deleted-message notices, missed calls. These become `skipped`, never items, because an
//! avatar trained on "<Media omitted>" learns nothing about the person.
//!
//! Two signals do most of the work without a phrase list per language:
//! - iOS (and some Android) exports start system and placeholder texts with a direction mark
//!   (U+200E/U+200F): `Name: \u{200E}image omitted`, `\u{200E}You created group`. People's own
//!   messages do not start with one.
//! - iOS document placeholders put the mark after the file name: `report.pdf \u{200E}document
//!   omitted`.
//!
//! Android writes its placeholders without marks, so those are matched by shape (`<…>`,
//! `file (file attached)`, `location: https://maps.google.com/?q=`) and by short lists of the
//! localised phrases seen in real exports.

use super::header::{is_mark, is_odd_space};

/// The marks WhatsApp starts system texts with. Not U+202A/U+2068, which wrap names and
/// phone numbers (`\u{202A}+40 521…\u{202C}: hi` is a message).
fn is_lrm_rlm(c: char) -> bool {
    c == '\u{200E}' || c == '\u{200F}'
}

/// Name as the export shows it, without bidi marks (`\u{202A}+40 521…\u{202C}`) and with
/// no-break spaces made plain.
pub(super) fn clean_name(s: &str) -> String {
    if s.is_ascii() {
        return s.trim().to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_mark(c) {
            continue;
        }
        out.push(if is_odd_space(c) { ' ' } else { c });
    }
    out.trim().to_string()
}

/// Byte offset of the first `": "` (found with memchr, not a substring searcher).
fn colon_space(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = b.get(from..)?.iter().position(|&c| c == b':') {
        let at = from + p;
        if b.get(at + 1) == Some(&b' ') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Does `s` contain a space followed by LRM/RLM?
fn space_then_mark(s: &str) -> bool {
    // Both marks start with 0xE2; most messages have no such byte at all.
    let b = s.as_bytes();
    b.contains(&0xE2)
        && b.windows(4)
            .any(|w| w[0] == b' ' && w[1] == 0xE2 && w[2] == 0x80 && (w[3] == 0x8E || w[3] == 0x8F))
}

/// Is this body (what follows the header) a system line, i.e. has no `Name: ` part?
/// Returns the author and the text otherwise.
pub(super) fn split_author(body: &str) -> Option<(String, &str)> {
    // A system text right after the header starts with a mark: `] \u{200E}You created group`.
    if body.trim_start_matches(' ').starts_with(is_lrm_rlm) {
        return None;
    }
    let (name, text) = match colon_space(body) {
        Some(p) => (&body[..p], &body[p + 2..]),
        None => (body.strip_suffix(':')?, ""),
    };
    let name = clean_name(name);
    // `X changed the subject to "Re: plans"` is a system line, not an author `X changed…`.
    let plausible = !name.is_empty()
        && name.chars().count() <= 100
        && !name.contains(['"', '“', '”', '«', '»']);
    plausible.then_some((name, text))
}

/// Is the first line of a message a placeholder or notice rather than writing?
/// Runs on every message, so each test is guarded by a cheap byte check before it allocates.
pub(super) fn is_placeholder(first_line: &str) -> bool {
    let raw = first_line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
    if raw.starts_with(is_lrm_rlm) {
        return true;
    }
    // `Some file.txt \u{200E}document omitted`, `x \u{200E}<attached: 0001-x.pdf>`.
    if space_then_mark(raw) {
        return true;
    }
    let t = raw.trim_matches(|c: char| is_mark(c) || is_odd_space(c) || c == ' ');
    if t.is_empty() {
        return false;
    }
    if let Some(inner) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        if inner.starts_with("attached:") {
            return true;
        }
        if inner.chars().count() <= 48 && !inner.contains(['<', '>']) {
            let lower = inner.to_lowercase();
            if MEDIA_WORDS.iter().any(|w| lower.contains(w)) {
                return true;
            }
        }
    }
    if let Some(stripped) = t.strip_suffix(')') {
        if let Some(open) = stripped.rfind(" (") {
            let what = &stripped[open + 2..];
            if what.len() <= 40 && ATTACHED.contains(&what.to_lowercase().as_str()) {
                return true;
            }
        }
    }
    // Android location shares: `location: https://maps.google.com/?q=…` in any language.
    if let Some(p) = t.find(':') {
        if t[p..].starts_with(": https://maps.google.com/?q=") && !t[..p].contains(' ') {
            return true;
        }
    }
    let bare = t.trim_end_matches('.');
    if bare.len() < 128
        && NOTICE_LENGTHS & (1 << bare.len()) != 0
        && NOTICES.contains(&bare.to_lowercase().as_str())
    {
        return true;
    }
    bare.get(..9)
        .is_some_and(|s| s.eq_ignore_ascii_case("messages "))
        && NOTICE_PREFIXES
            .iter()
            .any(|p| bare.to_lowercase().starts_with(p))
}

/// Is a media caption just the shared document's file name (`Report.pdf`), which Android
/// writes on the line after `<Media omitted>` / `DOC-….pdf (file attached)`?
pub(super) fn is_file_name(caption: &str) -> bool {
    const EXT: &[&str] = &[
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv", "zip", "rar", "7z",
        "vcf", "apk", "odt", "ods", "odp", "rtf", "epub", "key", "pages", "numbers", "mp3", "mp4",
        "opus", "m4a", "ogg", "jpg", "jpeg", "png", "gif", "webp", "heic", "mov",
    ];
    let c = caption.trim();
    !c.contains('\n')
        && c.rsplit_once('.').is_some_and(|(stem, ext)| {
            !stem.is_empty() && EXT.contains(&ext.to_ascii_lowercase().as_str())
        })
}

/// Strip the marker newer Android versions append to edited messages.
pub(super) fn strip_edited(text: &str) -> &str {
    const EDITED: &[&str] = &[
        "<This message was edited>",
        "<Diese Nachricht wurde bearbeitet>",
        "<Se editó este mensaje.>",
    ];
    for e in EDITED {
        if let Some(rest) = text.strip_suffix(e) {
            return rest.trim_end_matches([' ', '\u{200E}']);
        }
    }
    text
}

/// Words inside Android's `<Media omitted>` in the languages we have seen or know.
const MEDIA_WORDS: &[&str] = &[
    "media",
    "médi",
    "medien",
    "mídia",
    "medya",
    "multimedia",
    "медиа",
    "медіа",
    "omitted",
    "omis",
    "omess",
    "weggel",
    "vynech",
    "ausgeschlossen",
    "pominięto",
    "tidak disertakan",
    "ficheiro",
    "arquivo",
    "файл",
    "미디어",
    "メディア",
    "媒体",
    "媒體",
    "สื่อ",
    "وسائط",
    "मीडिया",
    "phương tiện",
];

/// Inside the parentheses of `IMG-….jpg (file attached)`.
const ATTACHED: &[&str] = &[
    "file attached",
    "soubor byl přiložen",
    "bestand bijgevoegd",
    "файл добавлен",
    "файл додано",
    "datei angehängt",
    "archivo adjunto",
    "fichier joint",
    "file allegato",
    "arquivo anexado",
    "ficheiro anexado",
    "plik załączony",
    "dosya ekli",
    "berkas terlampir",
    "fil bifogad",
];

/// Whole-text notices, lowercased, without a final `.`.
const NOTICES: &[&str] = &[
    // Deleted messages.
    "this message was deleted",
    "you deleted this message",
    "se eliminó este mensaje",
    "eliminaste este mensaje",
    "este mensaje fue eliminado",
    "diese nachricht wurde gelöscht",
    "du hast diese nachricht gelöscht",
    "ce message a été supprimé",
    "vous avez supprimé ce message",
    "questo messaggio è stato eliminato",
    "hai eliminato questo messaggio",
    "esta mensagem foi apagada",
    "apagou esta mensagem",
    "você apagou esta mensagem",
    "mensagem apagada",
    "dit bericht is verwijderd",
    "u hebt dit bericht verwijderd",
    "je hebt dit bericht verwijderd",
    "данное сообщение удалено",
    "вы удалили данное сообщение",
    "это сообщение удалено",
    "це повідомлення було видалено",
    "ви видалили це повідомлення",
    "tato zpráva byla odstraněna",
    "tuto zprávu jste odstranil/a",
    "tato zpráva byla smazána",
    "tuto zprávu jste smazal/a",
    "pesan ini dihapus",
    "anda menghapus pesan ini",
    "bu mesaj silindi",
    "bu mesajı sildiniz",
    "ta wiadomość została usunięta",
    "usunięto tę wiadomość",
    // Missed calls (Android writes them as the caller's message).
    "missed voice call",
    "missed video call",
    "missed group voice call",
    "missed group video call",
    "пропущенный аудиозвонок",
    "пропущенный видеозвонок",
    "zmeškaný hovor",
    "zmeškaný videohovor",
    "gemiste spraakoproep",
    "gemiste video-oproep",
    "verpasster sprachanruf",
    "verpasster videoanruf",
    "llamada perdida",
    "videollamada perdida",
    "llamada de voz perdida",
    "appel vocal manqué",
    "appel vidéo manqué",
    "chiamata vocale persa",
    "videochiamata persa",
    "chamada de voz perdida",
    "chamada de vídeo perdida",
    // View-once media is exported as the literal text `null`; retries as this.
    "null",
    "waiting for this message. this may take a while",
];

/// Bit `n` set when some notice is `n` bytes long: a length check before lowercasing.
/// (Lowercasing keeps the byte length of every letter these notices start with.)
const NOTICE_LENGTHS: u128 = {
    let mut mask = 0u128;
    let mut i = 0;
    while i < NOTICES.len() {
        mask |= 1 << NOTICES[i].len();
        i += 1;
    }
    mask
};

/// Old English system texts that some exports attribute to the chat itself.
const NOTICE_PREFIXES: &[&str] = &[
    "messages and calls are end-to-end encrypted",
    "messages to this group are now secured with end-to-end encryption",
    "messages you send to this group are now secured with end-to-end encryption",
    "messages to this chat and calls are now secured with end-to-end encryption",
    "messages you send to this chat and calls are now secured with end-to-end encryption",
];

/// Thread name from the export's file name: `WhatsApp Chat with Jane Doe.txt` -> `Jane Doe`,
/// `WhatsApp Chat - Group X.txt` -> `Group X`, `_chat.txt` -> `WhatsApp chat`; localised
/// names (`WhatsApp-chat met X`, `Chat de WhatsApp con X`) likewise. A name that does not
/// mention WhatsApp is used as it is, without folder and extension.
pub(super) fn thread_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let decoded = percent_decode(base);
    let stem = decoded
        .strip_suffix(".txt")
        .or_else(|| decoded.strip_suffix(".TXT"))
        .unwrap_or(&decoded)
        .trim();
    let fallback = || "WhatsApp chat".to_string();
    let lower = stem.to_lowercase();
    let Some(pos) = lower.find("whatsapp") else {
        let s = stem.trim_matches('_').trim();
        return if s.is_empty() || s.eq_ignore_ascii_case("chat") {
            fallback()
        } else {
            s.to_string()
        };
    };
    // Lowercasing can change byte lengths outside ASCII; fall back to the whole stem then.
    let mut rest = if lower.len() == stem.len() {
        &stem[pos + "whatsapp".len()..]
    } else {
        stem
    };
    rest = rest.trim_start_matches([' ', '-', '_']);
    if rest
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("chat"))
    {
        rest = &rest[4..];
    }
    rest = rest.trim_start_matches([' ', '-', '–', ':', '_']);
    const CONNECTORS: &[&str] = &[
        "with", "met", "mit", "con", "avec", "com", "с", "z", "ze", "med", "ile", "dengan", "với",
    ];
    if let Some((first, after)) = rest.split_once(' ') {
        if CONNECTORS.contains(&first.to_lowercase().as_str()) {
            rest = after;
        }
    }
    let rest = rest.trim();
    if rest.is_empty() {
        fallback()
    } else {
        rest.to_string()
    }
}

/// `%20` and friends, as browsers save `WhatsApp%20Chat%20with%20X.txt`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn thread_names() {
        assert_eq!(thread_name("WhatsApp Chat with Jane Doe.txt"), "Jane Doe");
        assert_eq!(thread_name("WhatsApp Chat - Group X.txt"), "Group X");
        assert_eq!(thread_name("_chat.txt"), "WhatsApp chat");
        assert_eq!(
            thread_name("exports/WhatsApp%20Chat%20with%20Jane%20Doe.txt"),
            "Jane Doe"
        );
        assert_eq!(thread_name("WhatsApp-chat met Dmitry S.txt"), "Dmitry S");
        assert_eq!(thread_name("Chat de WhatsApp con Ana.txt"), "Ana");
        assert_eq!(thread_name("WhatsApp Chat mit Jörg.txt"), "Jörg");
        assert_eq!(thread_name("family.txt"), "family");
        assert_eq!(thread_name("WhatsApp Chat.txt"), "WhatsApp chat");
        assert_eq!(thread_name("100%.txt"), "100%");
    }

    #[test]
    fn authors_and_system_lines() {
        assert_eq!(
            split_author("Jane: hi: there"),
            Some(("Jane".into(), "hi: there"))
        );
        assert_eq!(
            split_author("\u{202A}+40\u{00A0}521\u{202C}: x"),
            Some(("+40 521".into(), "x"))
        );
        assert_eq!(split_author("Jane:"), Some(("Jane".into(), "")));
        assert_eq!(split_author("You were added"), None);
        assert_eq!(split_author("John Doe:."), None);
        assert_eq!(split_author("\u{200E}You created group “G: x”"), None);
        assert_eq!(split_author("X changed the subject to \"Re: plans\""), None);
    }

    #[test]
    fn placeholders() {
        for p in [
            "<Media omitted>",
            "<Medien ausgeschlossen>",
            "<Без медиафайлов>",
            "\u{200E}image omitted",
            "\u{200E}<attached: 00000012-PHOTO-2022-03-27-21-41-55.jpg>",
            "Some file.txt \u{200E}document omitted",
            "IMG-20220323-WA0002.jpg (file attached)",
            "\u{200E}Alex.vcf (soubor byl přiložen)",
            "locatie: https://maps.google.com/?q=1,2",
            "This message was deleted",
            "You deleted this message.",
            "Missed voice call",
            "null",
        ] {
            assert!(is_placeholder(p), "{p:?}");
        }
        for t in [
            "Hello",
            "<3",
            "<b>bold</b>",
            "see (attached)",
            "location: my place",
            "Nullable",
        ] {
            assert!(!is_placeholder(t), "{t:?}");
        }
        assert!(
            is_file_name("Resume-Dmitry-Starkov.pdf")
                && is_file_name("WhatsApp Chat with P(Q).txt")
        );
        assert!(
            !is_file_name("Caption") && !is_file_name("see you.") && !is_file_name("a.pdf\nnice")
        );
        assert!(
            space_then_mark("a \u{200F}b")
                && !space_then_mark("a\u{200F}b")
                && !space_then_mark("it’s")
        );
        assert_eq!(colon_space("a:b: c"), Some(3));
        assert_eq!(strip_edited("ok <This message was edited>"), "ok");
    }
}
