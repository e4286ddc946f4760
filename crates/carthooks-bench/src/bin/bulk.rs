//! Bulk work: what carthooks-mock costs per request at scale (`mock`).
//!
//! Usage: `bulk mock [ITEMS]` (default 100,000 items).

use std::time::Instant;

use carthooks_bench::median;
use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID, MockConfig,
    MockRequest, State,
};

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("mock") => {
            let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
            mock(items);
        }
        _ => eprintln!("usage: bulk mock [ITEMS]"),
    }
}

fn request(
    method: &str,
    path: &str,
    query: &[(&str, String)],
    auth: &str,
    body: &str,
) -> MockRequest {
    MockRequest {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        headers: vec![
            ("authorization".into(), auth.to_owned()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.as_bytes().to_vec(),
        version: "HTTP/1.1".into(),
    }
}

/// Server-side time per request with `items` items in one collection: a page
/// of 100 (no filter, at offsets across the collection), a lookup by a field
/// (`$eq`, as `upsert_by` sends), one item by id.
fn mock(items: u64) {
    let mut state = State::new(MockConfig::default());
    state.seed_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, items);
    let form = format!(
        "grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}&client_secret={DEFAULT_CLIENT_SECRET}"
    );
    let mut token_request = request("POST", "/oauth/token", &[], "", &form);
    token_request.headers[1].1 = "application/x-www-form-urlencoded".into();
    let answer = state.handle(token_request, 0);
    let token = answer.body["data"]["access_token"]
        .as_str()
        .or(answer.body["access_token"].as_str())
        .expect("a token")
        .to_owned();
    let auth = format!("Bearer {token}");
    let path = format!("/v1/apps/{DEFAULT_APP_ID}/collections/{DEFAULT_COLLECTION_ID}/items");
    let mut time = |name: &str, n: u64, make: &dyn Fn(u64) -> MockRequest| {
        let mut samples = Vec::new();
        for i in 0..n {
            let req = make(i);
            let t = Instant::now();
            let answer = state.handle(req, 0);
            samples.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(answer.status, 200, "{name}: {}", answer.body);
        }
        println!("{name:<28} median {:>9.1} µs", median(samples));
    };
    let page_path = path.clone();
    time("list, page of 100", 200, &|i| {
        let start = (i * 7919 * 100) % items.max(1);
        request(
            "GET",
            &page_path,
            &[
                ("pagination[start]", start.to_string()),
                ("pagination[limit]", "100".into()),
            ],
            &auth,
            "",
        )
    });
    let eq_path = path.clone();
    time("list, filter $eq (a lookup)", 50, &|i| {
        let n = (i * 7919) % items.max(1);
        request(
            "GET",
            &eq_path,
            &[
                ("filters[n][$eq]", n.to_string()),
                ("pagination[start]", "0".into()),
                ("pagination[limit]", "20".into()),
            ],
            &auth,
            "",
        )
    });
    time("get one item by id", 200, &|i| {
        let id = 4 + (i * 7919) % items.max(1);
        request("GET", &format!("{path}/{id}"), &[], &auth, "")
    });
}
