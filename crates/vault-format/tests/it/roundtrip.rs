//! Property tests: seal then open returns exactly the records sealed, and
//! whatever the writer accepts, the reader accepts.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use vault_format::{
    AccessToken, ClientAuth, Credential, Extension, Provider, Record, RefreshClass, RefreshStatus,
    RefreshTokenCredential, SealError, SecretBytes, SecretString, ServiceAccountCredential, Unlock,
    Vault,
};

use crate::common::*;

fn token() -> impl Strategy<Value = SecretString> {
    "[ -~]{1,300}".prop_map(SecretString::new)
}

fn text() -> impl Strategy<Value = String> {
    // Any printable text, including non-ASCII.
    "[^\\p{Cc}\\p{Cf}]{1,80}"
}

fn provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::Google),
        Just(Provider::Microsoft),
        Just(Provider::Generic),
        "[a-z0-9-]{1,32}".prop_map(|l| Provider::from_label(&l)),
    ]
}

fn credential() -> impl Strategy<Value = Credential> {
    let refresh = (
        text(),
        option::of(token()),
        prop_oneof![
            Just(ClientAuth::ClientSecretPost),
            Just(ClientAuth::ClientSecretBasic)
        ],
        token(),
        option::of(any::<u64>()),
        option::of(Just("https://accounts.example/authorize".to_owned())),
    )
        .prop_map(
            |(client_id, secret, auth, refresh_token, issued, auth_url)| {
                let client_auth = if secret.is_some() {
                    auth
                } else {
                    ClientAuth::None
                };
                Credential::RefreshToken(RefreshTokenCredential {
                    client_id,
                    client_secret: secret,
                    client_auth,
                    refresh_token,
                    refresh_token_issued_at: issued,
                    authorization_endpoint: auth_url,
                })
            },
        );
    let service = (
        text(),
        option::of(text()),
        "[ -~\n]{1,2000}",
        option::of(text()),
    )
        .prop_map(|(client_email, private_key_id, pem, subject)| {
            Credential::ServiceAccount(ServiceAccountCredential {
                client_email,
                private_key_id,
                private_key: SecretString::new(pem),
                subject,
            })
        });
    prop_oneof![refresh, service]
}

fn record(index: usize) -> impl Strategy<Value = Record> {
    (
        "[A-Za-z0-9._@+:-]{0,20}",
        provider(),
        prop_oneof![
            Just("https://oauth2.googleapis.com/token".to_owned()),
            (1u16..65535).prop_map(|port| format!("http://127.0.0.1:{port}/token")),
            Just("http://[::1]/t".to_owned()),
        ],
        vec("[!-~]{1,60}", 0..5),
        option::of(text()),
        credential(),
        option::of((token(), option::of(any::<u64>()))),
        (any::<u64>(), any::<u64>()),
        option::of((
            any::<u64>(),
            prop_oneof![
                Just(RefreshClass::Refreshed),
                Just(RefreshClass::ReauthorizationRequired),
                Just(RefreshClass::Misconfigured),
                Just(RefreshClass::Transient),
            ],
            option::of("[a-z_]{1,30}"),
            option::of(text()),
        )),
        vec((any::<u32>(), vec(any::<u8>(), 0..64)), 0..3),
    )
        .prop_map(
            move |(
                suffix,
                provider,
                endpoint,
                scopes,
                account,
                credential,
                access,
                times,
                last,
                exts,
            )| {
                let mut record = Record::new(
                    format!("r{index}{suffix}"),
                    provider,
                    endpoint,
                    credential,
                    times.0,
                );
                record.updated_at = times.1;
                record.scopes = scopes;
                record.account = account;
                record.access_token =
                    access.map(|(token, expires_at)| AccessToken { token, expires_at });
                record.last_refresh =
                    last.map(|(at, class, error_code, error_description)| RefreshStatus {
                        at,
                        class,
                        error_code,
                        error_description,
                    });
                let mut seen = std::collections::HashSet::new();
                record.extensions = exts
                    .into_iter()
                    .filter(|(tag, _)| seen.insert(*tag))
                    .map(|(tag, data)| Extension {
                        tag,
                        critical: false,
                        data: SecretBytes::new(data),
                    })
                    .collect();
                record
            },
        )
}

fn records() -> impl Strategy<Value = Vec<Record>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(record).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn seal_then_open_returns_the_records(records in records(), now in any::<u64>()) {
        let (mut vault, _) = age_vault(vec![]);
        *vault.records_mut() = records.clone();
        let file = vault.seal(now).expect("valid records seal");
        let opened = Vault::open(&file, &Unlock::new().identity(&*IDENTITY)).expect("opens");
        prop_assert_eq!(opened.records(), &records[..]);
        prop_assert_eq!(opened.written_at(), now);
        prop_assert_eq!(opened.pin(), vault.pin());
        // The padded size reveals little: a multiple of 4 KiB.
        let payload = vault_format::parse(&file).expect("parses").payload.len() - 16;
        prop_assert_eq!(payload % 4096, 0);
    }

    #[test]
    fn whatever_the_writer_accepts_the_reader_accepts(
        name in ".{0,40}",
        endpoint in ".{0,60}",
        account in option::of(".{0,40}"),
        refresh in ".{0,40}",
        scope in ".{0,20}",
    ) {
        let (mut vault, _) = age_vault(vec![]);
        let mut record = refresh_record("x", "1//r");
        record.name = name;
        record.token_endpoint = endpoint;
        record.account = account;
        record.scopes = vec![scope];
        if let Credential::RefreshToken(c) = &mut record.credential {
            c.refresh_token = SecretString::new(refresh);
        }
        vault.records_mut().push(record.clone());
        match vault.seal(1) {
            Ok(file) => {
                let opened = Vault::open(&file, &Unlock::new().identity(&*IDENTITY)).expect("opens");
                prop_assert_eq!(opened.records(), &[record][..]);
            }
            Err(SealError::Payload(error)) => {
                // The error never quotes the refresh token.
                if let Credential::RefreshToken(c) = &record.credential {
                    let secret = c.refresh_token.expose_secret();
                    prop_assume!(secret.len() > 8);
                    prop_assert!(!error.to_string().contains(secret));
                }
            }
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}
