//! The base URL and the small amount of percent-encoding the wire format needs.
//!
//! Hand-written rather than pulled in: forms and queries here are flat lists of
//! string pairs, and the rules are those of `application/x-www-form-urlencoded`
//! (what Python's `urlencode` writes): unreserved bytes as they are, everything
//! else as `%XX` (space as `+` in forms).

use crate::error::{Error, Result};
use crate::pkce::PkceChallenge;

/// Default base URL of the Carthooks API.
pub const DEFAULT_BASE_URL: &str = "https://api.carthooks.com";

/// A validated base URL: `scheme://authority[/prefix]`, no query or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `scheme://authority`
    origin: String,
    /// Parsed once, reused by every request.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Path prefix without trailing slash (`""` or `/something`).
    prefix: String,
    loopback: bool,
    https: bool,
}

impl BaseUrl {
    /// Parses and validates a base URL (`https://api.carthooks.com`,
    /// `http://127.0.0.1:8080/prefix`).
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("invalid base URL: {why}"));
        let uri: http::Uri = input
            .trim()
            .parse()
            .map_err(|_| bad("not a valid absolute URL"))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("missing scheme"))?;
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return Err(bad("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not allowed"));
        }
        if authority.host().is_empty() {
            return Err(bad("missing host"));
        }
        let port = authority
            .as_str()
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.contains(']') && !p.is_empty());
        if port.is_some_and(|p| !p.parse::<u16>().is_ok_and(|p| p > 0)) {
            return Err(Error::Config(format!(
                "invalid base URL {}: the port must be between 1 and 65535",
                input.trim()
            )));
        }
        if uri.query().is_some() || input.contains('#') {
            return Err(bad("query and fragment are not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        let host = authority.as_str().to_ascii_lowercase();
        Ok(Self {
            origin: format!("{scheme}://{host}"),
            scheme: if https {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            },
            authority: host.parse().map_err(|_| bad("invalid host"))?,
            prefix: remove_dot_segments(uri.path())
                .trim_end_matches('/')
                .to_owned(),
            loopback,
            https,
        })
    }

    /// The URI of `path_and_query` (starting with `/`) under the prefix, or under
    /// the prefix's parent with `parent`; only the path is parsed, the scheme and
    /// host were parsed once.
    pub(crate) fn uri(&self, parent: bool, path: &str, query: &str) -> Option<http::Uri> {
        let prefix = if parent {
            self.prefix.rfind('/').map_or("", |i| &self.prefix[..i])
        } else {
            &self.prefix
        };
        let mut pq = String::with_capacity(prefix.len() + path.len() + 1 + query.len());
        pq.push_str(prefix);
        pq.push_str(path);
        if !query.is_empty() {
            pq.push('?');
            pq.push_str(query);
        }
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(http::uri::PathAndQuery::try_from(pq).ok()?);
        http::Uri::from_parts(parts).ok()
    }

    /// The host (`api.carthooks.com`, `127.0.0.1`, `[::1]` without its
    /// brackets): the HTTP conventions' `server.address`.
    pub fn host(&self) -> &str {
        self.authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
    }

    /// The port, the scheme's default when the URL names none: the HTTP
    /// conventions' `server.port`.
    pub fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or(if self.https { 443 } else { 80 })
    }

    /// The URL for `path` (which starts with `/`), under the prefix.
    pub fn join(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.origin.len() + self.prefix.len() + path.len());
        s.push_str(&self.origin);
        s.push_str(&self.prefix);
        s.push_str(path);
        s
    }

    /// `{base}/../{path}` with the dot segment resolved: `path` under the parent of
    /// the prefix. This is where the Python SDK sends the authorize-code request.
    pub fn join_parent(&self, path: &str) -> String {
        let parent = match self.prefix.rfind('/') {
            Some(i) => &self.prefix[..i],
            None => "",
        };
        format!("{}{}{}", self.origin, parent, path)
    }

    /// True when the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// True for `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin, self.prefix)
    }
}

impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

impl Default for BaseUrl {
    fn default() -> Self {
        Self::parse(DEFAULT_BASE_URL).expect("default base URL is valid")
    }
}

/// `UNRESERVED[b]` is true for the bytes that are never escaped: `A-Z a-z 0-9 - . _ ~`.
const UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

fn is_unreserved(b: u8) -> bool {
    UNRESERVED[b as usize]
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `input` percent-encoded; runs of unreserved bytes are copied whole.
pub(crate) fn encode_into(out: &mut String, input: &str, space_as_plus: bool) {
    let bytes = input.as_bytes();
    out.reserve(bytes.len() + 8);
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if is_unreserved(b) {
            continue;
        }
        // `run..i` holds only unreserved ASCII bytes, so both ends are char
        // boundaries whenever it is not empty.
        if run < i {
            out.push_str(&input[run..i]);
        }
        run = i + 1;
        if b == b' ' && space_as_plus {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[(b >> 4) as usize]));
            out.push(char::from(HEX[(b & 15) as usize]));
        }
    }
    if run < bytes.len() {
        out.push_str(&input[run..]);
    }
}

/// `"00" "01" … "99"`: two digits per division in [`push_u64`].
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `n` in decimal, without the formatting machinery (hot paths: ids in
/// paths, pagination numbers). Two digits per division (a quarter fewer
/// instructions than one, measured with callgrind).
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    // Digits are ASCII: the check cannot fail (a push per digit costs more).
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Appends `key=value` pairs to a query string being built (`&` between pairs).
pub(crate) fn append_pair(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    encode_into(out, key, false);
    out.push('=');
    encode_into(out, value, false);
}

/// Percent-encodes one path segment (`/` included). The dot segments `.` and
/// `..` are encoded too (`%2E`, `%2E%2E`): left as they are, HTTP clients resolve
/// them and the request would go to another path (`/v1/user-token/..` → `/v1/`).
pub fn encode_path_segment(input: &str) -> String {
    match input {
        "." => return "%2E".to_owned(),
        ".." => return "%2E%2E".to_owned(),
        _ => {}
    }
    let mut s = String::with_capacity(input.len());
    encode_into(&mut s, input, false);
    s
}

/// Resolves `.` and `..` segments of a path (RFC 3986 §5.2.4), so that every
/// HTTP client sends the same path for a base URL such as `https://h/a/../b`.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = String::with_capacity(path.len());
    for segment in out {
        s.push('/');
        s.push_str(segment);
    }
    s
}

/// Encodes pairs as an `application/x-www-form-urlencoded` body.
pub fn encode_form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    encode_pairs(pairs, true)
}

/// The URL of an authorization server's sign-in page (`page`) for the
/// authorization-code flow with PKCE: `response_type=code`, `client_id`,
/// `redirect_uri`, `state`, `code_challenge` and `code_challenge_method=S256`
/// appended to its query. Send the user's browser there; the server redirects
/// back to `redirect_uri` with `code` and `state`, and the code is exchanged
/// with the challenge's verifier. A server that does not know PKCE ignores the
/// two challenge parameters (RFC 6749 §3.1).
///
/// ```
/// use carthooks_core::PkceChallenge;
/// let challenge = PkceChallenge::from_sha256(&[0; 32]); // from `Pkce::new()` in practice
/// let url = carthooks_core::authorize_url(
///     "https://carthooks.test/oauth/authorize",
///     "my-client",
///     "https://app.example/callback",
///     "3f2a",
///     &challenge,
/// );
/// assert_eq!(
///     url,
///     "https://carthooks.test/oauth/authorize?response_type=code&client_id=my-client\
///      &redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&state=3f2a\
///      &code_challenge=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code_challenge_method=S256"
/// );
/// ```
pub fn authorize_url(
    page: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &PkceChallenge,
) -> String {
    append_query(
        page,
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", PkceChallenge::METHOD),
        ],
    )
}

/// `url` with `pairs` appended to its query (after `&` when it already has
/// one, else after `?`): a sign-in page's URL, a redirect back with `code`
/// and `state`.
///
/// ```
/// use carthooks_core::internal::append_query;
/// assert_eq!(append_query("https://a.test/cb", [("code", "c 1")]), "https://a.test/cb?code=c%201");
/// assert_eq!(append_query("https://a.test/cb?x=1", [("s", "2")]), "https://a.test/cb?x=1&s=2");
/// ```
pub fn append_query<'a>(url: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", encode_query(pairs))
}

/// Encodes pairs as a query string (without the leading `?`).
pub fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    encode_pairs(pairs, false)
}

fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, plus: bool) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, k, plus);
        out.push('=');
        encode_into(&mut out, v, plus);
    }
    out
}

/// Decodes an `application/x-www-form-urlencoded` string (or a query) into pairs
/// (for a redirect URL's `code` and `state`). Invalid escapes are kept
/// literally; invalid UTF-8 is replaced.
pub fn decode_form(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_the_servers_with_the_schemes_default() {
        let cases = [
            ("https://api.carthooks.com", "api.carthooks.com", 443),
            ("http://127.0.0.1:8080/prefix", "127.0.0.1", 8080),
            ("http://[::1]/", "::1", 80),
            ("https://API.Example:8443", "api.example", 8443),
        ];
        for (url, host, port) in cases {
            let base = BaseUrl::parse(url).unwrap();
            assert_eq!((base.host(), base.port()), (host, port), "{url}");
        }
    }

    #[test]
    fn form_matches_python_urlencode() {
        assert_eq!(
            encode_form([
                ("grant_type", "authorization_code"),
                ("redirect_uri", "https://app.example/cb"),
                ("x", "a b+c"),
            ]),
            "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&x=a+b%2Bc"
        );
    }

    #[test]
    fn decode_roundtrip() {
        let pairs = [("filters[f_1][$eq]", "a b/ü%"), ("k", "")];
        let decoded = decode_form(&encode_query(pairs));
        assert_eq!(decoded[0], ("filters[f_1][$eq]".into(), "a b/ü%".into()));
        assert_eq!(decoded[1], ("k".into(), "".into()));
        assert_eq!(
            decode_form("a=%zz&b=%4"),
            vec![("a".into(), "%zz".into()), ("b".into(), "%4".into())]
        );
    }

    #[test]
    fn base_url_rules() {
        let b = BaseUrl::parse("https://API.carthooks.com/").unwrap();
        assert_eq!(b.join("/v1/me"), "https://api.carthooks.com/v1/me");
        assert_eq!(
            b.join_parent("/api/oauth/get-authorize-code"),
            "https://api.carthooks.com/api/oauth/get-authorize-code"
        );
        let p = BaseUrl::parse("http://127.0.0.1:9000/gw/v2").unwrap();
        assert!(p.is_loopback() && !p.is_https());
        assert_eq!(
            p.join("/oauth/token"),
            "http://127.0.0.1:9000/gw/v2/oauth/token"
        );
        assert_eq!(p.join_parent("/api/x"), "http://127.0.0.1:9000/gw/api/x");
        for bad in [
            "",
            "api.carthooks.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
            "https://x/#f",
        ] {
            assert!(
                matches!(BaseUrl::parse(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        assert!(BaseUrl::parse("http://[::1]:80").unwrap().is_loopback());
        for bad_port in [
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0",
            "https://h:65536",
        ] {
            let e = BaseUrl::parse(bad_port).unwrap_err();
            assert!(e.to_string().contains(bad_port), "{e}");
        }
        let dots = BaseUrl::parse("https://h/a/../b/./c/").unwrap();
        assert_eq!(dots.join("/v1/me"), "https://h/b/c/v1/me");
        assert_eq!(
            BaseUrl::parse("https://h/..").unwrap().to_string(),
            "https://h"
        );
    }

    #[test]
    fn dot_segments_are_encoded() {
        assert_eq!(encode_path_segment(".."), "%2E%2E");
        assert_eq!(encode_path_segment("."), "%2E");
        assert_eq!(encode_path_segment("a.b"), "a.b");
        assert_eq!(encode_path_segment("..."), "...");
    }
}
