//! OAuth tokens and token requests.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::secret::{
    AccessToken, AuthorizationCode, ClientSecret, PkceVerifier, RefreshToken, UserAccessToken,
};
use crate::url::{BaseUrl, encode_form};

/// Path of the token endpoint, under the base URL.
pub const TOKEN_PATH: &str = "/oauth/token";

/// A set of OAuth tokens, as issued by the token endpoint.
///
/// `expires_at` is absolute (Unix seconds), so a stored token set reloads with its
/// true expiry. `Debug` shows no token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OAuthTokens {
    /// The access token sent as `Authorization: Bearer …`.
    pub access_token: AccessToken,
    /// The refresh token, when the server issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<RefreshToken>,
    /// Token type, normally `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: String,
    /// When the access token expires (Unix seconds); `None` when unknown.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Granted scopes, space-separated, when the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Whom the tokens act for, as far as the client knows (`None`: unknown, as
    /// for a configured access token or a refresh token handed in from outside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<TokenIdentity>,
}

/// Whom a token set acts for: decided by the grant that produced it, and kept
/// across refreshes of that grant's own refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenIdentity {
    /// The OAuth client itself (client credentials).
    App,
    /// The client acting for a user whose access token it exchanged (client
    /// credentials with `user_access_token`).
    AppForUser,
    /// A user who authorized the client (authorization code).
    User,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

impl OAuthTokens {
    /// Tokens for a known access token without expiry (direct access-token mode).
    pub fn from_access_token(access_token: AccessToken) -> Self {
        Self {
            access_token,
            refresh_token: None,
            token_type: bearer(),
            expires_at: None,
            scope: None,
            identity: None,
        }
    }

    /// Seconds until the access token expires, at `now` (0 once expired);
    /// `None` when the expiry is unknown.
    pub fn expires_in(&self, now: u64) -> Option<u64> {
        self.expires_at.map(|at| at.saturating_sub(now))
    }

    /// True once the access token has expired at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Longest access token accepted, in bytes: it travels in a header on every
/// call, and proxies refuse headers much longer than this.
pub const MAX_ACCESS_TOKEN_LEN: usize = 16 * 1024;

/// Longest token lifetime believed (ten years); a larger `expires_in` (`1e30`,
/// `2^64`) is clamped to it.
pub const MAX_LIFETIME: u64 = 10 * 365 * 86_400;

/// Prefix of the messages of this crate's field parsers; the envelope passes
/// what follows it on (it names the field, never the value).
pub(crate) const FIELD_ERROR: &str = "carthooks field error: ";

/// Checks that `token` can be sent as `Authorization: Bearer {token}`: not empty,
/// visible ASCII only, at most [`MAX_ACCESS_TOKEN_LEN`] bytes. The message says
/// what is wrong without quoting the token.
pub fn check_access_token(token: &str) -> std::result::Result<(), String> {
    if token.is_empty() {
        return Err("access_token is empty".into());
    }
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(format!(
            "access_token is {} bytes long; at most {MAX_ACCESS_TOKEN_LEN} are accepted",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "access_token contains characters that cannot be sent in a header (only visible ASCII is allowed)"
                .into(),
        );
    }
    Ok(())
}

/// A token endpoint answer as it is on the wire (RFC 6749 §5.1), read leniently
/// where real servers differ: `expires_in` as an integer, a float or a numeric
/// string (negative counts as 0, absurd values are clamped to
/// [`MAX_LIFETIME`]), and `null` wherever a field is optional.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(deserialize_with = "access_token_field")]
    pub(crate) access_token: AccessToken,
    #[serde(default, deserialize_with = "refresh_token_field")]
    pub(crate) refresh_token: Option<String>,
    #[serde(default, deserialize_with = "token_type_field")]
    pub(crate) token_type: Option<String>,
    #[serde(default, deserialize_with = "expires_in_field")]
    pub(crate) expires_in: Option<u64>,
    #[serde(default, deserialize_with = "scope_field")]
    pub(crate) scope: Option<String>,
}

impl TokenResponse {
    /// Refuses what cannot be used as a bearer token, naming the field.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if let Some(kind) = &self.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(format!(
                "token_type {:?} is not supported: only Bearer tokens can be sent",
                crate::sanitize::sanitize(kind, 32)
            ));
        }
        check_access_token(self.access_token.secret())
    }

    /// The token set, its lifetime counted from `sent_at` (when the token request
    /// left: the server's clock started no earlier).
    pub(crate) fn into_tokens(self, sent_at: u64) -> OAuthTokens {
        OAuthTokens {
            access_token: self.access_token,
            refresh_token: self
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(RefreshToken::new),
            token_type: bearer(),
            expires_at: self.expires_in.map(|s| sent_at.saturating_add(s)),
            scope: self.scope,
            identity: None,
        }
    }
}

fn field_error<E: serde::de::Error>(field: &str, what: &str) -> E {
    E::custom(format_args!("{FIELD_ERROR}{field} {what}"))
}

fn access_token_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AccessToken, D::Error> {
    match Option::<String>::deserialize(d) {
        Ok(Some(s)) => Ok(AccessToken::new(s)),
        Ok(None) => Err(field_error("access_token", "is null")),
        Err(_) => Err(field_error("access_token", "is not a string")),
    }
}

macro_rules! optional_string_fields {
    ($($fn_name:ident => $field:literal),* $(,)?) => {$(
        fn $fn_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
            Option::<String>::deserialize(d)
                .map_err(|_| field_error($field, "is not a string"))
        }
    )*};
}

optional_string_fields! {
    refresh_token_field => "refresh_token",
    token_type_field => "token_type",
    scope_field => "scope",
}

fn expires_in_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Lifetime;
    impl<'de> serde::de::Visitor<'de> for Lifetime {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number of seconds")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.min(MAX_LIFETIME)))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(u64::try_from(v).unwrap_or(0).min(MAX_LIFETIME)))
        }
        fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Ok(Some(MAX_LIFETIME))
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Self::Value, E> {
            Ok(Some(if v <= 0 {
                0
            } else {
                MAX_LIFETIME.min(v as u64)
            }))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_nan() {
                return Err(field_error("expires_in", "is not a number"));
            }
            // `as` saturates: negative → 0, huge → u64::MAX, then clamped.
            Ok(Some((v.floor() as u64).min(MAX_LIFETIME)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<f64>() {
                Ok(n) => self.visit_f64(n),
                Err(_) => Err(field_error(
                    "expires_in",
                    "is a string that is not a number",
                )),
            }
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(field_error("expires_in", "is a boolean, not a number"))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(field_error("expires_in", "is an array, not a number"))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(field_error("expires_in", "is an object, not a number"))
        }
    }
    d.deserialize_any(Lifetime)
}

/// An OAuth grant: what is exchanged for tokens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Grant {
    /// `client_credentials`, optionally acting for the user whose token is given.
    ClientCredentials {
        /// A Carthooks user's access token; the new token then acts for that user.
        user_access_token: Option<UserAccessToken>,
    },
    /// `authorization_code`, from the redirect after the user authorized.
    AuthorizationCode {
        /// The single-use code.
        code: AuthorizationCode,
        /// The redirect URI the code was issued for.
        redirect_uri: String,
        /// The PKCE verifier whose challenge went with the authorization
        /// request (sent as `code_verifier`); `None` when none did.
        code_verifier: Option<PkceVerifier>,
    },
    /// `refresh_token`.
    RefreshToken {
        /// The refresh token to spend.
        refresh_token: RefreshToken,
    },
}

impl Grant {
    /// The `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken { .. } => "refresh_token",
        }
    }
}

/// A request to the token endpoint: client authentication plus one grant.
///
/// Only the fields the grant needs are sent, and never a bearer token.
#[derive(Debug, Clone)]
pub struct OAuthTokenRequest {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: ClientSecret,
    /// What is exchanged.
    pub grant: Grant,
}

impl OAuthTokenRequest {
    /// The form fields, in the order the Python SDK sends them.
    pub fn form_pairs(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![
            ("grant_type", self.grant.grant_type()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.secret()),
        ];
        match &self.grant {
            Grant::ClientCredentials { user_access_token } => {
                if let Some(t) = user_access_token {
                    pairs.push(("user_access_token", t.secret()));
                }
            }
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                pairs.push(("code", code.secret()));
                pairs.push(("redirect_uri", redirect_uri.as_str()));
                if let Some(verifier) = code_verifier {
                    pairs.push(("code_verifier", verifier.secret()));
                }
            }
            Grant::RefreshToken { refresh_token } => {
                pairs.push(("refresh_token", refresh_token.secret()));
            }
        }
        pairs
    }

    /// The HTTP request to send: `POST {base}/oauth/token`, form-encoded.
    ///
    /// The returned request's body holds the client secret.
    pub fn to_http(&self, base: &BaseUrl) -> http::Request<Vec<u8>> {
        let body = encode_form(self.form_pairs()).into_bytes();
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        // A BaseUrl always joins into a valid URI.
        *request.uri_mut() = base
            .join(TOKEN_PATH)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let headers = request.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(crate::USER_AGENT),
        );
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(grant: Grant) -> OAuthTokenRequest {
        OAuthTokenRequest {
            client_id: "dvc-id".into(),
            client_secret: ClientSecret::new("dvs-secret"),
            grant,
        }
    }

    #[test]
    fn bodies_match_the_wire() {
        let base = BaseUrl::parse("http://127.0.0.1:1").unwrap();
        let r = req(Grant::ClientCredentials {
            user_access_token: None,
        })
        .to_http(&base);
        assert_eq!(r.uri(), "http://127.0.0.1:1/oauth/token");
        assert_eq!(r.method(), http::Method::POST);
        assert!(r.headers().get(http::header::AUTHORIZATION).is_none());
        assert_eq!(
            std::str::from_utf8(r.body()).unwrap(),
            "grant_type=client_credentials&client_id=dvc-id&client_secret=dvs-secret"
        );
        let r = req(Grant::AuthorizationCode {
            code: AuthorizationCode::new("code-1"),
            redirect_uri: "https://app.example/cb".into(),
            code_verifier: None,
        })
        .to_http(&base);
        assert_eq!(
            std::str::from_utf8(r.body()).unwrap(),
            "grant_type=authorization_code&client_id=dvc-id&client_secret=dvs-secret&code=code-1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
        );
        // With PKCE, the verifier comes last; it is never in `Debug`.
        let with_pkce = req(Grant::AuthorizationCode {
            code: AuthorizationCode::new("code-1"),
            redirect_uri: "https://app.example/cb".into(),
            code_verifier: Some(PkceVerifier::new("v".repeat(43))),
        });
        let body = String::from_utf8(with_pkce.to_http(&base).into_body()).unwrap();
        assert!(
            body.ends_with(&format!("&code_verifier={}", "v".repeat(43))),
            "{body}"
        );
        assert!(!format!("{with_pkce:?}").contains(&"v".repeat(43)));
        let r = req(Grant::RefreshToken {
            refresh_token: RefreshToken::new("rt-stored"),
        })
        .to_http(&base);
        assert!(
            std::str::from_utf8(r.body())
                .unwrap()
                .ends_with("&refresh_token=rt-stored")
        );
        let dbg = format!(
            "{:?}",
            req(Grant::ClientCredentials {
                user_access_token: Some(UserAccessToken::new("user-tok"))
            })
        );
        assert!(
            !dbg.contains("dvs-secret") && !dbg.contains("user-tok"),
            "{dbg}"
        );
    }

    #[test]
    fn tokens_roundtrip_with_absolute_expiry() {
        let t = TokenResponse {
            access_token: AccessToken::new("a"),
            refresh_token: Some(String::new()),
            token_type: None,
            expires_in: Some(86_400),
            scope: None,
        }
        .into_tokens(1_000);
        assert_eq!(t.expires_at, Some(87_400));
        assert!(
            t.refresh_token.is_none(),
            "empty refresh token is no refresh token"
        );
        assert_eq!(t.expires_in(87_000), Some(400));
        assert!(t.is_expired(87_400));
        let json = serde_json::to_string(&t).unwrap();
        let back: OAuthTokens = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expires_at, Some(87_400));
        assert_eq!(back.access_token.secret(), "a");
    }
}
