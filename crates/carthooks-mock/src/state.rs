//! The fake server's state and semantics, independent of sockets.
//!
//! [`State::handle`] takes a request (method, path, query, headers, body) and the
//! time, and returns status and JSON body. All of the OAuth rules live here.

use std::collections::HashMap;

use crate::authz::{self, MockClient, Refusal, Secrets};
use crate::decode_form;
use serde_json::{Value, json};

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
        }
    }
}

/// A fault injected into the next matching requests (see
/// [`MockServer::inject`](crate::MockServer::inject)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and an error envelope (code `INJECTED`), with a
    /// `Retry-After` header when given. The state is not touched.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` value (seconds or an HTTP-date).
        retry_after: Option<String>,
    },
    /// Read the request, then close the connection without answering. The state
    /// is not touched.
    DropAfterRead,
    /// Handle the request (the state changes), then close the connection without
    /// answering: the client cannot know it took effect.
    DropAfterHandling,
    /// Answer 200 with JSON cut off in the middle.
    TruncatedBody,
    /// Answer 200 with malformed JSON.
    MalformedBody,
    /// Answer 502 with an HTML error page.
    HtmlErrorPage,
    /// Handle the request (the state changes), then wait this long before
    /// answering.
    Delay(std::time::Duration),
    /// Wait this long, then handle the request and answer (a slow server:
    /// what it answers is as fresh as if it were fast).
    SlowStart(std::time::Duration),
}

#[derive(Debug)]
struct Injected {
    fault: Fault,
    remaining: u32,
    path_prefix: Option<String>,
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
    /// given, expiring after [`MockConfig::code_ttl`] (what the sign-in page
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

    /// Whether `who` may see item `id` (see [`MockConfig::per_user_items`]).
    fn visible(&self, who: &AccessRec, id: u64) -> bool {
        if !self.config.per_user_items {
            return true;
        }
        match who.user_id.filter(|u| self.users.contains_key(u)) {
            None => true,
            Some(user) => self.owners.get(&id) == Some(&user),
        }
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

    /// What was received so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every request received, in order.
    pub fn log(&self) -> &[MockRequest] {
        &self.log
    }

    /// Invalidates every access and refresh token issued so far.
    pub fn revoke_all_tokens(&mut self) {
        self.access.clear();
        self.refresh.clear();
    }

    /// Applies `fault` to the next `times` requests whose path starts with
    /// `path_prefix` (all paths when `None`). Faults apply in the order injected.
    pub fn inject(&mut self, fault: Fault, times: u32, path_prefix: Option<&str>) {
        self.faults.push(Injected {
            fault,
            remaining: times,
            path_prefix: path_prefix.map(str::to_owned),
        });
    }

    /// Closes the next `n` connections as soon as they are accepted.
    pub fn drop_next_connections(&mut self, n: u32) {
        self.drop_connections += n;
    }

    /// Removes every pending fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.drop_connections = 0;
    }

    /// Called when a connection is accepted: true when it is to be dropped.
    pub fn take_connection_drop(&mut self) -> bool {
        self.counters.connections += 1;
        if self.drop_connections == 0 {
            return false;
        }
        self.drop_connections -= 1;
        self.counters.dropped_connections += 1;
        true
    }

    /// Called when a request for `path` arrives: counts it and hands back the
    /// fault to apply, if any.
    pub fn arrive(&mut self, path: &str) -> Option<Fault> {
        self.counters.received += 1;
        *self
            .counters
            .received_by_path
            .entry(path.to_owned())
            .or_default() += 1;
        let at = self.faults.iter().position(|f| {
            f.remaining > 0
                && f.path_prefix
                    .as_deref()
                    .is_none_or(|prefix| path.starts_with(prefix))
        })?;
        let injected = &mut self.faults[at];
        injected.remaining -= 1;
        let fault = injected.fault.clone();
        if injected.remaining == 0 {
            self.faults.remove(at);
        }
        self.counters.faults += 1;
        Some(fault)
    }

    /// Invalidates every access token issued so far; refresh tokens stay valid
    /// (as when a server rotates its signing keys).
    pub fn revoke_access_tokens(&mut self) {
        self.access.clear();
    }

    /// Number of items stored in a collection.
    pub fn item_count(&self, app_id: u64, collection_id: u64) -> usize {
        self.items.get(&(app_id, collection_id)).map_or(0, Vec::len)
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

    fn route(&mut self, req: &MockRequest, now: u64) -> (u16, Value) {
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let method = req.method.as_str();
        let op = operation(method, &req.path);
        *self.counters.operations.entry(op).or_default() += 1;
        match op {
            "token" => return self.token(req, now),
            "not_found" => return api_error(404, "NOT_FOUND", "no such endpoint"),
            "method_not_allowed" => {
                return api_error(405, "METHOD_NOT_ALLOWED", "method not allowed");
            }
            _ => {}
        }
        let who = match self.authenticate(req, now) {
            Ok(who) => who,
            Err(e) => return e,
        };
        // Numeric path parameters: /v1/apps/{app}/collections/{coll}/items/{id}/subform/{field}/items/{sub}
        let num = |i: usize| segments.get(i).and_then(|s| s.parse::<u64>().ok());
        let ids = (num(2), num(4), num(6), num(8), num(10));
        let body = || serde_json::from_slice::<Value>(&req.body).ok();
        // One item, or its rows: another user's is not there for this token.
        let one_item = matches!(
            op,
            "get_item"
                | "update_item"
                | "delete_item"
                | "lock_item"
                | "unlock_item"
                | "create_sub_item"
                | "update_sub_item"
                | "delete_sub_item"
        );
        if let (true, Some(item)) = (one_item, ids.2)
            && !self.visible(&who, item)
        {
            return not_found("item");
        }
        match (op, ids) {
            ("authorize_code", _) => self.authorize_code(&who, body(), now),
            ("me", _) => (200, ok(self.user_info(&who))),
            ("get_items", (Some(a), Some(c), ..)) => self.list_items(&who, a, c, &req.query),
            ("create_item", (Some(a), Some(c), ..)) => self.create_item(&who, a, c, body(), now),
            ("submission_token", (Some(a), Some(c), ..)) => self.issue_form_token(
                "submission",
                json!({"app_id": a, "collection_id": c}),
                body(),
                now,
            ),
            ("get_item", (Some(a), Some(c), Some(i), ..)) => self.get_item(a, c, i, &req.query),
            ("update_item", (Some(a), Some(c), Some(i), ..)) => {
                self.update_item(&who, a, c, i, body(), now)
            }
            ("delete_item", (Some(a), Some(c), Some(i), ..)) => {
                self.delete_item(&who, a, c, i, now)
            }
            ("lock_item", (Some(a), Some(c), Some(i), ..)) => {
                self.lock_item(&who, a, c, i, body(), now)
            }
            ("unlock_item", (Some(a), Some(c), Some(i), ..)) => {
                self.unlock_item(a, c, i, body(), now)
            }
            ("update_token", (Some(a), Some(c), Some(i), ..)) => {
                if self.find_item(a, c, i).is_none() {
                    return not_found("item");
                }
                self.issue_form_token(
                    "update",
                    json!({"app_id": a, "collection_id": c, "item_id": i}),
                    body(),
                    now,
                )
            }
            ("create_sub_item", (Some(a), Some(c), Some(i), Some(f), _)) => {
                self.create_sub_item(&who, a, c, i, f, body(), now)
            }
            ("update_sub_item", (Some(a), Some(c), Some(i), Some(f), Some(r))) => {
                self.change_sub_item(&who, a, c, i, f, r, Some(body()), now)
            }
            ("delete_sub_item", (Some(a), Some(c), Some(i), Some(f), Some(r))) => {
                self.change_sub_item(&who, a, c, i, f, r, None, now)
            }
            ("upload_token", _) => self.issue_form_token("upload", json!({}), Some(json!({})), now),
            ("get_user", _) => match segments.get(2).and_then(|s| s.parse::<u64>().ok()) {
                Some(id) if self.users.contains_key(&id) => (200, ok(self.user_json(id))),
                _ => not_found("user"),
            },
            ("get_user_by_token", _) => {
                let token = decode_form(&format!("t={}", segments[2]))
                    .pop()
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                match self.user_tokens.get(&token) {
                    Some(id) => (200, ok(self.user_json(*id))),
                    None => not_found("user token"),
                }
            }
            ("watch_data", _) => self.watch_data(body(), now),
            _ => api_error(400, "BAD_REQUEST", "ids in the path must be numbers"),
        }
    }

    // ----- OAuth -----

    fn token(&mut self, req: &MockRequest, now: u64) -> (u16, Value) {
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
    ) -> (u16, Value) {
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

    fn authenticate(&self, req: &MockRequest, now: u64) -> Result<AccessRec, (u16, Value)> {
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

    fn user_json(&self, id: u64) -> Value {
        match self.users.get(&id) {
            Some(u) => json!({
                "user_id": u.id, "username": u.username, "email": u.email,
                "tenant_id": u.tenant_id, "tenant_name": u.tenant_name,
                "is_admin": u.is_admin, "scope": ["read", "write"],
            }),
            None => Value::Null,
        }
    }

    fn user_info(&self, who: &AccessRec) -> Value {
        match who.user_id.filter(|id| self.users.contains_key(id)) {
            Some(id) => self.user_json(id),
            None => json!({
                "user_id": SERVICE_USER_ID, "username": format!("service:{}", who.client_id),
                "email": null, "tenant_id": 123, "tenant_name": "Acme",
                "is_admin": false, "scope": ["read", "write"],
            }),
        }
    }

    fn authorize_code(&mut self, who: &AccessRec, body: Option<Value>, now: u64) -> (u16, Value) {
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

    // ----- items -----

    fn insert_item(&mut self, app: u64, coll: u64, data: Value, now: u64) -> Value {
        let id = self.next_item_id;
        self.next_item_id += 1;
        let title = data.get("title").cloned().unwrap_or(Value::Null);
        let item =
            json!({"id": id, "title": title, "fields": data, "created_at": now, "updated_at": now});
        self.items
            .entry((app, coll))
            .or_default()
            .push(item.clone());
        item
    }

    fn create_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        body: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let Some(data) = data_of(body) else {
            return api_error(400, "BAD_REQUEST", "body must be {\"data\": {…}}");
        };
        self.counters.items_created += 1;
        let item = self.insert_item(app, coll, data, now);
        if let (Some(id), Some(user)) = (item["id"].as_u64(), who.user_id) {
            self.owners.insert(id, user);
        }
        self.changed(app, coll, &item, "created", Some(who), now);
        (200, ok(item))
    }

    // ----- watches: change messages -----

    /// Queues a change message for every active watch of the collection whose
    /// filters `item` matches. Each change of an item bumps its revision, sent
    /// as the message's `version`.
    fn changed(
        &mut self,
        app: u64,
        coll: u64,
        item: &Value,
        event: &str,
        who: Option<&AccessRec>,
        now: u64,
    ) {
        let Some(id) = item["id"].as_u64() else {
            return;
        };
        let entry = self
            .revisions
            .entry(id)
            .or_insert((0, who.and_then(|w| w.user_id).or(Some(SERVICE_USER_ID))));
        entry.0 += 1;
        let (revision, creator) = *entry;
        let mut names: Vec<&String> = self
            .active_watches
            .iter()
            .filter(|(_, w)| {
                w.app_id == app
                    && w.collection_id == coll
                    && w.expires_at > now
                    && watch_filters_match(w.filters.as_ref(), item)
            })
            .map(|(name, _)| name)
            .collect();
        names.sort();
        let tenant_id = who
            .and_then(|w| w.user_id)
            .and_then(|u| self.users.get(&u))
            .map_or(1, |u| u.tenant_id);
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let watch = &self.active_watches[name];
            let body = json!({
                "version": revision,
                "meta": {
                    "event": format!("item.{event}"),
                    "trigger_name": name,
                    "tenant_id": tenant_id,
                    "trigger_type": "watch_data",
                },
                "payload": {
                    "id": id,
                    "title": item["title"],
                    "fields": item["fields"],
                    "created_at": item["created_at"],
                    "updated_at": item["updated_at"],
                    "creator": creator,
                },
            });
            out.push(ChangeMessage {
                queue_url: watch.queue_url.clone(),
                body: body.to_string(),
            });
        }
        self.counters.changes_queued += out.len() as u64;
        self.outbox.extend(out);
    }

    /// Takes the change messages queued since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<ChangeMessage> {
        std::mem::take(&mut self.outbox)
    }

    /// Records the fate of change messages handed to the queue.
    pub fn count_deliveries(&mut self, delivered: u64, failed: u64) {
        self.counters.changes_delivered += delivered;
        self.counters.change_delivery_failures += failed;
    }

    fn find_item(&self, app: u64, coll: u64, id: u64) -> Option<usize> {
        self.items
            .get(&(app, coll))?
            .iter()
            .position(|item| item["id"].as_u64() == Some(id))
    }

    /// Refuses a change by `who` while someone else holds a live lock.
    fn check_lock(
        &self,
        who: &AccessRec,
        key: (u64, u64, u64),
        now: u64,
    ) -> Result<(), (u16, Value)> {
        match self.locks.get(&key) {
            Some(lock) if lock.expires_at > now && lock.holder != holder(who) => Err(api_error(
                409,
                "ITEM_LOCKED",
                &format!(
                    "item is locked ({})",
                    lock.subject.as_deref().unwrap_or("no subject")
                ),
            )),
            _ => Ok(()),
        }
    }

    fn get_item(&self, app: u64, coll: u64, id: u64, query: &[(String, String)]) -> (u16, Value) {
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        let item = &self.items[&(app, coll)][pos];
        let wanted: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "fields")
            .map(|(_, v)| v.as_str())
            .collect();
        if wanted.is_empty() {
            return (200, ok(item.clone()));
        }
        let mut fields = serde_json::Map::new();
        let mut out = json!({"id": id});
        for name in wanted {
            if let Some(v) = item["fields"].get(name) {
                fields.insert(name.to_owned(), v.clone());
            } else if let Some(v) = item.get(name) {
                out[name] = v.clone();
            }
        }
        out["fields"] = Value::Object(fields);
        (200, ok(out))
    }

    fn update_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let Some(Value::Object(data)) = data_of(body) else {
            return api_error(400, "BAD_REQUEST", "body must be {\"data\": {…}}");
        };
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        if let Err(e) = self.check_lock(who, (app, coll, id), now) {
            return e;
        }
        let item = &mut self.items.get_mut(&(app, coll)).expect("found above")[pos];
        for (k, v) in data {
            if k == "title" {
                item["title"] = v.clone();
            }
            item["fields"][k.as_str()] = v;
        }
        item["updated_at"] = json!(now);
        let item = item.clone();
        self.changed(app, coll, &item, "updated", Some(who), now);
        (200, ok(item))
    }

    fn delete_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        now: u64,
    ) -> (u16, Value) {
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        if let Err(e) = self.check_lock(who, (app, coll, id), now) {
            return e;
        }
        let removed = self
            .items
            .get_mut(&(app, coll))
            .expect("found above")
            .remove(pos);
        self.locks.remove(&(app, coll, id));
        self.changed(app, coll, &removed, "deleted", Some(who), now);
        (200, ok(json!({"id": removed["id"], "deleted": true})))
    }

    fn lock_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let body = body.unwrap_or(Value::Null);
        let timeout = body["lockTimeout"].as_u64().unwrap_or(600);
        let Some(lock_id) = body["lockId"].as_str().map(str::to_owned) else {
            return api_error(400, "BAD_REQUEST", "lockId is required");
        };
        if self.find_item(app, coll, id).is_none() {
            return not_found("item");
        }
        let key = (app, coll, id);
        if let Some(lock) = self.locks.get(&key)
            && lock.expires_at > now
            && lock.lock_id != lock_id
        {
            return api_error(409, "ITEM_LOCKED", "item is locked by another lock");
        }
        let lock = LockRec {
            lock_id,
            subject: body["lockSubject"].as_str().map(str::to_owned),
            holder: holder(who),
            expires_at: now.saturating_add(timeout),
        };
        let answer = lock_json(id, Some(&lock));
        self.locks.insert(key, lock);
        (200, ok(answer))
    }

    fn unlock_item(
        &mut self,
        app: u64,
        coll: u64,
        id: u64,
        body: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let Some(lock_id) = body.as_ref().and_then(|b| b["lockId"].as_str()) else {
            return api_error(400, "BAD_REQUEST", "lockId is required");
        };
        if self.find_item(app, coll, id).is_none() {
            return not_found("item");
        }
        let key = (app, coll, id);
        match self.locks.get(&key) {
            Some(lock) if lock.expires_at > now && lock.lock_id != lock_id => {
                api_error(409, "ITEM_LOCKED", "item is locked by another lock")
            }
            _ => {
                self.locks.remove(&key);
                (200, ok(lock_json(id, None)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create_sub_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        field: u64,
        body: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let Some(Value::Object(mut row)) = data_of(body) else {
            return api_error(400, "BAD_REQUEST", "body must be {\"data\": {…}}");
        };
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        if let Err(e) = self.check_lock(who, (app, coll, id), now) {
            return e;
        }
        let row_id = self.next_row_id;
        self.next_row_id += 1;
        row.insert("id".into(), json!(row_id));
        let item = &mut self.items.get_mut(&(app, coll)).expect("found above")[pos];
        let rows = &mut item["fields"][field.to_string()];
        if !rows.is_array() {
            *rows = json!([]);
        }
        if let Value::Array(rows) = rows {
            rows.push(Value::Object(row.clone()));
        }
        (200, ok(Value::Object(row)))
    }

    /// Updates (`data: Some`) or deletes (`data: None`) a sub-form row.
    #[allow(clippy::too_many_arguments)]
    fn change_sub_item(
        &mut self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        id: u64,
        field: u64,
        row_id: u64,
        data: Option<Option<Value>>,
        now: u64,
    ) -> (u16, Value) {
        let update = match data {
            Some(body) => match data_of(body) {
                Some(Value::Object(map)) => Some(map),
                _ => return api_error(400, "BAD_REQUEST", "body must be {\"data\": {…}}"),
            },
            None => None,
        };
        let Some(pos) = self.find_item(app, coll, id) else {
            return not_found("item");
        };
        if let Err(e) = self.check_lock(who, (app, coll, id), now) {
            return e;
        }
        let item = &mut self.items.get_mut(&(app, coll)).expect("found above")[pos];
        let Some(rows) = item["fields"][field.to_string()].as_array_mut() else {
            return not_found("sub-form row");
        };
        let Some(at) = rows.iter().position(|r| r["id"].as_u64() == Some(row_id)) else {
            return not_found("sub-form row");
        };
        match update {
            Some(map) => {
                for (k, v) in map {
                    rows[at][k.as_str()] = v;
                }
                rows[at]["id"] = json!(row_id);
                (200, ok(rows[at].clone()))
            }
            None => {
                rows.remove(at);
                (200, ok(json!({"id": row_id, "deleted": true})))
            }
        }
    }

    fn issue_form_token(
        &mut self,
        kind: &str,
        scope: Value,
        options: Option<Value>,
        now: u64,
    ) -> (u16, Value) {
        let options = options.unwrap_or_else(|| json!({}));
        if !options.is_object() {
            return api_error(400, "BAD_REQUEST", "options must be a JSON object");
        }
        let expire = options["expire"].as_u64().unwrap_or(3600);
        let token = self.secrets.next(kind);
        let mut answer =
            json!({"token": token, "kind": kind, "expires_at": now.saturating_add(expire)});
        if let (Value::Object(a), Value::Object(s)) = (&mut answer, scope) {
            a.extend(s);
        }
        if kind == "upload" {
            answer["upload_url"] = json!("https://uploads.example/put");
        }
        self.issued_tokens.push(answer.clone());
        (200, ok(answer))
    }

    fn watch_data(&mut self, body: Option<Value>, now: u64) -> (u16, Value) {
        let Some(body) = body.filter(Value::is_object) else {
            return api_error(400, "BAD_REQUEST", "body must be JSON");
        };
        let required = ["endpoint_url", "name"].iter().all(|k| body[k].is_string())
            && ["app_id", "collection_id", "age"]
                .iter()
                .all(|k| body[k].is_u64());
        if !required || body["endpoint_type"] != "sqs" {
            return api_error(
                400,
                "BAD_REQUEST",
                "endpoint_url, endpoint_type sqs, name, app_id, collection_id and age are required",
            );
        }
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let age = body["age"].as_u64().unwrap_or_default();
        // Registering a name again renews that watch (a new age from now).
        self.active_watches.insert(
            name,
            WatchRec {
                queue_url: body["endpoint_url"].as_str().unwrap_or_default().to_owned(),
                app_id: body["app_id"].as_u64().unwrap_or_default(),
                collection_id: body["collection_id"].as_u64().unwrap_or_default(),
                filters: body.get("filters").filter(|f| !f.is_null()).cloned(),
                expires_at: now.saturating_add(age),
            },
        );
        let mut watch = body;
        watch["id"] = json!(self.watches.len() as u64 + 1);
        watch["created_at"] = json!(now);
        watch["expires_at"] = json!(now.saturating_add(age));
        self.watches.push(watch.clone());
        (200, ok(watch))
    }

    /// Watch registrations received, renewals included, oldest first.
    pub fn watches(&self) -> &[Value] {
        &self.watches
    }

    /// Submission, update and upload tokens issued.
    pub fn issued_tokens(&self) -> &[Value] {
        &self.issued_tokens
    }

    /// Adds `count` items `{"n": i, "title": "item i"}` to a collection.
    pub fn seed_items(&mut self, app: u64, coll: u64, count: u64) {
        for n in 0..count {
            self.insert_item(app, coll, json!({"n": n, "title": format!("item {n}")}), 0);
        }
    }

    fn list_items(
        &self,
        who: &AccessRec,
        app: u64,
        coll: u64,
        query: &[(String, String)],
    ) -> (u16, Value) {
        let mut start = 0usize;
        let mut limit = 20usize;
        let mut filters: Vec<(String, String, Vec<String>)> = Vec::new();
        for (k, v) in query {
            match k.as_str() {
                "pagination[start]" => match v.parse() {
                    Ok(n) => start = n,
                    Err(_) => {
                        return api_error(400, "BAD_REQUEST", "pagination[start] must be a number");
                    }
                },
                "pagination[limit]" => match v.parse() {
                    Ok(n) if n <= 1000 => limit = n,
                    _ => {
                        return api_error(400, "BAD_REQUEST", "pagination[limit] must be 0..=1000");
                    }
                },
                _ => {
                    if let Some((field, op)) = parse_filter_key(k) {
                        match filters.iter_mut().find(|(f, o, _)| *f == field && *o == op) {
                            Some((_, _, values)) => values.push(v.clone()),
                            None => filters.push((field, op, vec![v.clone()])),
                        }
                    } else {
                        return api_error(400, "BAD_REQUEST", "unknown query parameter");
                    }
                }
            }
        }
        let all = self
            .items
            .get(&(app, coll))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let matching: Vec<&Value> = all
            .iter()
            .filter(|item| {
                item["id"].as_u64().is_some_and(|id| self.visible(who, id))
                    && filters
                        .iter()
                        .all(|(f, op, v)| matches_filter(item, f, op, v))
            })
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .into_iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect();
        let mut body = ok(Value::Array(page));
        body["meta"] = json!({"total": total, "start": start, "limit": limit});
        (200, body)
    }
}

/// The operation a request is, by the SDK's own endpoint table (the mock knows
/// no path of its own), or `not_found`.
fn operation(method: &str, path: &str) -> &'static str {
    if (method, path) == ("POST", "/oauth/token") {
        return "token";
    }
    carthooks_core::ENDPOINTS
        .iter()
        .find(|spec| spec.matches(method, path).is_some())
        .map_or("not_found", |spec| spec.operation)
}

fn holder(who: &AccessRec) -> String {
    format!("{}:{:?}", who.client_id, who.user_id)
}

fn lock_json(item_id: u64, lock: Option<&LockRec>) -> Value {
    match lock {
        Some(l) => json!({"item_id": item_id, "locked": true, "lock_id": l.lock_id,
            "lock_subject": l.subject, "expires_at": l.expires_at}),
        None => json!({"item_id": item_id, "locked": false}),
    }
}

/// The object under `data` of a `{"data": {…}}` body.
fn data_of(body: Option<Value>) -> Option<Value> {
    match body? {
        Value::Object(mut map) => map.remove("data").filter(Value::is_object),
        _ => None,
    }
}

fn not_found(what: &str) -> (u16, Value) {
    api_error(404, "NOT_FOUND", &format!("{what} not found"))
}

/// `filters[FIELD][$OP]` or `filters[FIELD][$OP][INDEX]` → (FIELD, $OP).
fn parse_filter_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("filters[")?;
    let (field, rest) = rest.split_once("][")?;
    let op = rest.strip_suffix(']')?;
    let op = match op.split_once("][") {
        Some((op, index)) if index.parse::<usize>().is_ok() => op,
        Some(_) => return None,
        None => op,
    };
    KNOWN_OPS
        .contains(&op)
        .then(|| (field.to_owned(), op.to_owned()))
}

const KNOWN_OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$contains",
    "$in",
    "$nin",
    "$null",
    "$notNull",
];

fn field_value<'a>(item: &'a Value, field: &str) -> Option<&'a Value> {
    item.get("fields")
        .and_then(|f| f.get(field))
        .or_else(|| item.get(field))
}

fn matches_filter(item: &Value, field: &str, op: &str, values: &[String]) -> bool {
    let actual = field_value(item, field).filter(|v| !v.is_null());
    let value = values.first().map(String::as_str).unwrap_or("");
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let cmp = || -> Option<std::cmp::Ordering> {
        let a = actual?;
        match (a.as_f64(), value.parse::<f64>().ok()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(as_text(a).as_str().cmp(value)),
        }
    };
    use std::cmp::Ordering::*;
    match op {
        "$eq" => actual.is_some_and(|a| as_text(a) == value),
        "$ne" => actual.is_none_or(|a| as_text(a) != value),
        "$gt" => cmp() == Some(Greater),
        "$gte" => matches!(cmp(), Some(Greater | Equal)),
        "$lt" => cmp() == Some(Less),
        "$lte" => matches!(cmp(), Some(Less | Equal)),
        "$contains" => actual.is_some_and(|a| as_text(a).contains(value)),
        "$in" => actual.is_some_and(|a| values.contains(&as_text(a))),
        "$nin" => actual.is_none_or(|a| !values.contains(&as_text(a))),
        "$null" => actual.is_none() == (value != "false"),
        "$notNull" => actual.is_some() == (value != "false"),
        _ => false,
    }
}

/// A watch's filters (`{"f_1009": {"$eq": 1}}`, as the Python SDK passes them)
/// against an item; no filters match every item.
fn watch_filters_match(filters: Option<&Value>, item: &Value) -> bool {
    let Some(Value::Object(fields)) = filters else {
        return true;
    };
    let as_text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    fields.iter().all(|(field, condition)| match condition {
        Value::Object(ops) => ops.iter().all(|(op, value)| {
            let values: Vec<String> = match value {
                Value::Array(list) => list.iter().map(as_text).collect(),
                other => vec![as_text(other)],
            };
            matches_filter(item, field, op, &values)
        }),
        // A bare value means equality.
        value => matches_filter(item, field, "$eq", &[as_text(value)]),
    })
}

fn ok(data: Value) -> Value {
    json!({"data": data, "error": null, "meta": null})
}

fn api_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"data": null, "error": {"code": code, "message": message}, "meta": null}),
    )
}

fn oauth_error(status: u16, code: &str, description: &str) -> (u16, Value) {
    (
        status,
        json!({"error": code, "error_description": description}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn filters() {
        let item = json!({"id": 1, "fields": {"n": 5, "s": "abc"}});
        let v = |s: &str| vec![s.to_string()];
        assert!(matches_filter(&item, "n", "$gt", &v("4")));
        assert!(!matches_filter(&item, "n", "$lt", &v("5")));
        assert!(matches_filter(&item, "s", "$contains", &v("b")));
        assert!(matches_filter(&item, "missing", "$ne", &v("x")));
        assert!(matches_filter(&item, "n", "$in", &["4".into(), "5".into()]));
        assert!(!matches_filter(&item, "n", "$nin", &["5".into()]));
        assert!(matches_filter(&item, "missing", "$null", &v("true")));
        assert!(matches_filter(&item, "s", "$notNull", &v("true")));
        assert_eq!(
            parse_filter_key("filters[f_1][$eq]"),
            Some(("f_1".into(), "$eq".into()))
        );
        assert_eq!(
            parse_filter_key("filters[f_1][$in][3]"),
            Some(("f_1".into(), "$in".into()))
        );
        assert_eq!(parse_filter_key("filters[f_1][$bogus]"), None);
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
