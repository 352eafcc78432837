//! Feeds arbitrary text to a pending login as the redirect's query and as
//! pasted input (a URL, a query or a bare code). Must never panic. The
//! bytes `STATE` in the input are replaced by the login's real `state`, so
//! the fuzzer reaches the paths after the state check. A code is accepted
//! from a query only when the query carries the real state, and no error
//! text is unbounded or carries control characters.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vault_oauth::{AuthorizationRequest, PendingAuthorization};

static PENDING: LazyLock<(PendingAuthorization, String)> = LazyLock::new(|| {
    let request = AuthorizationRequest {
        authorization_endpoint: "https://auth.example.com/authorize".to_owned(),
        client_id: "fuzz-client".to_owned(),
        scopes: vec!["openid".to_owned(), "offline_access".to_owned()],
        extra_params: Vec::new(),
    };
    let pending = PendingAuthorization::new(&request, "http://127.0.0.1:8400/")
        .expect("a fixed request builds");
    let state = pending
        .url()
        .query_pairs()
        .find(|(key, _)| key == "state")
        .map(|(_, value)| value.into_owned())
        .expect("the authorization URL carries a state");
    (pending, state)
});

fn check_error(error: &dyn std::fmt::Display) {
    let text = error.to_string();
    assert!(text.len() < 2048, "an unbounded error message");
    assert!(
        !text.chars().any(vault_format::is_unsafe_to_display),
        "an error message with control characters: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pending, state) = &*PENDING;
    let text = text.replace("STATE", state);

    match pending.accept_query(&text) {
        Ok(code) => {
            assert!(!code.expose_secret().is_empty(), "an empty code accepted");
            let states: Vec<_> = url::form_urlencoded::parse(text.as_bytes())
                .filter(|(key, _)| key == "state")
                .collect();
            assert_eq!(states.len(), 1, "a code accepted without exactly one state");
            assert_eq!(
                states[0].1,
                state.as_str(),
                "a code accepted with a wrong state"
            );
        }
        Err(error) => check_error(&error),
    }
    match pending.accept_pasted(&text) {
        Ok(code) => assert!(!code.expose_secret().is_empty(), "an empty code accepted"),
        Err(error) => check_error(&error),
    }
});
