//! The sign-in and consent page a browser is sent to: Carthooks' side of the
//! authorization-code flow.
//!
//! `GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&state=…`
//! shows a form (user name, password, Allow / Deny). The form posts back to the
//! same path; with a right password and *Allow*, the page issues a single-use
//! code the way `POST /api/oauth/get-authorize-code` does for a signed-in user
//! (bound to the client and the redirect URI, expiring after
//! [`MockConfig::code_ttl`](crate::MockConfig::code_ttl)) and answers
//! `303 See Other` to `redirect_uri?code=…&state=…`; *Deny* goes back with
//! `error=access_denied`. An unknown client or a redirect URI that is not an
//! absolute `http(s)` URL gets an error page and no redirect (an open redirect
//! is what such a page must never be). The users are
//! [`SIGN_IN_USERS`](crate::SIGN_IN_USERS).

use carthooks_core::url::append_query;

use crate::State;

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
    let (Some(client_id), Some(redirect_uri)) = (field("client_id"), field("redirect_uri")) else {
        return error_page(400, "client_id and redirect_uri are required.");
    };
    if !state.has_client(client_id) {
        return error_page(400, "This application is not registered.");
    }
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return error_page(400, "The redirect URI must be an absolute http(s) URL.");
    }
    if field("response_type").is_some_and(|t| t != "code") {
        return error_page(400, "Only response_type=code is supported.");
    }
    let app_state = field("state").unwrap_or_default();
    let back = |pairs: &[(&str, &str)]| Page {
        status: 303,
        location: Some(append_query(redirect_uri, pairs.iter().copied())),
        html: String::new(),
    };
    match method {
        "GET" => form(client_id, redirect_uri, app_state, None),
        "POST" if field("decision") == Some("deny") => {
            back(&[("error", "access_denied"), ("state", app_state)])
        }
        "POST" => {
            let user = state.check_password(
                field("username").unwrap_or_default(),
                field("password").unwrap_or_default(),
            );
            match user {
                Some(user_id) => {
                    let code = state.issue_code(client_id, user_id, redirect_uri, now);
                    back(&[("code", &code), ("state", app_state)])
                }
                None => form(
                    client_id,
                    redirect_uri,
                    app_state,
                    Some("Wrong user name or password."),
                ),
            }
        }
        _ => error_page(405, "Method not allowed."),
    }
}

fn form(client_id: &str, redirect_uri: &str, app_state: &str, problem: Option<&str>) -> Page {
    let problem = problem.map_or_else(String::new, |p| {
        format!(r#"<p class="problem" id="problem">{}</p>"#, escape(p))
    });
    let host = redirect_uri
        .split_once("://")
        .map_or(redirect_uri, |(_, rest)| {
            rest.split('/').next().unwrap_or(rest)
        });
    let body = format!(
        r#"<h1>Sign in to Carthooks</h1>
<p><strong>{client}</strong> at <code>{host}</code> asks to read and change your items.</p>
{problem}
<form method="post" action="{AUTHORIZE_PATH}">
<input type="hidden" name="response_type" value="code">
<input type="hidden" name="client_id" value="{client}">
<input type="hidden" name="redirect_uri" value="{redirect}">
<input type="hidden" name="state" value="{state}">
<label>User name <input id="username" name="username" autocomplete="username" required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="allow" name="decision" value="allow" type="submit">Allow</button>
<button id="deny" name="decision" value="deny" type="submit" formnovalidate>Deny</button>
</form>"#,
        client = escape(client_id),
        host = escape(host),
        redirect = escape(redirect_uri),
        state = escape(app_state),
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
            "Carthooks: sign-in refused",
            &format!(
                r#"<h1>Sign-in refused</h1><p id="problem">{}</p>"#,
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
    use crate::{DEFAULT_CLIENT_ID, MockConfig, SIGN_IN_USERS};

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_form_escapes_what_it_echoes_and_a_right_password_redirects_with_a_code() {
        let mut state = State::new(MockConfig::default());
        let q = fields(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", "http://app.test/cb?x=1"),
            ("state", "\"><script>alert(1)</script>"),
        ]);
        let get = answer(&mut state, "GET", &q, 100);
        assert_eq!(get.status, 200);
        assert!(!get.html.contains("<script>alert"), "{}", get.html);
        assert!(get.html.contains("&quot;&gt;&lt;script&gt;"));

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
    }

    #[test]
    fn no_redirect_to_an_unknown_client_or_a_relative_uri_and_deny_says_so() {
        let mut state = State::new(MockConfig::default());
        for (client, uri) in [
            ("nobody", "http://app.test/cb"),
            (DEFAULT_CLIENT_ID, "//evil.test"),
        ] {
            let page = answer(
                &mut state,
                "GET",
                &fields(&[("client_id", client), ("redirect_uri", uri)]),
                0,
            );
            assert_eq!((page.status, page.location), (400, None));
        }
        let deny = answer(
            &mut state,
            "POST",
            &fields(&[
                ("client_id", DEFAULT_CLIENT_ID),
                ("redirect_uri", "https://app.test/cb"),
                ("state", "s1"),
                ("decision", "deny"),
            ]),
            0,
        );
        assert_eq!(
            deny.location.as_deref(),
            Some("https://app.test/cb?error=access_denied&state=s1")
        );
    }
}
