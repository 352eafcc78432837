//! `cargo bench -p vault-format`: open + seal with 1, 100 and 10,000
//! records (X25519 slot, no KDF), and passphrase-slot unlock at the default
//! and floor Argon2id parameters.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vault_format::{
    AccessToken, ClientAuth, Credential, KdfParams, Provider, Record, RefreshTokenCredential,
    SecretString, SlotSpec, Unlock, Vault,
};

fn record(i: usize) -> Record {
    let mut record = Record::new(
        format!("account-{i}"),
        Provider::Google,
        "https://oauth2.googleapis.com/token",
        Credential::RefreshToken(RefreshTokenCredential {
            client_id: "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com"
                .into(),
            client_secret: Some(SecretString::copy_from("GOCSPX-0123456789abcdefghijklmnop")),
            client_auth: ClientAuth::ClientSecretPost,
            refresh_token: SecretString::new(format!("1//0{i:08}{}", "r".repeat(90))),
            refresh_token_issued_at: Some(1_760_000_000),
            authorization_endpoint: None,
        }),
        1_760_000_000,
    );
    record.scopes = vec!["https://www.googleapis.com/auth/gmail.readonly".into()];
    record.account = Some(format!("user{i}@example.com"));
    record.access_token = Some(AccessToken {
        token: SecretString::new(format!("ya29.{i:08}{}", "a".repeat(200))),
        expires_at: Some(1_760_003_600),
    });
    record
}

fn open_and_seal(c: &mut Criterion) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut group = c.benchmark_group("open+seal");
    for count in [1usize, 100, 10_000] {
        let mut vault = Vault::create(&[SlotSpec::Recipient(&recipient)]).expect("create");
        vault.records_mut().extend((0..count).map(record));
        let file = vault.seal(1).expect("seal");
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &file, |b, file| {
            b.iter(|| {
                let mut opened =
                    Vault::open(black_box(file), &Unlock::new().identity(&identity)).expect("open");
                black_box(opened.seal(2).expect("seal"))
            })
        });
        // The floor for this payload size: decrypt + encrypt alone.
        let payload_len = vault_format::parse(&file).expect("parses").payload.len();
        group.bench_function(BenchmarkId::new("aead-floor", count), |b| {
            use chacha20poly1305::aead::AeadInPlace;
            use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
            let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
            let nonce = XNonce::from([1u8; 24]);
            let mut buffer = vec![0u8; payload_len - 16];
            b.iter(|| {
                let tag = cipher
                    .encrypt_in_place_detached(&nonce, b"header", &mut buffer)
                    .expect("encrypt");
                cipher
                    .decrypt_in_place_detached(&nonce, b"header", &mut buffer, &tag)
                    .expect("decrypt");
            })
        });
        group.bench_function(BenchmarkId::new("seal-only", count), |b| {
            b.iter(|| black_box(vault.seal(2).expect("seal")))
        });
        group.bench_with_input(BenchmarkId::new("open-only", count), &file, |b, file| {
            b.iter(|| {
                black_box(
                    Vault::open(black_box(file), &Unlock::new().identity(&identity)).expect("open"),
                )
            })
        });
    }
    group.finish();
}

fn passphrase_unlock(c: &mut Criterion) {
    let passphrase = SecretString::copy_from("correct horse battery staple");
    let mut group = c.benchmark_group("passphrase unlock");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, params) in [("default", KdfParams::DEFAULT), ("floor", KdfParams::FLOOR)] {
        let mut vault = Vault::create(&[SlotSpec::Passphrase {
            passphrase: &passphrase,
            params,
        }])
        .expect("create");
        vault.records_mut().push(record(0));
        let file = vault.seal(1).expect("seal");
        group.bench_function(format!("{name} ({params})"), |b| {
            b.iter(|| {
                black_box(Vault::open(&file, &Unlock::new().passphrase(&passphrase)).expect("open"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, open_and_seal, passphrase_unlock);
criterion_main!(benches);
