//! Base URLs, form/query decoding and HTTP-dates from arbitrary text.
#![no_main]

use carthooks_core::internal::{decode_form, encode_query};
use carthooks_core::{BaseUrl, internal::parse_http_date};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let _ = BaseUrl::parse(text);
    let _ = parse_http_date(text);
    let pairs = decode_form(text);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(decode_form(&encode_query(refs)), pairs);
});
