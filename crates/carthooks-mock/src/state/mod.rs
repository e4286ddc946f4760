//! The fake server's state and semantics, independent of sockets.
//!
//! [`State::handle`] takes a request (method, path, query, headers, body) and the
//! time, and returns status and JSON body. All of the OAuth rules live here.
//!
//! A request finds its handler by the SDK's own endpoint table: the first
//! [`Spec`] of [`ENDPOINTS`] whose template matches names the operation and
//! hands over the path's parameters by name (`{app}`, `{item}`, …), and
//! `ROUTES` maps that spec to its handler. The handlers live by concern:
//!
//! - `oauth`: clients, users, the token endpoint, bearer checks, codes;
//! - `items`: items, locks, sub-form rows, form tokens, listing;
//! - `filter`: the query filter engine (`filters[f][$op]`) and watch filters;
//! - `watch`: watch registrations and the change messages they queue;
//! - `faults`: injected faults and dropped connections.

use std::collections::HashMap;

use crate::authz::{MockClient, Secrets};
use crate::decode_form;
use carthooks_core::{ENDPOINTS, Spec, spec};
use serde_json::{Value, json};

mod faults;
mod filter;
mod index;
mod items;
mod limit;
mod oauth;
mod watch;

pub use faults::Fault;
use faults::Injected;

/// Registered OAuth client of the fake server.
pub const DEFAULT_CLIENT_ID: &str = "demo-client";
/// Secret of [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_CLIENT_SECRET: &str = "demo-secret";
/// A seeded user's own access token (user id 7, `alice`).
pub const DEFAULT_USER_TOKEN: &str = "user-token-alice";
/// App id of the seeded collection.
pub const DEFAULT_APP_ID: u64 = 3_883_548_539;
/// Collection id of the seeded collection.
pub const DEFAULT_COLLECTION_ID: u64 = 3_883_549_661;

/// A request as the state sees it.
#[derive(Debug, Clone)]
pub struct MockRequest {
    /// HTTP method.
    pub method: String,
    /// Path, percent-decoded segments not applied (raw path).
    pub path: String,
    /// Query pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The HTTP version it came in (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
}

impl MockRequest {
    /// First header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response of the state: status and JSON body.
#[derive(Debug, Clone)]
pub struct MockResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Trace id (also sent as `x-trace-id`).
    pub trace_id: String,
}

/// Behaviour knobs.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Lifetime of issued access tokens, seconds (default 86400).
    pub access_token_ttl: u64,
    /// Issue a new refresh token on every refresh and reject the used one
    /// (default true). When false, refresh answers omit `refresh_token` and the
    /// same refresh token stays valid.
    pub rotate_refresh_tokens: bool,
    /// Reuse detection, as Auth0, Okta and Dex do with rotating refresh tokens
    /// (default false): presenting a refresh token that was already used
    /// revokes its whole family — every access and refresh token issued from
    /// the same grant — and counts a reuse ([`Counters::refresh_token_reuses`]).
    pub reuse_detection: bool,
    /// Lifetime of authorization codes, seconds (default 60).
    pub code_ttl: u64,
    /// What token answers say in `expires_in`, whatever the real lifetime
    /// (default `None`: the real lifetime, as a number). `Some(Value::Null)`
    /// leaves the field out; a string or a float imitates servers that send
    /// those.
    pub advertised_expires_in: Option<Value>,
    /// Items belong to the user who created them (default false): a token
    /// acting for a user lists, reads, changes and locks only that user's
    /// items — another's answer 404 — while the app's own token sees all. A
    /// server started with it seeds two items for each of the
    /// [`SIGN_IN_USERS`]; the other seeded items belong to no user (the app's).
    pub per_user_items: bool,
    /// The OAuth clients registered when the server starts (default: the
    /// demo client, [`MockClient::demo`], with its default redirect URIs);
    /// [`State::register_client`] adds or replaces one later.
    pub clients: Vec<MockClient>,
    /// Makes codes and tokens a deterministic sequence from this seed, the
    /// same every run (default `None`: 32 bytes from the operating system's
    /// random source each). Seeded secrets can be predicted by anyone who
    /// knows the seed: for tests that need fixed values only.
    pub secret_seed: Option<u64>,
    /// API requests a second per access token (default `None`: no limit).
    /// Beyond it the API answers 429 with `Retry-After` (whole seconds, at
    /// least 1) and an error envelope (`RATE_LIMITED`); the token endpoint
    /// is not limited. A token bucket: a burst of the limit, then the limit's
    /// rate. See [`State::admit`].
    pub rate_limit: Option<u32>,
    /// The rate limit counts per OAuth client — every token it was issued —
    /// rather than per token (default false): several processes of one
    /// account share it.
    pub rate_limit_per_client: bool,
    /// Added to every API answer (default `None`): the request is handled after
    /// this wait, as by a server this far away. Token requests are not
    /// delayed. For benchmarks that need a realistic round trip (a bulk
    /// export against 20 ms per page).
    pub latency: Option<std::time::Duration>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: 86_400,
            rotate_refresh_tokens: true,
            reuse_detection: false,
            code_ttl: 60,
            advertised_expires_in: None,
            per_user_items: false,
            clients: vec![MockClient::demo()],
            secret_seed: None,
            rate_limit: None,
            rate_limit_per_client: false,
            latency: None,
        }
    }
}

/// Counts of what the server received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every request that arrived, faulted or not.
    pub received: u64,
    /// Requests by path, faulted or not.
    pub received_by_path: HashMap<String, u64>,
    /// Connections closed on purpose right after they were accepted.
    pub dropped_connections: u64,
    /// Connections accepted (dropped ones included).
    pub connections: u64,
    /// Requests that met an injected fault.
    pub faults: u64,
    /// Every request handled (not faulted away).
    pub requests: u64,
    /// Requests to `/oauth/token`.
    pub token_requests: u64,
    /// Token requests by `grant_type`.
    pub grants: HashMap<String, u64>,
    /// Requests answered 401.
    pub unauthorized: u64,
    /// Items created.
    pub items_created: u64,
    /// Authorization codes issued (sign-in page and authorize-code endpoint).
    pub codes_issued: u64,
    /// Used refresh tokens presented again (each revoked a token family when
    /// `reuse_detection` is on).
    pub refresh_token_reuses: u64,
    /// Change messages queued for the SQS queues of active watches.
    pub changes_queued: u64,
    /// Change messages the queue accepted (with the `sqs` feature).
    pub changes_delivered: u64,
    /// Change messages the queue refused after retries (with the `sqs` feature).
    pub change_delivery_failures: u64,
    /// API requests answered 429 by the rate limit ([`MockConfig::rate_limit`]).
    pub rate_limited: u64,
    /// Requests being handled now (arrived, not yet answered).
    pub in_flight: u64,
    /// The most requests ever handled at once: what a client's concurrency
    /// looks like from the server.
    pub peak_in_flight: u64,
    /// Requests by operation (`me`, `get_items`, `lock_item`, …; unknown routes
    /// count as `not_found`).
    pub operations: HashMap<&'static str, u64>,
}

impl Counters {
    /// Token requests of one grant type.
    pub fn grant(&self, grant_type: &str) -> u64 {
        self.grants.get(grant_type).copied().unwrap_or(0)
    }

    /// Requests of one operation.
    pub fn operation(&self, name: &str) -> u64 {
        self.operations.get(name).copied().unwrap_or(0)
    }

    /// Requests that arrived for `path`, faulted or not.
    pub fn received_at(&self, path: &str) -> u64 {
        self.received_by_path.get(path).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
struct User {
    id: u64,
    username: String,
    /// For the sign-in page (none: cannot sign in there).
    password: Option<String>,
    email: String,
    tenant_id: u64,
    tenant_name: String,
    is_admin: bool,
}

#[derive(Debug, Clone)]
struct AccessRec {
    client_id: String,
    user_id: Option<u64>,
    expires_at: u64,
    /// The grant this token descends from (0: added by hand, no family).
    family: u64,
}

#[derive(Debug, Clone)]
struct RefreshRec {
    client_id: String,
    user_id: Option<u64>,
    used: bool,
    family: u64,
}

/// A registered watch: where a collection's changes go, until when.
#[derive(Debug, Clone)]
struct WatchRec {
    queue_url: String,
    app_id: u64,
    collection_id: u64,
    filters: Option<Value>,
    expires_at: u64,
}

/// A change message for a watch's SQS queue, in Carthooks' format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMessage {
    /// The queue URL the watch registered.
    pub queue_url: String,
    /// The message body (JSON): `{"version", "meta", "payload"}`.
    pub body: String,
    /// The changed item's id: the `MessageGroupId` on a FIFO queue, so that
    /// an item's changes are delivered in order.
    pub item_id: u64,
    /// The item's revision after the change: with the item's id, the
    /// `MessageDeduplicationId` on a FIFO queue (`{item}-{revision}`).
    pub revision: u64,
}

#[derive(Debug, Clone)]
struct LockRec {
    lock_id: String,
    subject: Option<String>,
    holder: String,
    expires_at: u64,
}

#[derive(Debug, Clone)]
struct CodeRec {
    client_id: String,
    user_id: u64,
    redirect_uri: String,
    /// The PKCE challenge (S256) the code was issued with.
    challenge: Option<String>,
    expires_at: u64,
    used: bool,
}

/// The whole fake Carthooks.
#[derive(Debug)]
pub struct State {
    /// Knobs; may be changed at any time.
    pub config: MockConfig,
    counters: Counters,
    clients: HashMap<String, MockClient>,
    users: HashMap<u64, User>,
    user_tokens: HashMap<String, u64>,
    access: HashMap<String, AccessRec>,
    refresh: HashMap<String, RefreshRec>,
    codes: HashMap<String, CodeRec>,
    /// Item id → the user who owns it (see [`MockConfig::per_user_items`]).
    owners: HashMap<u64, u64>,
    next_family: u64,
    revoked_families: std::collections::HashSet<u64>,
    items: HashMap<(u64, u64), Vec<Value>>,
    /// Equality indexes of the fields listings filter on.
    index: index::EqIndex,
    next_item_id: u64,
    next_row_id: u64,
    locks: HashMap<(u64, u64, u64), LockRec>,
    issued_tokens: Vec<Value>,
    watches: Vec<Value>,
    active_watches: HashMap<String, WatchRec>,
    revisions: HashMap<u64, (u64, Option<u64>)>,
    outbox: Vec<ChangeMessage>,
    faults: Vec<Injected>,
    drop_connections: u32,
    seq: u64,
    secrets: Secrets,
    log: Vec<MockRequest>,
    /// The rate limit's buckets, by token.
    buckets: limit::Buckets,
}

/// The users who can sign in on the sign-in page, with their passwords:
/// alice (user 7, whose token is [`DEFAULT_USER_TOKEN`]) and bob (user 8).
pub const SIGN_IN_USERS: [(&str, &str); 2] = [("alice", "alice-password"), ("bob", "bob-password")];

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Id of the service identity a client acts as without a user token.
const SERVICE_USER_ID: u64 = 1000;

impl State {
    /// A server with one client, one user and a seeded collection.
    pub fn new(config: MockConfig) -> Self {
        let mut state = Self {
            secrets: Secrets::new(config.secret_seed),
            clients: config
                .clients
                .iter()
                .map(|c| (c.id.clone(), c.clone()))
                .collect(),
            config,
            counters: Counters::default(),
            users: HashMap::new(),
            user_tokens: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            owners: HashMap::new(),
            next_family: 1,
            revoked_families: std::collections::HashSet::new(),
            items: HashMap::new(),
            index: Default::default(),
            next_item_id: 1,
            next_row_id: 1,
            locks: HashMap::new(),
            issued_tokens: Vec::new(),
            watches: Vec::new(),
            active_watches: HashMap::new(),
            revisions: HashMap::new(),
            outbox: Vec::new(),
            faults: Vec::new(),
            drop_connections: 0,
            seq: 0,
            log: Vec::new(),
            buckets: Default::default(),
        };
        state.add_user(7, "alice", DEFAULT_USER_TOKEN);
        state.add_user(8, "bob", "user-token-bob");
        for (id, (name, password)) in [7, 8].into_iter().zip(SIGN_IN_USERS) {
            state.set_password(id, password);
            if state.config.per_user_items {
                for (n, what) in ["first", "second"].into_iter().enumerate() {
                    let code = format!("{}-{}", name.to_uppercase(), n + 1);
                    let title = format!("{}'s {what} order", capitalized(name));
                    let data =
                        json!({"f_1001": code, "title": title, "amount": 10 * id + n as u64});
                    let item = state.insert_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, data, 0);
                    if let Some(item_id) = item["id"].as_u64() {
                        state.owners.insert(item_id, id);
                    }
                }
            }
        }
        for (i, (code, title)) in [
            ("EF250920962519", "First order"),
            ("EF250920962520", "Second order"),
            ("EF250920962521", "Third order"),
        ]
        .into_iter()
        .enumerate()
        {
            let data = json!({"f_1001": code, "title": title, "amount": (i as u64 + 1) * 100});
            state.insert_item(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, data, 0);
        }
        state
    }

    /// What was received so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every request received, in order.
    pub fn log(&self) -> &[MockRequest] {
        &self.log
    }

    /// Handles one request at `now` (Unix seconds).
    pub fn handle(&mut self, req: MockRequest, now: u64) -> MockResponse {
        self.counters.requests += 1;
        self.seq += 1;
        let trace_id = format!("mock-trace-{}", self.seq);
        let (status, body) = self.route(&req, now);
        if status == 401 {
            self.counters.unauthorized += 1;
        }
        self.log.push(req);
        let mut body = body;
        if let Value::Object(map) = &mut body {
            map.insert("traceId".into(), Value::String(trace_id.clone()));
        }
        MockResponse {
            status,
            body,
            trace_id,
        }
    }

    fn route(&mut self, req: &MockRequest, now: u64) -> Reply {
        if (req.method.as_str(), req.path.as_str()) == ("POST", "/oauth/token") {
            *self.counters.operations.entry("token").or_default() += 1;
            return self.token(req, now);
        }
        let Some((spec, params)) = ENDPOINTS
            .iter()
            .find_map(|spec| Some((spec, spec.matches(&req.method, &req.path)?)))
        else {
            *self.counters.operations.entry("not_found").or_default() += 1;
            return api_error(404, "NOT_FOUND", "no such endpoint");
        };
        *self.counters.operations.entry(spec.operation).or_default() += 1;
        let Some(route) = ROUTES.iter().find(|route| route.spec == *spec) else {
            // `every_endpoint_has_a_route` keeps this from happening.
            return api_error(
                501,
                "NOT_IMPLEMENTED",
                "the mock has no handler for this endpoint",
            );
        };
        let who = match self.authenticate(req, now) {
            Ok(who) => who,
            Err(e) => return e,
        };
        let call = Call {
            req,
            who,
            params,
            now,
        };
        // One item, or its rows: another user's is not there for this token.
        if route.access == Access::OwnItem
            && let Ok(item) = call.id("item")
            && !self.visible(&call.who, item)
        {
            return not_found("item");
        }
        (route.handler)(self, &call).unwrap_or_else(|refused| refused)
    }
}

/// A status and a JSON body.
type Reply = (u16, Value);

/// One authenticated API request on its way to its handler.
struct Call<'r> {
    req: &'r MockRequest,
    /// The token's record.
    who: AccessRec,
    /// The path's named parameters, as [`Spec::matches`] found them.
    params: Vec<(&'static str, String)>,
    now: u64,
}

impl Call<'_> {
    /// The path parameter `name`, as given.
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The numeric path parameter `name` (an id), or a 400.
    fn id(&self, name: &str) -> Result<u64, Reply> {
        self.param(name)
            .parse()
            .map_err(|_| api_error(400, "BAD_REQUEST", "ids in the path must be numbers"))
    }

    /// The body as JSON, if it is.
    fn body(&self) -> Option<Value> {
        serde_json::from_slice(&self.req.body).ok()
    }
}

/// Who may reach a route's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone with a valid token.
    Any,
    /// The `{item}` must be visible to the token (see
    /// [`MockConfig::per_user_items`]): another user's answers 404.
    OwnItem,
}

/// Where the mock routes one operation of the SDK's endpoint table.
struct Route {
    spec: Spec,
    access: Access,
    handler: fn(&mut State, &Call<'_>) -> Result<Reply, Reply>,
}

const fn route(
    spec: Spec,
    access: Access,
    handler: fn(&mut State, &Call<'_>) -> Result<Reply, Reply>,
) -> Route {
    Route {
        spec,
        access,
        handler,
    }
}

/// Every operation's handler, by the SDK's own endpoint table: the mock knows
/// no path of its own.
const ROUTES: &[Route] = &[
    route(spec::ME, Access::Any, |s, c| {
        Ok((200, ok(s.user_info(&c.who))))
    }),
    route(spec::AUTHORIZE_CODE, Access::Any, |s, c| {
        Ok(s.authorize_code(&c.who, c.body(), c.now))
    }),
    route(spec::GET_ITEMS, Access::Any, |s, c| {
        Ok(s.list_items(&c.who, c.id("app")?, c.id("coll")?, &c.req.query))
    }),
    route(spec::CREATE_ITEM, Access::Any, |s, c| {
        Ok(s.create_item(&c.who, c.id("app")?, c.id("coll")?, c.body(), c.now))
    }),
    route(spec::GET_ITEM, Access::OwnItem, |s, c| {
        Ok(s.get_item(c.id("app")?, c.id("coll")?, c.id("item")?, &c.req.query))
    }),
    route(spec::UPDATE_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item) = (c.id("app")?, c.id("coll")?, c.id("item")?);
        s.update_item(&c.who, app, coll, item, c.body(), c.now)
    }),
    route(spec::DELETE_ITEM, Access::OwnItem, |s, c| {
        s.delete_item(&c.who, c.id("app")?, c.id("coll")?, c.id("item")?, c.now)
    }),
    route(spec::LOCK_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item) = (c.id("app")?, c.id("coll")?, c.id("item")?);
        Ok(s.lock_item(&c.who, app, coll, item, c.body(), c.now))
    }),
    route(spec::UNLOCK_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item) = (c.id("app")?, c.id("coll")?, c.id("item")?);
        Ok(s.unlock_item(app, coll, item, c.body(), c.now))
    }),
    route(spec::CREATE_SUB_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item, field) = (c.id("app")?, c.id("coll")?, c.id("item")?, c.id("field")?);
        s.create_sub_item(&c.who, app, coll, item, field, c.body(), c.now)
    }),
    route(spec::UPDATE_SUB_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item, field) = (c.id("app")?, c.id("coll")?, c.id("item")?, c.id("field")?);
        let row = c.id("sub")?;
        s.change_sub_item(&c.who, app, coll, item, field, row, Some(c.body()), c.now)
    }),
    route(spec::DELETE_SUB_ITEM, Access::OwnItem, |s, c| {
        let (app, coll, item, field) = (c.id("app")?, c.id("coll")?, c.id("item")?, c.id("field")?);
        let row = c.id("sub")?;
        s.change_sub_item(&c.who, app, coll, item, field, row, None, c.now)
    }),
    route(spec::SUBMISSION_TOKEN, Access::Any, |s, c| {
        let scope = json!({"app_id": c.id("app")?, "collection_id": c.id("coll")?});
        Ok(s.issue_form_token("submission", scope, c.body(), c.now))
    }),
    route(spec::UPDATE_TOKEN, Access::Any, |s, c| {
        let (app, coll, item) = (c.id("app")?, c.id("coll")?, c.id("item")?);
        if s.find_item(app, coll, item).is_none() {
            return Err(not_found("item"));
        }
        let scope = json!({"app_id": app, "collection_id": coll, "item_id": item});
        Ok(s.issue_form_token("update", scope, c.body(), c.now))
    }),
    route(spec::UPLOAD_TOKEN, Access::Any, |s, c| {
        Ok(s.issue_form_token("upload", json!({}), Some(json!({})), c.now))
    }),
    route(spec::GET_USER, Access::Any, |s, c| match c.id("user") {
        Ok(id) if s.users.contains_key(&id) => Ok((200, ok(s.user_json(id)))),
        _ => Err(not_found("user")),
    }),
    route(spec::GET_USER_BY_TOKEN, Access::Any, |s, c| {
        let token = decode_form(&format!("t={}", c.param("token")))
            .pop()
            .map(|(_, v)| v)
            .unwrap_or_default();
        match s.user_tokens.get(&token) {
            Some(id) => Ok((200, ok(s.user_json(*id)))),
            None => Err(not_found("user token")),
        }
    }),
    route(spec::WATCH_DATA, Access::Any, |s, c| {
        Ok(s.watch_data(c.body(), c.now))
    }),
];

fn not_found(what: &str) -> Reply {
    api_error(404, "NOT_FOUND", &format!("{what} not found"))
}

fn ok(data: Value) -> Value {
    json!({"data": data, "error": null, "meta": null})
}

fn api_error(status: u16, code: &str, message: &str) -> Reply {
    (
        status,
        json!({"data": null, "error": {"code": code, "message": message}, "meta": null}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_exactly_one_route() {
        for spec in ENDPOINTS {
            let routes = ROUTES.iter().filter(|r| r.spec == *spec).count();
            assert_eq!(routes, 1, "{}", spec.operation);
        }
        assert_eq!(ROUTES.len(), ENDPOINTS.len());
    }

    #[test]
    fn path_ids_are_read_by_name_and_must_be_numbers() {
        let mut s = State::new(MockConfig::default());
        let get = |s: &mut State, path: &str| {
            s.handle(
                MockRequest {
                    method: "GET".into(),
                    path: path.into(),
                    query: vec![],
                    headers: vec![(
                        "authorization".into(),
                        format!("Bearer {DEFAULT_USER_TOKEN}"),
                    )],
                    body: vec![],
                    version: "HTTP/1.1".into(),
                },
                0,
            )
        };
        s.add_access_token(DEFAULT_USER_TOKEN, Some(7), 0, 60);
        let path = format!("/v1/apps/{DEFAULT_APP_ID}/collections/{DEFAULT_COLLECTION_ID}/items/1");
        let found = get(&mut s, &path);
        assert_eq!(found.status, 200);
        assert_eq!(found.body["data"]["id"], 1);
        let bad = get(
            &mut s,
            &format!("/v1/apps/{DEFAULT_APP_ID}/collections/x/items/1"),
        );
        assert_eq!(bad.status, 400);
        assert_eq!(
            bad.body["error"]["message"],
            "ids in the path must be numbers"
        );
        assert_eq!(s.counters().operation("get_item"), 2);
    }

    #[test]
    fn unknown_routes_are_404_envelopes() {
        let mut s = State::new(MockConfig::default());
        for (method, path) in [
            ("GET", "/v2/nothing"),
            ("PATCH", "/v1/apps/1/collections/2/items/3"),
            ("GET", "/"),
        ] {
            let r = s.handle(
                MockRequest {
                    method: method.into(),
                    path: path.into(),
                    query: vec![],
                    headers: vec![],
                    body: vec![],
                    version: "HTTP/1.1".into(),
                },
                0,
            );
            assert_eq!(r.status, 404, "{method} {path}");
            assert_eq!(r.body["error"]["code"], "NOT_FOUND");
            assert!(r.body["data"].is_null());
        }
        assert_eq!(s.counters().operation("not_found"), 3);
    }
}
