//! Server-supplied text (error codes, descriptions) is not secret, but it is
//! hostile input: it reaches terminals, logs and the vault. Keep what a
//! person can read, drop what could rewrite a line, and cap the length.

/// Longest `error` / `error_subtype` kept, in characters.
pub const MAX_ERROR_CODE_CHARS: usize = 64;
/// Longest `error_description` kept, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Longest `error_description` kept, in bytes (the ellipsis included): what
/// the vault stores, so that one endpoint's text can never stop a seal.
pub const MAX_DESCRIPTION_BYTES: usize = vault_format::MAX_ERROR_DESCRIPTION_LEN;

/// Characters that print as nothing and can hide or disguise text: the
/// Unicode format characters (category Cf: soft hyphen, word joiner,
/// invisible operators, interlinear annotation marks, tag characters),
/// variation selectors, the combining grapheme joiner and the Hangul
/// fillers. The vault's own rule ([`vault_format::is_unsafe_to_display`])
/// is narrower and stays so, since vaults written under it must open.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061c}'
            | '\u{06dd}'
            | '\u{070f}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08e2}'
            | '\u{115f}'..='\u{1160}'
            | '\u{17b4}'..='\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

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

/// A human-readable description: controls and bidirectional marks are
/// replaced by a space, invisible characters are dropped, runs of
/// whitespace collapse, and the result is cut (with `…`) at
/// [`MAX_DESCRIPTION_CHARS`] characters or [`MAX_DESCRIPTION_BYTES`] bytes,
/// whichever comes first, so it always fits the vault.
pub(crate) fn description(raw: &str) -> Option<String> {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(raw.len().min(MAX_DESCRIPTION_BYTES));
    let mut chars = 0;
    let mut pending_space = false;
    for c in raw.chars() {
        if is_invisible(c) {
            continue;
        }
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
        let space = usize::from(pending_space);
        let too_many_chars = chars + space + 1 > MAX_DESCRIPTION_CHARS;
        // Room must stay for the ellipsis, which may still be needed.
        let too_many_bytes =
            out.len() + space + c.len_utf8() + ELLIPSIS.len_utf8() > MAX_DESCRIPTION_BYTES;
        if too_many_chars || too_many_bytes {
            out.push(ELLIPSIS);
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

    #[test]
    fn descriptions_fit_the_vault_in_bytes() {
        // 257 four-byte characters: 256 of them plus the ellipsis were
        // 1,027 bytes, over the vault's 1,024, and the seal failed.
        for raw in [
            "😀".repeat(257),
            "😀".repeat(10_000),
            format!("a{}", "😀".repeat(300)),
            "€".repeat(400),
            "a 😀".repeat(300),
        ] {
            let kept = description(&raw).unwrap_or_default();
            assert!(
                kept.len() <= vault_format::MAX_ERROR_DESCRIPTION_LEN,
                "{} bytes",
                kept.len()
            );
            assert!(kept.ends_with('…'));
        }
        // Exactly at the character limit: kept whole, no ellipsis.
        let exact = "😀".repeat(MAX_DESCRIPTION_CHARS - 1);
        assert_eq!(description(&exact).as_deref(), Some(exact.as_str()));
    }

    #[test]
    fn invisible_format_characters_are_dropped() {
        let hidden =
            "in\u{2060}va\u{00ad}lid\u{fff9}_gr\u{e0067}ant\u{e007f} \u{200b}x\u{fe0f}\u{180e}";
        assert_eq!(description(hidden).as_deref(), Some("invalid_grant x"));
        // Only invisible characters: nothing left.
        assert_eq!(description("\u{2060}\u{e0041}\u{00ad}"), None);
        // Visible text is untouched, accents and emoji included.
        assert_eq!(
            description("Réessayez 😀 plus tard").as_deref(),
            Some("Réessayez 😀 plus tard")
        );
    }
}
