//! Server-supplied text (error codes, descriptions) is not secret, but it is
//! hostile input: it reaches terminals, logs and the vault. Keep what a
//! person can read, drop what could rewrite a line, and cap the length.

/// Longest `error` / `error_subtype` kept, in characters.
pub const MAX_ERROR_CODE_CHARS: usize = 64;
/// Longest `error_description` kept, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;

/// An OAuth `error` code: RFC 6749 §5.2 allows `%x20-21 / %x23-5B / %x5D-7E`.
/// Other characters become `?`; the result is capped and never empty.
pub(crate) fn error_code(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(MAX_ERROR_CODE_CHARS)
        .map(|c| match c {
            '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e' => c,
            _ => '?',
        })
        .collect();
    let trimmed = out.trim();
    if trimmed.is_empty() {
        return "(empty)".to_owned();
    }
    if trimmed.len() != out.len() {
        out = trimmed.to_owned();
    }
    out
}

/// A human-readable description: controls and bidirectional/invisible
/// format characters are replaced by a space, runs of whitespace collapse,
/// and the result is cut at [`MAX_DESCRIPTION_CHARS`] (with `…`).
pub(crate) fn description(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(MAX_DESCRIPTION_CHARS * 4));
    let mut chars = 0;
    let mut pending_space = false;
    for c in raw.chars() {
        // The vault's own rule for stored text, so a description always seals.
        let c = if vault_format::is_unsafe_to_display(c) {
            ' '
        } else {
            c
        };
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if chars + usize::from(pending_space) + 1 > MAX_DESCRIPTION_CHARS {
            out.push('…');
            return Some(out);
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_the_rfc_charset_and_are_capped() {
        assert_eq!(error_code("invalid_grant"), "invalid_grant");
        assert_eq!(error_code("bad\"code\\\n"), "bad?code??");
        assert_eq!(error_code("   "), "(empty)");
        assert_eq!(error_code(&"x".repeat(500)).len(), MAX_ERROR_CODE_CHARS);
    }

    #[test]
    fn descriptions_lose_controls_and_bidi_and_are_capped() {
        assert_eq!(
            description("Token has been\n\texpired\u{202e} or revoked.\x1b[2J").as_deref(),
            Some("Token has been expired or revoked. [2J")
        );
        assert_eq!(description(" \n "), None);
        let long = description(&"é".repeat(1000)).unwrap_or_default();
        assert_eq!(long.chars().count(), MAX_DESCRIPTION_CHARS + 1);
        assert!(long.ends_with('…'));
    }
}
