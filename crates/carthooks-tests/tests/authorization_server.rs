//! carthooks-mock as an authorization server, over HTTP the way a browser and
//! an attacker reach it (a plain HTTP client, redirects not followed): the
//! sign-in page sends codes only to registered redirect URIs, binds them to a
//! PKCE challenge and refuses `plain`; secrets come from the OS random source
//! and cannot be computed from one another. The SDK's side of the same rules
//! runs on both backends in the shared suite (`carthooks_tests::signin`).

use carthooks_client::Pkce;
use carthooks_mock::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USER_TOKEN, MockClient, MockConfig,
    MockServer, SIGN_IN_USERS,
};

/// A browser-like HTTP client that shows each redirect instead of following it.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

/// An answer: status, `Location`, body.
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    Answer {
        status: response.status().as_u16(),
        location: response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// The sign-in page's query (or form) for `redirect_uri`, plus `extra`.
fn request<'a>(redirect_uri: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("redirect_uri", redirect_uri),
        ("state", "st-1"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

fn get(server: &MockServer, pairs: &[(&str, &str)]) -> Answer {
    let url =
        carthooks_core::internal::append_query(&server.authorize_page(), pairs.iter().copied());
    answer(agent().get(&url).call().expect("the page answers"))
}

fn post(server: &MockServer, pairs: &[(&str, &str)]) -> Answer {
    answer(
        agent()
            .post(server.authorize_page())
            .send_form(pairs.iter().copied())
            .expect("the page answers"),
    )
}

/// A free port on `host`, as a thief's server would have.
fn port_on(host: &str) -> u16 {
    std::net::TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a port on {host}: {e}"))
}

/// Item 1: whatever the decision, a redirect URI the client did not register
/// gets Carthooks' error page and no `Location` — other host, other path,
/// extra query, fragment, userinfo and subdomain tricks, `javascript:` — and
/// no code is issued. A registered loopback URI works with any port.
#[test]
fn the_sign_in_page_sends_codes_only_to_registered_redirect_uris() {
    let server = MockServer::start().unwrap();
    let (thief, app) = (port_on("127.0.0.2"), port_on("127.0.0.1"));
    let (user, password) = SIGN_IN_USERS[0];
    let attacks = [
        format!("http://127.0.0.2:{thief}/steal"),
        format!("http://127.0.0.2:{thief}/callback"),
        format!("http://127.0.0.1:{app}/steal"),
        format!("http://127.0.0.1:{app}/callback?next=http://127.0.0.2:{thief}/"),
        format!("http://127.0.0.1:{app}/callback#x"),
        format!("http://127.0.0.1:{app}@127.0.0.2:{thief}/callback"),
        format!("http://127.0.0.1@127.0.0.2:{thief}/callback"),
        "http://127.0.0.1.nip.io/callback".to_owned(),
        "http://localhost/callback".to_owned(),
        "https://app.example/callback/../steal".to_owned(),
        "https://app.example.evil.test/callback".to_owned(),
        "javascript:alert(document.domain)//http://127.0.0.1/callback".to_owned(),
    ];
    for uri in &attacks {
        let allow = [
            ("decision", "allow"),
            ("username", user),
            ("password", password),
        ];
        for (how, got) in [
            ("GET", get(&server, &request(uri, &[]))),
            (
                "Deny",
                post(&server, &request(uri, &[("decision", "deny")])),
            ),
            ("Allow", post(&server, &request(uri, &allow))),
        ] {
            assert_eq!(
                (got.status, got.location.as_deref()),
                (400, None),
                "{how} with {uri}"
            );
            assert!(got.body.contains("has not registered"), "{}", got.body);
        }
    }
    assert_eq!(server.counters().codes_issued, 0, "no code for any of them");

    let loopback = format!("http://127.0.0.1:{app}/callback");
    let form = get(&server, &request(&loopback, &[]));
    assert_eq!((form.status, form.location), (200, None));
    let allowed = post(
        &server,
        &request(
            &loopback,
            &[
                ("decision", "allow"),
                ("username", user),
                ("password", password),
            ],
        ),
    );
    assert_eq!(allowed.status, 303);
    let location = allowed.location.unwrap_or_default();
    assert!(
        location.starts_with(&format!("{loopback}?code=code-")),
        "{location}"
    );
}

/// A token request for `code`, with `verifier` if given.
fn exchange(server: &MockServer, code: &str, redirect_uri: &str, verifier: Option<&str>) -> Answer {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    form.extend(verifier.map(|v| ("code_verifier", v)));
    answer(
        agent()
            .post(format!("{}/oauth/token", server.url()))
            .send_form(form)
            .expect("the token endpoint answers"),
    )
}

fn query_value(url: &str, name: &str) -> Option<String> {
    carthooks_mock::decode_form(url.split_once('?')?.1)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Item 3: the page records the challenge and the token endpoint wants its
/// verifier (`invalid_grant` otherwise, the code not spent); `plain`, no
/// method and a malformed challenge go back as `invalid_request`; with the
/// switch on, a client gets no code without a challenge.
#[test]
fn codes_from_the_sign_in_page_are_bound_to_their_pkce_challenge() {
    let server = MockServer::start().unwrap();
    let uri = "https://app.example/callback";
    let pkce = Pkce::new().unwrap();
    let challenge = pkce.challenge().as_str();
    let (user, password) = SIGN_IN_USERS[1];
    let with_challenge = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let form = get(&server, &request(uri, &with_challenge));
    assert!(
        form.body.contains(challenge),
        "the form carries the challenge"
    );
    let mut allow = with_challenge.to_vec();
    allow.extend([
        ("decision", "allow"),
        ("username", user),
        ("password", password),
    ]);
    let back = post(&server, &request(uri, &allow));
    let code = query_value(&back.location.unwrap_or_default(), "code").expect("a code");

    let other = Pkce::new().unwrap();
    for wrong in [
        None,
        Some(other.verifier().secret()),
        Some(challenge), // what `plain` would send
    ] {
        let refused = exchange(&server, &code, uri, wrong);
        assert_eq!(refused.status, 400, "{wrong:?}");
        assert!(refused.body.contains("invalid_grant"), "{}", refused.body);
    }
    let ok = exchange(&server, &code, uri, Some(pkce.verifier().secret()));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("access_token"));

    for bad in [
        vec![
            ("code_challenge", challenge),
            ("code_challenge_method", "plain"),
        ],
        vec![("code_challenge", challenge)],
        vec![("code_challenge", "abc"), ("code_challenge_method", "S256")],
    ] {
        let back = get(&server, &request(uri, &bad));
        let location = back.location.unwrap_or_default();
        assert_eq!(back.status, 303, "{bad:?}");
        assert_eq!(
            query_value(&location, "error").as_deref(),
            Some("invalid_request"),
            "{location}"
        );
        assert_eq!(query_value(&location, "state").as_deref(), Some("st-1"));
    }

    server
        .state()
        .register_client(MockClient::demo().require_pkce(true));
    let back = get(&server, &request(uri, &[]));
    let location = back.location.unwrap_or_default();
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(
        query_value(&location, "error_description").is_some_and(|d| d.contains("PKCE")),
        "{location}"
    );
    assert_eq!(
        get(&server, &request(uri, &with_challenge)).status,
        200,
        "with a challenge the strict client gets the form"
    );
    assert_eq!(server.counters().codes_issued, 1);
}

/// Item 2, the reviewer's attack: bob sees his own code in his callback URL
/// and, knowing how the mock used to make secrets (a counter and a fixed
/// multiplier), computes the access tokens issued next. Now every secret is 32
/// bytes from the OS random source, and none of his guesses is a token.
#[test]
fn secrets_cannot_be_computed_from_one_another() {
    let server = MockServer::start().unwrap();
    let uri = "https://app.example/callback";
    let (user, password) = SIGN_IN_USERS[1];
    let back = post(
        &server,
        &request(
            uri,
            &[
                ("decision", "allow"),
                ("username", user),
                ("password", password),
            ],
        ),
    );
    let bobs_code = query_value(&back.location.unwrap_or_default(), "code").expect("a code");

    // Alice's access token, issued after bob's code.
    let alice = answer(
        agent()
            .post(format!("{}/oauth/token", server.url()))
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("user_access_token", DEFAULT_USER_TOKEN),
            ])
            .unwrap(),
    );
    assert_eq!(alice.status, 200);
    let alices: serde_json::Value = serde_json::from_str(&alice.body).unwrap();
    let alices_token = alices["data"]["access_token"].as_str().unwrap().to_owned();

    // The old scheme: `code-{n}-{hex}` with hex(n + k) = hex(n) + k·C.
    let mut guesses = Vec::new();
    let parts: Vec<&str> = bobs_code.splitn(3, '-').collect();
    if let [_, n, mix] = parts[..]
        && let (Ok(n), Ok(mix)) = (n.parse::<u64>(), u64::from_str_radix(mix, 16))
    {
        for k in 1..=64u64 {
            let guess = mix.wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            guesses.push(format!("at-{}-{guess:016x}", n + k));
        }
    }
    // Whatever the format: the code's payload shifted by one, as a counter would be.
    guesses.push(bobs_code.replacen("code-", "at-", 1));
    for guess in &guesses {
        assert_ne!(
            guess, &alices_token,
            "alice's token was computed from bob's code"
        );
        let me = answer(
            agent()
                .get(format!("{}/v1/me", server.url()))
                .header("authorization", format!("Bearer {guess}"))
                .call()
                .unwrap(),
        );
        assert_eq!(me.status, 401, "a guessed token was accepted: {guess}");
    }
    // Each secret: a prefix and 32 random bytes, base64url (43 characters).
    for (secret, prefix) in [(&bobs_code, "code-"), (&alices_token, "at-")] {
        let payload = secret.strip_prefix(prefix).expect("the prefix");
        assert_eq!(payload.len(), 43, "{secret}");
        assert!(
            payload
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{secret}"
        );
    }
}

/// A seed gives a test the same secrets every run; without one, two servers
/// never share one.
#[test]
fn a_secret_seed_and_only_a_seed_makes_secrets_repeat() {
    let first_code = |seed| {
        MockServer::start_with(MockConfig {
            secret_seed: seed,
            ..MockConfig::default()
        })
        .unwrap()
        .state()
        .issue_code(DEFAULT_CLIENT_ID, 7, "https://app.example/cb", None, 0)
    };
    assert_eq!(first_code(Some(42)), first_code(Some(42)));
    assert_ne!(first_code(Some(42)), first_code(Some(43)));
    assert_ne!(first_code(None), first_code(None));
}
