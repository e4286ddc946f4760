//! Sign-in as RFC 9700 asks, through the SDK on each backend: PKCE from end
//! to end (the challenge in the authorize-code request, the verifier in the
//! exchange), the mock refusing what a real authorization server refuses, and
//! the verifier never in an error.

use carthooks_client::{BuildClient, Connect, Pkce};
use carthooks_core::{Error, OAuthAuthorizeCodeRequest};
use carthooks_mock::{DEFAULT_CLIENT_ID, DEFAULT_USER_TOKEN, MockClient, MockServer};
use serde_json::Value;

use crate::{Sdk, client, oauth};

const REDIRECT: &str = "https://app.example/cb";

/// Alice's client (acting for her with her user token), to ask for codes.
fn alice<S: Sdk>(server: &MockServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c: S = client(server, oauth());
    c.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    c
}

/// A code for alice, bound to `pkce`'s challenge when given.
fn code_for<S: Sdk>(user: &S, redirect_uri: &str, pkce: Option<&Pkce>) -> Result<String, Error> {
    let mut request = OAuthAuthorizeCodeRequest::new(DEFAULT_CLIENT_ID, redirect_uri, "st");
    if let Some(pkce) = pkce {
        request = request.pkce(pkce.challenge());
    }
    let answer = user.get_oauth_authorize_code(&request)?;
    Ok(answer.data.code().expect("a code").secret().to_owned())
}

/// The JSON body of the last request to `path`.
fn last_body(server: &MockServer, path: &str) -> Vec<u8> {
    let state = server.state();
    state
        .log()
        .iter()
        .rev()
        .find(|r| r.path == path)
        .map(|r| r.body.clone())
        .unwrap_or_default()
}

/// A code bound to a challenge is exchanged only with its verifier: not
/// without one, not with another pair's; the refusals are `invalid_grant`,
/// never show the verifier, and do not spend the code. On the wire: the
/// challenge with `S256` in the authorize-code request, the verifier in the
/// token request.
pub fn pkce_binds_the_code_to_its_verifier<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let user = alice::<S>(&server);
    let pkce = Pkce::new().unwrap();
    let code = code_for(&user, REDIRECT, Some(&pkce)).unwrap();
    let sent: Value = serde_json::from_slice(&last_body(&server, "/api/oauth/get-authorize-code"))
        .expect("a JSON body");
    assert_eq!(sent["code_challenge"], pkce.challenge().as_str());
    assert_eq!(sent["code_challenge_method"], "S256");

    let web: S = client(&server, oauth());
    let other = Pkce::new().unwrap();
    for verifier in [None, Some(other.verifier())] {
        let e = web
            .exchange_authorization_code(&code, REDIRECT, verifier)
            .unwrap_err();
        assert_eq!(e.oauth_error_code(), Some("invalid_grant"), "{e}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(other.verifier().secret()), "{shown}");
        assert!(!shown.contains(pkce.verifier().secret()), "{shown}");
    }
    let tokens = web
        .exchange_authorization_code(&code, REDIRECT, Some(pkce.verifier()))
        .expect("the right verifier redeems the code");
    assert!(tokens.refresh_token.is_some());
    assert_eq!(web.get_current_user().unwrap().data.username, "alice");
    let form = String::from_utf8(last_body(&server, "/oauth/token")).unwrap();
    assert!(
        form.ends_with(&format!("&code_verifier={}", pkce.verifier().secret())),
        "{form}"
    );
    assert_eq!(server.counters().grant("authorization_code"), 3);
}

/// A verifier for a code issued without a challenge is refused (a PKCE
/// downgrade, RFC 9700 §2.1.1); without one, that code is exchanged as the
/// Python SDK exchanges it.
pub fn a_verifier_for_a_code_without_a_challenge_is_refused<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let user = alice::<S>(&server);
    let code = code_for(&user, REDIRECT, None).unwrap();
    let web: S = client(&server, oauth());
    let pkce = Pkce::new().unwrap();
    let e = web
        .exchange_authorization_code(&code, REDIRECT, Some(pkce.verifier()))
        .unwrap_err();
    assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
    web.exchange_authorization_code(&code, REDIRECT, None)
        .expect("the code is still good without a verifier");
}

/// `plain` (or no method, which means `plain`), a malformed challenge and a
/// method without a challenge get a 400 and no code; a client that requires
/// PKCE gets no code without a challenge, and one with it.
pub fn plain_malformed_or_missing_challenges_get_no_code<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let user = alice::<S>(&server);
    let good = Pkce::new().unwrap().challenge().as_str().to_owned();
    for (challenge, method) in [
        (Some(good.as_str()), Some("plain")),
        (Some(good.as_str()), None),
        (Some("not-a-challenge"), Some("S256")),
        (None, Some("S256")),
    ] {
        let mut request = OAuthAuthorizeCodeRequest::new(DEFAULT_CLIENT_ID, REDIRECT, "st");
        request.code_challenge = challenge.map(str::to_owned);
        request.code_challenge_method = method.map(str::to_owned);
        let e = user.get_oauth_authorize_code(&request).unwrap_err();
        assert_eq!(
            e.status().map(|s| s.as_u16()),
            Some(400),
            "{challenge:?} {method:?}: {e}"
        );
    }
    assert_eq!(server.counters().codes_issued, 0);

    server
        .state()
        .register_client(MockClient::demo().require_pkce(true));
    let e = code_for(&user, REDIRECT, None).unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert!(e.to_string().contains("PKCE"), "{e}");
    let pkce = Pkce::new().unwrap();
    let code = code_for(&user, REDIRECT, Some(&pkce)).unwrap();
    let web: S = client(&server, oauth());
    web.exchange_authorization_code(&code, REDIRECT, Some(pkce.verifier()))
        .unwrap();
    assert_eq!(server.counters().codes_issued, 1);
}

/// `get-authorize-code` issues codes only for the client's registered
/// redirect URIs (a loopback one with any port), as the sign-in page does.
pub fn codes_only_for_registered_redirect_uris<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let user = alice::<S>(&server);
    for uri in [
        "https://evil.example/cb",
        "https://app.example/cb/../steal",
        "https://app.example/cb?next=https://evil.example",
        "https://app.example/cb#x",
        "https://app.example@evil.example/cb",
        "http://127.0.0.2:8080/callback",
        "http://127.0.0.1:8080@evil.example/callback",
        "javascript:alert(document.cookie)",
    ] {
        let e = code_for(&user, uri, None).unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{uri}: {e}");
    }
    assert_eq!(server.counters().codes_issued, 0);
    for uri in [
        "http://127.0.0.1:49152/callback",
        "http://[::1]:3000/callback",
    ] {
        let code = code_for(&user, uri, None).unwrap();
        let web: S = client(&server, oauth());
        web.exchange_authorization_code(&code, uri, None).unwrap();
    }
}
