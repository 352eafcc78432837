//! Parses arbitrary bytes as a token file (google-auth authorized_user
//! JSON, a Google service-account key, a tokvault JSON record). Must never
//! panic. A file that parses must survive the round trips the CLI offers:
//! `export --format json` then `import`, and, for a refresh token with a
//! client secret, `export --format google` then `import`, each giving the
//! same record back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_format::{Credential, Record};
use vault_oauth::{TokenFile, parse_token_file, to_google_json, to_tokvault_json};

const NOW: u64 = 1_800_000_000;

fn reparse(text: &str, what: &str) -> Record {
    match parse_token_file(text.as_bytes(), Some("fuzz"), NOW) {
        Ok(TokenFile::Record(record)) => *record,
        Ok(TokenFile::Vault) => panic!("{what} export parsed as a vault"),
        Err(error) => panic!("{what} export does not parse back: {error}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let record = match parse_token_file(data, Some("fuzz"), NOW) {
        Ok(TokenFile::Record(record)) => *record,
        Ok(TokenFile::Vault) => {
            assert!(data.starts_with(&vault_format::MAGIC));
            return;
        }
        Err(error) => {
            // Errors never quote the input beyond field names: bounded text.
            assert!(error.to_string().len() < 1024, "an unbounded error message");
            return;
        }
    };
    assert_eq!(record.name, "fuzz");
    assert!(vault_format::check_endpoint(&record.token_endpoint).is_ok());

    let json = to_tokvault_json(&record);
    let again = reparse(&json, "tokvault JSON");
    assert_eq!(*to_tokvault_json(&again), *json, "tokvault JSON round trip");

    if let Credential::RefreshToken(credential) = &record.credential
        && credential.client_secret.is_some()
    {
        let google = match to_google_json(&record) {
            Ok(text) => text,
            Err(error) => panic!("a refresh token with a secret does not export: {error}"),
        };
        let from_google = reparse(&google, "google JSON");
        let Credential::RefreshToken(back) = &from_google.credential else {
            panic!("google JSON came back as another kind of credential");
        };
        assert_eq!(back.refresh_token, credential.refresh_token);
        assert_eq!(back.client_id, credential.client_id);
        assert_eq!(back.client_secret, credential.client_secret);
        assert_eq!(from_google.token_endpoint, record.token_endpoint);
        assert_eq!(from_google.scopes, record.scopes);
        assert_eq!(from_google.access_token, record.access_token);
    }
});
