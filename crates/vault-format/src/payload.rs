//! The payload plaintext: `body_len (u32 LE) || postcard(records) || zeros`.
//!
//! Records are encoded through private wire structs that borrow from the
//! records (so secrets are copied exactly once, into the output buffer) and
//! decoded zero-copy from the decrypted buffer (so each secret is copied
//! once, into its zeroizing type). The same validation runs before sealing
//! and after opening: a v1 writer never writes what a v1 reader refuses.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::PayloadError;
use crate::header::MAX_PLAINTEXT_LEN;
use crate::record::{
    AccessToken, ClientAuth, Credential, Extension, Provider, Record, RefreshClass, RefreshStatus,
    RefreshTokenCredential, ServiceAccountCredential,
};
use crate::secret::{SecretBytes, SecretString};

/// Most records in one vault.
pub const MAX_RECORDS: usize = 100_000;
const MAX_NAME_LEN: usize = 128;
const MAX_TEXT_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 64 * 1024;
const MAX_SCOPES: usize = 256;
const MAX_EXTENSIONS: usize = 64;
/// Longest stored `error_code` of a record's last refresh status, in bytes.
pub const MAX_ERROR_CODE_LEN: usize = 256;
/// Longest stored `error_description` of a record's last refresh status, in
/// bytes. Whoever stores server text must cap it in bytes to this, or the
/// whole vault fails to seal.
pub const MAX_ERROR_DESCRIPTION_LEN: usize = 1024;
const PAD_BLOCK: usize = 4096;
/// Scopes and extensions in the whole vault, counted while decoding.
/// Together with [`MAX_RECORDS`] this bounds what decoding allocates to a
/// small multiple of the payload size, whatever counts a file claims.
pub const MAX_NESTED_ELEMENTS: usize = 1 << 18;

/// Decoding caps: each list is counted as it is decoded, so a hostile count
/// fails at the cap instead of after everything was allocated.
mod capped {
    use std::cell::Cell;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

    thread_local! {
        /// Scopes and extensions still allowed in the payload being
        /// decoded (postcard passes no context to nested lists). Set by
        /// `decode`; zero outside it, so nothing decodes by accident.
        pub(super) static NESTED_BUDGET: Cell<usize> = const { Cell::new(0) };
    }

    struct CappedVisitor<T, const MAX: usize, const NESTED: bool>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const MAX: usize, const NESTED: bool> Visitor<'de>
        for CappedVisitor<T, MAX, NESTED>
    {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX} elements")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let claimed = seq.size_hint().unwrap_or(0);
            if claimed > MAX {
                return Err(A::Error::custom("list longer than its cap"));
            }
            // The claim is not trusted for the allocation either.
            let mut out = Vec::with_capacity(claimed.min(64));
            while let Some(item) = seq.next_element()? {
                // One element past the cap is decoded before the refusal:
                // bounded, and exactly MAX elements stay allowed.
                if out.len() == MAX {
                    return Err(A::Error::custom("list longer than its cap"));
                }
                if NESTED {
                    let left = NESTED_BUDGET.with(Cell::get);
                    if left == 0 {
                        return Err(A::Error::custom("too many scopes and extensions"));
                    }
                    NESTED_BUDGET.with(|b| b.set(left - 1));
                }
                out.push(item);
            }
            Ok(out)
        }
    }

    pub(super) fn records<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(CappedVisitor::<T, { super::MAX_RECORDS }, false>(
            PhantomData,
        ))
    }

    pub(super) fn scopes<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(CappedVisitor::<T, { super::MAX_SCOPES }, true>(PhantomData))
    }

    pub(super) fn extensions<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        d.deserialize_seq(CappedVisitor::<T, { super::MAX_EXTENSIONS }, true>(
            PhantomData,
        ))
    }
}

#[derive(Serialize, Deserialize)]
struct WirePayload<'a> {
    #[serde(borrow, deserialize_with = "capped::records")]
    records: Vec<WireRecord<'a>>,
    #[serde(borrow, deserialize_with = "capped::extensions")]
    extensions: Vec<WireExtension<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireRecord<'a> {
    name: &'a str,
    provider: &'a str,
    token_endpoint: &'a str,
    #[serde(borrow, deserialize_with = "capped::scopes")]
    scopes: Vec<&'a str>,
    account: Option<&'a str>,
    #[serde(borrow)]
    credential: WireCredential<'a>,
    #[serde(borrow)]
    access_token: Option<WireAccessToken<'a>>,
    created_at: u64,
    updated_at: u64,
    #[serde(borrow)]
    last_refresh: Option<WireRefreshStatus<'a>>,
    #[serde(borrow, deserialize_with = "capped::extensions")]
    extensions: Vec<WireExtension<'a>>,
}

#[derive(Serialize, Deserialize)]
enum WireCredential<'a> {
    RefreshToken {
        client_id: &'a str,
        client_secret: Option<&'a str>,
        client_auth: u8,
        refresh_token: &'a str,
        refresh_token_issued_at: Option<u64>,
        authorization_endpoint: Option<&'a str>,
    },
    ServiceAccount {
        client_email: &'a str,
        private_key_id: Option<&'a str>,
        private_key: &'a str,
        subject: Option<&'a str>,
    },
}

#[derive(Serialize, Deserialize)]
struct WireAccessToken<'a> {
    token: &'a str,
    expires_at: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct WireRefreshStatus<'a> {
    at: u64,
    class: u8,
    error_code: Option<&'a str>,
    error_description: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct WireExtension<'a> {
    tag: u32,
    critical: bool,
    data: &'a [u8],
}

fn client_auth_to_wire(auth: ClientAuth) -> u8 {
    match auth {
        ClientAuth::None => 0,
        ClientAuth::ClientSecretPost => 1,
        ClientAuth::ClientSecretBasic => 2,
    }
}

fn client_auth_from_wire(value: u8) -> Option<ClientAuth> {
    Some(match value {
        0 => ClientAuth::None,
        1 => ClientAuth::ClientSecretPost,
        2 => ClientAuth::ClientSecretBasic,
        _ => return None,
    })
}

fn class_to_wire(class: RefreshClass) -> u8 {
    match class {
        RefreshClass::Refreshed => 0,
        RefreshClass::ReauthorizationRequired => 1,
        RefreshClass::Misconfigured => 2,
        RefreshClass::Transient => 3,
    }
}

fn class_from_wire(value: u8) -> Option<RefreshClass> {
    Some(match value {
        0 => RefreshClass::Refreshed,
        1 => RefreshClass::ReauthorizationRequired,
        2 => RefreshClass::Misconfigured,
        3 => RefreshClass::Transient,
        _ => return None,
    })
}

/// Field checks, shared by encode and decode. Errors name the record and
/// field, never the value (which may be secret).
struct Check<'r, 'a> {
    record: &'r str,
    /// Endpoints already validated in this payload (most records share
    /// one), so each distinct URL is parsed once.
    endpoints: &'r mut HashSet<&'a str>,
}

impl<'a> Check<'_, 'a> {
    fn fail(&self, field: &'static str, reason: &'static str) -> PayloadError {
        PayloadError::InvalidRecord {
            record: self.record.to_owned(),
            field,
            reason,
        }
    }

    /// Display text: bounded, no control characters (no terminal escapes).
    fn text(&self, field: &'static str, value: &str, max: usize) -> Result<(), PayloadError> {
        if value.is_empty() {
            return Err(self.fail(field, "is empty"));
        }
        if value.len() > max {
            return Err(self.fail(field, "is too long"));
        }
        // Most text is ASCII: check bytes (vectorised) and only walk chars
        // when there is something else.
        let unsafe_ascii = value
            .bytes()
            .fold(false, |bad, b| bad | (b < 0x20) | (b == 0x7f));
        if unsafe_ascii || (!value.is_ascii() && value.chars().any(is_unsafe_to_display)) {
            return Err(self.fail(
                field,
                "contains control or bidirectional-override characters",
            ));
        }
        Ok(())
    }

    fn opt_text(
        &self,
        field: &'static str,
        value: Option<&str>,
        max: usize,
    ) -> Result<(), PayloadError> {
        value.map_or(Ok(()), |v| self.text(field, v, max))
    }

    /// A token or client secret: RFC 6749 VSCHAR (printable ASCII and space),
    /// so it can never split an HTTP header or a line of output.
    fn token(&self, field: &'static str, value: &str) -> Result<(), PayloadError> {
        if value.is_empty() {
            return Err(self.fail(field, "is empty"));
        }
        if value.len() > MAX_SECRET_LEN {
            return Err(self.fail(field, "is longer than 64 KiB"));
        }
        // No early exit, so the loop vectorises; tokens are short anyway.
        if !value
            .bytes()
            .fold(true, |ok, b| ok & (0x20..=0x7e).contains(&b))
        {
            return Err(self.fail(field, "contains characters outside printable ASCII"));
        }
        Ok(())
    }

    fn pem(&self, field: &'static str, value: &str) -> Result<(), PayloadError> {
        if value.is_empty() || value.len() > MAX_SECRET_LEN {
            return Err(self.fail(field, "is empty or longer than 64 KiB"));
        }
        if !value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) || b == b'\n' || b == b'\r')
        {
            return Err(self.fail(field, "is not PEM text"));
        }
        Ok(())
    }

    fn endpoint(&mut self, field: &'static str, value: &'a str) -> Result<(), PayloadError> {
        if self.endpoints.contains(value) {
            return Ok(());
        }
        self.text(field, value, MAX_TEXT_LEN)?;
        if value.contains(char::is_whitespace) {
            return Err(self.fail(field, "contains whitespace"));
        }
        check_endpoint(value).map_err(|reason| self.fail(field, reason))?;
        self.endpoints.insert(value);
        Ok(())
    }
}

/// Characters that could rewrite a terminal line or reorder displayed text:
/// C0/C1 controls and the Unicode bidirectional and invisible format marks.
/// The vault refuses them in stored text; callers that keep server-supplied
/// text (error descriptions) drop them with the same rule.
pub fn is_unsafe_to_display(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Token and authorization endpoints must be `https://`, or `http://` on a
/// loopback address, so a refresh token never crosses a network in clear.
pub fn check_endpoint(value: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(value).map_err(|_| "is not a valid URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials");
    }
    if url.fragment().is_some() {
        return Err("must not contain a fragment");
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err("must use https (plain http is allowed only on loopback)"),
    }
}

/// Whether `url`'s host is `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn check_name(index: usize, name: &str) -> Result<(), PayloadError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PayloadError::InvalidRecord {
            record: format!("#{index}"),
            field: "name",
            reason: "must be 1 to 128 of A-Z a-z 0-9 . _ - @ + :",
        })
    }
}

/// Checks a record name against the v1 rules (for callers that take names
/// from users before building a record).
pub fn check_record_name(name: &str) -> Result<(), PayloadError> {
    check_name(0, name).map_err(|_| PayloadError::InvalidRecord {
        record: name
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME_LEN)
            .collect(),
        field: "name",
        reason: "must be 1 to 128 of A-Z a-z 0-9 . _ - @ + :",
    })
}

fn check_extensions(location: &str, extensions: &[WireExtension<'_>]) -> Result<(), PayloadError> {
    let invalid = |reason| PayloadError::InvalidRecord {
        record: location.to_owned(),
        field: "extensions",
        reason,
    };
    if extensions.len() > MAX_EXTENSIONS {
        return Err(invalid("are more than 64"));
    }
    let mut tags = HashSet::with_capacity(extensions.len());
    for ext in extensions {
        if ext.data.len() > MAX_SECRET_LEN {
            return Err(invalid("hold more than 64 KiB"));
        }
        if !tags.insert(ext.tag) {
            return Err(invalid("repeat a tag"));
        }
        // No extension is defined in v1, so every critical one is unknown.
        if ext.critical {
            return Err(PayloadError::UnsupportedExtension {
                location: location.to_owned(),
                tag: ext.tag,
            });
        }
    }
    Ok(())
}

fn check_record<'a>(
    index: usize,
    r: &WireRecord<'a>,
    endpoints: &mut HashSet<&'a str>,
) -> Result<(), PayloadError> {
    check_name(index, r.name)?;
    let mut c = Check {
        record: r.name,
        endpoints,
    };
    let provider_ok = !r.provider.is_empty()
        && r.provider.len() <= 32
        && r.provider
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !provider_ok {
        return Err(c.fail("provider", "must be 1 to 32 of a-z 0-9 -"));
    }
    c.endpoint("token endpoint", r.token_endpoint)?;
    if r.scopes.len() > MAX_SCOPES {
        return Err(c.fail("scopes", "are more than 256"));
    }
    for scope in &r.scopes {
        c.text("scope", scope, MAX_TEXT_LEN)?;
        if scope.contains(' ') {
            return Err(c.fail("scope", "contains a space (give each scope separately)"));
        }
    }
    c.opt_text("account", r.account, MAX_TEXT_LEN)?;
    match &r.credential {
        WireCredential::RefreshToken {
            client_id,
            client_secret,
            client_auth,
            refresh_token,
            authorization_endpoint,
            ..
        } => {
            c.text("client id", client_id, MAX_TEXT_LEN)?;
            let auth = client_auth_from_wire(*client_auth)
                .ok_or_else(|| c.fail("client authentication", "is not a v1 method"))?;
            match (auth, client_secret) {
                (ClientAuth::None, _) => {}
                (_, None) => {
                    return Err(c.fail(
                        "client secret",
                        "is required by the client authentication method",
                    ));
                }
                (_, Some(_)) => {}
            }
            if let Some(secret) = client_secret {
                c.token("client secret", secret)?;
            }
            c.token("refresh token", refresh_token)?;
            if let Some(endpoint) = authorization_endpoint {
                c.endpoint("authorization endpoint", endpoint)?;
            }
        }
        WireCredential::ServiceAccount {
            client_email,
            private_key_id,
            private_key,
            subject,
        } => {
            c.text("client email", client_email, MAX_TEXT_LEN)?;
            c.opt_text("private key id", *private_key_id, MAX_TEXT_LEN)?;
            c.pem("private key", private_key)?;
            c.opt_text("subject", *subject, MAX_TEXT_LEN)?;
        }
    }
    if let Some(access) = &r.access_token {
        c.token("access token", access.token)?;
    }
    if let Some(status) = &r.last_refresh {
        class_from_wire(status.class)
            .ok_or_else(|| c.fail("last refresh outcome", "is not a v1 class"))?;
        c.opt_text("error code", status.error_code, MAX_ERROR_CODE_LEN)?;
        c.opt_text(
            "error description",
            status.error_description,
            MAX_ERROR_DESCRIPTION_LEN,
        )?;
    }
    check_extensions(&format!("record {}", r.name), &r.extensions)
}

/// Checks one record as [`crate::Vault::seal`] would (everything but the
/// uniqueness of its name), so that a caller can repair a record it just
/// changed before one bad field stops the whole vault from being sealed.
pub fn validate_record(record: &Record) -> Result<(), PayloadError> {
    let mut endpoints = HashSet::new();
    check_record(0, &to_wire(record), &mut endpoints)
}

fn check_payload(payload: &WirePayload<'_>) -> Result<(), PayloadError> {
    if payload.records.len() > MAX_RECORDS {
        return Err(PayloadError::TooManyRecords {
            count: payload.records.len(),
            max: MAX_RECORDS,
        });
    }
    let nested: usize = payload.extensions.len()
        + payload
            .records
            .iter()
            .map(|r| r.scopes.len() + r.extensions.len())
            .sum::<usize>();
    if nested > MAX_NESTED_ELEMENTS {
        return Err(PayloadError::CountLimit);
    }
    let mut names = HashSet::with_capacity(payload.records.len());
    let mut endpoints = HashSet::new();
    for (index, record) in payload.records.iter().enumerate() {
        check_record(index, record, &mut endpoints)?;
        if !names.insert(record.name) {
            return Err(PayloadError::DuplicateName(record.name.to_owned()));
        }
    }
    check_extensions("the vault", &payload.extensions)
}

fn wire_extensions(extensions: &[Extension]) -> Vec<WireExtension<'_>> {
    extensions
        .iter()
        .map(|e| WireExtension {
            tag: e.tag,
            critical: e.critical,
            data: e.data.expose_secret(),
        })
        .collect()
}

fn to_wire(record: &Record) -> WireRecord<'_> {
    WireRecord {
        name: &record.name,
        provider: record.provider.as_str(),
        token_endpoint: &record.token_endpoint,
        scopes: record.scopes.iter().map(String::as_str).collect(),
        account: record.account.as_deref(),
        credential: match &record.credential {
            Credential::RefreshToken(c) => WireCredential::RefreshToken {
                client_id: &c.client_id,
                client_secret: c.client_secret.as_ref().map(SecretString::expose_secret),
                client_auth: client_auth_to_wire(c.client_auth),
                refresh_token: c.refresh_token.expose_secret(),
                refresh_token_issued_at: c.refresh_token_issued_at,
                authorization_endpoint: c.authorization_endpoint.as_deref(),
            },
            Credential::ServiceAccount(c) => WireCredential::ServiceAccount {
                client_email: &c.client_email,
                private_key_id: c.private_key_id.as_deref(),
                private_key: c.private_key.expose_secret(),
                subject: c.subject.as_deref(),
            },
        },
        access_token: record.access_token.as_ref().map(|a| WireAccessToken {
            token: a.token.expose_secret(),
            expires_at: a.expires_at,
        }),
        created_at: record.created_at,
        updated_at: record.updated_at,
        last_refresh: record.last_refresh.as_ref().map(|s| WireRefreshStatus {
            at: s.at,
            class: class_to_wire(s.class),
            error_code: s.error_code.as_deref(),
            error_description: s.error_description.as_deref(),
        }),
        extensions: wire_extensions(&record.extensions),
    }
}

/// Records borrowed in wire form, validated and measured, ready to be
/// written into a buffer of exactly the right size.
pub(crate) struct Encoder<'a> {
    wire: WirePayload<'a>,
    body_len: usize,
    plaintext_len: usize,
}

impl<'a> Encoder<'a> {
    pub(crate) fn new(
        records: &'a [Record],
        extensions: &'a [Extension],
    ) -> Result<Self, PayloadError> {
        let wire = WirePayload {
            records: records.iter().map(to_wire).collect(),
            extensions: wire_extensions(extensions),
        };
        check_payload(&wire)?;
        let body_len =
            postcard::experimental::serialized_size(&wire).map_err(|_| PayloadError::Decode)?;
        let too_large = PayloadError::TooLarge {
            len: body_len.saturating_add(4),
            max: MAX_PLAINTEXT_LEN,
        };
        if body_len > MAX_PLAINTEXT_LEN - 4 {
            return Err(too_large);
        }
        Ok(Self {
            wire,
            body_len,
            plaintext_len: padded_len(body_len + 4),
        })
    }

    /// Length of the padded plaintext.
    pub(crate) fn plaintext_len(&self) -> usize {
        self.plaintext_len
    }

    /// Writes the padded plaintext into `out`, which must be zeroed and
    /// exactly [`Encoder::plaintext_len`] long.
    pub(crate) fn write(&self, out: &mut [u8]) -> Result<(), PayloadError> {
        debug_assert_eq!(out.len(), self.plaintext_len);
        out[..4].copy_from_slice(&(self.body_len as u32).to_le_bytes());
        postcard::to_slice(&self.wire, &mut out[4..4 + self.body_len])
            .map_err(|_| PayloadError::Decode)?;
        Ok(())
    }
}

/// The padded plaintext length for `len` bytes: the larger of the next
/// multiple of 4 KiB and Padmé (which leaks O(log log n) bits of the size).
pub(crate) fn padded_len(len: usize) -> usize {
    let by_block = len.div_ceil(PAD_BLOCK) * PAD_BLOCK;
    by_block.max(padme(len)).min(MAX_PLAINTEXT_LEN.max(len))
}

fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - e.leading_zeros();
    let mask = (1usize << (e - s)) - 1;
    (len + mask) & !mask
}

/// Decodes and validates a decrypted, padded plaintext.
pub(crate) fn decode(plaintext: &[u8]) -> Result<(Vec<Record>, Vec<Extension>), PayloadError> {
    if plaintext.len() < 4 {
        return Err(PayloadError::Framing("shorter than its length prefix"));
    }
    let (len_bytes, rest) = plaintext.split_at(4);
    let body_len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
    if body_len > rest.len() {
        return Err(PayloadError::Framing("length prefix exceeds the payload"));
    }
    let (body, padding) = rest.split_at(body_len);
    if padding.iter().any(|&b| b != 0) {
        return Err(PayloadError::Framing("padding is not all zero"));
    }
    capped::NESTED_BUDGET.with(|b| b.set(MAX_NESTED_ELEMENTS));
    let decoded = postcard::take_from_bytes::<WirePayload<'_>>(body);
    capped::NESTED_BUDGET.with(|b| b.set(0));
    let (wire, leftover) = decoded.map_err(|e| match e {
        postcard::Error::SerdeDeCustom => PayloadError::CountLimit,
        _ => PayloadError::Decode,
    })?;
    if !leftover.is_empty() {
        return Err(PayloadError::TrailingBytes(leftover.len()));
    }
    check_payload(&wire)?;
    let records = wire.records.iter().map(from_wire).collect();
    Ok((records, extensions_from_wire(&wire.extensions)))
}

fn extensions_from_wire(extensions: &[WireExtension<'_>]) -> Vec<Extension> {
    extensions
        .iter()
        .map(|e| Extension {
            tag: e.tag,
            critical: e.critical,
            data: SecretBytes::copy_from(e.data),
        })
        .collect()
}

/// Converts a validated wire record (so the `expect`s cannot fire).
fn from_wire(r: &WireRecord<'_>) -> Record {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    Record {
        name: r.name.to_owned(),
        provider: Provider::from_label(r.provider),
        token_endpoint: r.token_endpoint.to_owned(),
        scopes: r.scopes.iter().map(|s| (*s).to_owned()).collect(),
        account: owned(r.account),
        credential: match &r.credential {
            WireCredential::RefreshToken {
                client_id,
                client_secret,
                client_auth,
                refresh_token,
                refresh_token_issued_at,
                authorization_endpoint,
            } => Credential::RefreshToken(RefreshTokenCredential {
                client_id: (*client_id).to_owned(),
                client_secret: client_secret.map(SecretString::copy_from),
                client_auth: client_auth_from_wire(*client_auth).expect("validated"),
                refresh_token: SecretString::copy_from(refresh_token),
                refresh_token_issued_at: *refresh_token_issued_at,
                authorization_endpoint: owned(*authorization_endpoint),
            }),
            WireCredential::ServiceAccount {
                client_email,
                private_key_id,
                private_key,
                subject,
            } => Credential::ServiceAccount(ServiceAccountCredential {
                client_email: (*client_email).to_owned(),
                private_key_id: owned(*private_key_id),
                private_key: SecretString::copy_from(private_key),
                subject: owned(*subject),
            }),
        },
        access_token: r.access_token.as_ref().map(|a| AccessToken {
            token: SecretString::copy_from(a.token),
            expires_at: a.expires_at,
        }),
        created_at: r.created_at,
        updated_at: r.updated_at,
        last_refresh: r.last_refresh.as_ref().map(|s| RefreshStatus {
            at: s.at,
            class: class_from_wire(s.class).expect("validated"),
            error_code: owned(s.error_code),
            error_description: owned(s.error_description),
        }),
        extensions: extensions_from_wire(&r.extensions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_block_aligned_and_monotonic() {
        let mut last = 0;
        for len in [4usize, 100, 4095, 4096, 4097, 70_000, 1 << 20, 3_000_001] {
            let padded = padded_len(len);
            assert!(
                padded >= len && padded.is_multiple_of(4096),
                "{len} -> {padded}"
            );
            assert!(padded >= last);
            assert!(padded - len <= len / 8 + 4096, "{len} -> {padded}");
            last = padded;
        }
    }

    #[test]
    fn display_text_refuses_spoofing_characters() {
        let mut endpoints = HashSet::new();
        let mut check = Check {
            record: "r",
            endpoints: &mut endpoints,
        };
        assert!(check.text("account", "user@example.com", 100).is_ok());
        assert!(check.text("account", "Jürgen Müller", 100).is_ok());
        for bad in [
            "a\u{202e}moc.live",
            "a\u{1b}[2Jb",
            "a\u{2066}b",
            "a\u{200b}b",
            "a\u{85}b",
        ] {
            assert!(check.text("account", bad, 100).is_err(), "{bad:?}");
        }
        assert!(
            check
                .endpoint("token endpoint", " https://example.com/token")
                .is_err()
        );
        assert!(
            check
                .endpoint("token endpoint", "https://example.com/to ken")
                .is_err()
        );
    }

    #[test]
    fn endpoints() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.5.6.7/t",
            "http://[::1]:9/token",
            "http://localhost:3000/token",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://example.com/token",
            "http://10.0.0.1/token",
            "ftp://127.0.0.1/x",
            "https://user:pw@example.com/token",
            "https://example.com/token#frag",
            "not a url",
            "file:///etc/passwd",
            "http://localhost.evil.com/token",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    use crate::testing::{framed, minimal_records_body as body};

    #[test]
    fn list_caps_hold_at_and_fail_past_the_limit() {
        let (records, _) = decode(&framed(&body(2, MAX_SCOPES))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records[1].scopes.len(), MAX_SCOPES);
        assert_eq!(
            decode(&framed(&body(1, MAX_SCOPES + 1))).err(),
            Some(PayloadError::CountLimit)
        );
        // 1100 records of 256 scopes: the vault-wide budget runs out.
        const { assert!(1100 * MAX_SCOPES > MAX_NESTED_ELEMENTS) };
        assert_eq!(
            decode(&framed(&body(1100, MAX_SCOPES))).err(),
            Some(PayloadError::CountLimit)
        );
        let (records, _) = decode(&framed(&body(1000, 256))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.len(), 1000);
    }

    #[test]
    fn bytes_fields_match_postcard_byte_encoding() {
        // `&[u8]` serializes as a sequence of u8 and deserializes as bytes;
        // in postcard both are varint(len) || raw bytes.
        let ext = WireExtension {
            tag: 7,
            critical: false,
            data: &[1, 2, 3],
        };
        let bytes = postcard::to_allocvec(&ext).unwrap_or_default();
        assert_eq!(bytes, [7, 0, 3, 1, 2, 3]);
    }
}
