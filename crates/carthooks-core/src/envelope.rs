//! The response envelope and the parsers for every answer shape.
//!
//! Carthooks answers `{"data": …, "error": …, "traceId": …, "meta": …}`; a present,
//! non-null `error` means failure whatever the status. Also accepted, each turned
//! into a typed error carrying the HTTP status and trace id:
//!
//! | answer | result |
//! |---|---|
//! | `{"error": "invalid_grant", "error_description": "…"}` (RFC 6749) | [`Error::OAuth`] / [`Error::Api`] with that code |
//! | `{"error": {"code": …, "message": …}}` | same, code and message taken |
//! | bare token answer `{"access_token": …}` | tokens |
//! | non-JSON (an HTML 502 page), truncated or mistyped JSON | [`Error::UnexpectedResponse`] |
//! | non-2xx status without an `error` | error with the status only |
//! | 2xx with an empty body (a 204 to a DELETE) | success, `data` decoded from `null` |
//! | 3xx (a redirect) | [`Error::Transport`] of kind `Redirect`, naming the target host only |
//!
//! Parse errors never quote the body (it may hold tokens): the reason names the
//! kind of problem, the field and the position only.
//!
//! Text the server chose (`error`, `error_description`, `message`, `traceId`) is
//! cleaned before it is kept: control characters (ANSI escapes, CR/LF that would
//! forge log lines) and invisible Unicode format characters become spaces, and
//! each string is capped (code and trace id 128 bytes, message 1024). The
//! clients also [redact](Error::redact) every secret they know from it.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result, ServiceError};
use crate::sanitize::{MAX_MESSAGE, MAX_SHORT, sanitize_owned, sanitize_short};
use crate::tokens::{FIELD_ERROR, OAuthTokenRequest, OAuthTokens, TokenResponse};

/// A successful API answer: the envelope's `data`, decoded, plus its metadata.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiResponse<T> {
    /// The `data` member, decoded.
    pub data: T,
    /// The `meta` member (pagination totals and the like), when present.
    pub meta: Option<serde_json::Value>,
    /// The server's trace id.
    pub trace_id: Option<String>,
}

impl<T> ApiResponse<T> {
    /// `meta.total` when the server sent it (list endpoints).
    pub fn total(&self) -> Option<u64> {
        self.meta.as_ref()?.get("total")?.as_u64()
    }

    /// Maps the data, keeping meta and trace id.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> ApiResponse<U> {
        ApiResponse {
            data: f(self.data),
            meta: self.meta,
            trace_id: self.trace_id,
        }
    }
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "traceId", alias = "trace_id")]
    trace_id: Option<String>,
    #[serde(default)]
    meta: Option<serde_json::Value>,
    #[serde(borrow, default)]
    access_token: Option<&'a RawValue>,
}

impl RawEnvelope<'_> {
    fn empty(trace_id: Option<String>) -> Self {
        Self {
            data: None,
            error: None,
            error_description: None,
            message: None,
            trace_id,
            meta: None,
            access_token: None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, alias = "error")]
    error_code: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Which endpoint family an answer came from; decides [`Error::OAuth`] vs [`Error::Api`].
#[derive(Clone, Copy)]
enum Family {
    Token,
    Api,
}

/// The envelope of a successful answer, decoded in one pass. Anything it cannot
/// take (an error, a null `data`, malformed JSON) goes to the careful path.
#[derive(Deserialize)]
struct FastEnvelope<T> {
    #[serde(default = "Option::default")]
    data: Option<T>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "traceId", alias = "trace_id")]
    trace_id: Option<String>,
    #[serde(default)]
    meta: Option<serde_json::Value>,
}

fn header_trace_id(response: &http::Response<Vec<u8>>) -> Option<String> {
    response
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(sanitize_short)
}

/// Parses an API answer into `ApiResponse<T>`, or the error it carries.
///
/// A successful answer is decoded in one pass; any other answer is examined a
/// second time to build the most precise error.
pub fn parse_api_response<T: DeserializeOwned>(
    response: &http::Response<Vec<u8>>,
) -> Result<ApiResponse<T>> {
    if response.status().is_success()
        && let Ok(FastEnvelope {
            data: Some(data),
            error: None,
            trace_id,
            meta,
        }) = serde_json::from_slice::<FastEnvelope<T>>(response.body())
    {
        return Ok(ApiResponse {
            data,
            meta,
            trace_id: match trace_id {
                Some(t) => Some(sanitize_owned(t, MAX_SHORT)),
                None => header_trace_id(response),
            },
        });
    }
    parse_api_response_slow(response)
}

fn parse_api_response_slow<T: DeserializeOwned>(
    response: &http::Response<Vec<u8>>,
) -> Result<ApiResponse<T>> {
    let status = response.status();
    let envelope = read_envelope(response, Family::Api)?;
    let trace_id = envelope.trace_id;
    let data = match envelope.data {
        Some(raw) => serde_json::from_str::<T>(raw.get()),
        None => serde_json::from_str::<T>("null"),
    }
    .map_err(|e| decode_error(status, trace_id.clone(), "data", &e))?;
    Ok(ApiResponse {
        data,
        meta: envelope.meta,
        trace_id,
    })
}

/// Parses a token endpoint answer (enveloped or bare) received at `now`.
pub fn parse_token_response(response: &http::Response<Vec<u8>>, now: u64) -> Result<OAuthTokens> {
    let status = response.status();
    let envelope = read_envelope(response, Family::Token)?;
    let trace_id = envelope.trace_id;
    let raw = match (envelope.data, envelope.access_token) {
        (_, Some(_)) => std::str::from_utf8(response.body()).unwrap_or("null"),
        (Some(data), None) => data.get(),
        (None, None) => {
            return Err(Error::UnexpectedResponse {
                status,
                trace_id,
                reason: "token answer has no access_token".into(),
            });
        }
    };
    let token: TokenResponse = serde_json::from_str(raw)
        .map_err(|e| decode_error(status, trace_id.clone(), "token", &e))?;
    if let Err(why) = token.check() {
        return Err(Error::UnexpectedResponse {
            status,
            trace_id,
            reason: why,
        });
    }
    Ok(token.into_tokens(now))
}

impl OAuthTokenRequest {
    /// Parses the token endpoint's answer, received at `now` (Unix seconds):
    /// [`parse_token_response`].
    pub fn parse_response(response: &http::Response<Vec<u8>>, now: u64) -> Result<OAuthTokens> {
        parse_token_response(response, now)
    }
}

/// Checks the status and the envelope's `error`; returns the envelope of a success.
fn read_envelope<'a>(
    response: &'a http::Response<Vec<u8>>,
    family: Family,
) -> Result<RawEnvelope<'a>> {
    let status = response.status();
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        return Err(Error::Transport(crate::error::TransportError::redirect(
            location,
        )));
    }
    let header_trace = header_trace_id(response);
    let body = response.body();
    if response.status().is_success() && body.iter().all(u8::is_ascii_whitespace) {
        // A 204 (or a 200 without a body): a success with nothing in it.
        return Ok(RawEnvelope::empty(header_trace));
    }
    let parsed = std::str::from_utf8(body)
        .map_err(|_| "response is not UTF-8 text".to_owned())
        .and_then(|text| {
            serde_json::from_str::<RawEnvelope<'_>>(text).map_err(|e| {
                if looks_like_json(body) {
                    describe_json_error("response", &e)
                } else {
                    format!("response is not JSON ({})", content_type(response))
                }
            })
        });
    let mut envelope = match parsed {
        Ok(envelope) => envelope,
        Err(reason) => {
            return Err(Error::UnexpectedResponse {
                status,
                trace_id: header_trace,
                reason,
            });
        }
    };
    envelope.trace_id = match envelope.trace_id.take() {
        Some(t) => Some(sanitize_short(&t)),
        None => header_trace,
    };
    let error = envelope.error.filter(|e| e.get() != "null");
    let success = status.is_success();
    if error.is_none() && success {
        return Ok(envelope);
    }
    let mut service = ServiceError {
        status,
        code: None,
        message: envelope
            .error_description
            .take()
            .or(envelope.message.take()),
        trace_id: envelope.trace_id.take(),
        retry_after: None,
    };
    if let Some(raw) = error {
        if let Ok(code) = serde_json::from_str::<String>(raw.get()) {
            service.code = Some(code);
        } else if let Ok(obj) = serde_json::from_str::<ErrorObject>(raw.get()) {
            service.code = match obj.code {
                Some(serde_json::Value::String(s)) => Some(s),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => obj.error_code,
            };
            service.message = obj.message.or(obj.error_description).or(service.message);
        }
    }
    service.code = service.code.map(|c| sanitize_owned(c, MAX_SHORT));
    service.message = service.message.map(|m| sanitize_owned(m, MAX_MESSAGE));
    Err(match family {
        Family::Token => Error::OAuth(service),
        Family::Api => Error::Api(service),
    })
}

fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"')
    )
}

fn content_type(response: &http::Response<Vec<u8>>) -> String {
    let ct = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 64);
    match ct {
        Some(ct) => format!("content-type {ct}"),
        None if response.body().is_empty() => "empty body".to_owned(),
        None => "no content-type".to_owned(),
    }
}

/// Describes a JSON error without quoting input: serde's messages can contain
/// fragments of the values ("invalid type: string \"…\""), which may be tokens.
fn describe_json_error(what: &str, e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Eof => "truncated JSON".to_owned(),
        Category::Syntax => "malformed JSON".to_owned(),
        Category::Io => "unreadable JSON".to_owned(),
        Category::Data => {
            let msg = e.to_string();
            if let Some(rest) = msg.strip_prefix("missing field ") {
                format!("missing field {}", rest.split(' ').next().unwrap_or(""))
            } else if let Some(rest) = msg.strip_prefix(FIELD_ERROR) {
                // Our own field parsers' messages: they name the field and what
                // was wrong, never the value.
                rest.split(" at line ").next().unwrap_or(rest).to_owned()
            } else {
                "JSON of the wrong shape".to_owned()
            }
        }
    };
    format!(
        "{kind} in {what} at line {} column {}",
        e.line(),
        e.column()
    )
}

fn decode_error(
    status: http::StatusCode,
    trace_id: Option<String>,
    what: &str,
    e: &serde_json::Error,
) -> Error {
    Error::UnexpectedResponse {
        status,
        trace_id,
        reason: describe_json_error(what, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::UserInfo;

    fn resp(status: u16, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn envelope_success() {
        let r = resp(
            200,
            r#"{"data":[{"id":1}],"error":null,"traceId":"t1","meta":{"total":5}}"#,
        );
        let out: ApiResponse<Vec<serde_json::Value>> = parse_api_response(&r).unwrap();
        assert_eq!(out.data.len(), 1);
        assert_eq!(out.total(), Some(5));
        assert_eq!(out.trace_id.as_deref(), Some("t1"));
    }

    #[test]
    fn error_present_means_failure_even_on_200() {
        let r = resp(
            200,
            r#"{"data":null,"error":{"code":"NOT_FOUND","message":"no item"},"traceId":"t2"}"#,
        );
        let e = parse_api_response::<serde_json::Value>(&r).unwrap_err();
        let s = e.service_error().unwrap();
        assert_eq!(s.code.as_deref(), Some("NOT_FOUND"));
        assert_eq!(s.message.as_deref(), Some("no item"));
        assert_eq!(e.trace_id(), Some("t2"));
        assert_eq!(e.status().map(u16::from), Some(200));
    }

    #[test]
    fn rfc6749_error() {
        let r = resp(
            400,
            r#"{"error":"invalid_grant","error_description":"used","traceId":"t3"}"#,
        );
        let e = parse_token_response(&r, 0).unwrap_err();
        assert_eq!(e.oauth_error_code(), Some("invalid_grant"));
        assert_eq!(e.status().map(u16::from), Some(400));
        assert_eq!(e.trace_id(), Some("t3"));
        assert!(e.is_permanent_oauth_error());
    }

    #[test]
    fn numeric_error_code_and_status_without_error() {
        let r = resp(403, r#"{"error":{"code":40301,"message":"forbidden"}}"#);
        let e = parse_api_response::<serde_json::Value>(&r).unwrap_err();
        assert_eq!(e.service_error().unwrap().code.as_deref(), Some("40301"));
        let r = resp(500, r#"{"data":null}"#);
        let e = parse_api_response::<serde_json::Value>(&r).unwrap_err();
        assert!(matches!(
            e,
            Error::Api(ServiceError {
                status: http::StatusCode::INTERNAL_SERVER_ERROR,
                code: None,
                ..
            })
        ));
    }

    #[test]
    fn token_shapes() {
        let bare = resp(
            200,
            r#"{"access_token":"a1","refresh_token":"r1","expires_in":60,"token_type":"Bearer"}"#,
        );
        let t = parse_token_response(&bare, 100).unwrap();
        assert_eq!(t.access_token.secret(), "a1");
        assert_eq!(t.expires_at, Some(160));
        let wrapped = resp(
            200,
            r#"{"data":{"access_token":"a2","expires_in":86400},"traceId":"x"}"#,
        );
        let t = parse_token_response(&wrapped, 0).unwrap();
        assert_eq!(t.access_token.secret(), "a2");
        assert!(t.refresh_token.is_none());
        let empty = resp(200, r#"{"data":{"access_token":""}}"#);
        assert!(matches!(
            parse_token_response(&empty, 0),
            Err(Error::UnexpectedResponse { .. })
        ));
        let nothing = resp(200, r#"{"data":null}"#);
        assert!(matches!(
            parse_token_response(&nothing, 0),
            Err(Error::UnexpectedResponse { .. })
        ));
    }

    #[test]
    fn expires_in_as_real_servers_send_it() {
        let cases: &[(&str, Option<u64>)] = &[
            (r#""3600""#, Some(3_600)),
            ("3600.5", Some(3_600)),
            ("0", Some(0)),
            ("-5", Some(0)),
            ("1e30", Some(crate::tokens::MAX_LIFETIME)),
            ("18446744073709551616", Some(crate::tokens::MAX_LIFETIME)),
            ("null", None),
            (r#"" ""#, None),
        ];
        for (value, expected) in cases {
            let body = format!(r#"{{"access_token":"a","expires_in":{value}}}"#);
            let t = parse_token_response(&resp(200, &body), 100)
                .unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(t.expires_in(100), *expected, "{value}");
        }
        let absent = parse_token_response(&resp(200, r#"{"access_token":"a"}"#), 100).unwrap();
        assert_eq!(absent.expires_at, None);
        for bad in [r#""soon""#, "true", "[1]", r#"{"s":1}"#] {
            let body = format!(r#"{{"access_token":"a","expires_in":{bad}}}"#);
            let e = parse_token_response(&resp(200, &body), 0).unwrap_err();
            assert!(e.to_string().contains("expires_in"), "{bad}: {e}");
            assert!(!e.to_string().contains("soon"), "{e}");
        }
        let e = parse_token_response(
            &resp(200, r#"{"access_token":"at-x","refresh_token":12}"#),
            0,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("refresh_token is not a string"),
            "{e}"
        );
    }

    #[test]
    fn token_type_must_be_bearer() {
        for ok in ["Bearer", "bearer", "BEARER"] {
            let body = format!(r#"{{"access_token":"a","token_type":"{ok}"}}"#);
            parse_token_response(&resp(200, &body), 0).unwrap();
        }
        let e = parse_token_response(&resp(200, r#"{"access_token":"a","token_type":"MAC"}"#), 0)
            .unwrap_err();
        assert!(matches!(e, Error::UnexpectedResponse { .. }));
        assert!(
            e.to_string()
                .contains("token_type \"MAC\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn empty_success_is_a_success() {
        for status in [200, 204] {
            let r = resp(status, "");
            let out: ApiResponse<serde_json::Value> = parse_api_response(&r).unwrap();
            assert_eq!(out.data, serde_json::Value::Null);
        }
        // A type that needs data still says what is missing.
        assert!(parse_api_response::<UserInfo>(&resp(204, "")).is_err());
        assert!(parse_token_response(&resp(204, ""), 0).is_err());
    }

    #[test]
    fn redirect_is_a_transport_error_naming_the_host_only() {
        let r = http::Response::builder()
            .status(302)
            .header("location", "https://evil.example/steal?token=at-secret")
            .body(Vec::new())
            .unwrap();
        for e in [
            parse_api_response::<serde_json::Value>(&r).unwrap_err(),
            parse_token_response(&r, 0).unwrap_err(),
        ] {
            let t = e.transport_error().expect("transport error");
            assert_eq!(t.kind(), crate::error::TransportErrorKind::Redirect);
            let text = e.to_string();
            assert!(
                text.contains("evil.example") && !text.contains("at-secret"),
                "{text}"
            );
        }
    }

    #[test]
    fn server_text_is_cleaned_and_capped() {
        let long = "x".repeat(10_000);
        let body = format!(
            r#"{{"error":"bad\u001b[31m\r\nINFO forged","error_description":"line1\nline2\u202e","traceId":"{long}"}}"#
        );
        let e = parse_api_response::<serde_json::Value>(&resp(400, &body)).unwrap_err();
        let s = e.service_error().unwrap();
        let all = format!("{e}");
        assert!(
            !all.contains('\u{1b}') && !all.contains('\n') && !all.contains('\r'),
            "{all:?}"
        );
        assert!(!all.contains('\u{202e}'));
        assert!(s.trace_id.as_ref().unwrap().len() <= 131, "trace id capped");
        assert!(all.len() < 1_500, "{}", all.len());
    }

    #[test]
    fn html_502() {
        let r = http::Response::builder()
            .status(502)
            .header("content-type", "text/html; charset=utf-8")
            .header("x-trace-id", "edge-9")
            .body(b"<html><body>Bad Gateway</body></html>".to_vec())
            .unwrap();
        let e = parse_api_response::<serde_json::Value>(&r).unwrap_err();
        match &e {
            Error::UnexpectedResponse {
                status,
                trace_id,
                reason,
            } => {
                assert_eq!(*status, 502);
                assert_eq!(trace_id.as_deref(), Some("edge-9"));
                assert!(reason.contains("text/html"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_types_never_quote_the_body() {
        let r = resp(200, r#"{"data":{"user_id":"secret-looking-value"}}"#);
        let e = parse_api_response::<UserInfo>(&r).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("secret-looking-value"), "{text}");
        assert!(matches!(
            e,
            Error::UnexpectedResponse {
                status: http::StatusCode::OK,
                ..
            }
        ));
        let r = resp(200, r#"{"access_token": 12, "refresh_token": "rt-leak"}"#);
        let e = parse_token_response(&r, 0).unwrap_err();
        assert!(!format!("{e:?}").contains("rt-leak"));
        let r = resp(200, r#"{"data":{"access_token":"#);
        let e = parse_token_response(&r, 0).unwrap_err();
        assert!(e.to_string().contains("truncated JSON"), "{e}");
    }

    #[test]
    fn garbage_never_panics() {
        let samples: &[&[u8]] = &[
            b"",
            b"\xff\xfe",
            b"null",
            b"[]",
            b"\"x\"",
            b"{\"error\":[]}",
            b"{\"data\":",
            b"123",
        ];
        for &body in samples {
            for status in [200, 401, 502] {
                let r = http::Response::builder()
                    .status(status)
                    .body(body.to_vec())
                    .unwrap();
                let _ = parse_api_response::<serde_json::Value>(&r);
                assert!(parse_token_response(&r, 0).is_err());
            }
        }
    }
}
