//! API answers: any status, any body, into every answer type.
#![no_main]

use carthooks_core::{UserInfo, parse_api_response};
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 201, 400, 401, 404, 429, 500, 502];

fuzz_target!(|input: &[u8]| {
    let Some((&first, body)) = input.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(first) % STATUSES.len()];
    let response = http::Response::builder()
        .status(status)
        .body(body.to_vec())
        .expect("valid status");
    let _ = parse_api_response::<serde_json::Value>(&response);
    let _ = parse_api_response::<UserInfo>(&response);
    let _ = parse_api_response::<Vec<serde_json::Value>>(&response);
});
