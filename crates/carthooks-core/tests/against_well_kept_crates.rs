//! The core's hand-written encoders and parsers, checked against the well-kept
//! crates that do the same job (`httpdate`, `percent-encoding`,
//! `form_urlencoded`, `itoa`, `base64`, `sha2`). The core cannot depend on them — it stays on
//! http, serde, serde_json and thiserror — so they are its dev-dependencies, and
//! these tests hold the hand-written code to their answers.

use std::time::{Duration, UNIX_EPOCH};

use carthooks_core::internal::parse_http_date;
use carthooks_core::internal::{encode_form, encode_path_segment, encode_query};
use carthooks_core::{BaseUrl, Endpoint, UserInfo};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn text(&mut self, max: usize) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", "-", ".", "_", "~", " ", "/", "?", "#", "&", "=", "+", "%", "é", "中",
            "🚀", "\u{0}", "\n", "[", "]", "$", "'", "\"", "{", "}",
        ];
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n)
            .map(|_| PIECES[(self.next() % PIECES.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn http_dates_agree_with_the_httpdate_crate() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // 1970 to 2100, every form httpdate writes (IMF-fixdate) and reads.
    for _ in 0..50_000 {
        let t = rng.next() % 4_102_444_800;
        let date = UNIX_EPOCH + Duration::from_secs(t);
        let imf = httpdate::fmt_http_date(date);
        assert_eq!(parse_http_date(&imf), Some(t), "{imf}");
    }
    // Made-up dates, valid or not (day 0 to 32, any month, hour 0 to 24): both
    // accept the same ones and read them the same way.
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    for _ in 0..50_000 {
        let text = format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
            DAYS[(rng.next() % 7) as usize],
            rng.next() % 33,
            MONTHS[(rng.next() % 12) as usize],
            1970 + rng.next() % 140,
            rng.next() % 25,
            rng.next() % 60,
            rng.next() % 60,
        );
        let theirs = httpdate::parse_http_date(&text)
            .ok()
            .map(|d| d.duration_since(UNIX_EPOCH).unwrap().as_secs());
        let ours = parse_http_date(&text);
        match (ours, theirs) {
            // httpdate also refuses a wrong weekday; we read the date anyway
            // (servers get it right, and the weekday adds nothing).
            (Some(t), None) => {
                let canonical = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t));
                assert_eq!(canonical[3..], text[3..], "only the weekday may differ");
            }
            _ => assert_eq!(ours, theirs, "{text}"),
        }
    }
    for text in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Mon, 29 Feb 2100 00:00:00 GMT",
        "Tue, 29 Feb 2000 23:59:59 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "soon",
    ] {
        let theirs = httpdate::parse_http_date(text)
            .ok()
            .map(|d| d.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(parse_http_date(text), theirs, "{text}");
    }
}

/// Everything but RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[test]
fn path_segments_agree_with_percent_encoding() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..50_000 {
        let s = rng.text(24);
        if s == "." || s == ".." {
            continue; // encoded as %2E on purpose (dot segments)
        }
        assert_eq!(
            encode_path_segment(&s),
            utf8_percent_encode(&s, PATH_SEGMENT).to_string(),
            "{s:?}"
        );
    }
}

#[test]
fn forms_and_queries_are_read_back_by_form_urlencoded() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..20_000 {
        let pairs: Vec<(String, String)> = (0..rng.next() % 4)
            .map(|_| (rng.text(8), rng.text(12)))
            .collect();
        let refs = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for encoded in [encode_form(refs.clone()), encode_query(refs)] {
            let back: Vec<(String, String)> = form_urlencoded::parse(encoded.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let want: Vec<_> = pairs
                .iter()
                .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
                .cloned()
                .collect();
            let back: Vec<_> = back
                .into_iter()
                .filter(|(k, v)| !(k.is_empty() && v.is_empty()))
                .collect();
            assert_eq!(back, want, "{encoded}");
        }
    }
}

#[test]
fn ids_in_paths_agree_with_itoa() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut buffer = itoa::Buffer::new();
    for n in (0..50_000).map(|_| rng.next() >> (rng.next() % 64)).chain([
        0,
        9,
        10,
        99,
        100,
        999,
        1000,
        u64::MAX,
    ]) {
        let request = Endpoint::<UserInfo>::get_user(n)
            .to_request(&BaseUrl::default(), None)
            .unwrap();
        assert_eq!(
            request.uri().path(),
            format!("/v1/users/{}", buffer.format(n))
        );
    }
}

#[test]
fn pkce_base64url_agrees_with_the_base64_crate_and_challenges_with_sha2() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for len in 0..200usize {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert_eq!(
            carthooks_core::internal::base64url(&bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            "{bytes:?}"
        );
        if let Ok(random) = <[u8; 32]>::try_from(bytes.as_slice()) {
            let verifier = carthooks_core::PkceVerifier::from_random_bytes(&random);
            assert!(carthooks_core::internal::is_valid_verifier(
                verifier.secret()
            ));
            let digest: [u8; 32] = sha2::Sha256::digest(verifier.secret().as_bytes()).into();
            let challenge = carthooks_core::PkceChallenge::from_sha256(&digest);
            assert!(carthooks_core::internal::is_valid_s256_challenge(
                challenge.as_str()
            ));
        }
    }
}
