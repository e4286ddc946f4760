//! `carthooks-mock [--port PORT] [--host HOST] [--access-token-ttl SECONDS] [--no-rotate]
//! [--reuse-detection] [--per-user-items] [--redirect-uri URI]... [--require-pkce]
//! [--secret-seed N] [--rate-limit N] [--latency MS] [--seed-items N]`: runs the fake Carthooks server until
//! interrupted.

use carthooks_mock::{
    DEFAULT_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_COLLECTION_ID,
    DEFAULT_USER_TOKEN, MockClient, MockConfig, MockServer, SIGN_IN_USERS,
};

const USAGE: &str = "usage: carthooks-mock [--port PORT] [--host IP] [--access-token-ttl SECONDS] \
[--no-rotate] [--reuse-detection] [--per-user-items] [--redirect-uri URI]... [--require-pkce] \
[--secret-seed N] [--rate-limit N] [--latency MS] [--seed-items N]

  --redirect-uri URI  register URI for the demo client (repeatable; replaces the defaults;
                      a loopback http URI allows any port)
  --require-pkce      the demo client's codes need a PKCE challenge (S256)
  --secret-seed N     codes and tokens from a fixed sequence (predictable: tests only)
  --rate-limit N      N API requests a second per access token, then 429 with Retry-After
  --latency MS        answer every API request MS milliseconds late (a distant server)
  --seed-items N      add N items to the default collection (`{\"n\": i, \"title\": \"item i\"}`)";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carthooks-mock: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut port: u16 = 0;
    let mut host = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut config = MockConfig::default();
    let mut client = MockClient::demo();
    let mut redirect_uris = Vec::new();
    let mut seed_items: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be 0..=65535")?
            }
            "--host" => {
                host = value("--host")?
                    .parse()
                    .map_err(|_| "--host must be an IP address")?
            }
            "--access-token-ttl" => {
                config.access_token_ttl = value("--access-token-ttl")?
                    .parse()
                    .map_err(|_| "--access-token-ttl must be a number of seconds")?
            }
            "--no-rotate" => config.rotate_refresh_tokens = false,
            "--reuse-detection" => config.reuse_detection = true,
            "--per-user-items" => config.per_user_items = true,
            "--redirect-uri" => redirect_uris.push(value("--redirect-uri")?),
            "--require-pkce" => client = client.require_pkce(true),
            "--secret-seed" => {
                config.secret_seed = Some(
                    value("--secret-seed")?
                        .parse()
                        .map_err(|_| "--secret-seed must be a number")?,
                )
            }
            "--rate-limit" => {
                config.rate_limit = Some(
                    value("--rate-limit")?
                        .parse()
                        .map_err(|_| "--rate-limit must be a number of requests a second")?,
                )
            }
            "--latency" => {
                config.latency = Some(std::time::Duration::from_millis(
                    value("--latency")?
                        .parse()
                        .map_err(|_| "--latency must be a number of milliseconds")?,
                ))
            }
            "--seed-items" => {
                seed_items = value("--seed-items")?
                    .parse()
                    .map_err(|_| "--seed-items must be a number of items")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if !redirect_uris.is_empty() {
        client = client.redirect_uris(redirect_uris);
    }
    let registered = format!(
        "  redirect URIs of {DEFAULT_CLIENT_ID}: {}{}",
        client.redirect_uris.join(", "),
        if client.require_pkce {
            " (PKCE required)"
        } else {
            ""
        }
    );
    config.clients = vec![client];
    let server =
        MockServer::bind((host, port).into(), config).map_err(|e| format!("cannot bind: {e}"))?;
    server
        .state()
        .seed_items(DEFAULT_APP_ID, DEFAULT_COLLECTION_ID, seed_items);
    println!("carthooks-mock listening on {}", server.url());
    println!("  client id {DEFAULT_CLIENT_ID}, client secret {DEFAULT_CLIENT_SECRET}");
    println!("  user token {DEFAULT_USER_TOKEN} (user 7, alice)");
    println!("  seeded items in app {DEFAULT_APP_ID}, collection {DEFAULT_COLLECTION_ID}");
    println!(
        "  sign-in page {} (users {})",
        server.authorize_page(),
        SIGN_IN_USERS
            .iter()
            .map(|(user, password)| format!("{user} / {password}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{registered}");
    server.wait();
    Ok(())
}
