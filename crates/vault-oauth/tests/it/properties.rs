//! Properties of the response classifier over arbitrary input: it never
//! panics, and a token in a response never reaches an outcome's `Display`
//! or `Debug`, whatever else the response holds.

use proptest::prelude::*;
use vault_oauth::{TokenHttpResponse, classify_response};

const CANARY: &str = "tok-canary-Q7xw2";

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("Bearer")),
        Just(serde_json::Value::from(CANARY)),
        Just(serde_json::json!([CANARY])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(status in 0u16..1000, body in proptest::collection::vec(any::<u8>(), 0..256), retry in proptest::option::of("[ -~]{0,40}")) {
        let _ = classify_response(
            TokenHttpResponse { status, retry_after: retry.as_deref(), location: None, body: &body },
            1_700_000_000,
        );
    }

    #[test]
    fn tokens_never_reach_display_or_debug(
        status in prop_oneof![Just(200u16), Just(400), Just(401), Just(429), Just(500), 100u16..600],
        fields in proptest::collection::btree_map(
            prop_oneof![
                Just("access_token".to_owned()), Just("refresh_token".to_owned()), Just("id_token".to_owned()),
                Just("token_type".to_owned()), Just("expires_in".to_owned()), Just("scope".to_owned()),
                Just("error".to_owned()), "[a-z_]{1,10}",
            ],
            json_value(),
            0..8,
        ),
        truncate in any::<bool>(),
    ) {
        // Only the token fields carry the canary; `error`/`error_description`
        // are server text and are deliberately kept.
        let mut object = serde_json::Map::new();
        for (key, value) in fields {
            let carries_canary = value.to_string().contains(CANARY);
            let token_field = matches!(key.as_str(), "access_token" | "refresh_token" | "id_token");
            if carries_canary && !token_field {
                continue;
            }
            object.insert(key, value);
        }
        let mut body = serde_json::Value::Object(object).to_string().into_bytes();
        if truncate {
            body.truncate(body.len() / 2);
        }
        let outcome = classify_response(
            TokenHttpResponse { status, retry_after: None, location: None, body: &body },
            1_700_000_000,
        );
        let shown = format!("{outcome} {outcome:?} {:?}", outcome.status_at(0));
        prop_assert!(!shown.contains(CANARY), "{}", shown);
    }
}
