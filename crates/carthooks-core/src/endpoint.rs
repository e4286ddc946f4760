//! Every API endpoint, described once.
//!
//! The [`table`](spec) below is the only place an operation's name, method and
//! path appear: the constructors fill its templates, clients log them, the
//! mock routes by them ([`Spec::matches`]) and the tests walk [`ENDPOINTS`].
//!
//! An [`Endpoint<R>`] is a complete description of one call — its [`Spec`], the
//! filled path, query, JSON body and the type `R` of the answer's `data`. The
//! clients only execute these: they ask [`Endpoint::to_request`] for the bytes,
//! send them, and hand the answer to [`Endpoint::parse_response`].
//!
//! ```
//! use carthooks_core::{BaseUrl, Endpoint, ItemsQuery};
//! let ep = Endpoint::<Vec<serde_json::Value>>::get_items(1, 2, &ItemsQuery::new().limit(5));
//! let req = ep.to_request(&BaseUrl::default(), None).unwrap();
//! assert_eq!(req.uri().path(), "/v1/apps/1/collections/2/items");
//! assert_eq!(ep.path_template(), "/v1/apps/{app}/collections/{coll}/items");
//! ```
//!
//! An endpoint the SDK has no method for is described the same way, with
//! [`Endpoint::new`], and executed by the same clients (`client.execute(&ep)`):
//!
//! ```
//! use carthooks_core::{BaseUrl, Endpoint};
//! let ep = Endpoint::<serde_json::Value>::new(http::Method::GET, "/v1/apps/{app}/collections/{coll}/views")
//!     .param("app", 3883548539u64)
//!     .param("coll", 3883549661u64)
//!     .query("limit", "10")
//!     .named("list_views");
//! let req = ep.to_request(&BaseUrl::default(), None).unwrap();
//! assert_eq!(req.uri(), "https://api.carthooks.com/v1/apps/3883548539/collections/3883549661/views?limit=10");
//! ```

use std::marker::PhantomData;

use http::{HeaderValue, Method, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{ApiResponse, parse_api_response};
use crate::error::{Error, Result};
use crate::ids::{AppId, CollectionId, FieldId, ItemId, SubItemId, UserId};
use crate::models::{
    AuthorizeCodeResponse, ItemLock, ItemsQuery, LockOptions, OAuthAuthorizeCodeRequest, UserInfo,
    WatchDataRequest,
};
use crate::secret::UserAccessToken;
use crate::url::{BaseUrl, append_pair, encode_path_segment, push_u64};

/// One operation of the API: its name, method and path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Short name (`get_items`, `me`, …), for logs, metrics and tests.
    pub operation: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// The path with its parameters named in braces (`{app}`): it never holds
    /// an id or a token, so it is safe to log.
    pub template: &'static str,
    /// Rooted at the parent of the base URL (`{base}/../path`) rather than at
    /// the base URL itself.
    pub under_parent: bool,
}

impl Spec {
    /// The named parameters of a request for `method` and `path` (no query) if it
    /// is this operation's; `None` otherwise. A trailing slash is optional.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(&'static str, String)>> {
        if self.method.as_str() != method {
            return None;
        }
        let ours = self.template.trim_end_matches('/').split('/');
        let theirs = path.trim_end_matches('/').split('/');
        let mut params = Vec::new();
        let mut theirs = theirs.fuse();
        for segment in ours {
            let given = theirs.next()?;
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !given.is_empty() => params.push((name, given.to_owned())),
                Some(_) => return None,
                None if segment == given => {}
                None => return None,
            }
        }
        theirs.next().is_none().then_some(params)
    }
}

macro_rules! table {
    ($($(#[$doc:meta])* $name:ident = $op:literal, $method:ident $template:literal $(, $parent:ident)?;)*) => {
        /// The table: every operation's [`Spec`], by name.
        pub mod spec {
            use super::*;
            $(
                $(#[$doc])*
                pub const $name: Spec = Spec {
                    operation: $op,
                    method: Method::$method,
                    template: $template,
                    under_parent: table!(@parent $($parent)?),
                };
            )*
        }

        /// Every operation the SDK has a method for, in one list.
        pub const ENDPOINTS: &[Spec] = &[$(spec::$name),*];
    };
    (@parent) => { false };
    (@parent under_parent) => { true };
}

table! {
    /// The user the token acts for.
    ME = "me", GET "/v1/me";
    /// An authorization code for the token's user (`{base}/../api/…`).
    AUTHORIZE_CODE = "authorize_code", POST "/api/oauth/get-authorize-code", under_parent;
    /// One page of items.
    GET_ITEMS = "get_items", GET "/v1/apps/{app}/collections/{coll}/items";
    /// Creates an item.
    CREATE_ITEM = "create_item", POST "/v1/apps/{app}/collections/{coll}/items";
    /// One item.
    GET_ITEM = "get_item", GET "/v1/apps/{app}/collections/{coll}/items/{item}";
    /// Updates an item.
    UPDATE_ITEM = "update_item", PUT "/v1/apps/{app}/collections/{coll}/items/{item}";
    /// Deletes an item.
    DELETE_ITEM = "delete_item", DELETE "/v1/apps/{app}/collections/{coll}/items/{item}";
    /// Locks an item.
    LOCK_ITEM = "lock_item", POST "/v1/apps/{app}/collections/{coll}/items/{item}/lock";
    /// Unlocks an item.
    UNLOCK_ITEM = "unlock_item", POST "/v1/apps/{app}/collections/{coll}/items/{item}/unlock";
    /// Adds a sub-form row (the trailing slash is part of the wire format).
    CREATE_SUB_ITEM = "create_sub_item", POST "/v1/apps/{app}/collections/{coll}/items/{item}/subform/{field}/";
    /// Updates a sub-form row.
    UPDATE_SUB_ITEM = "update_sub_item", PUT "/v1/apps/{app}/collections/{coll}/items/{item}/subform/{field}/items/{sub}";
    /// Deletes a sub-form row.
    DELETE_SUB_ITEM = "delete_sub_item", DELETE "/v1/apps/{app}/collections/{coll}/items/{item}/subform/{field}/items/{sub}";
    /// A submission token for an anonymous form.
    SUBMISSION_TOKEN = "submission_token", POST "/v1/apps/{app}/collections/{coll}/submission-token";
    /// An update token for an anonymous form.
    UPDATE_TOKEN = "update_token", POST "/v1/apps/{app}/collections/{coll}/items/{item}/update-token";
    /// Upload credentials.
    UPLOAD_TOKEN = "upload_token", POST "/v1/uploads/token";
    /// A user by id.
    GET_USER = "get_user", GET "/v1/users/{user}";
    /// The user of a user access token (the token travels in the path).
    GET_USER_BY_TOKEN = "get_user_by_token", GET "/v1/user-token/{token}";
    /// Starts delivering a collection's changes to an SQS queue.
    WATCH_DATA = "watch_data", POST "/v1/watch-data";
}

/// One API call, described: build it with the constructors (or [`Endpoint::new`]),
/// execute it with a client.
pub struct Endpoint<R> {
    spec: Spec,
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
    /// A `{placeholder}` of the template was not filled.
    unfilled: bool,
    _response: PhantomData<fn() -> R>,
}

impl<R> Clone for Endpoint<R> {
    fn clone(&self) -> Self {
        Self {
            spec: self.spec.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            body: self.body.clone(),
            path_secret: self.path_secret.clone(),
            dot_segment: self.dot_segment,
            unfilled: self.unfilled,
            _response: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Endpoint<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The path may contain a user token (`/v1/user-token/{token}`); the
        // operation and template are enough to identify the call.
        f.debug_struct("Endpoint")
            .field("operation", &self.spec.operation)
            .field("method", &self.spec.method)
            .field("template", &self.spec.template)
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

/// A path parameter, for [`Endpoint::from_spec`].
#[derive(Clone, Copy)]
enum Param<'a> {
    Id(u64),
    Text(&'a str),
}

/// Query keys whose values are credentials wherever they appear: OAuth's,
/// and the signatures the HTTP conventions name for `url.full`.
fn is_credential_key(key: &str) -> bool {
    const KEYS: [&str; 12] = [
        "access_token",
        "refresh_token",
        "user_access_token",
        "id_token",
        "token",
        "code",
        "state",
        "client_secret",
        "AWSAccessKeyId",
        "Signature",
        "sig",
        "X-Goog-Signature",
    ];
    KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// True when a filled path has a `.` or `..` segment (written `%2E` / `%2E%2E`
/// by `encode_path_segment`, and never otherwise).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "%2E" || s == "%2E%2E")
}

impl<R> Endpoint<R> {
    /// Any endpoint, including one the SDK has no method for: `method` and a
    /// path `template` relative to the base URL, whose `{name}` placeholders
    /// [`param`](Self::param) fills. Execute it with `client.execute(&endpoint)`;
    /// the answer's `data` is decoded as `R`.
    pub fn new(method: Method, template: &'static str) -> Self {
        Self {
            dot_segment: false,
            unfilled: template.contains('{'),
            spec: Spec {
                operation: "custom",
                method,
                template,
                under_parent: false,
            },
            path: template.to_owned(),
            query: String::new(),
            body: None,
            path_secret: None,
            _response: PhantomData,
        }
    }

    /// Fills the placeholder `{name}` with `value`, encoded as one path segment.
    /// A placeholder left unfilled makes [`to_request`](Self::to_request) fail
    /// with [`Error::InvalidInput`].
    pub fn param(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        let segment = encode_path_segment(&value.to_string());
        self.path = self.path.replace(&format!("{{{name}}}"), &segment);
        self.dot_segment |= has_dot_segment(&self.path);
        self.unfilled = self.path.contains('{');
        self
    }

    /// Adds a query pair (both encoded).
    pub fn query(mut self, key: &str, value: &str) -> Self {
        append_pair(&mut self.query, key, value);
        self
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Result<Self> {
        self.body = Some(json_body(body)?);
        Ok(self)
    }

    /// Names the operation (for logs and the call's span; default `custom`).
    pub fn named(mut self, operation: &'static str) -> Self {
        self.spec.operation = operation;
        self
    }

    /// A call of the table's operation `spec`, its placeholders filled in order
    /// with `params`.
    fn from_spec(spec: Spec, params: &[Param<'_>]) -> Self {
        // Hot (every call): one pass over the template's bytes, no formatting
        // machinery. Braces are ASCII, so every index below is a char boundary.
        let template = spec.template;
        // Room for an id's 20 digits (or a short text) per parameter.
        let mut path = String::with_capacity(template.len() + 20 * params.len());
        let mut params = params.iter();
        let (mut dot_segment, mut unfilled) = (false, false);
        let bytes = template.as_bytes();
        let (mut copied, mut i) = (0, 0);
        while i < bytes.len() {
            if bytes[i] != b'{' {
                i += 1;
                continue;
            }
            let close = bytes[i..]
                .iter()
                .position(|&b| b == b'}')
                .map_or(bytes.len(), |c| i + c + 1);
            path.push_str(&template[copied..i]);
            match params.next() {
                Some(Param::Id(n)) => push_u64(&mut path, *n),
                Some(Param::Text(t)) => {
                    let segment = encode_path_segment(t);
                    dot_segment |= segment == "%2E" || segment == "%2E%2E";
                    path.push_str(&segment);
                }
                // Left as it is: `to_request` refuses it.
                None => {
                    unfilled = true;
                    path.push_str(&template[i..close]);
                }
            }
            copied = close;
            i = close;
        }
        path.push_str(&template[copied..]);
        Self {
            dot_segment,
            unfilled,
            spec,
            path,
            query: String::new(),
            body: None,
            path_secret: None,
            _response: PhantomData,
        }
    }

    fn with_body(mut self, body: Result<Vec<u8>>) -> Result<Self> {
        self.body = Some(body?);
        Ok(self)
    }

    /// The operation's table entry (or the custom one).
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Short name of the operation (`get_items`, `me`, …), for logs and tests.
    pub fn operation(&self) -> &'static str {
        self.spec.operation
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.spec.method
    }

    /// The path with its parameters named, not filled in (for logs and metrics:
    /// it never holds an id or a token).
    pub fn path_template(&self) -> &'static str {
        self.spec.template
    }

    /// The URL of this call under `base` as telemetry may show it (the HTTP
    /// conventions' `url.full`): a secret in the path (`get_user_by_token`'s
    /// token) and the value of a query parameter named like a credential
    /// (`access_token`, `code`, `state`, `signature`, …) are `REDACTED`.
    ///
    /// ```
    /// use carthooks_core::{BaseUrl, Endpoint, UserAccessToken};
    /// let base = BaseUrl::parse("https://api.carthooks.com").unwrap();
    /// let endpoint = Endpoint::get_user_by_token(&UserAccessToken::new("s3cret"));
    /// assert_eq!(
    ///     endpoint.redacted_url(&base),
    ///     "https://api.carthooks.com/v1/user-token/REDACTED"
    /// );
    /// ```
    pub fn redacted_url(&self, base: &BaseUrl) -> String {
        let path = match &self.path_secret {
            Some(secret) => self
                .path
                .replace(&*encode_path_segment(secret.secret()), "REDACTED"),
            None => self.path.clone(),
        };
        let mut url = if self.spec.under_parent {
            base.join_parent(&path)
        } else {
            base.join(&path)
        };
        for (i, pair) in self.query.split('&').filter(|p| !p.is_empty()).enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            match pair.split_once('=') {
                Some((key, _)) if is_credential_key(key) => {
                    url.push_str(key);
                    url.push_str("=REDACTED");
                }
                _ => url.push_str(pair),
            }
        }
        url
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
            self.spec.method,
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
        if let Some(open) = self.unfilled.then(|| self.path.find('{')).flatten() {
            let name = self.path[open..].split('}').next().unwrap_or_default();
            return Err(Error::InvalidInput(format!(
                "path parameter {name}}} was not given (Endpoint::param)"
            )));
        }
        let uri = base
            .uri(self.spec.under_parent, &self.path, &self.query)
            .ok_or_else(|| Error::Config("request URL is not valid".into()))?;
        let mut request = http::Request::new(self.body.clone().unwrap_or_default());
        *request.method_mut() = self.spec.method.clone();
        *request.uri_mut() = uri;
        // Sized for the four headers below: no rehash while inserting them.
        *request.headers_mut() = http::HeaderMap::with_capacity(4);
        let headers = request.headers_mut();
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(crate::USER_AGENT),
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

/// A copy of a request (`http::Request` is not `Clone`): method, URI, version,
/// headers and body. Extensions are not copied.
pub fn clone_request(request: &http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[derive(Serialize)]
struct UnlockBody<'a> {
    #[serde(rename = "lockId")]
    lock_id: &'a str,
}

/// The ids of an item's path.
fn item_ids(
    app: impl Into<AppId>,
    collection: impl Into<CollectionId>,
    item: impl Into<ItemId>,
) -> [Param<'static>; 3] {
    [
        Param::Id(app.into().get()),
        Param::Id(collection.into().get()),
        Param::Id(item.into().get()),
    ]
}

impl Endpoint<UserInfo> {
    /// `GET /v1/me`: the user the token acts for.
    pub fn get_current_user() -> Self {
        Self::from_spec(spec::ME, &[])
    }

    /// `GET /v1/users/{user}`.
    pub fn get_user(user: impl Into<UserId>) -> Self {
        Self::from_spec(spec::GET_USER, &[Param::Id(user.into().get())])
    }

    /// `GET /v1/user-token/{token}`: the user a user access token belongs to. The
    /// token travels in the path (as in the Python SDK); this description's
    /// `Debug` does not show it.
    pub fn get_user_by_token(token: &UserAccessToken) -> Self {
        let mut endpoint = Self::from_spec(spec::GET_USER_BY_TOKEN, &[Param::Text(token.secret())]);
        endpoint.path_secret = Some(token.clone());
        endpoint
    }
}

impl Endpoint<AuthorizeCodeResponse> {
    /// `POST {base}/../api/oauth/get-authorize-code`: asks for an authorization
    /// code on behalf of the user whose token is sent.
    pub fn get_oauth_authorize_code(request: &OAuthAuthorizeCodeRequest) -> Result<Self> {
        Self::from_spec(spec::AUTHORIZE_CODE, &[]).with_body(json_body(request))
    }
}

impl<T: DeserializeOwned> Endpoint<Vec<T>> {
    /// `GET /v1/apps/{app}/collections/{coll}/items?…`: one page of items.
    pub fn get_items(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        query: &ItemsQuery,
    ) -> Self {
        let ids = [
            Param::Id(app.into().get()),
            Param::Id(collection.into().get()),
        ];
        let mut ep = Self::from_spec(spec::GET_ITEMS, &ids);
        query.write_query(&mut ep.query);
        ep
    }
}

impl<T: DeserializeOwned> Endpoint<T> {
    /// `POST /v1/apps/{app}/collections/{coll}/items` with `{"data": data}`.
    pub fn create_item<D: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        data: &D,
    ) -> Result<Self> {
        let ids = [
            Param::Id(app.into().get()),
            Param::Id(collection.into().get()),
        ];
        Self::from_spec(spec::CREATE_ITEM, &ids).with_body(json_body(&DataBody { data }))
    }

    /// `GET …/items/{item}`, with `?fields=a&fields=b` when `fields` is not empty.
    pub fn get_item(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        fields: &[&str],
    ) -> Self {
        let mut ep = Self::from_spec(spec::GET_ITEM, &item_ids(app, collection, item));
        for field in fields {
            append_pair(&mut ep.query, "fields", field);
        }
        ep
    }

    /// `PUT …/items/{item}` with `{"data": data}`.
    pub fn update_item<D: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        data: &D,
    ) -> Result<Self> {
        Self::from_spec(spec::UPDATE_ITEM, &item_ids(app, collection, item))
            .with_body(json_body(&DataBody { data }))
    }

    /// `DELETE …/items/{item}`.
    pub fn delete_item(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
    ) -> Self {
        Self::from_spec(spec::DELETE_ITEM, &item_ids(app, collection, item))
    }

    /// `POST …/items/{item}/subform/{field}/` with `{"data": data}`: adds a row to
    /// a sub-form field. (The trailing slash is part of the wire format.)
    pub fn create_sub_item<D: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        field: impl Into<FieldId>,
        data: &D,
    ) -> Result<Self> {
        let [a, c, i] = item_ids(app, collection, item);
        let ids = [a, c, i, Param::Id(field.into().get())];
        Self::from_spec(spec::CREATE_SUB_ITEM, &ids).with_body(json_body(&DataBody { data }))
    }

    /// `PUT …/items/{item}/subform/{field}/items/{sub}` with `{"data": data}`.
    pub fn update_sub_item<D: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        field: impl Into<FieldId>,
        sub_item: impl Into<SubItemId>,
        data: &D,
    ) -> Result<Self> {
        let [a, c, i] = item_ids(app, collection, item);
        let ids = [
            a,
            c,
            i,
            Param::Id(field.into().get()),
            Param::Id(sub_item.into().get()),
        ];
        Self::from_spec(spec::UPDATE_SUB_ITEM, &ids).with_body(json_body(&DataBody { data }))
    }

    /// `DELETE …/items/{item}/subform/{field}/items/{sub}`.
    pub fn delete_sub_item(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        field: impl Into<FieldId>,
        sub_item: impl Into<SubItemId>,
    ) -> Self {
        let [a, c, i] = item_ids(app, collection, item);
        let ids = [
            a,
            c,
            i,
            Param::Id(field.into().get()),
            Param::Id(sub_item.into().get()),
        ];
        Self::from_spec(spec::DELETE_SUB_ITEM, &ids)
    }

    /// `POST …/collections/{coll}/submission-token` with `options` as the body: a
    /// token that lets an anonymous form submit one item.
    pub fn get_submission_token<O: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        options: &O,
    ) -> Result<Self> {
        let ids = [
            Param::Id(app.into().get()),
            Param::Id(collection.into().get()),
        ];
        Self::from_spec(spec::SUBMISSION_TOKEN, &ids).with_body(json_body(options))
    }

    /// `POST …/items/{item}/update-token` with `options` as the body: a token that
    /// lets an anonymous form update one item.
    pub fn update_submission_token<O: Serialize + ?Sized>(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        options: &O,
    ) -> Result<Self> {
        Self::from_spec(spec::UPDATE_TOKEN, &item_ids(app, collection, item))
            .with_body(json_body(options))
    }

    /// `POST /v1/uploads/token` (empty body): credentials for a file upload.
    pub fn get_upload_token() -> Self {
        Self::from_spec(spec::UPLOAD_TOKEN, &[])
    }

    /// `POST /v1/watch-data`: deliver a collection's changes to an SQS queue.
    pub fn start_watch_data(request: &WatchDataRequest) -> Result<Self> {
        Self::from_spec(spec::WATCH_DATA, &[]).with_body(json_body(request))
    }
}

impl Endpoint<ItemLock> {
    /// `POST …/items/{item}/lock` with `{lockTimeout, lockId, lockSubject}`.
    pub fn lock_item(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        options: &LockOptions,
    ) -> Result<Self> {
        Self::from_spec(spec::LOCK_ITEM, &item_ids(app, collection, item))
            .with_body(json_body(options))
    }

    /// `POST …/items/{item}/unlock` with `{lockId}`.
    pub fn unlock_item(
        app: impl Into<AppId>,
        collection: impl Into<CollectionId>,
        item: impl Into<ItemId>,
        lock_id: &str,
    ) -> Result<Self> {
        Self::from_spec(spec::UNLOCK_ITEM, &item_ids(app, collection, item))
            .with_body(json_body(&UnlockBody { lock_id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FilterOp;
    use crate::url::decode_form;

    /// `url.full` keeps ids and ordinary query values, and never a credential.
    #[test]
    fn the_url_telemetry_shows_has_no_secret() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/api").unwrap();
        let token = UserAccessToken::new("a b/secret");
        assert_eq!(
            Endpoint::get_user_by_token(&token).redacted_url(&base),
            "http://127.0.0.1:8080/api/v1/user-token/REDACTED"
        );
        let custom = Endpoint::<serde_json::Value>::new(Method::GET, "/v1/things/{id}")
            .param("id", 42)
            .query("page", "2")
            .query("STATE", "xyz")
            .query("access_token", "at-1");
        assert_eq!(
            custom.redacted_url(&base),
            "http://127.0.0.1:8080/api/v1/things/42?page=2&STATE=REDACTED&access_token=REDACTED"
        );
        let me = Endpoint::get_current_user();
        assert_eq!(me.redacted_url(&base), "http://127.0.0.1:8080/api/v1/me");
    }

    /// Every constructor fills its table entry's template; the table routes the
    /// request it builds back to it, and to nothing else.
    #[test]
    fn constructors_and_the_table_agree() {
        use serde_json::{Value, json};
        let token = UserAccessToken::new("utok");
        let request = OAuthAuthorizeCodeRequest::new("c", "https://app/cb", "s");
        let watch = WatchDataRequest::new("https://sqs/q", "w", 1, 2);
        let built: Vec<(&'static str, Method, String)> = vec![
            ep(Endpoint::get_current_user()),
            ep(Endpoint::get_oauth_authorize_code(&request).unwrap()),
            ep(Endpoint::<Vec<Value>>::get_items(1, 2, &ItemsQuery::new())),
            ep(Endpoint::<Value>::create_item(1, 2, &json!({})).unwrap()),
            ep(Endpoint::<Value>::get_item(1, 2, 3, &[])),
            ep(Endpoint::<Value>::update_item(1, 2, 3, &json!({})).unwrap()),
            ep(Endpoint::<Value>::delete_item(1, 2, 3)),
            ep(Endpoint::lock_item(1, 2, 3, &LockOptions::new("l")).unwrap()),
            ep(Endpoint::unlock_item(1, 2, 3, "l").unwrap()),
            ep(Endpoint::<Value>::create_sub_item(1, 2, 3, 9, &json!({})).unwrap()),
            ep(Endpoint::<Value>::update_sub_item(1, 2, 3, 9, 11, &json!({})).unwrap()),
            ep(Endpoint::<Value>::delete_sub_item(1, 2, 3, 9, 11)),
            ep(Endpoint::<Value>::get_submission_token(1, 2, &json!({})).unwrap()),
            ep(Endpoint::<Value>::update_submission_token(1, 2, 3, &json!({})).unwrap()),
            ep(Endpoint::<Value>::get_upload_token()),
            ep(Endpoint::get_user(7)),
            ep(Endpoint::get_user_by_token(&token)),
            ep(Endpoint::<Value>::start_watch_data(&watch).unwrap()),
        ];
        assert_eq!(
            built.len(),
            ENDPOINTS.len(),
            "one constructor per table entry"
        );
        for (operation, method, path) in &built {
            let routed: Vec<&str> = ENDPOINTS
                .iter()
                .filter(|s| s.matches(method.as_str(), path).is_some())
                .map(|s| s.operation)
                .collect();
            assert_eq!(routed, [*operation], "{method} {path}");
        }
        let params = spec::UPDATE_SUB_ITEM
            .matches("PUT", "/v1/apps/1/collections/2/items/3/subform/9/items/11")
            .unwrap();
        assert_eq!(params[3], ("field", "9".to_string()));
        assert!(
            spec::CREATE_SUB_ITEM
                .matches("POST", "/v1/apps/1/collections/2/items/3/subform/9")
                .is_some()
        );
        assert!(
            spec::GET_ITEM
                .matches("GET", "/v1/apps/1/collections/2/items/")
                .is_none()
        );
        assert!(
            spec::GET_ITEM
                .matches("PUT", "/v1/apps/1/collections/2/items/3")
                .is_none()
        );
    }

    fn ep<R>(endpoint: Endpoint<R>) -> (&'static str, Method, String) {
        let r = endpoint.to_request(&BaseUrl::default(), None).unwrap();
        (
            endpoint.operation(),
            r.method().clone(),
            r.uri().path().to_owned(),
        )
    }

    #[test]
    fn custom_endpoints_are_checked_like_the_others() {
        let e = Endpoint::<()>::new(Method::GET, "/v1/apps/{app}/x")
            .to_request(&BaseUrl::default(), None)
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput(_)) && e.to_string().contains("{app}"),
            "{e}"
        );
        let e = Endpoint::<()>::new(Method::GET, "/v1/apps/{app}/x")
            .param("app", "..")
            .to_request(&BaseUrl::default(), None)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e}");
        let r = Endpoint::<()>::new(Method::POST, "/v1/things/{name}")
            .param("name", "a b/c")
            .json(&serde_json::json!({"x": 1}))
            .unwrap()
            .to_request(&BaseUrl::default(), None)
            .unwrap();
        assert_eq!(r.uri().path(), "/v1/things/a%20b%2Fc");
        assert_eq!(r.body(), br#"{"x":1}"#);
    }

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

        let ep = Endpoint::get_oauth_authorize_code(&OAuthAuthorizeCodeRequest::new(
            "dvc-id",
            "https://app.example/cb",
            "st-1",
        ))
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
