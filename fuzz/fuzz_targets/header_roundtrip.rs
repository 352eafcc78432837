//! `parse` followed by `Header::to_bytes`, the MAC and the payload must
//! reproduce the input byte for byte: the parser accepts exactly one
//! encoding of every header.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = vault_format::parse(data) else {
        return;
    };
    let mut encoded = parsed.header.to_bytes();
    encoded.extend_from_slice(&parsed.mac);
    encoded.extend_from_slice(parsed.payload);
    if encoded != data {
        let first_difference = encoded
            .iter()
            .zip(data)
            .position(|(a, b)| a != b)
            .unwrap_or(encoded.len().min(data.len()));
        panic!(
            "parse -> encode does not reproduce the input: {} bytes in, {} bytes out, \
             first difference at offset {first_difference}; header: {:?}",
            data.len(),
            encoded.len(),
            parsed.header,
        );
    }
});
