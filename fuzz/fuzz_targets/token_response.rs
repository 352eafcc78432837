//! Classifies arbitrary token endpoint answers (status, `Retry-After`,
//! `Location`, body). Must never panic, and every outcome must keep the
//! classifier's promises: the status decides the class where RFC 6749 and
//! HTTP say it does, server text comes back sanitized and capped, no
//! rendering of the outcome carries the access token, and a record the
//! outcome is applied to still seals (a hostile server cannot make the
//! vault unwritable), holding the new refresh token of any 2xx that
//! carried a storable one.
//!
//! Input layout: two bytes of status (big endian, folded into 100..=599),
//! then `Retry-After`, `\n`, `Location`, `\n`, body. An empty header line
//! means no header.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_format::{
    ClientAuth, Credential, Provider, Record, RefreshTokenCredential, SecretString,
};
use vault_oauth::{
    MAX_DESCRIPTION_BYTES, MAX_DESCRIPTION_CHARS, MAX_ERROR_CODE_CHARS, Misconfiguration, RefreshOutcome, ServerError,
    TokenHttpResponse, classify_response,
};

const SENT_AT: u64 = 1_800_000_000;

fn split_line(data: &[u8]) -> (Option<&str>, &[u8]) {
    let (line, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &data[data.len()..]),
    };
    let header = std::str::from_utf8(line).ok().filter(|s| !s.is_empty());
    (header, rest)
}

fn check_server_error(error: &ServerError, status: u16) {
    assert_eq!(error.status, status);
    assert!(!error.code.is_empty(), "an empty error code");
    assert!(error.code.chars().count() <= MAX_ERROR_CODE_CHARS);
    // RFC 6749 §5.2: error codes are %x20-21 / %x23-5B / %x5D-7E.
    assert!(
        error
            .code
            .chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')),
        "error code outside the RFC charset: {:?}",
        error.code
    );
    for text in [&error.description, &error.subtype].into_iter().flatten() {
        // Cut at the cap, then an ellipsis.
        let chars = text.chars().count();
        assert!(
            chars <= MAX_DESCRIPTION_CHARS
                || (chars == MAX_DESCRIPTION_CHARS + 1 && text.ends_with('…')),
            "{chars} characters kept"
        );
        assert!(
            text.len() <= MAX_DESCRIPTION_BYTES,
            "{} bytes kept, over the vault's limit",
            text.len()
        );
        assert!(
            !text.chars().any(vault_format::is_unsafe_to_display),
            "control or bidi character kept: {text:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 100 + u16::from_be_bytes(*head) % 500;
    let (retry_after, rest) = split_line(rest);
    let (location, body) = split_line(rest);
    let outcome = classify_response(
        TokenHttpResponse {
            status,
            retry_after,
            location,
            body,
        },
        SENT_AT,
    );

    // Busy or failing servers are never a reason to re-authorize.
    if status >= 500 || status == 408 || status == 429 {
        assert!(outcome.is_transient(), "{status} classified as {outcome}");
    }
    // A redirect is never followed and never a success.
    if (300..400).contains(&status) {
        assert!(
            matches!(
                outcome,
                RefreshOutcome::Misconfigured(Misconfiguration::Redirect { .. })
                    | RefreshOutcome::Misconfigured(Misconfiguration::UnexpectedStatus(_))
            ),
            "{status} classified as {outcome}"
        );
    }
    if let Some(error) = outcome.server_error() {
        check_server_error(error, status);
    }
    if let RefreshOutcome::Transient(failure) = &outcome
        && let Some(wait) = failure.retry_after
    {
        assert!(wait.as_secs() <= 86_400, "Retry-After not capped: {wait:?}");
    }
    let mut outcome = outcome;
    match &outcome {
        RefreshOutcome::Refreshed(refreshed) => {
            assert!((200..300).contains(&status), "{status} refreshed");
            let token = refreshed.access_token.expose_secret();
            assert!(!token.is_empty());
            if let Some(expires_at) = refreshed.expires_at {
                assert!(expires_at >= SENT_AT, "expiry before the request");
            }
        }
        // Only a success can carry a refresh token worth keeping.
        RefreshOutcome::Salvaged(salvaged) => {
            assert!((200..300).contains(&status), "{status} salvaged");
            assert!(!salvaged.refresh_token.expose_secret().is_empty());
        }
        RefreshOutcome::ReauthorizationRequired(error) => {
            assert!(
                (400..500).contains(&status),
                "{status} asks for re-authorization"
            );
            assert_eq!(
                error.code, "invalid_grant",
                "only invalid_grant means re-authorize"
            );
        }
        _ => {}
    }

    // Neither Debug nor Display may depend on the tokens: they render the
    // same with the secrets swapped. (Searching the text for the token gave
    // a false alarm: a token spelled like the text around it.)
    if let RefreshOutcome::Refreshed(_) | RefreshOutcome::Salvaged(_) = &outcome {
        let (debug, display) = (format!("{outcome:?}"), outcome.to_string());
        if let RefreshOutcome::Refreshed(refreshed) = &mut outcome {
            refreshed.access_token = SecretString::copy_from("swapped access token");
            if refreshed.refresh_token.is_some() {
                refreshed.refresh_token = Some(SecretString::copy_from("swapped refresh token"));
            }
            if refreshed.id_token.is_some() {
                refreshed.id_token = Some(SecretString::copy_from("swapped id token"));
            }
        }
        if let RefreshOutcome::Salvaged(salvaged) = &mut outcome {
            salvaged.refresh_token = SecretString::copy_from("swapped refresh token");
        }
        assert_eq!(format!("{outcome:?}"), debug, "Debug depends on a token");
        assert_eq!(outcome.to_string(), display, "Display depends on a token");
    }

    let mut record = Record::new(
        "fuzz",
        Provider::Generic,
        "https://auth.example.com/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "client".to_owned(),
            client_secret: None,
            client_auth: ClientAuth::None,
            refresh_token: SecretString::copy_from("refresh"),
            refresh_token_issued_at: None,
            authorization_endpoint: None,
        }),
        SENT_AT,
    );
    // A new refresh token in a 2xx is kept, whatever else the answer says.
    let new_refresh_token = match &outcome {
        RefreshOutcome::Refreshed(refreshed) => refreshed
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        RefreshOutcome::Salvaged(salvaged) => {
            Some(salvaged.refresh_token.expose_secret().to_owned())
        }
        _ => None,
    };
    outcome.apply_to(&mut record, SENT_AT);
    if let (Some(expected), Credential::RefreshToken(kept)) =
        (new_refresh_token, &record.credential)
    {
        assert!(
            kept.refresh_token.expose_secret() == expected,
            "the new refresh token was not kept"
        );
    }
    if let Err(error) = vault_format_fuzz::seal_one(record, SENT_AT) {
        panic!("a record holding this answer does not seal: {error}");
    }
});
