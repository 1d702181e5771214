//! Reading the `date, time` header that starts every WhatsApp message line, by hand.
//!
//! The header is scanned into raw numeric fields first and turned into a date only once the
//! whole file has been seen, because `03/04/21` means March or April depending on the phone's
//! locale and no single line can tell (see [`choose_order`]). The scanner reads the original
//! line through a cursor that normalises on the fly (bidi marks skipped, no-break spaces made
//! plain, Arabic-Indic/Persian/Devanagari/Bengali digits made ASCII, the Arabic comma made
//! `,`), so no copy of the line is made and the body is sliced from the untouched original.
//! Hand-written rather than regex: it is the hot loop of the parser.

use chrono::{NaiveDate, NaiveDateTime};

/// Invisible direction marks WhatsApp puts around times, names and system text.
pub(super) fn is_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}'
    )
}

/// Spaces that phones put inside times (`10:02\u{202F}PM`) and names.
pub(super) fn is_odd_space(c: char) -> bool {
    matches!(c, '\u{00A0}' | '\u{202F}' | '\u{2007}' | '\u{2009}')
}

/// ASCII value of a decimal digit in the scripts WhatsApp localises dates into.
fn digit_value(c: char) -> Option<u32> {
    let base = match c {
        '0'..='9' => '0',
        '\u{0660}'..='\u{0669}' => '\u{0660}', // Arabic-Indic
        '\u{06F0}'..='\u{06F9}' => '\u{06F0}', // Persian
        '\u{0966}'..='\u{096F}' => '\u{0966}', // Devanagari
        '\u{09E6}'..='\u{09EF}' => '\u{09E6}', // Bengali
        _ => return None,
    };
    Some(c as u32 - base as u32)
}

/// Calendar marks on a date field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Era {
    None,
    /// Thai Buddhist Era (`2565 BE`): Gregorian + 543.
    Buddhist,
    /// Japanese era years (`R4` = Reiwa 4 = 2022).
    Reiwa,
    Heisei,
    Showa,
}

/// One number of the date as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Field {
    pub value: u32,
    pub digits: u8,
    pub era: Era,
}

/// How the 12-hour marker (if any) shifts the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Am,
    Pm,
    /// English "at night" / Spanish "de la noche": 9 at night is 21, 2 at night is 2.
    Night,
}

/// A header as written, before the file-wide day/month order is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawHeader {
    pub fields: [Field; 3],
    /// The date separator: `/`, `.` or `-`.
    pub sep: char,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// A Latin `AM`/`PM` marker was used (a hint towards US month-first dates).
    pub latin_ampm: bool,
    /// Byte offset in the original line where the body (`Name: text` or a system text) starts.
    pub body_start: usize,
}

/// What the start of a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    Header(RawHeader),
    /// Shaped like a header (a three-part date, a time, a delimiter) but not readable; the
    /// reason says which part failed.
    Unreadable(&'static str),
    /// Ordinary text: a continuation line.
    NotHeader,
}

/// Scan one line.
pub(super) fn scan(line: &str) -> Scan {
    if !could_start_header(line) {
        return Scan::NotHeader;
    }
    let mut c = Cursor {
        s: line,
        pos: 0,
        last: '\0',
    };
    match read_header(&mut c) {
        Ok(h) => Scan::Header(h),
        Err(reason) => {
            if header_shaped(line) {
                Scan::Unreadable(reason)
            } else {
                Scan::NotHeader
            }
        }
    }
}

/// Cheap first-char test so continuation lines cost almost nothing.
fn could_start_header(line: &str) -> bool {
    let Some(c) = line.chars().find(|&c| !is_mark(c)) else {
        return false;
    };
    if c == '[' || digit_value(c).is_some() || matches!(c, '令' | '平' | '昭') {
        return true;
    }
    // Japanese era initials: `R1/12/31`.
    matches!(c, 'R' | 'H' | 'S')
        && line
            .trim_start_matches(is_mark)
            .as_bytes()
            .get(1)
            .is_some_and(u8::is_ascii_digit)
}

/// The normalised char at byte `pos` of `s` (marks skipped) and the byte offset after it.
#[inline]
fn next_char(s: &str, mut pos: usize) -> Option<(char, usize)> {
    // ASCII is never a mark and needs no mapping: the common case, kept cheap.
    let b = *s.as_bytes().get(pos)?;
    if b < 0x80 {
        return Some((b as char, pos + 1));
    }
    loop {
        let c = s.get(pos..)?.chars().next()?;
        pos += c.len_utf8();
        if is_mark(c) {
            continue;
        }
        let n = if is_odd_space(c) {
            ' '
        } else if c == '\u{060C}' {
            ','
        } else if let Some(d) = digit_value(c) {
            char::from_digit(d, 10).unwrap_or(c)
        } else {
            c
        };
        return Some((n, pos));
    }
}

/// Walks the original line, normalising as it goes (no copy of the line is made).
struct Cursor<'a> {
    s: &'a str,
    /// Byte offset of the next unread char in the original line.
    pos: usize,
    /// The last consumed (normalised) char.
    last: char,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        next_char(self.s, self.pos).map(|p| p.0)
    }
    fn peek_at(&self, k: usize) -> Option<char> {
        let mut pos = self.pos;
        for _ in 0..k {
            pos = next_char(self.s, pos)?.1;
        }
        next_char(self.s, pos).map(|p| p.0)
    }
    fn bump(&mut self) {
        if let Some((c, pos)) = next_char(self.s, self.pos) {
            self.last = c;
            self.pos = pos;
        }
    }
    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.bump();
        }
    }
    /// Byte offset in the original line just after the last consumed char.
    fn offset(&self) -> usize {
        self.pos
    }
    /// Up to 4 digits.
    fn number(&mut self) -> Option<(u32, u8)> {
        let mut v = 0u32;
        let mut n = 0u8;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            if n == 4 {
                return None;
            }
            v = v * 10 + d;
            n += 1;
            self.bump();
        }
        (n > 0).then_some((v, n))
    }
}

fn read_header(c: &mut Cursor) -> Result<RawHeader, &'static str> {
    let bracket = c.eat('[');
    c.skip_spaces();
    // Time first (Vietnamese): `[21:41:35, 3/27/22]`, `22:02, 31/12/2019 - `.
    let time_first = {
        let mut k = 0;
        while c.peek_at(k).is_some_and(|ch| ch.is_ascii_digit()) {
            k += 1;
        }
        (1..=2).contains(&k) && c.peek_at(k) == Some(':')
    };
    let (fields, sep, time) = if time_first {
        let time = read_time(c)?;
        skip_date_time_gap(c);
        let (fields, sep) = read_date(c)?;
        (fields, sep, time)
    } else {
        let (fields, sep) = read_date(c)?;
        skip_date_time_gap(c);
        let time = read_time(c)?;
        (fields, sep, time)
    };
    let (hour, minute, second, latin_ampm) = time;
    c.skip_spaces();
    let body_start = if bracket {
        if !c.eat(']') {
            return Err("no `]` after the time");
        }
        let o = c.offset();
        if c.peek() == Some(' ') {
            c.bump();
            c.offset()
        } else {
            o
        }
    } else if (c.peek() == Some('-') || c.peek() == Some('–')) && c.last == ' ' {
        c.bump();
        let o = c.offset();
        match c.peek() {
            Some(' ') => {
                c.bump();
                c.offset()
            }
            None => o,
            Some(_) => return Err("no space after ` - `"),
        }
    } else if c.peek() == Some(':') && c.peek_at(1) == Some(' ') {
        // Old iOS: `12/31/19, 10:02:05 PM: Name: text`.
        c.bump_n(2);
        c.offset()
    } else {
        return Err("no ` - ` or `]` after the time");
    };
    Ok(RawHeader {
        fields,
        sep,
        hour,
        minute,
        second,
        latin_ampm,
        body_start,
    })
}

/// `, ` / ` ` / `,` between date and time.
fn skip_date_time_gap(c: &mut Cursor) {
    while matches!(c.peek(), Some(' ' | ',')) {
        c.bump();
    }
}

fn read_field(c: &mut Cursor) -> Result<Field, &'static str> {
    let mut era = Era::None;
    match (c.peek(), c.peek_at(1)) {
        (Some('R'), Some(d)) if d.is_ascii_digit() => {
            era = Era::Reiwa;
            c.bump();
        }
        (Some('H'), Some(d)) if d.is_ascii_digit() => {
            era = Era::Heisei;
            c.bump();
        }
        (Some('S'), Some(d)) if d.is_ascii_digit() => {
            era = Era::Showa;
            c.bump();
        }
        (Some('令'), Some('和')) => {
            era = Era::Reiwa;
            c.bump_n(2);
        }
        (Some('平'), Some('成')) => {
            era = Era::Heisei;
            c.bump_n(2);
        }
        (Some('昭'), Some('和')) => {
            era = Era::Showa;
            c.bump_n(2);
        }
        _ => {}
    }
    let (value, digits) = c.number().ok_or("a date part is not a number")?;
    Ok(Field { value, digits, era })
}

fn read_date(c: &mut Cursor) -> Result<([Field; 3], char), &'static str> {
    let f1 = read_field(c)?;
    let sep = match c.peek() {
        Some(s @ ('/' | '.' | '-')) => s,
        _ => return Err("no date separator"),
    };
    c.bump();
    c.skip_spaces();
    let f2 = read_field(c)?;
    if !c.eat(sep) {
        return Err("the date has fewer than three parts");
    }
    c.skip_spaces();
    let mut f3 = read_field(c)?;
    // `2565 BE` (Buddhist Era), `2019. 12. 31.` (Hungarian, Korean).
    if c.peek() == Some(' ') && c.peek_at(1) == Some('B') && c.peek_at(2) == Some('E') {
        c.bump_n(3);
        f3.era = Era::Buddhist;
    } else if sep == '.' && c.peek() == Some('.') {
        c.bump();
    }
    if c.peek().is_some_and(|ch| ch.is_ascii_digit() || ch == sep) {
        return Err("the date has more than three parts");
    }
    Ok(([f1, f2, f3], sep))
}

/// `H:MM[:SS]` (or with `.` as in Indonesian), with an optional 12-hour marker before
/// (`오후 10:02`, `下午10:02`) or after (`10:02 PM`, `10:02 a. m.`, `9:15 in the morning`).
fn read_time(c: &mut Cursor) -> Result<(u32, u32, u32, bool), &'static str> {
    let mut period = None;
    let mut latin = false;
    if c.peek().is_some_and(|ch| ch.is_alphabetic()) {
        let word = read_marker(c);
        let (p, l) = classify_marker(word.as_str()).ok_or("unknown AM/PM word before the time")?;
        period = Some(p);
        latin = l;
        c.skip_spaces();
    }
    let (h, hd) = c.number().ok_or("no hour")?;
    if hd > 2 {
        return Err("the hour has more than two digits");
    }
    let tsep = match c.peek() {
        Some(s @ (':' | '.')) => s,
        _ => return Err("no `:` in the time"),
    };
    c.bump();
    let (m, md) = c.number().ok_or("no minutes")?;
    if md != 2 {
        return Err("minutes are not two digits");
    }
    let mut s = 0;
    if c.peek() == Some(tsep) && c.peek_at(1).is_some_and(|ch| ch.is_ascii_digit()) {
        c.bump();
        let (sv, sd) = c.number().ok_or("no seconds")?;
        if sd != 2 {
            return Err("seconds are not two digits");
        }
        s = sv;
    }
    // A marker after the time, possibly after a space.
    let save = (c.pos, c.last);
    c.skip_spaces();
    if period.is_none() && c.peek().is_some_and(|ch| ch.is_alphabetic()) {
        let word = read_marker(c);
        let (p, l) = classify_marker(word.as_str()).ok_or("unknown AM/PM word after the time")?;
        period = Some(p);
        latin = l;
    } else {
        (c.pos, c.last) = save;
    }
    let hour = match period {
        None => h,
        Some(_) if h > 12 => return Err("hour above 12 with an AM/PM marker"),
        Some(Period::Am) => h % 12,
        Some(Period::Pm) => h % 12 + 12,
        Some(Period::Night) if (6..12).contains(&h) => h + 12,
        Some(Period::Night) => h % 12,
    };
    if hour > 23 || m > 59 || s > 60 {
        return Err("the time is out of range");
    }
    Ok((hour, m, s.min(59), latin))
}

/// A short lowercased word kept on the stack: markers are read on every 12-hour line.
struct Word {
    buf: [u8; 96],
    len: usize,
    chars: usize,
}

impl Word {
    fn push(&mut self, c: char) {
        if self.len + c.len_utf8() <= self.buf.len() {
            self.len += c.encode_utf8(&mut self.buf[self.len..]).len();
        }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Letters, dots and single inner spaces: `PM`, `a. m.`, `in the morning`, `ก่อนเที่ยง`.
/// Returned lowercased without the spaces and dots.
fn read_marker(c: &mut Cursor) -> Word {
    let mut w = Word {
        buf: [0; 96],
        len: 0,
        chars: 0,
    };
    while let Some(ch) = c.peek() {
        let wordy = ch.is_alphabetic() || ch == '.' || is_combining(ch);
        if !(wordy || (ch == ' ' && c.peek_at(1).is_some_and(|n| n.is_alphabetic() || n == '.'))) {
            break;
        }
        if w.chars >= 24 {
            break;
        }
        w.chars += 1;
        if ch.is_ascii() {
            if ch != ' ' && ch != '.' {
                w.push(ch.to_ascii_lowercase());
            }
        } else {
            ch.to_lowercase().for_each(|l| w.push(l));
        }
        c.bump();
    }
    w
}

/// Thai and Devanagari vowel signs are not `alphabetic` in every Unicode version we see.
fn is_combining(c: char) -> bool {
    matches!(c, '\u{0E31}' | '\u{0E34}'..='\u{0E3A}' | '\u{0E47}'..='\u{0E4E}' | '\u{0900}'..='\u{0903}' | '\u{093A}'..='\u{094F}')
}

/// The 12-hour markers seen in exports, with spaces and dots removed and lowercased.
/// Returns the period and whether it is a Latin `am`/`pm`.
fn classify_marker(w: &str) -> Option<(Period, bool)> {
    Some(match w {
        "am" | "a" => (Period::Am, true),
        "pm" | "p" => (Period::Pm, true),
        // Japanese, Korean, Chinese, Vietnamese, Arabic, Persian, Thai, German, Swedish,
        // Greek, Hindi, Spanish/Portuguese long forms, English day periods.
        "午前"
        | "오전"
        | "上午"
        | "早上"
        | "凌晨"
        | "sa"
        | "ص"
        | "ق"
        | "قظ"
        | "ก่อนเที่ยง"
        | "vorm"
        | "fm"
        | "πμ"
        | "पूर्वाह्न"
        | "delamañana"
        | "damanhã"
        | "inthemorning"
        | "morning" => (Period::Am, false),
        "午後"
        | "오후"
        | "下午"
        | "中午"
        | "晚上"
        | "ch"
        | "م"
        | "ب"
        | "بظ"
        | "หลังเที่ยง"
        | "nachm"
        | "em"
        | "μμ"
        | "अपराह्न"
        | "delatarde"
        | "datarde"
        | "intheafternoon"
        | "intheevening"
        | "afternoon"
        | "evening"
        | "noon"
        | "delmediodía" => (Period::Pm, false),
        "atnight" | "delanoche" | "danoite" | "night" => (Period::Night, false),
        _ => return None,
    })
}

/// Does the (normalised) start of a line have the shape of a header even though it could not
/// be read: a three-part date (optionally after a time), a time, and a `]` or ` - `
/// delimiter? Used to refuse gluing such lines onto the previous message.
fn header_shaped(line: &str) -> bool {
    let mut chars = Vec::with_capacity(64);
    let mut pos = 0;
    while let Some((c, next)) = next_char(line, pos) {
        if chars.len() == 64 {
            break;
        }
        chars.push(c);
        pos = next;
    }
    let at = |k: usize| chars.get(k).copied();
    let digits_from = |mut k: usize| {
        let start = k;
        while at(k).is_some_and(|c| c.is_ascii_digit()) {
            k += 1;
        }
        (k, k - start)
    };
    let bracket = at(0) == Some('[');
    let mut i = usize::from(bracket);
    while at(i) == Some(' ') {
        i += 1;
    }
    // Time first: `22:02, ` / `22:02:05 `.
    let (k, n) = digits_from(i);
    let mut j = i;
    if (1..=2).contains(&n) && at(k) == Some(':') {
        j = k;
        while at(j).is_some_and(|c| c.is_ascii_digit() || c == ':') {
            j += 1;
        }
        while matches!(at(j), Some(' ' | ',')) {
            j += 1;
        }
    }
    // A date: three digit runs (an era may lead a run) joined by one of `/ . -`.
    let mut parts = 0;
    loop {
        let mut letters = 0;
        while letters < 2 && at(j).is_some_and(|c| c.is_alphabetic()) {
            j += 1;
            letters += 1;
        }
        let (k, n) = digits_from(j);
        if n == 0 {
            break;
        }
        parts += 1;
        j = k;
        if parts == 3 || !matches!(at(j), Some('/' | '.' | '-')) {
            break;
        }
        j += 1;
        while at(j) == Some(' ') {
            j += 1;
        }
    }
    if parts < 3 {
        return false;
    }
    let rest: String = chars[i..].iter().collect();
    let has_time = rest.as_bytes().windows(4).any(|w| {
        w[0].is_ascii_digit()
            && (w[1] == b':' || w[1] == b'.')
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
    });
    // `[date time` is a header even without its `]`; Android needs its ` - `.
    has_time && (bracket || rest.contains(" - "))
}

/// In which order the three date fields are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    Dmy,
    Mdy,
    Ymd,
    Ydm,
}

impl Order {
    pub(super) const ALL: [Order; 4] = [Order::Dmy, Order::Mdy, Order::Ymd, Order::Ydm];

    pub(super) fn name(self) -> &'static str {
        match self {
            Order::Dmy => "day/month/year",
            Order::Mdy => "month/day/year",
            Order::Ymd => "year/month/day",
            Order::Ydm => "year/day/month",
        }
    }
}

/// Which calendar a header's year is in, once read in some order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calendar {
    Gregorian,
    Jalali,
}

/// Year, month, day of a header read in `order`, validated cheaply (no chrono): the
/// year already converted to Gregorian except for Solar Hijri, whose (y, m, d) tuples sort
/// the same way as the Gregorian dates they stand for.
fn ymd(h: &RawHeader, order: Order) -> Option<(Calendar, i32, u32, u32)> {
    let [a, b, c] = h.fields;
    let (y, m, d) = match order {
        Order::Dmy => (c, b, a),
        Order::Mdy => (c, a, b),
        Order::Ymd => (a, b, c),
        Order::Ydm => (a, c, b),
    };
    if m.era != Era::None || d.era != Era::None || m.digits > 2 || d.digits > 2 {
        return None;
    }
    let (cal, year) = match y.era {
        Era::Reiwa => (Calendar::Gregorian, 2018 + y.value as i32),
        Era::Heisei => (Calendar::Gregorian, 1988 + y.value as i32),
        Era::Showa => (Calendar::Gregorian, 1925 + y.value as i32),
        Era::Buddhist => (Calendar::Gregorian, y.value as i32 - 543),
        Era::None => match (y.digits, y.value) {
            (2, v) => (Calendar::Gregorian, 2000 + v as i32),
            // Thai phones write Buddhist years without the `BE` suffix.
            (4, v) if v >= 2400 => (Calendar::Gregorian, v as i32 - 543),
            // Iranian phones write Solar Hijri years (1398/10/10 is 2019-12-31).
            (4, v) if (1300..1500).contains(&v) => (Calendar::Jalali, v as i32),
            (4, v) if (1900..2400).contains(&v) => (Calendar::Gregorian, v as i32),
            _ => return None,
        },
    };
    let max_day = match (cal, m.value) {
        (_, 0) | (_, 13..) => return None,
        (Calendar::Jalali, 1..=6) => 31,
        (Calendar::Jalali, _) => 30,
        (Calendar::Gregorian, 2) if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        (Calendar::Gregorian, 2) => 28,
        (Calendar::Gregorian, 4 | 6 | 9 | 11) => 30,
        (Calendar::Gregorian, _) => 31,
    };
    (1..=max_day)
        .contains(&d.value)
        .then_some((cal, year, m.value, d.value))
}

/// A number that sorts like the header's moment (for counting backward steps).
fn sort_key(h: &RawHeader, order: Order) -> Option<u64> {
    let (_, y, m, d) = ymd(h, order)?;
    let y = u64::try_from(y).ok()?;
    Some(
        (((((y * 13 + m as u64) * 32 + d as u64) * 24 + h.hour as u64) * 60 + h.minute as u64)
            * 61)
            + h.second as u64,
    )
}

/// The local date-time of a header read in `order`, or `None` if it is not a real date.
pub(super) fn datetime(h: &RawHeader, order: Order) -> Option<NaiveDateTime> {
    let date = match ymd(h, order)? {
        (Calendar::Gregorian, y, m, d) => NaiveDate::from_ymd_opt(y, m, d),
        (Calendar::Jalali, y, m, d) => jalali_to_gregorian(y as u32, m, d),
    }?;
    date.and_hms_opt(h.hour, h.minute, h.second)
}

/// Solar Hijri (Jalali) to Gregorian, the arithmetic algorithm used by Iranian software.
fn jalali_to_gregorian(jy: u32, jm: u32, jd: u32) -> Option<NaiveDate> {
    if !(1..=12).contains(&jm) || jd == 0 || jd > if jm <= 6 { 31 } else { 30 } {
        return None;
    }
    let jy = jy as i64 + 1595;
    let (jm, jd) = (jm as i64, jd as i64);
    let mut days = -355_668
        + 365 * jy
        + (jy / 33) * 8
        + ((jy % 33) + 3) / 4
        + jd
        + if jm < 7 {
            (jm - 1) * 31
        } else {
            (jm - 7) * 30 + 186
        };
    let mut gy = 400 * (days / 146_097);
    days %= 146_097;
    if days > 36_524 {
        days -= 1;
        gy += 100 * (days / 36_524);
        days %= 36_524;
        if days >= 365 {
            days += 1;
        }
    }
    gy += 4 * (days / 1461);
    days %= 1461;
    if days > 365 {
        gy += (days - 1) / 365;
        days = (days - 1) % 365;
    }
    let jan1 = NaiveDate::from_ymd_opt(i32::try_from(gy).ok()?, 1, 1)?;
    jan1.checked_add_days(chrono::Days::new(u64::try_from(days).ok()?))
}

/// Pick the day/month/year order for a whole file. Rule, in this priority:
/// 1. the order under which the fewest headers are impossible dates (a field above 12 rules
///    out reading it as a month; a 4-digit or era field fixes where the year is);
/// 2. then the order under which time runs backwards the fewest times (exports are
///    chronological, which separates `19-12-25` as 2019-12-25 from 19 Dec 2025);
/// 3. then locale hints: year last before year first; month-first only for `/` dates that
///    use a Latin AM/PM or an unpadded 2-digit-year US style (`1/7/23`), day-first otherwise.
pub(super) fn choose_order<'a, I>(headers: I) -> Order
where
    I: Iterator<Item = &'a RawHeader> + Clone,
{
    let mut total = 0usize;
    let mut slash = 0usize;
    let mut latin = false;
    let mut unpadded = false;
    let mut short_year_last = false;
    for h in headers.clone() {
        total += 1;
        if h.sep == '/' {
            slash += 1;
        }
        latin |= h.latin_ampm;
        unpadded |= h.fields[..2]
            .iter()
            .any(|f| f.digits == 1 && f.era == Era::None);
        short_year_last |= h.fields[2].digits == 2;
    }
    let slashy = slash * 2 > total;
    let month_first_hint = slashy && (latin || (unpadded && short_year_last));
    let hint = |o: Order| -> u8 {
        match (o, month_first_hint) {
            (Order::Dmy, false) | (Order::Mdy, true) => 0,
            (Order::Dmy, true) | (Order::Mdy, false) => 1,
            (Order::Ymd, _) => 2,
            (Order::Ydm, _) => 3,
        }
    };
    let mut best = (usize::MAX, usize::MAX, u8::MAX, Order::Dmy);
    for o in Order::ALL {
        let mut invalid = 0;
        let mut backwards = 0;
        let mut prev = 0u64;
        for h in headers.clone() {
            match sort_key(h, o) {
                None => {
                    invalid += 1;
                    if invalid > best.0 {
                        break;
                    }
                }
                Some(k) => {
                    if k < prev {
                        backwards += 1;
                    }
                    prev = k;
                }
            }
        }
        if (invalid, backwards, hint(o)) < (best.0, best.1, best.2) {
            best = (invalid, backwards, hint(o), o);
        }
    }
    best.3
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(line: &str) -> RawHeader {
        match scan(line) {
            Scan::Header(h) => h,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn at(line: &str, order: Order) -> String {
        let h = header(line);
        datetime(&h, order)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn reads_the_header_shapes() {
        assert_eq!(
            at("12/31/19, 10:02 PM - Jane: hi", Order::Mdy),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("31.12.19, 22:02 - Jane: hi", Order::Dmy),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("\u{200E}[31/12/2019, 22:02:05] Jane: hi", Order::Dmy),
            "2019-12-31 22:02:05"
        );
        assert_eq!(
            at("[12/31/19, 10:02:05\u{202F}PM] Jane: hi", Order::Mdy),
            "2019-12-31 22:02:05"
        );
        assert_eq!(
            at("2019-12-31, 22:02 - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("2019. 12. 31. 오후 10:02 - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("2019/12/31 下午10:02 - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("[3/27/22 21.41.35] Jane: hi", Order::Mdy),
            "2022-03-27 21:41:35"
        );
        assert_eq!(
            at("[21:41:35, 3/27/22] Jane: hi", Order::Mdy),
            "2022-03-27 21:41:35"
        );
        assert_eq!(
            at("22:02, 31/12/2019 - Jane: hi", Order::Dmy),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("31/12/2019, 10:02 CH - Jane: hi", Order::Dmy),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("31/12/2562 22:02 - Jane: hi", Order::Dmy),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("[3/18/2565 BE, 14:56:01] Jane: hi", Order::Mdy),
            "2022-03-18 14:56:01"
        );
        assert_eq!(
            at("[3/18/R4, 14:56:01] Jane: hi", Order::Mdy),
            "2022-03-18 14:56:01"
        );
        assert_eq!(
            at("R1/12/31 22:02 - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("令和1/12/31 22:02 - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("12/31/19, 10:02:05 PM: Jane: hi", Order::Mdy),
            "2019-12-31 22:02:05"
        );
        assert_eq!(
            at("03/01/2021, 9:15 in the morning - Jane: hi", Order::Dmy),
            "2021-01-03 09:15:00"
        );
        assert_eq!(
            at("03/01/2021, 11:15 at night - Jane: hi", Order::Dmy),
            "2021-01-03 23:15:00"
        );
        assert_eq!(
            at("01/01/2019, 00:08 a. m. - Jane: hi", Order::Mdy),
            "2019-01-01 00:08:00"
        );
        assert_eq!(
            at("12/30/2021, 12:01 a. m. - Jane: hi", Order::Mdy),
            "2021-12-30 00:01:00"
        );
        assert_eq!(
            at(
                "[١٨\u{200F}/٣\u{200F}/٢٠٢٢، ٢:٥٦:٠٠\u{00A0}م] Jane: hi",
                Order::Dmy
            ),
            "2022-03-18 14:56:00"
        );
        assert_eq!(
            at("۱۳۹۸/۱۰/۱۰، ۲۲:۰۲ - Jane: hi", Order::Ymd),
            "2019-12-31 22:02:00"
        );
        assert_eq!(
            at("31/12/2019, 10:02 ก่อนเที่ยง - Jane: hi", Order::Dmy),
            "2019-12-31 10:02:00"
        );
    }

    #[test]
    fn body_starts_after_the_delimiter() {
        let line = "\u{200E}[3/27/22, 21:41:55] Dmitry S: \u{200E}image omitted";
        let h = header(line);
        assert_eq!(&line[h.body_start..], "Dmitry S: \u{200E}image omitted");
        let line = "12/31/19, 10:02\u{202F}PM - You were added";
        assert_eq!(&line[header(line).body_start..], "You were added");
    }

    #[test]
    fn unreadable_headers_are_told_apart_from_text() {
        assert!(matches!(
            scan("31/12/2019, 25:02 - Jane: hi"),
            Scan::Unreadable(_)
        ));
        assert!(matches!(
            scan("31/12/2019, 10:02 zz - Jane: hi"),
            Scan::Unreadable(_)
        ));
        assert!(matches!(
            scan("[31/12/2019 10:02 Jane: hi"),
            Scan::Unreadable(_)
        ));
        assert_eq!(scan("12.30 - 13.30 meeting"), Scan::NotHeader);
        assert_eq!(scan("2019-12-31 was great"), Scan::NotHeader);
        assert_eq!(scan("hello"), Scan::NotHeader);
        assert_eq!(scan(""), Scan::NotHeader);
    }

    #[test]
    fn order_follows_fields_then_chronology_then_hints() {
        let order = |lines: &[&str]| {
            let hs: Vec<RawHeader> = lines.iter().map(|l| header(l)).collect();
            choose_order(hs.iter())
        };
        assert_eq!(
            order(&["03/01/21, 10:00 - a: b", "13/01/21, 10:00 - a: b"]),
            Order::Dmy
        );
        assert_eq!(
            order(&["03/01/21, 10:00 - a: b", "03/13/21, 10:00 - a: b"]),
            Order::Mdy
        );
        // All fields <= 12: chronology decides (Jan 2, Jan 3, Feb 1 only runs forward as MDY).
        assert_eq!(
            order(&[
                "01/02/20, 10:00 - a: b",
                "01/03/20, 10:00 - a: b",
                "02/01/20, 10:00 - a: b"
            ]),
            Order::Mdy
        );
        assert_eq!(
            order(&["19-12-25, 10:00 - a: b", "20-01-13, 10:00 - a: b"]),
            Order::Ymd
        );
        // Nothing to go on: `.` is European day-first, `1/7/23` with AM/PM is US.
        assert_eq!(order(&["01.02.20, 10:00 - a: b"]), Order::Dmy);
        assert_eq!(order(&["1/7/23, 10:00 AM - a: b"]), Order::Mdy);
    }

    #[test]
    fn jalali_dates_convert() {
        assert_eq!(
            jalali_to_gregorian(1398, 10, 10),
            NaiveDate::from_ymd_opt(2019, 12, 31)
        );
        assert_eq!(
            jalali_to_gregorian(1403, 1, 1),
            NaiveDate::from_ymd_opt(2024, 3, 20)
        );
        assert_eq!(jalali_to_gregorian(1398, 13, 1), None);
    }
}
