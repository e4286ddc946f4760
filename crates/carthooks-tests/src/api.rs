//! Every API call against the mock: wire conformance with the Python SDK, and
//! behaviour including the error paths.

use std::collections::HashSet;

use carthooks_client::{BuildClient, Connect};
use carthooks_core::{
    ENDPOINTS, Error, FilterOp, ItemsQuery, LockOptions, OAuthConfig, WatchDataRequest,
};
use carthooks_mock::{DEFAULT_USER_TOKEN, MockRequest, MockServer, decode_form};
use serde_json::{Value, json};

use crate::{Sdk, client, oauth};

/// The Python SDK 0.2.4's requests, one per operation, as recorded on the wire.
const WIRE: &str = include_str!("../data/python-sdk-0.2.4.jsonl");

/// Where our requests differ from the Python SDK's on purpose (DESIGN.md, "do
/// better"), each with its reason. Anything else must be identical.
pub const ALLOWED_DIFFERENCES: &[(&str, &str)] = &[
    (
        "authorization header on token requests",
        "the Python SDK sends the current bearer token to /oauth/token; the token \
         endpoint needs only client authentication and the grant, so we send no bearer",
    ),
    (
        "bearer token value",
        "tokens are issued by the server at run time; we check the scheme and that one is sent",
    ),
];

fn is_token_operation(op: &str) -> bool {
    matches!(
        op,
        "client_credentials" | "client_credentials_user" | "refresh" | "authorization_code"
    )
}

fn sorted_pairs(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut pairs = pairs;
    pairs.sort();
    pairs
}

fn compare(op: &str, wire: &Value, ours: &MockRequest, backend: &str) {
    let ctx = format!("{backend} {op}");
    assert_eq!(
        ours.method,
        wire["method"].as_str().unwrap(),
        "{ctx}: method"
    );
    assert_eq!(ours.path, wire["path"].as_str().unwrap(), "{ctx}: path");
    let wire_query: Vec<(String, String)> = wire["query"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        sorted_pairs(ours.query.clone()),
        sorted_pairs(wire_query),
        "{ctx}: query"
    );
    // Ours only (the recording has no User-Agent): every request says who sends it.
    assert_eq!(
        ours.header("user-agent"),
        Some(carthooks_core::USER_AGENT),
        "{ctx}: user-agent"
    );
    for (name, value) in wire["headers"].as_object().unwrap() {
        let value = value.as_str().unwrap();
        let mine = ours.header(name);
        if name == "authorization" {
            if is_token_operation(op) {
                assert_eq!(mine, None, "{ctx}: no bearer token to the token endpoint");
            } else {
                let mine = mine.unwrap_or_else(|| panic!("{ctx}: authorization missing"));
                assert!(
                    mine.starts_with("Bearer ") && mine.len() > 7,
                    "{ctx}: bearer"
                );
            }
        } else {
            assert_eq!(mine, Some(value), "{ctx}: header {name}");
        }
    }
    let wire_body = wire["body"].as_str().unwrap();
    let our_body = String::from_utf8(ours.body.clone()).expect("utf-8 body");
    if wire["headers"]["content-type"] == "application/x-www-form-urlencoded" {
        assert_eq!(
            sorted_pairs(decode_form(&our_body)),
            sorted_pairs(decode_form(wire_body)),
            "{ctx}: form body"
        );
    } else if wire_body.is_empty() {
        assert!(our_body.is_empty(), "{ctx}: empty body, got {our_body}");
    } else {
        let a: Value = serde_json::from_str(&our_body).expect("our body is JSON");
        let b: Value = serde_json::from_str(wire_body).unwrap();
        assert_eq!(a, b, "{ctx}: JSON body");
    }
}

/// Runs `op` the way the Python recording did; returns nothing, the mock records.
fn run<S: Sdk>(c: &S, op: &str) {
    // Answers do not matter here (many ids do not exist); only the requests do.
    let _ = match op {
        "client_credentials" => c.initialize_oauth(None).map(drop),
        "client_credentials_user" => c.initialize_oauth(Some("user-tok")).map(drop),
        "refresh" => c.refresh_oauth_token(Some("rt-stored")).map(drop),
        "authorization_code" => c
            .exchange_authorization_code("code-1", "https://app.example/cb", None)
            .map(drop),
        "authorize_code" => c
            .get_oauth_authorize_code(
                &carthooks_core::OAuthAuthorizeCodeRequest::new(
                    "dvc-id",
                    "https://app.example/cb",
                    "st-1",
                )
                .target_tenant(123),
            )
            .map(drop),
        "me" => c.get_current_user().map(drop),
        "get_items" => c
            .get_items(
                3_883_548_539,
                3_883_549_661,
                &ItemsQuery::new().limit(1).start(0).filter(
                    "f_1001",
                    FilterOp::Eq,
                    "EF250920962519",
                ),
            )
            .map(drop),
        "get_item" => c.get_item(1, 2, 3, &["f_1001", "title"]).map(drop),
        "create_item" => c
            .create_item(1, 2, &json!({"title": "New Item", "status": "active"}))
            .map(drop),
        "update_item" => c.update_item(1, 2, 3, &json!({"title": "Upd"})).map(drop),
        "delete_item" => c.delete_item(1, 2, 3).map(drop),
        "lock_item" => c
            .lock_item(1, 2, 3, &LockOptions::new("L1").subject("batch"))
            .map(drop),
        "unlock_item" => c.unlock_item(1, 2, 3, "L1").map(drop),
        "create_sub_item" => c
            .create_sub_item(1, 2, 3, 9, &json!({"name": "row"}))
            .map(drop),
        "update_sub_item" => c
            .update_sub_item(1, 2, 3, 9, 11, &json!({"name": "row2"}))
            .map(drop),
        "delete_sub_item" => c.delete_sub_item(1, 2, 3, 9, 11).map(drop),
        "submission_token" => c
            .get_submission_token(1, 2, &json!({"expire": 3600}))
            .map(drop),
        "update_token" => c
            .update_submission_token(1, 2, 3, &json!({"expire": 3600}))
            .map(drop),
        "upload_token" => c.get_upload_token().map(drop),
        "get_user" => c.get_user(7).map(drop),
        "get_user_by_token" => c.get_user_by_token("utok").map(drop),
        "watch_data" => c
            .start_watch_data(
                &WatchDataRequest::new("https://sqs.example/q", "w1", 1, 2)
                    .filters(json!({"f_1": 1})),
            )
            .map(drop),
        other => panic!("the wire file has an operation the suite does not know: {other}"),
    };
}

pub fn wire_conformance_with_the_python_sdk<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    server.state().add_client("dvc-id", "dvs-secret");
    server.state().add_user(42, "wire-user", "user-tok");
    let c: S = client(&server, OAuthConfig::new("dvc-id", "dvs-secret"));
    let mut seen = HashSet::new();
    for line in WIRE.lines().filter(|l| !l.trim().is_empty()) {
        let wire: Value = serde_json::from_str(line).unwrap();
        let op = wire["operation"].as_str().unwrap();
        let before = server.state().log().len();
        run(&c, op);
        let state = server.state();
        let sent = &state.log()[before..];
        assert_eq!(sent.len(), 1, "{} {op}: exactly one request", S::NAME);
        compare(op, &wire, &sent[0], S::NAME);
        // The endpoint table describes the request the Python SDK sent.
        if let Some(spec) = ENDPOINTS.iter().find(|s| s.operation == op) {
            assert!(
                spec.matches(&sent[0].method, &sent[0].path).is_some(),
                "{op}: the table's {} {} does not describe it",
                spec.method,
                spec.template
            );
        }
        seen.insert(op.to_owned());
    }
    assert_eq!(
        seen.len(),
        22,
        "all 22 operations of the Python SDK were compared"
    );
    // …and has no operation the recording lacks.
    for spec in ENDPOINTS {
        assert!(
            seen.contains(spec.operation),
            "{} never compared",
            spec.operation
        );
    }
}

fn user_client<S: Sdk>(server: &MockServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c: S = client(server, oauth());
    c.initialize_oauth(Some(DEFAULT_USER_TOKEN)).unwrap();
    c
}

fn service_client<S: Sdk>(server: &MockServer) -> S
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let c: S = client(server, oauth());
    c.initialize_oauth(None).unwrap();
    c
}

fn id_of(v: &Value) -> u64 {
    v["id"].as_u64().expect("an id")
}

fn assert_status(e: &Error, status: u16, code: &str) {
    assert_eq!(e.status().map(u16::from), Some(status), "{e:?}");
    assert!(matches!(e, Error::Api(_)), "{e:?}");
    assert_eq!(
        e.service_error().unwrap().code.as_deref(),
        Some(code),
        "{e:?}"
    );
    assert!(e.trace_id().unwrap().starts_with("mock-trace-"), "{e:?}");
}

/// The escape hatch: an endpoint described with `Endpoint::new` goes through the
/// same client, tokens and error handling as every method.
pub fn endpoints_the_sdk_has_no_method_for<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    use carthooks_core::Endpoint;
    let server = MockServer::start().unwrap();
    let c = user_client::<S>(&server);
    let (app, coll) = (9_000_000_001u64, 9_000_000_002u64);
    c.create_item(app, coll, &json!({"title": "Listed"}))
        .unwrap();
    let list = Endpoint::<Value>::new(http::Method::GET, "/v1/apps/{app}/collections/{coll}/items")
        .param("app", app)
        .param("coll", coll)
        .query("pagination[limit]", "5")
        .named("list_items_by_hand");
    let page = c.execute(&list).unwrap();
    assert_eq!(page.data[0]["title"], "Listed", "{:?}", page.data);
    assert!(page.trace_id.is_some());
    // A placeholder left unfilled is refused before anything is sent.
    let sent = server.state().log().len();
    let half = Endpoint::<Value>::new(http::Method::GET, "/v1/apps/{app}/views").named("views");
    let e = c.execute(&half).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(e.to_string().contains("{app}"), "{e}");
    assert_eq!(server.state().log().len(), sent, "nothing was sent");
    // An endpoint the server does not have is a typed API error.
    let e = c
        .execute(&Endpoint::new(http::Method::GET, "/v1/no-such-thing"))
        .unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
}

pub fn item_lifecycle_and_not_found<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = user_client::<S>(&server);
    let (app, coll) = (9_000_000_001, 9_000_000_002); // beyond 2^32: ids are 64-bit
    let created = c
        .create_item(app, coll, &json!({"title": "Draft", "f_1": "x", "n": 5}))
        .unwrap()
        .data;
    let id = id_of(&created);
    let got = c.get_item(app, coll, id, &[]).unwrap().data;
    assert_eq!(got["fields"]["f_1"], "x");
    let some = c.get_item(app, coll, id, &["f_1", "title"]).unwrap().data;
    assert_eq!(
        some["fields"],
        json!({"f_1": "x", "title": "Draft"}),
        "only the fields asked for"
    );
    let updated = c
        .update_item(app, coll, id, &json!({"title": "Final"}))
        .unwrap()
        .data;
    assert_eq!(updated["title"], "Final");
    assert_eq!(updated["fields"]["n"], 5);
    let deleted = c.delete_item(app, coll, id).unwrap();
    assert_eq!(deleted.data["deleted"], true);
    let e = c.get_item(app, coll, id, &[]).unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let e = c.update_item(app, coll, id, &json!({"a": 1})).unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let e = c.delete_item(app, coll, id).unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    assert_eq!(server.state().item_count(app, coll), 0);
}

pub fn locks_refuse_other_holders<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let alice = user_client::<S>(&server);
    let service = service_client::<S>(&server);
    let (app, coll) = (1, 2);
    let id = id_of(
        &alice
            .create_item(app, coll, &json!({"title": "t"}))
            .unwrap()
            .data,
    );
    let lock = alice
        .lock_item(
            app,
            coll,
            id,
            &LockOptions::new("L1").subject("batch").timeout(60),
        )
        .unwrap()
        .data;
    assert!(lock.locked);
    assert_eq!(lock.lock_id.as_deref(), Some("L1"));
    assert_eq!(lock.item_id, Some(id));
    // A second lock, an update and a delete by someone else are refused.
    let e = service
        .lock_item(app, coll, id, &LockOptions::new("L2"))
        .unwrap_err();
    assert_status(&e, 409, "ITEM_LOCKED");
    let e = service
        .update_item(app, coll, id, &json!({"title": "x"}))
        .unwrap_err();
    assert_status(&e, 409, "ITEM_LOCKED");
    let e = service.delete_item(app, coll, id).unwrap_err();
    assert_status(&e, 409, "ITEM_LOCKED");
    let e = service.unlock_item(app, coll, id, "L2").unwrap_err();
    assert_status(&e, 409, "ITEM_LOCKED");
    // The holder may renew and update.
    alice
        .lock_item(app, coll, id, &LockOptions::new("L1"))
        .unwrap();
    alice
        .update_item(app, coll, id, &json!({"title": "mine"}))
        .unwrap();
    // Unlocked, anyone may.
    let unlocked = alice.unlock_item(app, coll, id, "L1").unwrap().data;
    assert!(!unlocked.locked);
    service
        .update_item(app, coll, id, &json!({"title": "theirs"}))
        .unwrap();
    let e = alice
        .lock_item(app, coll, 999_999, &LockOptions::new("L1"))
        .unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
}

pub fn sub_form_rows<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = service_client::<S>(&server);
    let (app, coll, field) = (1, 2, 9);
    let id = id_of(
        &c.create_item(app, coll, &json!({"title": "order"}))
            .unwrap()
            .data,
    );
    let row = c
        .create_sub_item(app, coll, id, field, &json!({"name": "row"}))
        .unwrap()
        .data;
    let row_id = id_of(&row);
    let other = id_of(
        &c.create_sub_item(app, coll, id, field, &json!({"name": "b"}))
            .unwrap()
            .data,
    );
    assert_ne!(row_id, other);
    let updated = c
        .update_sub_item(app, coll, id, field, row_id, &json!({"name": "row2"}))
        .unwrap()
        .data;
    assert_eq!(updated["name"], "row2");
    let item = c.get_item(app, coll, id, &[]).unwrap().data;
    assert_eq!(
        item["fields"][field.to_string()].as_array().unwrap().len(),
        2
    );
    c.delete_sub_item(app, coll, id, field, row_id).unwrap();
    let e = c.delete_sub_item(app, coll, id, field, row_id).unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let e = c
        .update_sub_item(app, coll, 424_242, field, other, &json!({"name": "z"}))
        .unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let item = c.get_item(app, coll, id, &[]).unwrap().data;
    assert_eq!(
        item["fields"][field.to_string()],
        json!([{"id": other, "name": "b"}])
    );
}

pub fn form_and_upload_tokens<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = service_client::<S>(&server);
    let sub = c
        .get_submission_token(1, 2, &json!({"expire": 120}))
        .unwrap()
        .data;
    assert!(sub["token"].as_str().unwrap().starts_with("submission-"));
    assert_eq!(sub["collection_id"], 2);
    let id = id_of(&c.create_item(1, 2, &json!({"title": "t"})).unwrap().data);
    let upd = c
        .update_submission_token(1, 2, id, &json!({"expire": 60}))
        .unwrap()
        .data;
    assert_eq!(upd["item_id"], id);
    let e = c
        .update_submission_token(1, 2, 777_777, &json!({}))
        .unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let up = c.get_upload_token().unwrap().data;
    assert!(up["upload_url"].is_string());
    assert_eq!(server.state().issued_tokens().len(), 3);
}

pub fn users_and_watches<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = service_client::<S>(&server);
    let alice = c.get_user(7).unwrap().data;
    assert_eq!(alice.username, "alice");
    assert_status(&c.get_user(999).unwrap_err(), 404, "NOT_FOUND");
    let by_token = c.get_user_by_token(DEFAULT_USER_TOKEN).unwrap().data;
    assert_eq!(by_token.user_id, 7);
    let e = c.get_user_by_token("no such/token?&").unwrap_err();
    assert_status(&e, 404, "NOT_FOUND");
    let watch = c
        .start_watch_data(
            &WatchDataRequest::new("https://sqs.example/q", "w1", 1, 2)
                .filters(json!({"f_1": 1}))
                .watch_start_time(1_700_000_000),
        )
        .unwrap()
        .data;
    assert_eq!(watch["age"], 432_000);
    let state = server.state();
    assert_eq!(state.watches().len(), 1);
    assert_eq!(state.watches()[0]["filters"], json!({"f_1": 1}));
    assert_eq!(state.watches()[0]["watch_start_time"], 1_700_000_000);
}

pub fn query_filters<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    server.state().seed_items(5, 6, 30);
    let c = service_client::<S>(&server);
    let count = |q: ItemsQuery| c.get_items(5, 6, &q.limit(100)).unwrap().total().unwrap();
    assert_eq!(count(ItemsQuery::new().filter("n", FilterOp::Gte, 10)), 20);
    assert_eq!(count(ItemsQuery::new().filter("n", FilterOp::Lt, 10)), 10);
    assert_eq!(count(ItemsQuery::new().filter("n", FilterOp::Ne, 3)), 29);
    assert_eq!(count(ItemsQuery::new().filter_in("n", [1, 2, 3])), 3);
    assert_eq!(count(ItemsQuery::new().filter_not_in("n", [1, 2, 3])), 27);
    assert_eq!(
        count(ItemsQuery::new().filter("title", FilterOp::Contains, "item 2")),
        11
    );
    assert_eq!(count(ItemsQuery::new().filter_null("missing")), 30);
    assert_eq!(count(ItemsQuery::new().filter_not_null("n")), 30);
    assert_eq!(
        count(
            ItemsQuery::new()
                .filter("n", FilterOp::Gt, 5)
                .filter("n", FilterOp::Lte, 7)
        ),
        2
    );
    // A value that needs percent-encoding arrives intact.
    c.create_item(5, 6, &json!({"title": "a&b=c d/é+%"}))
        .unwrap();
    assert_eq!(
        count(ItemsQuery::new().filter("title", FilterOp::Eq, "a&b=c d/é+%")),
        1
    );
    // The raw escape hatch.
    assert_eq!(count(ItemsQuery::new().param("filters[n][$eq]", "4")), 1);
    let e = c
        .get_items(5, 6, &ItemsQuery::new().param("bogus", "1"))
        .unwrap_err();
    assert_status(&e, 400, "BAD_REQUEST");
}

pub fn all_pages_each_item_once<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    server.state().seed_items(5, 6, 1005);
    let c = service_client::<S>(&server);
    let items = c.take_items(5, 6, &ItemsQuery::new().limit(100), usize::MAX);
    assert_eq!(items.len(), 1005);
    let ids: HashSet<u64> = items.iter().map(|i| id_of(i.as_ref().unwrap())).collect();
    assert_eq!(ids.len(), 1005, "every item exactly once");
    assert_eq!(server.counters().operation("get_items"), 11);

    // Lazy: 150 items need two pages, not eleven.
    let before = server.counters().operation("get_items");
    assert_eq!(
        c.take_items(5, 6, &ItemsQuery::new().limit(100), 150).len(),
        150
    );
    assert_eq!(server.counters().operation("get_items") - before, 2);

    // Filters apply to every page; the walk ends on meta.total.
    let before = server.counters().operation("get_items");
    let q = ItemsQuery::new().limit(10).filter("n", FilterOp::Lt, 30);
    assert_eq!(c.take_items(5, 6, &q, usize::MAX).len(), 30);
    assert_eq!(server.counters().operation("get_items") - before, 3);
}

pub fn all_pages_surface_errors_as_items<S: Sdk>()
where
    <S::Client as BuildClient>::Transport: Connect,
{
    let server = MockServer::start().unwrap();
    let c = service_client::<S>(&server);
    server.revoke_all_tokens();
    // The refresh fails, client credentials run again: the walk still succeeds.
    assert_eq!(
        c.take_items(
            carthooks_mock::DEFAULT_APP_ID,
            carthooks_mock::DEFAULT_COLLECTION_ID,
            &ItemsQuery::new(),
            usize::MAX
        )
        .len(),
        3
    );
    // A client that cannot authenticate: one error item, then the end.
    let anonymous = S::wrap(crate::builder::<S>(&server).build().unwrap());
    let items = anonymous.take_items(1, 2, &ItemsQuery::new(), usize::MAX);
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Err(Error::NotAuthenticated(_))));
}
