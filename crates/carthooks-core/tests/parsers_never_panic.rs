//! Property tests over arbitrary input: the response parsers, the URL helpers and
//! the request builders never panic, and parse errors never quote a token.
//!
//! A deterministic generator (xorshift, fixed seeds) keeps failures reproducible;
//! `cargo xtask fuzz` runs the same parsers under libFuzzer for deeper coverage.

use carthooks_core::internal::encode_query;

/// The well-kept decoder (servo's `form_urlencoded`) reads what we encode.
fn decode_form(input: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(input.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
use carthooks_core::{
    BaseUrl, Endpoint, FilterOp, ItemsQuery, UserInfo, internal::parse_http_date,
    parse_api_response, parse_token_response,
};
use serde_json::{Map, Value, json};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        (0..self.below(max)).map(|_| self.next() as u8).collect()
    }
    fn text(&mut self, max: u64) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", " ", "%", "%2", "%zz", "+", "&", "=", "[", "]", "$", "/", "?", "#",
            "\"", "\\", "é", "€", "😀", "\u{0}", "\n", ":", "@", "..", "GMT", "Nov", ",",
        ];
        (0..self.below(max)).map(|_| *self.pick(PIECES)).collect()
    }
}

const KEYS: &[&str] = &[
    "data",
    "error",
    "traceId",
    "trace_id",
    "meta",
    "message",
    "error_description",
    "code",
    "access_token",
    "refresh_token",
    "expires_in",
    "token_type",
    "scope",
    "user_id",
    "username",
    "tenant_id",
    "is_admin",
    "redirect_url",
    "total",
    "x",
];

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 1),
        2 => json!(rng.next()),
        3 => json!(-(rng.below(1 << 40) as i64)),
        4 => json!(rng.next() as f64 / 7.0),
        5 => Value::String(rng.text(12)),
        6 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert((*rng.pick(KEYS)).to_owned(), value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

fn response(status: u16, body: Vec<u8>) -> http::Response<Vec<u8>> {
    http::Response::builder()
        .status(status)
        .body(body)
        .expect("valid status")
}

const STATUSES: &[u16] = &[
    200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503,
];

fn parse_all(r: &http::Response<Vec<u8>>, now: u64) -> Vec<String> {
    let mut errors = Vec::new();
    let mut keep = |e: carthooks_core::Error| errors.push(format!("{e} {e:?}"));
    if let Err(e) = parse_api_response::<Value>(r) {
        keep(e);
    }
    if let Err(e) = parse_api_response::<UserInfo>(r) {
        keep(e);
    }
    if let Err(e) = parse_api_response::<Vec<Value>>(r) {
        keep(e);
    }
    if let Err(e) = parse_token_response(r, now) {
        keep(e);
    }
    errors
}

#[test]
fn arbitrary_bytes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let status = *rng.pick(STATUSES);
        let body = rng.bytes(300);
        let now = *rng.pick(&[0, 1_700_000_000, u64::MAX]);
        parse_all(&response(status, body), now);
    }
}

#[test]
fn arbitrary_json() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let status = *rng.pick(STATUSES);
        let body = serde_json::to_vec(&value(&mut rng, 0)).unwrap();
        let now = *rng.pick(&[0, 1_700_000_000, u64::MAX]);
        parse_all(&response(status, body), now);
    }
}

/// Tokens placed where a token goes, in answers that are wrong in any other way,
/// never reach an error's text.
#[test]
fn errors_never_quote_tokens() {
    const MARKER: &str = "tok-SECRET-4242";
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    for _ in 0..20_000 {
        let mut v = value(&mut rng, 1);
        let mut data = match value(&mut rng, 2) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        data.insert("access_token".into(), json!(MARKER));
        data.insert("refresh_token".into(), json!(MARKER));
        data.insert("user_id".into(), json!(MARKER));
        if let Value::Object(m) = &mut v {
            m.remove("error");
            m.remove("message");
            m.remove("error_description");
            m.insert("data".into(), Value::Object(data.clone()));
        } else {
            v = json!({"data": data});
        }
        let mut body = serde_json::to_vec(&v).unwrap();
        // Sometimes cut it off mid-way.
        if rng.below(2) == 0 {
            body.truncate(rng.below(body.len() as u64) as usize);
        }
        let status = *rng.pick(STATUSES);
        for text in parse_all(&response(status, body), 1_700_000_000) {
            assert!(!text.contains(MARKER), "an error quoted a token: {text}");
        }
    }
}

#[test]
fn every_truncation_of_valid_answers() {
    let answers = [
        r#"{"data":{"access_token":"at","refresh_token":"rt","expires_in":86400,"token_type":"Bearer"},"error":null,"traceId":"t"}"#,
        r#"{"data":[{"id":1,"fields":{"f":"é😀"}}],"error":null,"meta":{"total":1},"traceId":"t"}"#,
        r#"{"error":"invalid_grant","error_description":"used"}"#,
        r#"{"data":null,"error":{"code":40401,"message":"missing"},"traceId":"t"}"#,
    ];
    for answer in answers {
        for cut in 0..answer.len() {
            for status in [200, 400] {
                parse_all(&response(status, answer.as_bytes()[..cut].to_vec()), 0);
            }
        }
    }
}

#[test]
fn url_helpers_and_request_builders() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..20_000 {
        let s = rng.text(40);
        let _ = BaseUrl::parse(&s);
        let _ = BaseUrl::parse(&format!("https://{s}"));
        let _ = parse_http_date(&s);
        // Our own decoder (redirect URLs' `code` and `state`) takes anything.
        let redirect: carthooks_core::AuthorizeCodeResponse = serde_json::from_value(
            serde_json::json!({"redirect_url": format!("https://app.example/cb?{s}")}),
        )
        .unwrap();
        let _ = (redirect.code(), redirect.state());
        let pairs = decode_form(&s);
        // Encoding then decoding gives the pairs back.
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(decode_form(&encode_query(refs.iter().copied())), pairs);
        let field = rng.text(10);
        let q = ItemsQuery::new()
            .limit(rng.next())
            .start(rng.next())
            .filter(
                &field,
                *rng.pick(&[FilterOp::Eq, FilterOp::In, FilterOp::NotNull]),
                &s,
            )
            .param(s.clone(), field.clone());
        let ep = Endpoint::<Vec<Value>>::get_items(rng.next(), rng.next(), &q);
        let req = ep
            .to_request(&BaseUrl::default(), None)
            .expect("always a valid URI");
        let mut back = decode_form(req.uri().query().unwrap());
        let mut want = q.to_pairs();
        back.sort();
        want.sort();
        assert_eq!(back, want);
        let token = carthooks_core::UserAccessToken::new(s.clone());
        let ep = Endpoint::get_user_by_token(&token);
        match ep.to_request(&BaseUrl::default(), None) {
            Ok(req) => assert!(req.uri().path().starts_with("/v1/user-token/")),
            // Only a dot segment is refused: no client would send it as it is.
            Err(e) => assert!(
                matches!(e, carthooks_core::Error::InvalidInput(_)) && (s == "." || s == ".."),
                "{e:?}"
            ),
        }
    }
}
