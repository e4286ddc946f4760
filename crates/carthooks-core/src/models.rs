//! Request and answer types of the Carthooks API.

use serde::{Deserialize, Serialize};

use crate::pkce::PkceChallenge;
use crate::secret::AuthorizationCode;
use crate::url::decode_form;

/// The user (or service identity) a token acts for: the answer of `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserInfo {
    /// User id (64-bit).
    pub user_id: u64,
    /// Login name.
    #[serde(default)]
    pub username: String,
    /// E-mail address, when the server shares it.
    #[serde(default)]
    pub email: Option<String>,
    /// Tenant the token is bound to.
    #[serde(default)]
    pub tenant_id: u64,
    /// Display name of the tenant.
    #[serde(default)]
    pub tenant_name: String,
    /// Whether the user administers the tenant.
    #[serde(default)]
    pub is_admin: bool,
    /// OAuth scopes granted to the token.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// Body of `POST /api/oauth/get-authorize-code`: asks the server for an
/// authorization code for `client_id`, on behalf of the user whose token is sent.
///
/// With [`pkce`](Self::pkce) the code is bound to a PKCE challenge and can only
/// be exchanged with its verifier; without it the body is the Python SDK's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OAuthAuthorizeCodeRequest {
    /// The client the code is for.
    pub client_id: String,
    /// Where the user agent is sent back; must be registered for the client.
    pub redirect_uri: String,
    /// Opaque CSRF state, echoed back in the redirect.
    pub state: String,
    /// Tenant to authorize, when the user belongs to several.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target_tenant_id: Option<u64>,
    /// The PKCE challenge (RFC 7636 §4.3), set by [`pkce`](Self::pkce).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge: Option<String>,
    /// `S256` when [`code_challenge`](Self::code_challenge) is set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge_method: Option<String>,
}

impl OAuthAuthorizeCodeRequest {
    /// A request for a code for `client_id`, sent back to `redirect_uri` with
    /// `state` (make it with `csrf::generate_state()` and keep it in the user's
    /// session).
    pub fn new(
        client_id: impl Into<String>,
        redirect_uri: impl Into<String>,
        state: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            state: state.into(),
            target_tenant_id: None,
            code_challenge: None,
            code_challenge_method: None,
        }
    }

    /// Binds the code to `challenge`: exchange it with the verifier the
    /// challenge was made from (`exchange_authorization_code(code, uri,
    /// Some(pkce.verifier()))`). A server that does not know PKCE ignores it.
    pub fn pkce(mut self, challenge: &PkceChallenge) -> Self {
        self.code_challenge = Some(challenge.as_str().to_owned());
        self.code_challenge_method = Some(PkceChallenge::METHOD.to_owned());
        self
    }

    /// Asks for tenant `id`, for a user who belongs to several.
    pub fn target_tenant(mut self, id: u64) -> Self {
        self.target_tenant_id = Some(id);
        self
    }
}

/// Answer of the authorize-code request: the URL to send the user agent to,
/// carrying `code` and `state` in its query.
///
/// The URL holds a live authorization code, so `Debug` does not show it.
#[derive(Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizeCodeResponse {
    /// The redirect URL (contains the authorization code: treat as a secret).
    pub redirect_url: String,
}

impl AuthorizeCodeResponse {
    /// The `code` query parameter of the redirect URL.
    pub fn code(&self) -> Option<AuthorizationCode> {
        self.query_param("code").map(AuthorizationCode::new)
    }

    /// The `state` query parameter of the redirect URL.
    pub fn state(&self) -> Option<String> {
        self.query_param("state")
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.redirect_url.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or(query);
        decode_form(query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

impl std::fmt::Debug for AuthorizeCodeResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeCodeResponse")
            .field("redirect_url", &"[redacted]")
            .finish()
    }
}

/// A filter operator of the items query (`filters[FIELD][$OP]=VALUE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterOp {
    /// `$eq`: equal.
    Eq,
    /// `$ne`: not equal.
    Ne,
    /// `$gt`: greater than.
    Gt,
    /// `$gte`: greater than or equal.
    Gte,
    /// `$lt`: less than.
    Lt,
    /// `$lte`: less than or equal.
    Lte,
    /// `$contains`: string contains.
    Contains,
    /// `$in`: one of a list (use [`ItemsQuery::filter_in`]).
    In,
    /// `$nin`: none of a list (use [`ItemsQuery::filter_not_in`]).
    Nin,
    /// `$null`: the field is empty (value `true`).
    Null,
    /// `$notNull`: the field is set (value `true`).
    NotNull,
}

impl FilterOp {
    /// The operator as written on the wire (`$eq`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "$eq",
            FilterOp::Ne => "$ne",
            FilterOp::Gt => "$gt",
            FilterOp::Gte => "$gte",
            FilterOp::Lt => "$lt",
            FilterOp::Lte => "$lte",
            FilterOp::Contains => "$contains",
            FilterOp::In => "$in",
            FilterOp::Nin => "$nin",
            FilterOp::Null => "$null",
            FilterOp::NotNull => "$notNull",
        }
    }
}

/// Query of `get_items`: pagination and filters.
///
/// ```
/// use carthooks_core::{FilterOp, ItemsQuery};
/// // Python: getItems(app, coll, limit=1, start=0, **{"filters[f_1001][$eq]": "EF250920962519"})
/// let q = ItemsQuery::new().limit(1).start(0).filter("f_1001", FilterOp::Eq, "EF250920962519");
/// assert_eq!(q.to_pairs().len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemsQuery {
    start: u64,
    limit: u64,
    params: Vec<(String, String)>,
    /// `params` already percent-encoded, kept in step by [`push`](Self::push):
    /// a query is usually built once and sent many times.
    encoded: String,
}

impl Default for ItemsQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl ItemsQuery {
    /// Default page size, as in the Python SDK.
    pub const DEFAULT_LIMIT: u64 = 20;

    /// First page, 20 items, no filter.
    pub fn new() -> Self {
        Self {
            start: 0,
            limit: Self::DEFAULT_LIMIT,
            params: Vec::new(),
            encoded: String::new(),
        }
    }

    fn push(mut self, key: String, value: String) -> Self {
        crate::url::append_pair(&mut self.encoded, &key, &value);
        self.params.push((key, value));
        self
    }

    /// Offset of the first item (`pagination[start]`).
    pub fn start(mut self, start: u64) -> Self {
        self.start = start;
        self
    }

    /// Page size (`pagination[limit]`).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Adds `filters[field][op]=value`, the value as given (for `$in` / `$nin`
    /// lists see [`filter_in`](Self::filter_in)).
    pub fn filter(self, field: &str, op: FilterOp, value: impl ToString) -> Self {
        let key = format!("filters[{field}][{}]", op.as_str());
        self.push(key, value.to_string())
    }

    /// Adds `filters[field][$in][i]=value` for each value (the indexed-array form).
    pub fn filter_in<V: ToString>(self, field: &str, values: impl IntoIterator<Item = V>) -> Self {
        self.filter_list(field, FilterOp::In, values)
    }

    /// Adds `filters[field][$nin][i]=value` for each value.
    pub fn filter_not_in<V: ToString>(
        self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        self.filter_list(field, FilterOp::Nin, values)
    }

    /// Adds `filters[field][$null]=true`: the field is empty.
    pub fn filter_null(self, field: &str) -> Self {
        self.filter(field, FilterOp::Null, "true")
    }

    /// Adds `filters[field][$notNull]=true`: the field is set.
    pub fn filter_not_null(self, field: &str) -> Self {
        self.filter(field, FilterOp::NotNull, "true")
    }

    fn filter_list<V: ToString>(
        mut self,
        field: &str,
        op: FilterOp,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        for (i, v) in values.into_iter().enumerate() {
            let key = format!("filters[{field}][{}][{i}]", op.as_str());
            self = self.push(key, v.to_string());
        }
        self
    }

    /// Adds any other query parameter as given (the escape hatch for operators and
    /// options this type does not know). It is percent-encoded on the wire.
    pub fn param(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(key.into(), value.into())
    }

    /// The configured offset.
    pub fn get_start(&self) -> u64 {
        self.start
    }

    /// The configured page size.
    pub fn get_limit(&self) -> u64 {
        self.limit
    }

    /// Appends the encoded query (`filters…&pagination[start]=…&pagination[limit]=…`)
    /// to `out`, without building the pairs.
    pub(crate) fn write_query(&self, out: &mut String) {
        // The two pagination keys (23 bytes each, with their `&`) and at most
        // 20 digits each: one allocation.
        out.reserve(self.encoded.len() + 1 + 2 * (23 + 20));
        if !self.encoded.is_empty() {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&self.encoded);
        }
        // The keys, encoded once by hand (`[` is %5B, `]` is %5D).
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str("pagination%5Bstart%5D=");
        crate::url::push_u64(out, self.start);
        out.push_str("&pagination%5Blimit%5D=");
        crate::url::push_u64(out, self.limit);
    }

    /// All query pairs, in wire order (filters first, then pagination).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = self.params.clone();
        pairs.push(("pagination[start]".into(), self.start.to_string()));
        pairs.push(("pagination[limit]".into(), self.limit.to_string()));
        pairs
    }
}

/// Options of `lock_item` (`POST …/items/{id}/lock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOptions {
    /// Seconds the lock lasts unless renewed or released (default 600).
    #[serde(rename = "lockTimeout")]
    pub lock_timeout: u64,
    /// Identifies the lock; the same id renews it and is needed to unlock.
    #[serde(rename = "lockId", skip_serializing_if = "Option::is_none", default)]
    pub lock_id: Option<String>,
    /// What the lock is for (shown to others who find the item locked).
    #[serde(
        rename = "lockSubject",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub lock_subject: Option<String>,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Self::DEFAULT_TIMEOUT,
            lock_id: None,
            lock_subject: None,
        }
    }
}

impl LockOptions {
    /// Default lock timeout, as in the Python SDK: 600 s.
    pub const DEFAULT_TIMEOUT: u64 = 600;

    /// A lock with id `lock_id` and the default timeout.
    pub fn new(lock_id: impl Into<String>) -> Self {
        Self {
            lock_id: Some(lock_id.into()),
            ..Self::default()
        }
    }

    /// Sets the timeout in seconds.
    pub fn timeout(mut self, seconds: u64) -> Self {
        self.lock_timeout = seconds;
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.lock_subject = Some(subject.into());
        self
    }
}

/// The state of an item's lock, as answered by `lock_item` / `unlock_item`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ItemLock {
    /// The locked item.
    #[serde(default)]
    pub item_id: Option<u64>,
    /// Whether the item is locked now.
    #[serde(default)]
    pub locked: bool,
    /// The lock's id.
    #[serde(default, alias = "lockId")]
    pub lock_id: Option<String>,
    /// The lock's subject.
    #[serde(default, alias = "lockSubject")]
    pub lock_subject: Option<String>,
    /// When the lock lapses (Unix seconds).
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// Body of `start_watch_data` (`POST /v1/watch-data`): deliver changes of a
/// collection to an SQS queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchDataRequest {
    /// The SQS queue URL changes are delivered to.
    pub endpoint_url: String,
    /// Always `sqs`.
    #[serde(default = "sqs")]
    pub endpoint_type: String,
    /// Name of the watch.
    pub name: String,
    /// App to watch.
    pub app_id: u64,
    /// Collection to watch.
    pub collection_id: u64,
    /// How long the watch lives, seconds (default 432000 = 5 days).
    pub age: u64,
    /// Only changes of items matching these filters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub filters: Option<serde_json::Value>,
    /// Replay changes since this time (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub watch_start_time: Option<i64>,
}

fn sqs() -> String {
    "sqs".to_owned()
}

impl WatchDataRequest {
    /// Default age of a watch, as in the Python SDK: 5 days.
    pub const DEFAULT_AGE: u64 = 432_000;

    /// A watch of `app_id`/`collection_id` named `name`, delivering to `endpoint_url`.
    pub fn new(
        endpoint_url: impl Into<String>,
        name: impl Into<String>,
        app_id: u64,
        collection_id: u64,
    ) -> Self {
        Self {
            endpoint_url: endpoint_url.into(),
            endpoint_type: sqs(),
            name: name.into(),
            app_id,
            collection_id,
            age: Self::DEFAULT_AGE,
            filters: None,
            watch_start_time: None,
        }
    }

    /// Sets the age in seconds.
    pub fn age(mut self, seconds: u64) -> Self {
        self.age = seconds;
        self
    }

    /// Sets the filters.
    pub fn filters(mut self, filters: serde_json::Value) -> Self {
        self.filters = Some(filters);
        self
    }

    /// Sets the start time.
    pub fn watch_start_time(mut self, unix_seconds: i64) -> Self {
        self.watch_start_time = Some(unix_seconds);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_response_parts() {
        let r = AuthorizeCodeResponse {
            redirect_url: "https://app.example/cb?code=c%2F1&state=st-1".into(),
        };
        assert_eq!(r.code().unwrap().secret(), "c/1");
        assert_eq!(r.state().as_deref(), Some("st-1"));
        assert!(!format!("{r:?}").contains("c%2F1"));
        let none = AuthorizeCodeResponse {
            redirect_url: "https://app.example/cb".into(),
        };
        assert!(none.code().is_none());
    }

    #[test]
    fn user_info_accepts_64_bit_ids_and_missing_fields() {
        let u: UserInfo = serde_json::from_str(
            r#"{"user_id": 3883548539123, "username": "a", "scope": ["read"]}"#,
        )
        .unwrap();
        assert_eq!(u.user_id, 3_883_548_539_123);
        assert_eq!(u.scope, vec!["read".to_string()]);
        assert!(!u.is_admin);
    }

    #[test]
    fn list_filters_and_bodies() {
        let pairs = ItemsQuery::new()
            .filter_in("f", ["a", "b"])
            .filter_not_null("g")
            .to_pairs();
        assert!(pairs.contains(&("filters[f][$in][0]".into(), "a".into())));
        assert!(pairs.contains(&("filters[f][$in][1]".into(), "b".into())));
        assert!(pairs.contains(&("filters[g][$notNull]".into(), "true".into())));
        let lock = serde_json::to_value(LockOptions::new("L1").subject("batch")).unwrap();
        assert_eq!(
            lock,
            serde_json::json!({"lockTimeout": 600, "lockId": "L1", "lockSubject": "batch"})
        );
        let watch = serde_json::to_value(
            WatchDataRequest::new("https://sqs.example/q", "w1", 1, 2)
                .filters(serde_json::json!({"f_1": 1})),
        )
        .unwrap();
        assert_eq!(
            watch,
            serde_json::json!({"endpoint_url": "https://sqs.example/q", "endpoint_type": "sqs", "name": "w1",
                "app_id": 1, "collection_id": 2, "age": 432000, "filters": {"f_1": 1}})
        );
    }

    #[test]
    fn query_pairs() {
        let q = ItemsQuery::new()
            .limit(1)
            .filter("f_1001", FilterOp::Eq, "EF250920962519")
            .param("filters[f_2][$in]", "a,b");
        let pairs = q.to_pairs();
        assert!(pairs.contains(&("filters[f_1001][$eq]".into(), "EF250920962519".into())));
        assert!(pairs.contains(&("pagination[limit]".into(), "1".into())));
        assert!(pairs.contains(&("pagination[start]".into(), "0".into())));
        assert!(pairs.contains(&("filters[f_2][$in]".into(), "a,b".into())));
    }
}
