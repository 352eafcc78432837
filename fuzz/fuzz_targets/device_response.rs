//! Parses arbitrary device authorization responses (RFC 8628 §3.2). Must
//! never panic. What it accepts is shown on the user's terminal, so an
//! accepted answer must hold a short printable user code, a verification
//! URI that is https (or http on loopback), and an interval in 1..=60 s;
//! `Debug` shows those fields only, never the device code.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_oauth::parse_device_response;

fn check_uri(uri: &str) {
    let url = url::Url::parse(uri).expect("an accepted verification URI parses");
    assert!(
        url.scheme() == "https" || (url.scheme() == "http" && vault_format::is_loopback(&url)),
        "verification URI neither https nor loopback: {uri:?}"
    );
    assert!(
        !uri.chars().any(|c| c.is_control()),
        "control characters in a URI shown to the user"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(device) = parse_device_response(data) else {
        return;
    };
    let code = &device.user_code;
    assert!(
        !code.is_empty() && code.len() <= 64,
        "user code length {}",
        code.len()
    );
    assert!(
        code.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
        "user code not printable: {code:?}"
    );
    check_uri(&device.verification_uri);
    if let Some(complete) = &device.verification_uri_complete {
        check_uri(complete);
    }
    assert!(
        (1..=60).contains(&device.interval.as_secs()),
        "interval {:?}",
        device.interval
    );
    // The device code is a secret: Debug shows exactly the public fields.
    // (Searching Debug for the code itself gave false alarms, twice: codes
    // like "verification_uri" are in it as field names.)
    let expected = format!(
        "DeviceAuthorization {{ user_code: {:?}, verification_uri: {:?}, expires_in: {:?}, interval: {:?}, .. }}",
        device.user_code, device.verification_uri, device.expires_in, device.interval
    );
    assert_eq!(
        format!("{device:?}"),
        expected,
        "Debug shows more than the public fields"
    );
});
