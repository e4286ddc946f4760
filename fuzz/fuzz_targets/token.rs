//! Token endpoint answers (enveloped, bare, RFC 6749 errors, garbage).
#![no_main]

use carthooks_core::parse_token_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&first, body)) = input.split_first() else {
        return;
    };
    let status = if first & 1 == 0 { 200 } else { 400 };
    let now = if first & 2 == 0 {
        1_700_000_000
    } else {
        u64::MAX
    };
    let response = http::Response::builder()
        .status(status)
        .body(body.to_vec())
        .expect("valid status");
    let _ = parse_token_response(&response, now);
});
