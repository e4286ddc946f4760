//! Every API endpoint, described once.
//!
//! An [`Endpoint<R>`] is a complete description of one call — operation name,
//! method, path, query, JSON body and the type `R` of the answer's `data`. The
//! async and the blocking clients only execute these: they ask
//! [`Endpoint::to_request`] for the bytes, send them, and hand the answer to
//! [`Endpoint::parse_response`].
//!
//! ```
//! use carthooks_core::{BaseUrl, Endpoint, ItemsQuery};
//! let ep = Endpoint::<Vec<serde_json::Value>>::get_items(1, 2, &ItemsQuery::new().limit(5));
//! let req = ep.to_request(&BaseUrl::default(), None).unwrap();
//! assert_eq!(req.uri().path(), "/v1/apps/1/collections/2/items");
//! ```

use std::marker::PhantomData;

use http::{HeaderValue, Method, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{ApiResponse, parse_api_response};
use crate::error::{Error, Result};
use crate::models::{
    AuthorizeCodeResponse, ItemLock, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest, UserInfo,
    WatchDataRequest,
};
use crate::secret::UserAccessToken;
use crate::url::{BaseUrl, append_pair, encode_path_segment, push_u64};

/// Where an endpoint's path is rooted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// Under the base URL.
    Base,
    /// Under the parent of the base URL (`{base}/../path`).
    Parent,
}

/// One API call, described: build it with the constructors, execute it with a client.
pub struct Endpoint<R> {
    operation: &'static str,
    method: Method,
    root: Root,
    path: String,
    /// The encoded query string, without `?`.
    query: String,
    body: Option<Vec<u8>>,
    /// A secret that travels in the path (`get_user_by_token`), redacted from
    /// errors about this call.
    path_secret: Option<UserAccessToken>,
    /// A path parameter was `.` or `..`: no HTTP client sends such a segment as
    /// it is (WHATWG URL parsers resolve even `%2E%2E`), so the call is refused.
    dot_segment: bool,
    _response: PhantomData<fn() -> R>,
}

impl<R> Clone for Endpoint<R> {
    fn clone(&self) -> Self {
        Self {
            operation: self.operation,
            method: self.method.clone(),
            root: self.root,
            path: self.path.clone(),
            query: self.query.clone(),
            body: self.body.clone(),
            path_secret: self.path_secret.clone(),
            dot_segment: self.dot_segment,
            _response: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Endpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The path may contain a user token (`/v1/user-token/{token}`); the
        // operation and method are enough to identify the call.
        f.debug_struct("Endpoint")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn json_body<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Encode(std::sync::Arc::new(e)))
}

#[derive(Serialize)]
struct DataBody<'a, T: ?Sized> {
    data: &'a T,
}

impl<R> Endpoint<R> {
    fn new(operation: &'static str, method: Method, path: String) -> Self {
        // `encode_path_segment` writes a `.` or `..` parameter as `%2E` / `%2E%2E`,
        // and nothing else as such a segment.
        let dot_segment = path.split('/').any(|s| s == "%2E" || s == "%2E%2E");
        Self {
            dot_segment,
            operation,
            method,
            root: Root::Base,
            path,
            query: String::new(),
            body: None,
            path_secret: None,
            _response: PhantomData,
        }
    }

    /// Short name of the operation (`get_items`, `me`, …), for logs and tests.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path with its parameters named, not filled in (for logs and metrics:
    /// it never holds an id or a token).
    pub fn path_template(&self) -> &'static str {
        match self.operation {
            "me" => "/v1/me",
            "authorize_code" => "/api/oauth/get-authorize-code",
            "get_items" | "create_item" => "/v1/apps/{app}/collections/{coll}/items",
            "get_item" | "update_item" | "delete_item" => {
                "/v1/apps/{app}/collections/{coll}/items/{id}"
            }
            "lock_item" => "/v1/apps/{app}/collections/{coll}/items/{id}/lock",
            "unlock_item" => "/v1/apps/{app}/collections/{coll}/items/{id}/unlock",
            "create_sub_item" => "/v1/apps/{app}/collections/{coll}/items/{id}/subform/{field}/",
            "update_sub_item" | "delete_sub_item" => {
                "/v1/apps/{app}/collections/{coll}/items/{id}/subform/{field}/items/{sub}"
            }
            "submission_token" => "/v1/apps/{app}/collections/{coll}/submission-token",
            "update_token" => "/v1/apps/{app}/collections/{coll}/items/{id}/update-token",
            "upload_token" => "/v1/uploads/token",
            "get_user" => "/v1/users/{id}",
            "get_user_by_token" => "/v1/user-token/{token}",
            "watch_data" => "/v1/watch-data",
            _ => "(unknown)",
        }
    }

    /// Removes the secret this call carries in its path (if any) from `error`'s
    /// server-supplied text.
    pub fn redact(&self, mut error: Error) -> Error {
        if let Some(secret) = &self.path_secret {
            error.redact(secret.secret());
        }
        error
    }

    /// True when sending the request twice has the effect of sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        )
    }

    /// Builds the HTTP request against `base`, with `authorization` (a complete
    /// `Bearer …` header value) when given.
    pub fn to_request(
        &self,
        base: &BaseUrl,
        authorization: Option<&HeaderValue>,
    ) -> Result<http::Request<Vec<u8>>> {
        if self.dot_segment {
            return Err(Error::InvalidInput(
                "a path parameter cannot be \".\" or \"..\": HTTP clients would send the request to another path".into(),
            ));
        }
        let uri = base
            .uri(self.root == Root::Parent, &self.path, &self.query)
            .ok_or_else(|| Error::Config("request URL is not valid".into()))?;
        let mut request = http::Request::new(self.body.clone().unwrap_or_default());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(auth) = authorization {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        Ok(request)
    }
}

impl<R: DeserializeOwned> Endpoint<R> {
    /// Parses the answer to this call.
    pub fn parse_response(&self, response: &http::Response<Vec<u8>>) -> Result<ApiResponse<R>> {
        parse_api_response(response)
    }
}

/// A copy of a request, for sending it again.
pub fn clone_request(request: &http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

fn items_path(app_id: u64, collection_id: u64) -> String {
    // Hot (every list call): built without the formatting machinery.
    let mut path = String::with_capacity(64);
    path.push_str("/v1/apps/");
    push_u64(&mut path, app_id);
    path.push_str("/collections/");
    push_u64(&mut path, collection_id);
    path.push_str("/items");
    path
}

fn item_path(app_id: u64, collection_id: u64, item_id: u64) -> String {
    format!("/v1/apps/{app_id}/collections/{collection_id}/items/{item_id}")
}

fn sub_items_path(app_id: u64, collection_id: u64, item_id: u64, field_id: u64) -> String {
    format!(
        "{}/subform/{field_id}",
        item_path(app_id, collection_id, item_id)
    )
}

#[derive(Serialize)]
struct UnlockBody<'a> {
    #[serde(rename = "lockId")]
    lock_id: &'a str,
}

impl Endpoint<UserInfo> {
    /// `GET /v1/me`: the user the token acts for.
    pub fn get_current_user() -> Self {
        Self::new("me", Method::GET, "/v1/me".into())
    }
}

impl Endpoint<AuthorizeCodeResponse> {
    /// `POST {base}/../api/oauth/get-authorize-code`: asks for an authorization
    /// code on behalf of the user whose token is sent.
    pub fn get_oauth_authorize_code(request: &OAuthAuthorizeCodeRequest) -> Result<Self> {
        let mut ep = Self::new(
            "authorize_code",
            Method::POST,
            "/api/oauth/get-authorize-code".into(),
        );
        ep.root = Root::Parent;
        ep.body = Some(json_body(request)?);
        Ok(ep)
    }
}

impl<T: DeserializeOwned> Endpoint<Vec<T>> {
    /// `GET /v1/apps/{app}/collections/{coll}/items?…`: one page of items.
    pub fn get_items(app_id: u64, collection_id: u64, query: &ItemsQuery) -> Self {
        let mut ep = Self::new("get_items", Method::GET, items_path(app_id, collection_id));
        query.write_query(&mut ep.query);
        ep
    }
}

impl<T: DeserializeOwned> Endpoint<T> {
    /// `POST /v1/apps/{app}/collections/{coll}/items` with `{"data": data}`.
    pub fn create_item<D: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        data: &D,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "create_item",
            Method::POST,
            items_path(app_id, collection_id),
        );
        ep.body = Some(json_body(&DataBody { data })?);
        Ok(ep)
    }
}

impl<T: DeserializeOwned> Endpoint<T> {
    /// `GET …/items/{id}`, with `?fields=a&fields=b` when `fields` is not empty.
    pub fn get_item(app_id: u64, collection_id: u64, item_id: u64, fields: &[&str]) -> Self {
        let mut ep = Self::new(
            "get_item",
            Method::GET,
            item_path(app_id, collection_id, item_id),
        );
        for field in fields {
            append_pair(&mut ep.query, "fields", field);
        }
        ep
    }

    /// `PUT …/items/{id}` with `{"data": data}`.
    pub fn update_item<D: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        data: &D,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "update_item",
            Method::PUT,
            item_path(app_id, collection_id, item_id),
        );
        ep.body = Some(json_body(&DataBody { data })?);
        Ok(ep)
    }

    /// `DELETE …/items/{id}`.
    pub fn delete_item(app_id: u64, collection_id: u64, item_id: u64) -> Self {
        Self::new(
            "delete_item",
            Method::DELETE,
            item_path(app_id, collection_id, item_id),
        )
    }

    /// `POST …/items/{id}/subform/{field}/` with `{"data": data}`: adds a row to a
    /// sub-form field. (The trailing slash is part of the wire format.)
    pub fn create_sub_item<D: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        field_id: u64,
        data: &D,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "create_sub_item",
            Method::POST,
            format!(
                "{}/",
                sub_items_path(app_id, collection_id, item_id, field_id)
            ),
        );
        ep.body = Some(json_body(&DataBody { data })?);
        Ok(ep)
    }

    /// `PUT …/items/{id}/subform/{field}/items/{sub}` with `{"data": data}`.
    pub fn update_sub_item<D: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        field_id: u64,
        sub_item_id: u64,
        data: &D,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "update_sub_item",
            Method::PUT,
            format!(
                "{}/items/{sub_item_id}",
                sub_items_path(app_id, collection_id, item_id, field_id)
            ),
        );
        ep.body = Some(json_body(&DataBody { data })?);
        Ok(ep)
    }

    /// `DELETE …/items/{id}/subform/{field}/items/{sub}`.
    pub fn delete_sub_item(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        field_id: u64,
        sub_item_id: u64,
    ) -> Self {
        Self::new(
            "delete_sub_item",
            Method::DELETE,
            format!(
                "{}/items/{sub_item_id}",
                sub_items_path(app_id, collection_id, item_id, field_id)
            ),
        )
    }

    /// `POST …/collections/{coll}/submission-token` with `options` as the body: a
    /// token that lets an anonymous form submit one item.
    pub fn get_submission_token<O: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        options: &O,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "submission_token",
            Method::POST,
            format!("/v1/apps/{app_id}/collections/{collection_id}/submission-token"),
        );
        ep.body = Some(json_body(options)?);
        Ok(ep)
    }

    /// `POST …/items/{id}/update-token` with `options` as the body: a token that
    /// lets an anonymous form update one item.
    pub fn update_submission_token<O: Serialize + ?Sized>(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        options: &O,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "update_token",
            Method::POST,
            format!("{}/update-token", item_path(app_id, collection_id, item_id)),
        );
        ep.body = Some(json_body(options)?);
        Ok(ep)
    }

    /// `POST /v1/uploads/token` (empty body): credentials for a file upload.
    pub fn get_upload_token() -> Self {
        Self::new("upload_token", Method::POST, "/v1/uploads/token".into())
    }

    /// `POST /v1/watch-data`: deliver a collection's changes to an SQS queue.
    pub fn start_watch_data(request: &WatchDataRequest) -> Result<Self> {
        let mut ep = Self::new("watch_data", Method::POST, "/v1/watch-data".into());
        ep.body = Some(json_body(request)?);
        Ok(ep)
    }
}

impl Endpoint<ItemLock> {
    /// `POST …/items/{id}/lock` with `{lockTimeout, lockId, lockSubject}`.
    pub fn lock_item(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        options: &LockOptions,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "lock_item",
            Method::POST,
            format!("{}/lock", item_path(app_id, collection_id, item_id)),
        );
        ep.body = Some(json_body(options)?);
        Ok(ep)
    }

    /// `POST …/items/{id}/unlock` with `{lockId}`.
    pub fn unlock_item(
        app_id: u64,
        collection_id: u64,
        item_id: u64,
        lock_id: &str,
    ) -> Result<Self> {
        let mut ep = Self::new(
            "unlock_item",
            Method::POST,
            format!("{}/unlock", item_path(app_id, collection_id, item_id)),
        );
        ep.body = Some(json_body(&UnlockBody { lock_id })?);
        Ok(ep)
    }
}

impl Endpoint<UserInfo> {
    /// `GET /v1/users/{id}`.
    pub fn get_user(user_id: u64) -> Self {
        Self::new("get_user", Method::GET, format!("/v1/users/{user_id}"))
    }

    /// `GET /v1/user-token/{token}`: the user a user access token belongs to. The
    /// token travels in the path (as in the Python SDK); this description's
    /// `Debug` does not show it.
    pub fn get_user_by_token(token: &UserAccessToken) -> Self {
        let mut endpoint = Self::new(
            "get_user_by_token",
            Method::GET,
            format!("/v1/user-token/{}", encode_path_segment(token.secret())),
        );
        endpoint.path_secret = Some(token.clone());
        endpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FilterOp;
    use crate::url::decode_form;

    #[test]
    fn get_items_request() {
        let q =
            ItemsQuery::new()
                .limit(1)
                .start(0)
                .filter("f_1001", FilterOp::Eq, "EF250920962519");
        let ep = Endpoint::<Vec<serde_json::Value>>::get_items(3_883_548_539, 3_883_549_661, &q);
        let auth = HeaderValue::from_static("Bearer at-4");
        let r = ep.to_request(&BaseUrl::default(), Some(&auth)).unwrap();
        assert_eq!(r.method(), Method::GET);
        assert_eq!(
            r.uri().path(),
            "/v1/apps/3883548539/collections/3883549661/items"
        );
        let mut pairs = decode_form(r.uri().query().unwrap());
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                (
                    "filters[f_1001][$eq]".to_string(),
                    "EF250920962519".to_string()
                ),
                ("pagination[limit]".into(), "1".into()),
                ("pagination[start]".into(), "0".into()),
            ]
        );
        assert_eq!(r.headers()["authorization"], "Bearer at-4");
        assert_eq!(r.headers()["accept"], "*/*");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(ep.is_idempotent());
    }

    #[test]
    fn create_item_and_authorize_code() {
        let ep = Endpoint::<serde_json::Value>::create_item(
            1,
            2,
            &serde_json::json!({"title": "New Item", "status": "active"}),
        )
        .unwrap();
        let r = ep.to_request(&BaseUrl::default(), None).unwrap();
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"data": {"title": "New Item", "status": "active"}})
        );
        assert!(!ep.is_idempotent());

        let ep = Endpoint::get_oauth_authorize_code(&OAuthAuthorizeCodeRequest {
            client_id: "dvc-id".into(),
            redirect_uri: "https://app.example/cb".into(),
            state: "st-1".into(),
            target_tenant_id: None,
        })
        .unwrap();
        let base = BaseUrl::parse("https://api.carthooks.com/v1").unwrap();
        let r = ep.to_request(&base, None).unwrap();
        assert_eq!(
            r.uri(),
            "https://api.carthooks.com/api/oauth/get-authorize-code"
        );
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert!(body.get("target_tenant_id").is_none());
    }
}
