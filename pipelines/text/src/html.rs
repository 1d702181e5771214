//! HTML mail -> text, with the quoted thread removed first.
//!
//! In HTML mail the clients say where the quote is (`div.gmail_quote`,
//! `blockquote type=cite`, Outlook's `#divRplyFwdMsg` or its bordered header div), and that
//! structure is lost once the HTML is flattened, so quotes are removed on the tag stream.
//! A small tolerant scanner is enough for this: mail HTML is often broken, we only need tags,
//! attributes and text, and a full HTML5 parser would cost more to compile than everything
//! else in this crate.

use crate::quotes::header_key;

/// Placeholder for a removed quote while rendering, so the attribution line right before it
/// ("On … wrote:") can be dropped too. A private-use code point never found in real mail text
/// we keep.
const MARK: char = '\u{E000}';

#[derive(Debug, Clone)]
enum Tok<'a> {
    Text(&'a str),
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    End(String),
    /// Where a quote was removed.
    Removed,
}

/// Render HTML as text: block elements become line breaks, entities are decoded, scripts,
/// styles and comments are dropped.
pub fn html_to_text(html: &str) -> String {
    render(&tokenize(html))
}

/// Remove the quoted parts a mail client marked in the HTML, then render the rest as text.
pub fn html_to_text_without_quotes(html: &str) -> String {
    render(&remove_quotes(tokenize(html)))
}

fn tokenize(html: &str) -> Vec<Tok<'_>> {
    let b = html.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut text_start = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let next = b.get(i + 1).copied().unwrap_or(0);
        let is_end = next == b'/' && b.get(i + 2).is_some_and(|c| c.is_ascii_alphabetic());
        if !(next == b'!' || next == b'?' || next.is_ascii_alphabetic() || is_end) {
            i += 1;
            continue;
        }
        if text_start < i {
            toks.push(Tok::Text(&html[text_start..i]));
        }
        if html[i..].starts_with("<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |p| p + 3);
        } else if next == b'!' || next == b'?' {
            i = find(b, i + 2, b">").map_or(b.len(), |p| p + 1);
        } else if is_end {
            let (name, after) = read_name(b, i + 2);
            i = find(b, after, b">").map_or(b.len(), |p| p + 1);
            toks.push(Tok::End(name));
        } else {
            let (name, after) = read_name(b, i + 1);
            let (attrs, self_closing, end) = read_attrs(html, after);
            i = end;
            let raw = matches!(name.as_str(), "script" | "style" | "title" | "xml");
            toks.push(Tok::Start {
                name: name.clone(),
                attrs,
                self_closing,
            });
            if raw && !self_closing {
                // Skip to the matching close tag without interpreting the content.
                let close = format!("</{name}");
                let lower_tail = html[i..].to_ascii_lowercase();
                match lower_tail.find(&close) {
                    Some(p) => {
                        let after_close = i + p;
                        i = find(b, after_close, b">").map_or(b.len(), |q| q + 1);
                    }
                    None => i = b.len(),
                }
                toks.push(Tok::End(name));
            }
        }
        text_start = i;
    }
    if text_start < b.len() {
        toks.push(Tok::Text(&html[text_start..]));
    }
    toks
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn read_name(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b':' | b'-' | b'_')) {
        i += 1;
    }
    (
        String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase(),
        i,
    )
}

/// Attributes up to the closing `>`: (attrs, self-closing, index after `>`).
fn read_attrs(html: &str, mut i: usize) -> (Vec<(String, String)>, bool, usize) {
    let b = html.as_bytes();
    let mut attrs = Vec::new();
    let mut self_closing = false;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            self_closing = b[i] == b'/';
            i += 1;
        }
        if i >= b.len() {
            return (attrs, self_closing, b.len());
        }
        if b[i] == b'>' {
            return (attrs, self_closing, i + 1);
        }
        self_closing = false;
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vstart = i + 1;
                let vend = find(b, vstart, &[q]).unwrap_or(b.len());
                value = String::from_utf8_lossy(&b[vstart..vend]).into_owned();
                i = (vend + 1).min(b.len());
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = String::from_utf8_lossy(&b[vstart..i]).into_owned();
            }
        }
        if name.is_empty() && i == start {
            // A stray byte such as `=`: skip it so the loop always advances.
            i += 1;
        } else {
            attrs.push((name, value));
        }
    }
}

fn attr<'t>(attrs: &'t [(String, String)], name: &str) -> Option<&'t str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn has_class(attrs: &[(String, String)], pred: impl Fn(&str) -> bool) -> bool {
    attr(attrs, "class").is_some_and(|c| c.split_whitespace().any(&pred))
}

/// An element whose whole subtree is quoted material.
fn is_quote_container(name: &str, attrs: &[(String, String)]) -> bool {
    if name == "blockquote" {
        return true;
    }
    if has_class(attrs, |c| {
        c.ends_with("gmail_quote")
            || c.ends_with("gmail_quote_container")
            || c.ends_with("gmail_attr")
            || c == "moz-cite-prefix"
            || c == "moz-forward-container"
            || c.starts_with("yahoo_quoted")
            || c == "protonmail_quote"
            || c == "zmail_extra"
    }) {
        return true;
    }
    attr(attrs, "id").is_some_and(|id| {
        id.starts_with("yahoo_quoted")
            || id.starts_with("AOLMsgPart")
            || id == "mail-app-auto-quote"
    })
}

/// An element that starts the quoted tail: it and everything after it goes.
fn is_cut_marker(attrs: &[(String, String)]) -> bool {
    if attr(attrs, "id").is_some_and(|id| {
        matches!(
            id,
            "divRplyFwdMsg" | "OLK_SRC_BODY_SECTION" | "appendonsend"
        ) || id.ends_with("divRplyFwdMsg")
    }) {
        return true;
    }
    if has_class(attrs, |c| c == "OutlookMessageHeader") {
        return true;
    }
    let style = compact_style(attrs);
    style.contains("border-top:solid#e1e1e1") || style.contains("border-top:solid#b5c4df")
}

fn compact_style(attrs: &[(String, String)]) -> String {
    attr(attrs, "style")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A rule (`<hr>`, or a div with a solid top border as Windows Mail and Outlook draw) that
/// starts the quoted tail only if a header block (`From:`, `De:`, `От:` …) follows it.
fn is_rule(name: &str, attrs: &[(String, String)]) -> bool {
    if name == "hr" {
        return true;
    }
    let style = compact_style(attrs);
    style.contains("border-top:solid") || style.contains("border-top-style:solid")
}

fn followed_by_header(toks: &[Tok<'_>], from: usize) -> bool {
    let mut text = String::new();
    for t in toks.iter().skip(from) {
        if let Tok::Text(s) = t {
            text.push_str(&decode_entities(s));
            text.push(' ');
            if text.trim().chars().count() > 120 {
                break;
            }
        }
    }
    let text = crate::normalize_whitespace(&text);
    header_key(&text).is_some()
}

fn remove_quotes(toks: Vec<Tok<'_>>) -> Vec<Tok<'_>> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if let Tok::Start {
            name,
            attrs,
            self_closing,
        } = &toks[i]
        {
            if is_cut_marker(attrs) || (is_rule(name, attrs) && followed_by_header(&toks, i + 1)) {
                out.push(Tok::Removed);
                return out;
            }
            if is_quote_container(name, attrs) && !self_closing {
                i = matching_end(&toks, i);
                out.push(Tok::Removed);
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    out
}

/// Index after the close tag matching the start tag at `i` (end of input if unclosed).
fn matching_end(toks: &[Tok<'_>], i: usize) -> usize {
    let Some(Tok::Start { name, .. }) = toks.get(i) else {
        return i + 1;
    };
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(i) {
        match t {
            Tok::Start {
                name: n,
                self_closing: false,
                ..
            } if n == name => depth += 1,
            Tok::End(n) if n == name => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "div"
            | "p"
            | "ul"
            | "ol"
            | "li"
            | "table"
            | "tr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "hr"
            | "dl"
            | "dt"
            | "dd"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "center"
            | "address"
            | "form"
            | "body"
            | "html"
            | "tbody"
            | "thead"
    )
}

struct Renderer {
    out: String,
    pending_space: bool,
    pre: usize,
    skip: usize,
}

impl Renderer {
    fn newline(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.pending_space = false;
    }

    fn blank_line(&mut self) {
        self.newline();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn text(&mut self, s: &str) {
        let s = decode_entities(s);
        if self.pre > 0 {
            self.out.push_str(&s.replace('\r', ""));
            return;
        }
        for c in s.chars() {
            if matches!(c, '\u{200b}'..='\u{200f}' | '\u{feff}' | '\u{ad}') {
                continue;
            }
            if c.is_whitespace() {
                self.pending_space = true;
            } else {
                if self.pending_space && !self.out.is_empty() && !self.out.ends_with('\n') {
                    self.out.push(' ');
                }
                self.pending_space = false;
                self.out.push(c);
            }
        }
    }
}

fn render(toks: &[Tok<'_>]) -> String {
    let mut r = Renderer {
        out: String::new(),
        pending_space: false,
        pre: 0,
        skip: 0,
    };
    for t in toks {
        match t {
            Tok::Text(s) => {
                if r.skip == 0 {
                    r.text(s);
                }
            }
            Tok::Start {
                name,
                attrs,
                self_closing,
            } => match name.as_str() {
                "script" | "style" | "title" | "xml" | "head" if !self_closing => r.skip += 1,
                "br" => {
                    r.out.push('\n');
                    r.pending_space = false;
                }
                "pre" => {
                    r.newline();
                    r.pre += 1;
                }
                "li" => {
                    r.newline();
                    r.out.push_str("- ");
                }
                "td" | "th" => r.pending_space = true,
                "p" if !has_class(attrs, |c| c.starts_with("Mso")) => r.blank_line(),
                n if is_block(n) => r.newline(),
                _ => {}
            },
            Tok::End(name) => match name.as_str() {
                "script" | "style" | "title" | "xml" | "head" => r.skip = r.skip.saturating_sub(1),
                "pre" => {
                    r.pre = r.pre.saturating_sub(1);
                    r.newline();
                }
                "p" => r.blank_line(),
                n if is_block(n) => r.newline(),
                _ => {}
            },
            Tok::Removed => {
                r.newline();
                r.out.push(MARK);
                r.out.push('\n');
            }
        }
    }
    tidy(&r.out)
}

/// Trim lines, drop the attribution line right before a removed quote, squeeze blank lines.
fn tidy(text: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.replace('\u{a0}', " ");
        if line.contains(MARK) {
            if let Some(pos) = lines.iter().rposition(|l| !l.trim().is_empty()) {
                let prev = lines[pos].trim();
                if prev.ends_with(':')
                    && prev.chars().count() < 300
                    && (prev.contains('@') || prev.chars().any(|c| c.is_ascii_digit()))
                {
                    lines.truncate(pos);
                }
            }
            let rest = line.replace(MARK, "");
            if !rest.trim().is_empty() {
                lines.push(rest.trim().to_string());
            }
            continue;
        }
        lines.push(line.trim().to_string());
    }
    let mut out = String::new();
    let mut blanks = 0;
    for l in &lines {
        if l.is_empty() {
            blanks += 1;
            if blanks > 1 {
                continue;
            }
        } else {
            blanks = 0;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.trim().to_string()
}

/// Decode the named entities mail HTML uses and all numeric ones; unknown ones stay as-is.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail[1..]
            .char_indices()
            .take(10)
            .find(|&(_, c)| c == ';')
            .map(|(p, _)| p + 1);
        let decoded = semi.and_then(|p| entity(&tail[1..p]).map(|c| (c, p + 1)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" | "NBSP" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "deg" => '°',
        "times" => '×',
        "divide" => '÷',
        "sect" => '§',
        "para" => '¶',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => '\u{200b}',
        "auml" => 'ä',
        "ouml" => 'ö',
        "uuml" => 'ü',
        "Auml" => 'Ä',
        "Ouml" => 'Ö',
        "Uuml" => 'Ü',
        "szlig" => 'ß',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "aacute" => 'á',
        "agrave" => 'à',
        "acirc" => 'â',
        "iacute" => 'í',
        "oacute" => 'ó',
        "uacute" => 'ú',
        "ntilde" => 'ñ',
        "ccedil" => 'ç',
        "aring" => 'å',
        "Aring" => 'Å',
        "oslash" => 'ø',
        "Oslash" => 'Ø',
        "aelig" => 'æ',
        "AElig" => 'Æ',
        "Eacute" => 'É',
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_blocks_breaks_and_entities() {
        let html = "<html><head><style>p{x:y}</style><title>T</title></head><body>\
            <div>Hello&nbsp;&amp; welcome</div><div><br></div><div>Line&#33; &#x263A;</div>\
            <script>alert(1)</script><p>Para one</p><p>Para two</p><ul><li>a</li><li>b</li></ul>\
            </body></html>";
        assert_eq!(
            html_to_text(html),
            "Hello & welcome\n\nLine! ☺\n\nPara one\n\nPara two\n\n- a\n- b"
        );
    }

    #[test]
    fn removes_gmail_and_cite_quotes_with_attribution() {
        let html = "<div dir=ltr>Yes.</div><br><div class=\"gmail_quote\">On Mon, Ann &lt;a@x&gt; wrote:<blockquote>old</blockquote></div>";
        assert_eq!(html_to_text_without_quotes(html), "Yes.");
        let html = "Fine<br>On 26.06.2014 14:41, Al wrote:<br><blockquote type=\"cite\">old</blockquote><br>after";
        assert_eq!(html_to_text_without_quotes(html), "Fine\n\nafter");
    }

    #[test]
    fn cuts_outlook_header_div_and_hr_with_header() {
        let html = "<p class=MsoNormal>Ok<o:p></o:p></p><div style='border:none;border-top:solid #E1E1E1 1.0pt'><p><b>From:</b> X</p></div><p>old</p>";
        assert_eq!(html_to_text_without_quotes(html), "Ok");
        let html = "<div>Hi<hr><b>De :</b> x<br>old</div>";
        assert_eq!(html_to_text_without_quotes(html), "Hi");
        // A plain rule without a header after it is content.
        let html = "<div>Hi<hr>More</div>";
        assert_eq!(html_to_text_without_quotes(html), "Hi\nMore");
    }

    #[test]
    fn tolerates_broken_html() {
        for html in [
            "<",
            "<<>>",
            "<div",
            "<a href='x",
            "<!-- open",
            "&",
            "&#xFFFFFFFF;",
            "&#0;",
            "<b>é</",
            "<blockquote>unclosed",
            "<div class=gmail_quote><div>",
            "<script>",
            "</p></p>",
        ] {
            let _ = html_to_text(html);
            let _ = html_to_text_without_quotes(html);
        }
        assert_eq!(html_to_text("a < b and c > d"), "a < b and c > d");
        assert_eq!(html_to_text("<blockquote>unclosed"), "unclosed");
        assert_eq!(
            html_to_text_without_quotes("kept<blockquote>unclosed"),
            "kept"
        );
    }
}
