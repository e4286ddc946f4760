//! Text the server chose, made safe to keep and print: the leaf every module
//! that quotes a server (errors, the envelope, token answers) shares.

/// Longest server-chosen code or trace id kept, in bytes.
pub(crate) const MAX_SHORT: usize = 128;
/// Longest server-chosen message kept, in bytes.
pub(crate) const MAX_MESSAGE: usize = 1024;

/// True for characters that must not reach a terminal or a log line as they
/// are: C0/C1 controls (ESC, CR, LF…) and invisible format characters (bidi
/// overrides, zero-width characters).
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Server text made safe to print: unsafe characters become spaces, and the
/// result is at most `max` bytes (cut on a character boundary, marked `…`).
pub(crate) fn sanitize(input: &str, max: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max + 3));
    for c in input.chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(if is_unsafe_char(c) { ' ' } else { c });
    }
    out
}

/// [`sanitize`] taking the text by value: clean text (printable ASCII within
/// `max`, as servers send it) is returned as it is, without a copy.
pub(crate) fn sanitize_owned(input: String, max: usize) -> String {
    if input.len() <= max && input.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return input;
    }
    sanitize(&input, max)
}

/// [`sanitize`] for codes, trace ids and host names.
pub(crate) fn sanitize_short(input: &str) -> String {
    sanitize(input, MAX_SHORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_spaces_and_long_text_is_cut_on_a_boundary() {
        assert_eq!(sanitize("a\u{1b}[31mb\r\nc\u{202e}", 64), "a [31mb  c ");
        assert_eq!(sanitize("ééé", 4), "éé…");
        let clean = String::from("plain-ascii");
        let ptr = clean.as_ptr();
        let kept = sanitize_owned(clean, 64);
        assert_eq!(kept.as_ptr(), ptr, "clean text is not copied");
        assert_eq!(
            sanitize_short(&"x".repeat(200)).len(),
            MAX_SHORT + '…'.len_utf8()
        );
    }
}
