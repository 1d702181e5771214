//! Text transforms that decide what counts as the person's own writing.
//!
//! A mail body carries far more than what its author typed: the quoted thread, the reply
//! header a client wrote, the mobile footer, the signature. Training on those would teach the
//! avatar other people's words, so the pipeline strips them in this order:
//!
//! 1. [`html_to_text_without_quotes`]: drop the quote containers mail clients mark in HTML,
//!    then render the rest as text (only for HTML-only mail);
//! 2. [`strip_reply`]: cut reply headers and `>` quotes, mobile footers, `-- ` signatures;
//! 3. [`remove_parent_lines`]: drop lines copied from the parent message without markers;
//! 4. [`learn_signatures`] + [`strip_signatures`]: the person's recurring signature, learned
//!    from their sent mail.
//!
//! Steps 1-2 need only the message; 3-4 need the thread and the mailbox, so the processor
//! applies them. Every function is pure and total: any `&str` in, a `String` out.

pub mod chunk;
pub mod html;
pub mod quotes;
pub mod signature;

pub use html::{html_to_text, html_to_text_without_quotes};
pub use quotes::{remove_parent_lines, strip_reply};
pub use signature::{learn_signatures, strip_sender_signature, strip_signatures};

/// Collapse every run of whitespace to one space and trim: the form used to compare lines
/// and texts regardless of wrapping and indentation.
pub fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_runs() {
        assert_eq!(normalize_whitespace("  a \n\t b  c "), "a b c");
        assert_eq!(normalize_whitespace(""), "");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn transforms_never_panic(s in "(?s).{0,400}", t in "[<>a-z =:\"'/&#;\\-\\n]{0,200}") {
            let _ = strip_reply(&s);
            let _ = strip_reply(&t);
            let _ = html_to_text_without_quotes(&s);
            let _ = html_to_text_without_quotes(&t);
            let _ = remove_parent_lines(&s, &t);
            let _ = strip_sender_signature(&s, &t);
            let sigs = learn_signatures(&[&s, &t, &s]);
            let _ = strip_signatures(&t, &sigs);
        }

        #[test]
        fn plain_prose_is_kept_whole(words in proptest::collection::vec("[a-z]{1,8}", 1..40)) {
            let text = words.join(" ");
            prop_assert_eq!(strip_reply(&text), text);
        }
    }
}
