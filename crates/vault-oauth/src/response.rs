//! Pure classification of a token endpoint's answer: status, `Retry-After`,
//! `Location` and body in, [`RefreshOutcome`] out. No I/O, so it can be
//! fuzzed and tested exhaustively. The body is never copied into an error.

use std::time::Duration;

use serde_json::{Map, Value};
use vault_format::SecretString;

use crate::outcome::{
    Misconfiguration, RefreshOutcome, Refreshed, ResponseProblem, Salvaged, ServerError,
    TransientFailure, TransientKind,
};
use crate::sanitize;

/// Longest token accepted (the vault's own limit for a secret).
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Most scopes accepted in a response (the vault's own limit).
const MAX_SCOPES: usize = 256;
/// `expires_in` beyond ten years is treated as malformed.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;
/// A `Retry-After` beyond one day is capped to one day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// An HTTP response from a token endpoint, as far as classification needs it.
#[derive(Clone, Copy, Debug)]
pub struct TokenHttpResponse<'a> {
    /// HTTP status code.
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<&'a str>,
    /// The raw `Location` header, if any.
    pub location: Option<&'a str>,
    /// The body (already capped by the transport).
    pub body: &'a [u8],
}

/// Classifies a token endpoint response to a refresh (or JWT bearer) request
/// sent at `sent_at` (Unix seconds, `now` for `Retry-After` dates too).
///
/// ```
/// use vault_oauth::{classify_response, RefreshOutcome, TokenHttpResponse};
///
/// let revoked = classify_response(
///     TokenHttpResponse {
///         status: 400,
///         retry_after: None,
///         location: None,
///         body: br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
///     },
///     1_700_000_000,
/// );
/// let RefreshOutcome::ReauthorizationRequired(error) = revoked else { unreachable!() };
/// assert_eq!(error.code, "invalid_grant");
///
/// let busy = classify_response(
///     TokenHttpResponse { status: 429, retry_after: Some("30"), location: None, body: b"" },
///     1_700_000_000,
/// );
/// assert!(busy.is_transient());
/// ```
pub fn classify_response(response: TokenHttpResponse<'_>, sent_at: u64) -> RefreshOutcome {
    let status = response.status;
    let retry_after = response
        .retry_after
        .and_then(|value| parse_retry_after(value, sent_at));
    let json = parse_object(response.body);

    if (200..300).contains(&status) {
        return match json {
            Some(object) => parse_success(object, status, sent_at),
            None => invalid(status, ResponseProblem::NotJson),
        };
    }
    if (300..400).contains(&status) {
        return RefreshOutcome::Misconfigured(Misconfiguration::Redirect {
            status,
            location_host: response.location.and_then(location_host),
        });
    }

    let error = json
        .as_ref()
        .and_then(|object| server_error(object, status));
    let transient = |error: Option<ServerError>| {
        RefreshOutcome::Transient(TransientFailure {
            kind: TransientKind::Status(status),
            error,
            retry_after,
        })
    };
    match error {
        // A 5xx, 408 or 429 means "later" whatever code it carries: a server
        // in trouble must not make a person re-authorize.
        Some(error) if status >= 500 || status == 408 || status == 429 => transient(Some(error)),
        // RFC 6749 §5.2 errors come with a 4xx; an error body under any
        // other status (a 1xx, which HTTP clients never hand over as final)
        // must not send a person to re-authorize.
        Some(_) if !(400..500).contains(&status) => {
            RefreshOutcome::Misconfigured(Misconfiguration::UnexpectedStatus(status))
        }
        Some(error) => match error.code.as_str() {
            "invalid_grant" => RefreshOutcome::ReauthorizationRequired(error),
            "server_error" | "temporarily_unavailable" => transient(Some(error)),
            _ => RefreshOutcome::Misconfigured(Misconfiguration::Rejected(error)),
        },
        None if status >= 500 || status == 408 || status == 429 => transient(None),
        None => RefreshOutcome::Misconfigured(Misconfiguration::UnexpectedStatus(status)),
    }
}

fn invalid(status: u16, problem: ResponseProblem) -> RefreshOutcome {
    RefreshOutcome::Misconfigured(Misconfiguration::InvalidResponse { status, problem })
}

fn parse_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

fn server_error(object: &Map<String, Value>, status: u16) -> Option<ServerError> {
    let code = object.get("error")?.as_str()?;
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    Some(ServerError {
        status,
        code: sanitize::error_code(code),
        subtype: text("error_subtype").map(sanitize::error_code),
        description: text("error_description").and_then(sanitize::description),
    })
}

/// A 2xx body. A rotating server retires the old refresh token the moment
/// it answers, so a valid new refresh token is kept whatever else is wrong
/// ([`RefreshOutcome::Salvaged`]); fields that only describe the access
/// token (`token_type` missing, `expires_in`, `scope`, `id_token`
/// malformed) are ignored and named in [`Refreshed::ignored`] rather than
/// refusing an answer that honest but sloppy servers send.
fn parse_success(mut object: Map<String, Value>, status: u16, sent_at: u64) -> RefreshOutcome {
    // Move the tokens into zeroizing secrets before any check can refuse
    // the response, so that a refused response's tokens are wiped too.
    let access_token = take_token(&mut object, "access_token");
    let id_token = take_token(&mut object, "id_token");
    let refresh_token = match take_token(&mut object, "refresh_token") {
        Ok(token) => token,
        // Nothing we could store: the vault keeps tokens of VSCHAR only.
        Err(problem) => return invalid(status, problem),
    };
    let refused =
        |problem: ResponseProblem, refresh_token: Option<SecretString>| match refresh_token {
            Some(refresh_token) => RefreshOutcome::Salvaged(Salvaged {
                refresh_token,
                status,
                problem,
                obtained_at: sent_at,
            }),
            None => invalid(status, problem),
        };
    let mut ignored = Vec::new();
    match object.get("token_type") {
        None | Some(Value::Null) => ignored.push(ResponseProblem::MissingTokenType),
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return refused(ResponseProblem::TokenTypeNotBearer, refresh_token),
    }
    let access_token = match access_token {
        Ok(Some(token)) => token,
        Ok(None) => return refused(ResponseProblem::MissingAccessToken, refresh_token),
        Err(problem) => return refused(problem, refresh_token),
    };
    let id_token = id_token.unwrap_or_else(|problem| {
        ignored.push(problem);
        None
    });
    let expires_at = match object.get("expires_in").map(expires_in) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(seconds))) => Some(sent_at.saturating_add(seconds)),
        Some(Err(problem)) => {
            ignored.push(problem);
            None
        }
    };
    let scopes = match object.get("scope").map(scopes) {
        None => None,
        Some(Ok(scopes)) => scopes,
        Some(Err(problem)) => {
            ignored.push(problem);
            None
        }
    };
    RefreshOutcome::Refreshed(Refreshed {
        access_token,
        expires_at,
        refresh_token,
        scopes,
        id_token,
        obtained_at: sent_at,
        ignored,
    })
}

/// Moves a token string out of the JSON tree into a [`SecretString`]
/// (no copy). `null` is absent; anything but a non-empty `VSCHAR` string
/// is malformed.
fn take_token(
    object: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<SecretString>, ResponseProblem> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(token)) => {
            let token = SecretString::new(token);
            let value = token.expose_secret();
            let vschar = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
            if value.is_empty() || value.len() > MAX_TOKEN_LEN || !vschar {
                return Err(ResponseProblem::InvalidField(field));
            }
            Ok(Some(token))
        }
        Some(_) => Err(ResponseProblem::InvalidField(field)),
    }
}

/// `expires_in`: a non-negative integer, also accepted as a float or a
/// decimal string (some providers send `3599.0`, `"3600"` or `"3600.0"`).
/// `null` is absent.
fn expires_in(value: &Value) -> Result<Option<u64>, ResponseProblem> {
    let malformed = ResponseProblem::InvalidField("expires_in");
    let seconds = match value {
        Value::Null => return Ok(None),
        Value::Number(number) => match (number.as_u64(), number.as_f64()) {
            (Some(n), _) => n,
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f <= MAX_EXPIRES_IN as f64 => f as u64,
            _ => return Err(malformed),
        },
        Value::String(text) => {
            // "3600" or "3600.0": whole seconds; a fraction is dropped.
            let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
            let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
            if whole.is_empty() || !digits(whole) || !digits(fraction) {
                return Err(malformed);
            }
            whole.parse::<u64>().map_err(|_| malformed)?
        }
        _ => return Err(malformed),
    };
    if seconds > MAX_EXPIRES_IN {
        return Err(malformed);
    }
    Ok(Some(seconds))
}

/// `scope`: space-separated `NQCHAR` tokens (RFC 6749 §3.3). An empty
/// string lists nothing and is treated as absent.
fn scopes(value: &Value) -> Result<Option<Vec<String>>, ResponseProblem> {
    let malformed = ResponseProblem::InvalidField("scope");
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(text) => text,
        _ => return Err(malformed),
    };
    let nqchar = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    let mut scopes = Vec::new();
    for scope in text.split(' ').filter(|s| !s.is_empty()) {
        if !scope.bytes().all(nqchar) || scopes.len() == MAX_SCOPES || scope.len() > 2048 {
            return Err(malformed);
        }
        if !scopes.iter().any(|known| known == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok((!scopes.is_empty()).then_some(scopes))
}

/// `Retry-After`: delta-seconds or an IMF-fixdate (RFC 9110 §10.2.3),
/// relative to `now`; capped at one day. Unparseable values are ignored.
pub(crate) fn parse_retry_after(value: &str, now: u64) -> Option<Duration> {
    let value = value.trim();
    let seconds = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        value.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        parse_imf_fixdate(value)?.saturating_sub(now)
    };
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → Unix seconds.
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    let mut parts = value.split(' ');
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u64 + 1;
    let day: u64 = day.parse().ok()?;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|part| part.parse::<u64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day)
        || !(1970..=9999).contains(&year)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm, for years ≥ 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

fn location_host(location: &str) -> Option<String> {
    let url = url::Url::parse(location).ok()?;
    let host = url.host_str()?;
    Some(sanitize::error_code(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RefreshOutcome as O;

    fn classify(status: u16, body: &str) -> RefreshOutcome {
        classify_response(
            TokenHttpResponse {
                status,
                retry_after: None,
                location: None,
                body: body.as_bytes(),
            },
            1_000,
        )
    }

    #[test]
    fn invalid_grant_asks_for_re_authorization_only_under_a_4xx() {
        // Fuzz finding (token_response): status 168 with invalid_grant came
        // back as "re-authorize".
        let body =
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        for status in [100, 168, 199, 600, 999] {
            let outcome = classify(status, body);
            assert!(
                !matches!(outcome, RefreshOutcome::ReauthorizationRequired(_)),
                "{status}: {outcome}"
            );
        }
        assert!(matches!(
            classify(168, body),
            RefreshOutcome::Misconfigured(Misconfiguration::UnexpectedStatus(168))
        ));
        for status in [400, 401, 499] {
            assert!(matches!(
                classify(status, body),
                RefreshOutcome::ReauthorizationRequired(_)
            ));
        }
    }

    #[test]
    fn success_with_rotation_scopes_and_string_expiry() {
        let O::Refreshed(r) = classify(
            200,
            r#"{"access_token":"at","token_type":"bearer","expires_in":"3600","refresh_token":"rt2","scope":"a b a","id_token":"x.y.z"}"#,
        ) else {
            panic!("expected success");
        };
        assert_eq!(r.access_token.expose_secret(), "at");
        assert_eq!(r.expires_at, Some(4_600));
        assert_eq!(
            r.refresh_token.as_ref().map(|t| t.expose_secret()),
            Some("rt2")
        );
        assert_eq!(r.scopes, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(r.id_token.is_some());
    }

    #[test]
    fn success_without_refresh_token_keeps_none() {
        let O::Refreshed(r) = classify(
            200,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":3599.0}"#,
        ) else {
            panic!("expected success");
        };
        assert!(r.refresh_token.is_none());
        assert_eq!(r.expires_at, Some(4_599));
    }

    #[test]
    fn unusable_successes_are_misconfigurations() {
        let cases = [
            (
                r#"{"access_token":"at","token_type":"mac"}"#,
                ResponseProblem::TokenTypeNotBearer,
            ),
            (
                r#"{"token_type":"Bearer"}"#,
                ResponseProblem::MissingAccessToken,
            ),
            (
                r#"{"access_token":"","token_type":"Bearer"}"#,
                ResponseProblem::InvalidField("access_token"),
            ),
            (
                r#"{"access_token":"a\nb","token_type":"Bearer"}"#,
                ResponseProblem::InvalidField("access_token"),
            ),
            (
                r#"{"access_token":5,"token_type":"Bearer"}"#,
                ResponseProblem::InvalidField("access_token"),
            ),
            (
                r#"{"access_token":"a","token_type":"Bearer","refresh_token":7}"#,
                ResponseProblem::InvalidField("refresh_token"),
            ),
            (
                r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r\u00e9"}"#,
                ResponseProblem::InvalidField("refresh_token"),
            ),
            ("<html>", ResponseProblem::NotJson),
            (
                r#"{"access_token":"a","token_type":"Bearer""#,
                ResponseProblem::NotJson,
            ),
            ("[1]", ResponseProblem::NotJson),
        ];
        for (body, problem) in cases {
            match classify(200, body) {
                O::Misconfigured(Misconfiguration::InvalidResponse {
                    status: 200,
                    problem: got,
                }) => {
                    assert_eq!(got, problem, "{body}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn sloppy_successes_are_used_and_what_was_ignored_is_named() {
        // Each was refused whole before, and with it the rotated refresh
        // token: the next refresh replayed the old one.
        let cases = [
            (
                r#"{"access_token":"at","refresh_token":"rt2"}"#,
                None,
                vec![ResponseProblem::MissingTokenType],
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":-1,"refresh_token":"rt2"}"#,
                None,
                vec![ResponseProblem::InvalidField("expires_in")],
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":"1e3","refresh_token":"rt2"}"#,
                None,
                vec![ResponseProblem::InvalidField("expires_in")],
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":"3600.0","refresh_token":"rt2"}"#,
                Some(4_600),
                vec![],
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":"3600.","refresh_token":"rt2"}"#,
                Some(4_600),
                vec![],
            ),
            (
                r#"{"access_token":"at","token_type":"Bearer","expires_in":60,"scope":"a\"b","refresh_token":"rt2"}"#,
                Some(1_060),
                vec![ResponseProblem::InvalidField("scope")],
            ),
            (
                r#"{"access_token":"at","expires_in":60,"id_token":7,"refresh_token":"rt2"}"#,
                Some(1_060),
                vec![
                    ResponseProblem::MissingTokenType,
                    ResponseProblem::InvalidField("id_token"),
                ],
            ),
        ];
        for (body, expires_at, ignored) in cases {
            let O::Refreshed(r) = classify(200, body) else {
                panic!("{body}: not used");
            };
            assert_eq!(r.access_token.expose_secret(), "at", "{body}");
            assert_eq!(
                r.refresh_token.as_ref().map(SecretString::expose_secret),
                Some("rt2"),
                "{body}"
            );
            assert_eq!(r.expires_at, expires_at, "{body}");
            assert_eq!(r.ignored, ignored, "{body}");
            assert!(r.scopes.is_none() && r.id_token.is_none(), "{body}");
        }
    }

    #[test]
    fn a_refused_success_keeps_its_new_refresh_token() {
        for (body, problem) in [
            (
                r#"{"access_token":"at","token_type":"DPoP","refresh_token":"rt2"}"#,
                ResponseProblem::TokenTypeNotBearer,
            ),
            (
                r#"{"token_type":"Bearer","refresh_token":"rt2"}"#,
                ResponseProblem::MissingAccessToken,
            ),
            (
                r#"{"access_token":"a\u0000b","refresh_token":"rt2"}"#,
                ResponseProblem::InvalidField("access_token"),
            ),
        ] {
            let outcome = classify(200, body);
            assert_eq!(
                outcome.class(),
                vault_format::RefreshClass::Misconfigured,
                "{body}"
            );
            let O::Salvaged(salvaged) = outcome else {
                panic!("{body}: the refresh token was dropped");
            };
            assert_eq!(salvaged.refresh_token.expose_secret(), "rt2");
            assert_eq!(salvaged.problem, problem);
            assert_eq!(salvaged.obtained_at, 1_000);
        }
    }

    #[test]
    fn error_codes_map_to_classes() {
        let body = |code: &str| format!(r#"{{"error":"{code}","error_description":"d"}}"#);
        assert!(matches!(
            classify(400, &body("invalid_grant")),
            O::ReauthorizationRequired(_)
        ));
        assert!(matches!(
            classify(401, &body("invalid_grant")),
            O::ReauthorizationRequired(_)
        ));
        for code in [
            "invalid_client",
            "unauthorized_client",
            "invalid_scope",
            "unsupported_grant_type",
            "invalid_request",
            "something_new",
        ] {
            assert!(
                matches!(
                    classify(400, &body(code)),
                    O::Misconfigured(Misconfiguration::Rejected(_))
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(401, &body("invalid_client")),
            O::Misconfigured(Misconfiguration::Rejected(_))
        ));
        for code in ["server_error", "temporarily_unavailable"] {
            assert!(
                matches!(classify(400, &body(code)), O::Transient(_)),
                "{code}"
            );
        }
        assert!(matches!(
            classify(503, &body("invalid_client")),
            O::Transient(_)
        ));
        for status in [500, 429] {
            assert!(matches!(
                classify(status, &body("invalid_grant")),
                O::Transient(_)
            ));
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(status, ""), O::Transient(_)), "{status}");
            assert!(
                matches!(classify(status, "<html>oops"), O::Transient(_)),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 405] {
            assert_eq!(
                classify(status, "<html>").class(),
                vault_format::RefreshClass::Misconfigured,
                "{status}"
            );
        }
    }

    #[test]
    fn google_rapt_is_recognised() {
        let O::ReauthorizationRequired(error) = classify(
            400,
            r#"{"error":"invalid_grant","error_description":"reauth related error (invalid_rapt)","error_subtype":"invalid_rapt"}"#,
        ) else {
            panic!("expected re-authorization");
        };
        assert!(error.is_google_reauth_policy());
        assert_eq!(error.subtype.as_deref(), Some("invalid_rapt"));
    }

    #[test]
    fn redirects_are_not_followed_and_name_the_host() {
        let outcome = classify_response(
            TokenHttpResponse {
                status: 302,
                retry_after: None,
                location: Some("https://evil.example/steal?x=1"),
                body: b"",
            },
            0,
        );
        assert_eq!(outcome.class(), vault_format::RefreshClass::Misconfigured);
        assert!(matches!(
            outcome,
            O::Misconfigured(Misconfiguration::Redirect { status: 302, location_host: Some(ref h) }) if h == "evil.example"
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("99999999999999999999", 0),
            Some(MAX_RETRY_AFTER)
        );
        // 1994-11-06T08:49:37Z = 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_700),
            Some(Duration::from_secs(77))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", 1_767_225_599),
            Some(Duration::from_secs(1))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-5", 0), None);
    }
}
