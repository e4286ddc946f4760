//! OAuth tokens and token requests.

use serde::{Deserialize, Serialize};

use crate::envelope::parse_token_response;
use crate::error::Result;
use crate::secret::{AccessToken, AuthorizationCode, ClientSecret, RefreshToken, UserAccessToken};
use crate::url::{BaseUrl, encode_form};

/// Path of the token endpoint, under the base URL.
pub const TOKEN_PATH: &str = "/oauth/token";

/// A set of OAuth tokens, as issued by the token endpoint.
///
/// `expires_at` is absolute (Unix seconds), so a stored token set reloads with its
/// true expiry. `Debug` shows no token.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A token endpoint answer as it is on the wire (RFC 6749 §5.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: AccessToken,
    #[serde(default)]
    pub(crate) refresh_token: Option<RefreshToken>,
    #[serde(default)]
    pub(crate) token_type: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

impl TokenResponse {
    pub(crate) fn into_tokens(self, now: u64) -> OAuthTokens {
        OAuthTokens {
            access_token: self.access_token,
            refresh_token: self.refresh_token.filter(|t| !t.secret().is_empty()),
            token_type: self.token_type.unwrap_or_else(bearer),
            expires_at: self.expires_in.map(|s| now.saturating_add(s)),
            scope: self.scope,
        }
    }
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
            Grant::AuthorizationCode { code, redirect_uri } => {
                pairs.push(("code", code.secret()));
                pairs.push(("redirect_uri", redirect_uri.as_str()));
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
        request
    }

    /// Parses the token endpoint's answer, received at `now` (Unix seconds).
    pub fn parse_response(response: &http::Response<Vec<u8>>, now: u64) -> Result<OAuthTokens> {
        parse_token_response(response, now)
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
        })
        .to_http(&base);
        assert_eq!(
            std::str::from_utf8(r.body()).unwrap(),
            "grant_type=authorization_code&client_id=dvc-id&client_secret=dvs-secret&code=code-1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
        );
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
            refresh_token: Some(RefreshToken::new("")),
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
