//! The OAuth side: registered clients and users, the token endpoint with its
//! grants (client credentials, authorization code with PKCE, rotating refresh
//! tokens with reuse detection), bearer checks and authorization codes.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{
    AccessRec, CodeRec, DEFAULT_CLIENT_ID, MockRequest, RefreshRec, Reply, SERVICE_USER_ID, State,
    User, api_error, ok,
};
use crate::authz::{self, MockClient, Refusal};
use crate::decode_form;

impl State {
    /// Registers another OAuth client, with the default redirect URIs
    /// ([`DEFAULT_REDIRECT_URIS`](crate::DEFAULT_REDIRECT_URIS)).
    pub fn add_client(&mut self, id: &str, secret: &str) {
        self.register_client(MockClient::new(id, secret));
    }

    /// Registers `client`, replacing one of the same id.
    pub fn register_client(&mut self, client: MockClient) {
        self.clients.insert(client.id.clone(), client);
    }

    /// The registered client `id`.
    pub fn client(&self, id: &str) -> Option<&MockClient> {
        self.clients.get(id)
    }

    /// Adds a user with their own access token.
    pub fn add_user(&mut self, id: u64, username: &str, token: &str) {
        self.users.insert(
            id,
            User {
                id,
                username: username.into(),
                password: None,
                email: format!("{username}@example.com"),
                tenant_id: 123,
                tenant_name: "Acme".into(),
                is_admin: false,
            },
        );
        self.user_tokens.insert(token.into(), id);
    }

    /// Lets user `id` sign in on the sign-in page with `password`.
    pub fn set_password(&mut self, id: u64, password: &str) {
        if let Some(user) = self.users.get_mut(&id) {
            user.password = Some(password.into());
        }
    }

    /// The user whose name and password these are (the sign-in page).
    pub fn check_password(&self, username: &str, password: &str) -> Option<u64> {
        self.users
            .values()
            .find(|u| u.username == username && u.password.as_deref() == Some(password))
            .map(|u| u.id)
    }

    /// Issues a single-use authorization code for `user_id`, bound to
    /// `client_id`, `redirect_uri` and the PKCE `code_challenge` (S256) if
    /// given, expiring after [`MockConfig::code_ttl`](super::MockConfig::code_ttl) (what the sign-in page
    /// and `/api/oauth/get-authorize-code` both do once they accepted the
    /// request; this checks nothing, so a test can issue any code).
    pub fn issue_code(
        &mut self,
        client_id: &str,
        user_id: u64,
        redirect_uri: &str,
        code_challenge: Option<&str>,
        now: u64,
    ) -> String {
        let code = self.secrets.next("code");
        self.counters.codes_issued += 1;
        self.codes.insert(
            code.clone(),
            CodeRec {
                client_id: client_id.into(),
                user_id,
                redirect_uri: redirect_uri.into(),
                challenge: code_challenge.map(str::to_owned),
                expires_at: now.saturating_add(self.config.code_ttl),
                used: false,
            },
        );
        code
    }

    /// Checks an authorization request of the sign-in page or the
    /// authorize-code endpoint (the rules are in the `authz` module); the
    /// challenge to bind the code to.
    pub(crate) fn check_authorization_request(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code_challenge: Option<&str>,
        code_challenge_method: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        authz::check_request(
            self.clients.get(client_id),
            client_id,
            redirect_uri,
            code_challenge,
            code_challenge_method,
        )
    }

    /// Accepts `token` as a bearer token of the default client for `ttl`
    /// seconds from `now` (acting for `user_id` when given), as if issued.
    pub fn add_access_token(&mut self, token: &str, user_id: Option<u64>, now: u64, ttl: u64) {
        self.access.insert(
            token.into(),
            AccessRec {
                client_id: DEFAULT_CLIENT_ID.into(),
                user_id,
                expires_at: now.saturating_add(ttl),
                family: 0,
            },
        );
    }

    /// Invalidates every access and refresh token issued so far.
    pub fn revoke_all_tokens(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    /// Invalidates every access token issued so far; refresh tokens stay valid
    /// (as when a server rotates its signing keys).
    pub fn revoke_access_tokens(&mut self) {
        self.access.clear();
    }

    pub(super) fn token(&mut self, req: &MockRequest, now: u64) -> Reply {
        self.counters.token_requests += 1;
        let ct = req.header("content-type").unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return oauth_error(
                400,
                "invalid_request",
                "token requests must be form-encoded",
            );
        }
        let form: HashMap<String, String> = decode_form(&String::from_utf8_lossy(&req.body))
            .into_iter()
            .collect();
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let grant_type = field("grant_type").unwrap_or("").to_owned();
        *self.counters.grants.entry(grant_type.clone()).or_default() += 1;
        let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
            return oauth_error(401, "invalid_client", "client authentication failed");
        };
        if self.clients.get(client_id).map(|c| c.secret.as_str()) != Some(secret) {
            return oauth_error(401, "invalid_client", "client authentication failed");
        }
        let client_id = client_id.to_owned();
        match grant_type.as_str() {
            "client_credentials" => {
                let user_id = match field("user_access_token") {
                    None => None,
                    Some(t) => match self.user_tokens.get(t) {
                        Some(id) => Some(*id),
                        None => {
                            return oauth_error(
                                400,
                                "invalid_grant",
                                "user access token is invalid",
                            );
                        }
                    },
                };
                self.issue(&client_id, user_id, now, true, None)
            }
            "authorization_code" => {
                let (Some(code), Some(redirect_uri)) = (field("code"), field("redirect_uri"))
                else {
                    return oauth_error(
                        400,
                        "invalid_request",
                        "code and redirect_uri are required",
                    );
                };
                let Some(rec) = self.codes.get_mut(code) else {
                    return oauth_error(400, "invalid_grant", "authorization code is invalid");
                };
                if rec.used {
                    return oauth_error(
                        400,
                        "invalid_grant",
                        "authorization code was already used",
                    );
                }
                if rec.expires_at <= now {
                    return oauth_error(400, "invalid_grant", "authorization code expired");
                }
                if rec.client_id != client_id || rec.redirect_uri != redirect_uri {
                    return oauth_error(400, "invalid_grant", "authorization code does not match");
                }
                // A refused verifier leaves the code for its rightful holder.
                if let Err(why) =
                    authz::check_verifier(rec.challenge.as_deref(), field("code_verifier"))
                {
                    return oauth_error(400, "invalid_grant", why);
                }
                rec.used = true;
                let user_id = rec.user_id;
                self.issue(&client_id, Some(user_id), now, true, None)
            }
            "refresh_token" => {
                let Some(rt) = field("refresh_token") else {
                    return oauth_error(400, "invalid_request", "refresh_token is required");
                };
                let rotate = self.config.rotate_refresh_tokens;
                let Some(rec) = self.refresh.get_mut(rt) else {
                    return oauth_error(400, "invalid_refresh_token", "refresh token is invalid");
                };
                if rec.used {
                    self.counters.refresh_token_reuses += 1;
                    if self.config.reuse_detection {
                        let family = rec.family;
                        self.revoked_families.insert(family);
                        return oauth_error(
                            400,
                            "invalid_grant",
                            "refresh token reuse detected: every token of this grant is revoked",
                        );
                    }
                    return oauth_error(
                        400,
                        "invalid_refresh_token",
                        "refresh token was already used",
                    );
                }
                if self.revoked_families.contains(&rec.family) {
                    return oauth_error(400, "invalid_grant", "refresh token was revoked");
                }
                if rec.client_id != client_id {
                    return oauth_error(
                        400,
                        "invalid_grant",
                        "refresh token belongs to another client",
                    );
                }
                if rotate {
                    rec.used = true;
                }
                let (user_id, family) = (rec.user_id, rec.family);
                self.issue(&client_id, user_id, now, rotate, Some(family))
            }
            "" => oauth_error(400, "invalid_request", "grant_type is required"),
            _ => oauth_error(400, "unsupported_grant_type", "grant type is not supported"),
        }
    }

    /// Issues a token set; `family` is the grant's (`None`: a new grant, a
    /// new family).
    fn issue(
        &mut self,
        client_id: &str,
        user_id: Option<u64>,
        now: u64,
        with_refresh: bool,
        family: Option<u64>,
    ) -> Reply {
        let family = family.unwrap_or_else(|| {
            self.next_family += 1;
            self.next_family
        });
        let access = self.secrets.next("at");
        let ttl = self.config.access_token_ttl;
        self.access.insert(
            access.clone(),
            AccessRec {
                client_id: client_id.into(),
                user_id,
                expires_at: now.saturating_add(ttl),
                family,
            },
        );
        let mut data = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": "read write",
        });
        match &self.config.advertised_expires_in {
            None => {}
            Some(Value::Null) => {
                data.as_object_mut().map(|o| o.remove("expires_in"));
            }
            Some(v) => data["expires_in"] = v.clone(),
        }
        if with_refresh {
            let refresh = self.secrets.next("rt");
            self.refresh.insert(
                refresh.clone(),
                RefreshRec {
                    client_id: client_id.into(),
                    user_id,
                    used: false,
                    family,
                },
            );
            data["refresh_token"] = Value::String(refresh);
        }
        (200, ok(data))
    }

    pub(super) fn authenticate(&self, req: &MockRequest, now: u64) -> Result<AccessRec, Reply> {
        let token = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| api_error(401, "UNAUTHORIZED", "missing bearer token"))?;
        match self.access.get(token) {
            Some(rec) if self.revoked_families.contains(&rec.family) => {
                Err(api_error(401, "UNAUTHORIZED", "access token revoked"))
            }
            Some(rec) if rec.expires_at > now => Ok(rec.clone()),
            Some(_) => Err(api_error(401, "UNAUTHORIZED", "access token expired")),
            None => Err(api_error(401, "UNAUTHORIZED", "invalid access token")),
        }
    }

    pub(super) fn user_json(&self, id: u64) -> Value {
        match self.users.get(&id) {
            Some(u) => json!({
                "user_id": u.id, "username": u.username, "email": u.email,
                "tenant_id": u.tenant_id, "tenant_name": u.tenant_name,
                "is_admin": u.is_admin, "scope": ["read", "write"],
            }),
            None => Value::Null,
        }
    }

    pub(super) fn user_info(&self, who: &AccessRec) -> Value {
        match who.user_id.filter(|id| self.users.contains_key(id)) {
            Some(id) => self.user_json(id),
            None => json!({
                "user_id": SERVICE_USER_ID, "username": format!("service:{}", who.client_id),
                "email": null, "tenant_id": 123, "tenant_name": "Acme",
                "is_admin": false, "scope": ["read", "write"],
            }),
        }
    }

    pub(super) fn authorize_code(
        &mut self,
        who: &AccessRec,
        body: Option<Value>,
        now: u64,
    ) -> Reply {
        let Some(user_id) = who.user_id else {
            return api_error(
                403,
                "FORBIDDEN",
                "an authorization code needs a user's token",
            );
        };
        let Some(body) = body else {
            return api_error(400, "BAD_REQUEST", "body must be JSON");
        };
        let (Some(client_id), Some(redirect_uri), Some(state)) = (
            body["client_id"].as_str(),
            body["redirect_uri"].as_str(),
            body["state"].as_str(),
        ) else {
            return api_error(
                400,
                "BAD_REQUEST",
                "client_id, redirect_uri and state are required",
            );
        };
        let challenge = match self.check_authorization_request(
            client_id,
            redirect_uri,
            body["code_challenge"].as_str(),
            body["code_challenge_method"].as_str(),
        ) {
            Ok(challenge) => challenge,
            Err(Refusal::Stay(message)) => return api_error(400, "BAD_REQUEST", &message),
            Err(Refusal::Back(description)) => {
                return api_error(400, "INVALID_REQUEST", description);
            }
        };
        let code = self.issue_code(client_id, user_id, redirect_uri, challenge.as_deref(), now);
        let redirect_url = carthooks_core::internal::append_query(
            redirect_uri,
            [("code", code.as_str()), ("state", state)],
        );
        (200, ok(json!({ "redirect_url": redirect_url })))
    }
}

pub(super) fn oauth_error(status: u16, code: &str, description: &str) -> Reply {
    (
        status,
        json!({"error": code, "error_description": description}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{DEFAULT_CLIENT_SECRET, MockConfig};

    fn form(pairs: &[(&str, &str)]) -> MockRequest {
        MockRequest {
            method: "POST".into(),
            path: "/oauth/token".into(),
            query: vec![],
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: carthooks_core::internal::encode_form(pairs.iter().copied()).into_bytes(),
            version: "HTTP/1.1".into(),
        }
    }

    #[test]
    fn refresh_tokens_rotate_and_used_ones_are_refused() {
        let mut s = State::new(MockConfig::default());
        let r = s.handle(
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ]),
            0,
        );
        assert_eq!(r.status, 200);
        let rt = r.body["data"]["refresh_token"].as_str().unwrap().to_owned();
        let refresh = |s: &mut State| {
            s.handle(
                form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("client_secret", DEFAULT_CLIENT_SECRET),
                    ("refresh_token", &rt),
                ]),
                1,
            )
        };
        let r2 = refresh(&mut s);
        assert_eq!(r2.status, 200);
        assert_ne!(r2.body["data"]["refresh_token"].as_str().unwrap(), rt);
        let r3 = refresh(&mut s);
        assert_eq!(r3.status, 400);
        assert_eq!(r3.body["error"], "invalid_refresh_token");
        assert_eq!(s.counters().grant("refresh_token"), 2);
    }

    #[test]
    fn wrong_secret_is_invalid_client() {
        let mut s = State::new(MockConfig::default());
        let r = s.handle(
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", "nope"),
            ]),
            0,
        );
        assert_eq!(r.status, 401);
        assert_eq!(r.body["error"], "invalid_client");
        assert!(r.body["traceId"].is_string());
    }

    #[test]
    fn reusing_a_refresh_token_revokes_its_whole_family_with_reuse_detection() {
        let mut s = State::new(MockConfig {
            reuse_detection: true,
            ..MockConfig::default()
        });
        let grant = |s: &mut State| {
            s.handle(
                form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("client_secret", DEFAULT_CLIENT_SECRET),
                ]),
                0,
            )
            .body["data"]
                .clone()
        };
        let refresh = |s: &mut State, rt: &str| {
            s.handle(
                form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("client_secret", DEFAULT_CLIENT_SECRET),
                    ("refresh_token", rt),
                ]),
                1,
            )
        };
        let me = |s: &mut State, at: &str| {
            s.handle(
                MockRequest {
                    method: "GET".into(),
                    path: "/v1/me".into(),
                    query: vec![],
                    headers: vec![("authorization".into(), format!("Bearer {at}"))],
                    body: vec![],
                    version: "HTTP/1.1".into(),
                },
                2,
            )
            .status
        };
        let first = grant(&mut s);
        let other = grant(&mut s); // another grant: another family
        let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
        let second = refresh(&mut s, &rt1).body["data"].clone();
        let (at2, rt2) = (
            second["access_token"].as_str().unwrap().to_owned(),
            second["refresh_token"].as_str().unwrap().to_owned(),
        );
        assert_eq!(me(&mut s, &at2), 200);

        // rt1 again: a reuse. The whole family dies: at1, at2, rt2.
        let reuse = refresh(&mut s, &rt1);
        assert_eq!(reuse.status, 400);
        assert_eq!(reuse.body["error"], "invalid_grant");
        assert_eq!(s.counters().refresh_token_reuses, 1);
        assert_eq!(me(&mut s, first["access_token"].as_str().unwrap()), 401);
        assert_eq!(me(&mut s, &at2), 401);
        assert_eq!(refresh(&mut s, &rt2).status, 400);
        // The other grant's family lives on.
        assert_eq!(me(&mut s, other["access_token"].as_str().unwrap()), 200);
        let rt_other = other["refresh_token"].as_str().unwrap();
        assert_eq!(refresh(&mut s, rt_other).status, 200);
        assert_eq!(s.counters().refresh_token_reuses, 1);
    }
}
