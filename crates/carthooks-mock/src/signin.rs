//! The sign-in and consent page a browser is sent to: Carthooks' side of the
//! authorization-code flow.
//!
//! `GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&state=…
//! [&code_challenge=…&code_challenge_method=S256]` shows a form (user name,
//! password, Allow / Deny). The form posts back to the same path; with a right
//! password and *Allow*, the page issues a single-use code the way
//! `POST /api/oauth/get-authorize-code` does for a signed-in user (bound to the
//! client, the redirect URI and the PKCE challenge, expiring after
//! [`MockConfig::code_ttl`](crate::MockConfig::code_ttl)) and answers
//! `303 See Other` to `redirect_uri?code=…&state=…`; *Deny* goes back with
//! `error=access_denied`.
//!
//! The request is checked as the `authz` module's table says, on every
//! method: an unknown client or a redirect URI the client has not registered
//! gets an error page and never a redirect, whatever else the request says (an
//! open redirect is what such a page must never be); a bad or missing PKCE
//! challenge goes back to the (registered) redirect URI with
//! `error=invalid_request`. The users are [`SIGN_IN_USERS`](crate::SIGN_IN_USERS).

use carthooks_core::internal::append_query;

use crate::State;
use crate::authz::Refusal;

/// The path of the page.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";

/// An answer of the page: status, `Location` (for a redirect), HTML.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) html: String,
}

/// Answers `method` on the page with the query or form `fields`.
pub(crate) fn answer(
    state: &mut State,
    method: &str,
    fields: &[(String, String)],
    now: u64,
) -> Page {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !matches!(method, "GET" | "POST") {
        return error_page(405, "This page can only be opened or submitted.");
    }
    let (Some(client_id), Some(redirect_uri)) = (field("client_id"), field("redirect_uri")) else {
        return error_page(
            400,
            "This sign-in link is incomplete (it names no application or no return address). \
             Go back to the application and start again.",
        );
    };
    let app_state = field("state").unwrap_or_default();
    let back = |pairs: &[(&str, &str)]| Page {
        status: 303,
        location: Some(append_query(redirect_uri, pairs.iter().copied())),
        html: String::new(),
    };
    let challenge = match state.check_authorization_request(
        client_id,
        redirect_uri,
        field("code_challenge"),
        field("code_challenge_method"),
    ) {
        Ok(challenge) => challenge,
        Err(Refusal::Stay(message)) => return error_page(400, &message),
        Err(Refusal::Back(description)) => {
            return back(&[
                ("error", "invalid_request"),
                ("error_description", description),
                ("state", app_state),
            ]);
        }
    };
    if field("response_type") != Some("code") {
        return back(&[
            ("error", "unsupported_response_type"),
            ("error_description", "only response_type=code is supported"),
            ("state", app_state),
        ]);
    }
    let request = Request {
        client_id,
        redirect_uri,
        state: app_state,
        challenge: challenge.as_deref(),
    };
    match field("decision") {
        _ if method == "GET" => form(&request, None),
        Some("deny") => back(&[("error", "access_denied"), ("state", app_state)]),
        _ => {
            let user = state.check_password(
                field("username").unwrap_or_default(),
                field("password").unwrap_or_default(),
            );
            match user {
                Some(user_id) => {
                    let code =
                        state.issue_code(client_id, user_id, redirect_uri, request.challenge, now);
                    back(&[("code", &code), ("state", app_state)])
                }
                None => form(&request, Some("Wrong user name or password.")),
            }
        }
    }
}

/// An authorization request that passed the checks.
struct Request<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    state: &'a str,
    challenge: Option<&'a str>,
}

fn form(request: &Request<'_>, problem: Option<&str>) -> Page {
    let problem = problem.map_or_else(String::new, |p| {
        format!(r#"<p class="problem" id="problem">{}</p>"#, escape(p))
    });
    let redirect_uri = request.redirect_uri;
    let host = redirect_uri
        .split_once("://")
        .map_or(redirect_uri, |(_, rest)| {
            rest.split('/').next().unwrap_or(rest)
        });
    let pkce = request.challenge.map_or_else(String::new, |challenge| {
        format!(
            r#"
<input type="hidden" name="code_challenge" value="{}">
<input type="hidden" name="code_challenge_method" value="S256">"#,
            escape(challenge)
        )
    });
    let body = format!(
        r#"<h1>Sign in to Carthooks</h1>
<p><strong>{client}</strong> at <code>{host}</code> asks to read and change your items.</p>
{problem}
<form method="post" action="{AUTHORIZE_PATH}">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{client}">
<input type="hidden" name="redirect_uri" value="{redirect}">
<input type="hidden" name="state" value="{state}">{pkce}
<label>User name <input id="username" name="username" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="allow" name="decision" value="allow" type="submit">Allow</button>
<button id="deny" name="decision" value="deny" type="submit" formnovalidate>Deny</button>
</form>"#,
        client = escape(request.client_id),
        host = escape(host),
        redirect = escape(redirect_uri),
        state = escape(request.state),
    );
    Page {
        status: 200,
        location: None,
        html: page("Sign in to Carthooks", &body),
    }
}

fn error_page(status: u16, message: &str) -> Page {
    Page {
        status,
        location: None,
        html: page(
            "Carthooks: sign-in stopped",
            &format!(
                r#"<h1>Sign-in stopped</h1><p id="problem">{}</p>"#,
                escape(message)
            ),
        ),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;color:#222}}
h1{{color:#0b5394}}label{{display:block;margin:.6rem 0}}input{{display:block;width:100%;padding:.3rem}}
button{{margin:.8rem .4rem 0 0;padding:.4rem 1.2rem}}.problem{{color:#b00}}</style></head>
<body>{body}</body></html>"#,
        title = escape(title),
    )
}

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_CLIENT_ID, MockClient, MockConfig, SIGN_IN_USERS};

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_form_escapes_what_it_echoes_and_a_right_password_redirects_with_a_code() {
        let mut state = State::new(MockConfig::default());
        state.register_client(MockClient::demo().redirect_uris(["http://app.test/cb?x=1"]));
        let q = fields(&[
            ("response_type", "code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", "http://app.test/cb?x=1"),
            ("state", "\"><script>alert(1)</script>"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        let get = answer(&mut state, "GET", &q, 100);
        assert_eq!(get.status, 200);
        assert!(!get.html.contains("<script>alert"), "{}", get.html);
        assert!(get.html.contains("&quot;&gt;&lt;script&gt;"));
        assert!(
            get.html.contains(CHALLENGE),
            "the form carries the challenge"
        );

        let (user, password) = SIGN_IN_USERS[1];
        let mut post = q.clone();
        post.extend(fields(&[("username", user), ("password", "wrong")]));
        let wrong = answer(&mut state, "POST", &post, 100);
        assert_eq!((wrong.status, wrong.location.is_none()), (200, true));
        assert!(wrong.html.contains("Wrong user name or password"));

        post.pop();
        post.extend(fields(&[("password", password)]));
        let ok = answer(&mut state, "POST", &post, 100);
        assert_eq!(ok.status, 303);
        let location = ok.location.unwrap();
        assert!(
            location.starts_with("http://app.test/cb?x=1&code=code-"),
            "{location}"
        );
        assert!(location.ends_with("&state=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"));
        assert_eq!(state.counters().codes_issued, 1);
    }

    #[test]
    fn nothing_goes_to_an_unknown_client_or_an_unregistered_uri_whatever_the_decision() {
        let mut state = State::new(MockConfig::default());
        let (user, password) = SIGN_IN_USERS[0];
        for (client, uri) in [
            ("nobody", "https://app.example/cb"),
            (DEFAULT_CLIENT_ID, "//evil.test"),
            (DEFAULT_CLIENT_ID, "http://127.0.0.2:4000/steal"),
            (DEFAULT_CLIENT_ID, "javascript:alert(1)"),
        ] {
            for (method, extra) in [
                ("GET", vec![]),
                ("POST", vec![("decision", "deny")]),
                (
                    "POST",
                    vec![
                        ("decision", "allow"),
                        ("username", user),
                        ("password", password),
                    ],
                ),
            ] {
                let mut pairs = vec![
                    ("response_type", "code"),
                    ("client_id", client),
                    ("redirect_uri", uri),
                    ("state", "s1"),
                ];
                pairs.extend(extra);
                let page = answer(&mut state, method, &fields(&pairs), 0);
                assert_eq!((page.status, page.location), (400, None), "{method} {uri}");
                assert!(page.html.contains("stops here"), "{}", page.html);
            }
        }
        assert_eq!(state.counters().codes_issued, 0);
        let deny = answer(
            &mut state,
            "POST",
            &fields(&[
                ("response_type", "code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", "https://app.example/cb"),
                ("state", "s1"),
                ("decision", "deny"),
            ]),
            0,
        );
        assert_eq!(
            deny.location.as_deref(),
            Some("https://app.example/cb?error=access_denied&state=s1")
        );
    }

    #[test]
    fn a_bad_challenge_goes_back_as_invalid_request_and_a_strict_client_needs_one() {
        let mut state = State::new(MockConfig {
            clients: vec![MockClient::demo().require_pkce(true)],
            ..MockConfig::default()
        });
        for extra in [
            vec![],
            vec![
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ],
            vec![("code_challenge", CHALLENGE)],
            vec![
                ("code_challenge", "too-short"),
                ("code_challenge_method", "S256"),
            ],
        ] {
            let mut pairs = vec![
                ("response_type", "code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", "https://app.example/cb"),
                ("state", "s2"),
            ];
            pairs.extend(extra.iter().copied());
            let page = answer(&mut state, "GET", &fields(&pairs), 0);
            let location = page.location.unwrap_or_default();
            assert!(
                location.starts_with("https://app.example/cb?error=invalid_request&")
                    && location.ends_with("&state=s2"),
                "{extra:?}: {location}"
            );
        }
        let no_type = answer(
            &mut state,
            "GET",
            &fields(&[
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", "https://app.example/cb"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ]),
            0,
        );
        assert!(
            no_type
                .location
                .unwrap_or_default()
                .contains("error=unsupported_response_type")
        );
    }
}
