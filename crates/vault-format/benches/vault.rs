//! `cargo bench -p vault-format`: open + seal with 1, 100 and 10,000
//! records (X25519 slot, no KDF), next to the AEAD alone on the same payload
//! size; and the open of a vault with only a passphrase slot, next to
//! Argon2id alone, at the default and floor parameters.
//!
//! Open + seal is timed in wall time. The passphrase group is timed in the
//! benchmark thread's CPU time (Linux: `/proc/thread-self/schedstat`), since
//! its ratio must be read to a few percent and, on a shared machine, other
//! jobs' time slices would otherwise land in one side more than the other
//! (Argon2id and the unlock run on the calling thread only; on a quiet
//! machine both clocks agree). `scripts/bench` reads the medians from
//! `target/criterion/*/new/` and turns them into ratios
//! (docs/BENCHMARKS.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use vault_format::{
    AccessToken, ClientAuth, Credential, KdfParams, Provider, Record, RefreshTokenCredential,
    SecretString, SlotSpec, Unlock, Vault,
};

/// CPU time of the calling thread, as a criterion measurement: the first
/// field of `/proc/thread-self/schedstat` (nanoseconds on the CPU). The
/// kernel brings it up to date at each tick (1 to 10 ms), so a reading can
/// lag by up to a tick: fine for samples of a second, as here, not for
/// short ones. Where the file does not exist, wall time.
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    static WALL_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    match std::fs::read_to_string("/proc/thread-self/schedstat") {
        Ok(text) => Duration::from_nanos(
            text.split_whitespace()
                .next()
                .and_then(|ns| ns.parse().ok())
                .expect("schedstat starts with nanoseconds"),
        ),
        Err(_) => WALL_START.get_or_init(std::time::Instant::now).elapsed(),
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time: reuse its formatter.
        static WALL_TIME: WallTime = WallTime;
        WALL_TIME.formatter()
    }
}

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

fn passphrase_unlock(c: &mut Criterion<ThreadCpuTime>) {
    let passphrase = SecretString::copy_from("correct horse battery staple");
    let mut group = c.benchmark_group("passphrase unlock");
    // An iteration takes 0.1 to 1 s: flat sampling, the same number of
    // iterations in every sample, about a second per sample.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, params) in [("default", KdfParams::DEFAULT), ("floor", KdfParams::FLOOR)] {
        let mut vault = Vault::create(&[SlotSpec::Passphrase {
            passphrase: &passphrase,
            params,
        }])
        .expect("create");
        vault.records_mut().push(record(0));
        let file = vault.seal(1).expect("seal");
        // The whole open of a vault whose only slot is this passphrase.
        group.bench_function(BenchmarkId::new("unlock", name), |b| {
            b.iter(|| {
                black_box(Vault::open(&file, &Unlock::new().passphrase(&passphrase)).expect("open"))
            })
        });
        // The floor: Argon2id alone, same crate, parameters, salt length and
        // output length (version 0x13, 32 bytes) as the passphrase slot.
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(
                params.memory_kib,
                params.iterations,
                params.parallelism,
                Some(32),
            )
            .expect("argon2 params"),
        );
        let salt = [7u8; 32];
        group.bench_function(BenchmarkId::new("argon2id", name), |b| {
            b.iter(|| {
                let mut key = [0u8; 32];
                argon
                    .hash_password_into(
                        black_box(passphrase.expose_secret().as_bytes()),
                        &salt,
                        &mut key,
                    )
                    .expect("argon2id");
                black_box(key)
            })
        });
    }
    group.finish();
}

criterion_group!(wall_time, open_and_seal);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = passphrase_unlock
}
criterion_main!(wall_time, cpu_time);
